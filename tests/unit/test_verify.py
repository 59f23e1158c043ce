"""verify: OpenCV's detectors on images drawn with a known homography, so the expected answer is exact.

Markers (families.marker_image) and a ChArUco board (boards.board_image) are warped onto a canvas with
cv2.warpPerspective at 4x and box-filtered down (INTER_AREA), and their ground-truth corners are mapped
by the same homography in OpenCV's pixel-centre convention: a texture pixel (u, v) covers
[u - 0.5, u + 0.5], so a marker of S pixels has its outer corners at -0.5 and S - 0.5.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from render_tag.cli.qa import main_verify
from render_tag.qa.gates import VerifyThresholds
from render_tag.qa.verify import verify_dataset
from render_tag_shared.boards import BoardDefinition, board_image, board_keypoints
from render_tag_shared.errors import InputError
from render_tag_shared.families import get_family, marker_image
from render_tag_shared.geometry import matrix_to_quat
from render_tag_shared.image_space import visibility
from render_tag_shared.records import DetectionRecord, ImageLabels

from .. import opencv_helpers
from ..builders import CHARUCO

W, H = 640, 480
SS = 4  # supersampling factor
K = np.array([[600.0, 0.0, 319.5], [0.0, 600.0, 239.5], [0.0, 0.0, 1.0]])
# Pixel x covers supersampled pixels SS x .. SS x + SS - 1, whose centres average SS x + (SS - 1) / 2.
TO_SUPERSAMPLED = np.array([[SS, 0.0, (SS - 1) / 2], [0.0, SS, (SS - 1) / 2], [0.0, 0.0, 1.0]])


def _map(h: np.ndarray, points: np.ndarray) -> np.ndarray:
    return cv2.perspectiveTransform(np.asarray(points, dtype=np.float64).reshape(-1, 1, 2), h).reshape(-1, 2)


def _draw(canvas: np.ndarray, texture: np.ndarray, h: np.ndarray) -> None:
    """Warps `texture` onto the supersampled `canvas` with the small-image homography `h`."""
    big = TO_SUPERSAMPLED @ h
    cv2.warpPerspective(texture, big, (canvas.shape[1], canvas.shape[0]), dst=canvas,
                        flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT)  # fmt: skip


def _finish(canvas: np.ndarray) -> np.ndarray:
    return cv2.resize(canvas, (W, H), interpolation=cv2.INTER_AREA)


def _record(image_id: str, family: str, tag_id: int | None, corners: np.ndarray, **extra) -> DetectionRecord:  # type: ignore[no-untyped-def]
    """A record with the fields verify reads filled from the drawing, the rest plausible placeholders."""
    vis = visibility(corners, (W, H), 2.0)
    fields = {
        "image_id": image_id,
        "scene_id": 0,
        "camera_name": "cam0",
        "object_name": f"{family}_{tag_id}",
        "record_type": "TAG",
        "tag_family": family,
        "tag_id": tag_id,
        "corners": [tuple(map(float, p)) for p in corners],
        "corners_visibility": [int(v) for v in vis],
        "k_matrix": K.tolist(),
        "resolution": (W, H),
        "distortion_model": "none",
        "distortion_coeffs": [],
        "position": (0.0, 0.0, 1.0),
        "rotation_quaternion": (1.0, 0.0, 0.0, 0.0),
        "distance": 1.0,
        "angle_of_incidence": 0.0,
        "ppm": 5.0,
        "tag_size_mm": 100.0,
    }
    fields.update(extra)
    return DetectionRecord.model_validate(fields)


def _write(out: Path, image_id: str, image: np.ndarray, records: list[DetectionRecord]) -> None:
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out / "images" / f"{image_id}.png"), image)
    labels = ImageLabels(image_id=image_id, file_name=f"images/{image_id}.png", width=W, height=H, scene_id=0,
                         camera_name="cam0", recipe_hash="test", records=records)  # fmt: skip
    (out / "labels" / f"{image_id}.json").write_text(labels.model_dump_json())


def _quad(rng: np.random.Generator, centre: tuple[float, float], side: float) -> np.ndarray:
    """A convex, clockwise (TL, TR, BR, BL) quadrilateral: a rotated square with its corners jittered."""
    angle = rng.uniform(0, 2 * math.pi)
    c, s = math.cos(angle), math.sin(angle)
    square = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64) * side / 2
    square += rng.uniform(-0.12, 0.12, size=(4, 2)) * side
    return square @ np.array([[c, s], [-s, c]]) + np.asarray(centre)


def make_tag_dataset(out: Path, families: list[str], images: int = 3, seed: int = 7) -> Path:
    rng = np.random.default_rng(seed)
    for n in range(images):
        image_id = f"scene000000_cam{n:02d}"
        canvas = np.full((H * SS, W * SS), 235, dtype=np.uint8)
        records = []
        for index, family in enumerate(families):
            for j in range(2):
                tag_id = 2 * n + j
                bits = get_family(family).marker_bits + 2
                side = bits * 12
                quiet = 12
                texture = np.full((side + 2 * quiet, side + 2 * quiet), 255, dtype=np.uint8)
                texture[quiet : quiet + side, quiet : quiet + side] = marker_image(family, tag_id, side)
                outer = np.array([[0, 0], [side, 0], [side, side], [0, side]], dtype=np.float64) + quiet - 0.5
                centre = (110 + 210 * j + 60 * index, 130 + 220 * index)
                quad = _quad(rng, centre, rng.uniform(70, 110))
                h = cv2.getPerspectiveTransform(outer.astype(np.float32), quad.astype(np.float32)).astype(
                    np.float64
                )
                _draw(canvas, texture, h)
                records.append(_record(image_id, family, tag_id, _map(h, outer)))
        _write(out, image_id, _finish(canvas), records)
    return out


def _rotation(rx: float, ry: float, rz: float) -> np.ndarray:
    r, _ = cv2.Rodrigues(np.array([rx, ry, 0.0]))
    z, _ = cv2.Rodrigues(np.array([0.0, 0.0, rz]))
    return r @ z


def make_charuco_dataset(out: Path, views: int = 10, legacy: bool = False, seed: int = 3) -> Path:
    """A ChArUco board under `views` poses of a pinhole camera K: the image is an exact homography."""
    definition = BoardDefinition.model_validate(
        {**CHARUCO, "rows": 6 if legacy else 5, "legacy_pattern": legacy}
    )
    texture = board_image(definition, px_per_bit=12)
    th, tw = texture.shape
    sx, sy = definition.width_m / tw, definition.height_m / th
    pixel_to_library = np.array([[sx, 0, 0.5 * sx], [0, sy, 0.5 * sy], [0, 0, 1.0]])  # texture px -> metres
    rng = np.random.default_rng(seed)
    keypoints_library = board_keypoints(definition)
    w_m, h_m = definition.width_m, definition.height_m
    outline_library = np.array([[0, 0, 0], [w_m, 0, 0], [w_m, h_m, 0], [0, h_m, 0]], dtype=np.float64)
    for n in range(views):
        image_id = f"scene000001_cam{n:02d}"
        rotation = _rotation(rng.uniform(-0.6, 0.6), rng.uniform(-0.6, 0.6), rng.uniform(-0.5, 0.5))
        centre = np.array([rng.uniform(-0.06, 0.06), rng.uniform(-0.04, 0.04), rng.uniform(0.55, 0.75)])
        t = centre - rotation @ np.array([definition.width_m / 2, definition.height_m / 2, 0.0])
        h = K @ np.column_stack([rotation[:, 0], rotation[:, 1], t]) @ pixel_to_library
        canvas = np.full((H * SS, W * SS), 128, dtype=np.uint8)
        _draw(canvas, texture, h)
        rvec, _ = cv2.Rodrigues(rotation)
        keypoints, _ = cv2.projectPoints(keypoints_library, rvec, t, K, np.zeros(5))
        keypoints = keypoints.reshape(-1, 2)
        outline, _ = cv2.projectPoints(outline_library, rvec, t, K, np.zeros(5))
        kp_vis = visibility(keypoints, (W, H), 2.0)
        board_fields = {
            "record_type": "BOARD",
            "object_name": "board",
            "board_definition": definition,
            "keypoints": [tuple(map(float, p)) for p in keypoints],
            "keypoints_visibility": [int(v) for v in kp_vis],
            "position": tuple(map(float, t)),
            "rotation_quaternion": tuple(map(float, matrix_to_quat(rotation))),
            "tag_size_mm": definition.marker_size_mm,
        }
        record = _record(image_id, definition.dictionary, None, outline.reshape(-1, 2), **board_fields)
        _write(out, image_id, _finish(canvas), [record])
    return out


def test_markers_are_detected_where_the_truth_says(tmp_path: Path) -> None:
    families = ["tag36h11", "DICT_4X4_50"]
    make_tag_dataset(tmp_path, families)
    report = verify_dataset(tmp_path)
    assert report.passed, report.summary()
    assert set(report.families) == set(families)
    for family in families:
        fam = report.families[family]
        assert fam["expected"] == 6 and fam["detection_rate"] == 1.0 and fam["false_positives"] == 0
        err = fam["corner_error"]
        assert err["count"] == 24
        assert abs(err["mean_dx"]) < 0.1 and abs(err["mean_dy"]) < 0.1
        assert err["median"] < 0.3 and err["p95"] < 0.6
        assert fam["centre_error"]["count"] == 6 and fam["centre_error"]["median"] < 0.1
    doc = json.loads((tmp_path / "verify.json").read_text())
    assert doc["opencv_version"] == cv2.__version__ and doc["passed"]
    assert cv2.imread(str(tmp_path / "verify.png")) is not None
    assert main_verify(tmp_path) == 0


def test_a_half_pixel_convention_error_is_caught(tmp_path: Path) -> None:
    """Labels in COCO's pixel-corner convention (shifted by +0.5 px) must miss the mean-offset threshold."""
    make_tag_dataset(tmp_path, ["tag36h11"])
    for label in (tmp_path / "labels").glob("*.json"):
        labels = ImageLabels.model_validate_json(label.read_text())
        shifted = [
            r.model_copy(update={"corners": [(x + 0.5, y + 0.5) for x, y in r.corners]})
            for r in labels.records
        ]
        label.write_text(labels.model_copy(update={"records": shifted}).model_dump_json())
    report = verify_dataset(tmp_path)
    assert any("mean_dx" in f for f in report.failures) and any("mean_dy" in f for f in report.failures)
    assert main_verify(tmp_path) == 1


def test_tags_shifted_both_ways_are_caught_by_the_centre_error(tmp_path: Path) -> None:
    """Tags moved 0.3 px left or right in turn, so that the mean offset is zero: the tag centres
    still move, so the centre error (not the mean offset) catches it."""
    make_tag_dataset(tmp_path, ["tag36h11"])
    for label in (tmp_path / "labels").glob("*.json"):
        labels = ImageLabels.model_validate_json(label.read_text())
        moved = []
        for number, r in enumerate(labels.records):
            d = 0.3 if number % 2 == 0 else -0.3  # alternating, so the offsets cancel over the dataset
            moved.append(r.model_copy(update={"corners": [(x + d, y) for x, y in r.corners]}))
        label.write_text(labels.model_copy(update={"records": moved}).model_dump_json())
    report = verify_dataset(tmp_path)
    assert not any("mean_d" in f for f in report.failures), report.failures
    assert any("median centre error" in f for f in report.failures), report.failures


def test_a_missed_threshold_exits_1(tmp_path: Path) -> None:
    make_tag_dataset(tmp_path, ["tag16h5"], images=2)
    assert main_verify(tmp_path, max_median_error_px=1e-4) == 1
    assert main_verify(tmp_path, {"max_p95_error_px": 1e-4}) == 1
    config = tmp_path / "verify.yaml"
    config.write_text("verify:\n  thresholds:\n    min_detection_rate: 1.0\n")
    assert main_verify(tmp_path, config_path=config) == 0
    # A tag that the truth says is fully visible but is not in the image lowers the detection rate.
    label = tmp_path / "labels" / "scene000000_cam00.json"
    labels = ImageLabels.model_validate_json(label.read_text())
    ghost = labels.records[0].model_copy(update={"tag_id": 29, "object_name": "ghost"})
    label.write_text(labels.model_copy(update={"records": [*labels.records, ghost]}).model_dump_json())
    report = verify_dataset(tmp_path, {"min_detection_rate": 0.9})
    assert report.families["tag16h5"]["detection_rate"] == pytest.approx(4 / 5)
    assert report.failures == ["tag16h5: detection rate 0.800 < 0.9"]
    assert main_verify(tmp_path, min_detection_rate=0.9) == 1


@pytest.mark.parametrize("legacy", [False, True])
def test_charuco_corners_and_intrinsics(tmp_path: Path, legacy: bool) -> None:
    make_charuco_dataset(tmp_path, views=10, legacy=legacy)
    report = verify_dataset(tmp_path)
    fam = report.families["charuco:DICT_5X5_100"]
    assert fam["legacy_pattern"] is legacy
    assert fam["detection_rate"] > 0.98
    assert fam["corner_error"]["median"] < 0.1 and fam["corner_error"]["p95"] < 0.25
    (calibration,) = report.calibration
    assert calibration["views"] == 10
    assert calibration["focal_error_rel"] < 1e-3
    assert calibration["principal_point_error_px"] < 1.0
    assert report.passed, report.summary()


def test_charuco_with_the_wrong_legacy_flag_is_not_detected(tmp_path: Path) -> None:
    make_charuco_dataset(tmp_path, views=4, legacy=True)
    for label in (tmp_path / "labels").glob("*.json"):
        text = label.read_text()
        label.write_text(text.replace('"legacy_pattern":true', '"legacy_pattern":false'))
    report = verify_dataset(tmp_path)
    assert report.families["charuco:DICT_5X5_100"]["detection_rate"] < 0.5
    assert not report.passed


def test_thresholds_are_checked(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="min_detection_rat"):
        VerifyThresholds.load({"min_detection_rat": 1})
    with pytest.raises(InputError, match="no readable image"):
        make_tag_dataset(tmp_path, ["tag36h11"], images=1)
        (tmp_path / "images" / "scene000000_cam00.png").unlink()
        verify_dataset(tmp_path)


def test_aprilgrid_tag_corners(tmp_path: Path) -> None:
    """Kalibr's AprilGrid (y up, tags turned 180 degrees, 2-bit border): ArUco corners hit its grid points."""
    definition = BoardDefinition.model_validate(
        {
            "board_type": "aprilgrid",
            "rows": 4,
            "cols": 5,
            "marker_size_mm": 40.0,
            "spacing_ratio": 0.25,
            "dictionary": "tag36h11",
        }
    )
    texture = board_image(definition, px_per_bit=10)
    tw = texture.shape[1]
    s = definition.width_m / tw
    gap = definition.gap_mm / 1000.0
    # Texture pixel -> Kalibr's frame: origin at tag 0's bottom-left corner (one gap inside the print), y up.
    pixel_to_library = np.array(
        [[s, 0, 0.5 * s - gap], [0, -s, definition.height_m - 0.5 * s - gap], [0, 0, 1.0]]
    )
    rotation = _rotation(0.35, -0.25, 0.3) @ np.diag([1.0, -1.0, -1.0])  # board faces the camera, y up
    t = np.array([-0.1, 0.08, 0.6])
    h = K @ np.column_stack([rotation[:, 0], rotation[:, 1], t]) @ pixel_to_library
    canvas = np.full((H * SS, W * SS), 128, dtype=np.uint8)
    _draw(canvas, texture, h)
    rvec, _ = cv2.Rodrigues(rotation)
    keypoints, _ = cv2.projectPoints(board_keypoints(definition), rvec, t, K, np.zeros(5))
    keypoints = keypoints.reshape(-1, 2)
    record = _record(
        "scene000002_cam00",
        "tag36h11",
        None,
        keypoints[[0, 1, 2, 3]],
        record_type="BOARD",
        object_name="grid",
        board_definition=definition,
        keypoints=[tuple(map(float, p)) for p in keypoints],
        keypoints_visibility=[int(v) for v in visibility(keypoints, (W, H), 2.0)],
    )
    _write(tmp_path, "scene000002_cam00", _finish(canvas), [record])
    report = verify_dataset(tmp_path)
    fam = report.families["aprilgrid:tag36h11"]
    assert fam["expected"] == 20 and fam["detection_rate"] == 1.0 and fam["border_bits"] == 2
    assert fam["corner_error"]["count"] == 80 and fam["corner_error"]["median"] < 0.15
    assert report.passed, report.summary()


def test_the_command_line_passes_every_threshold(tmp_path: Path) -> None:
    from render_tag.cli import main

    make_tag_dataset(tmp_path, ["tag36h11"], images=2)
    assert main(["verify", str(tmp_path)]) == 0
    assert main(["verify", str(tmp_path), "--max-median-centre-error-px", "1e-6"]) == 1
    assert main(["verify", str(tmp_path), "--max-p95-error-px", "1e-6"]) == 1
    config = tmp_path / "thresholds.yaml"
    config.write_text("verify:\n  max_mean_offset_px: 1.0e-9\n")
    assert main(["verify", str(tmp_path), "--config", str(config)]) == 1
    failures = json.loads((tmp_path / "verify.json").read_text())["failures"]
    assert any("mean_dx" in f or "mean_dy" in f for f in failures), failures


def test_charuco_bias_removed_is_the_one_this_opencv_has() -> None:
    """verify's offset equals an independent measurement, and the versions the README names.

    Why: OpenCV 4.11 to 4.13's CharucoDetector adds +0.5 px to every corner (opencv#25539) and 4.14+
    does not; verify measures it at run time rather than trusting a version table, so a wrong
    measurement would pass or fail datasets for the detector's sake.
    """
    from render_tag.qa.verify import charuco_detector_bias

    measured = charuco_detector_bias()
    independent = opencv_helpers.charuco_detector_bias()  # another board, blurred, its own method
    assert measured == (independent, independent)
    assert measured == ((0.0, 0.0) if opencv_helpers.OPENCV_VERSION >= (4, 14) else (0.5, 0.5))
