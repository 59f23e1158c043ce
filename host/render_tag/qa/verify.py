"""`render-tag verify OUT`: OpenCV's own detectors against the dataset's ground truth.

A label that a detector disagrees with is either a rendering bug or a labelling bug, and either would
teach a model or a calibration pipeline the wrong answer. So the dataset is run through the detectors
its users run (`cv2.aruco.ArucoDetector` per family, `cv2.aruco.CharucoDetector` for ChArUco boards,
rebuilt from each record's board definition with the legacy-pattern flag set as defined) and the
answers are compared with the truth: detection rate of the tags marked fully visible, corner error
(mean signed offset in x and y, median, p95) and, for ChArUco datasets, the intrinsics that
`cv2.calibrateCamera` recovers from the detections against the true K. OpenCV's version and the
detector settings are recorded, because the numbers depend on them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from render_tag_shared.boards import BoardDefinition, board_keypoints
from render_tag_shared.errors import InputError
from render_tag_shared.families import get_family
from render_tag_shared.records import DetectionRecord

from ..dataset.exports import charuco_board
from ..dataset.reader import RenderTagDataset, opencv_dist_coeffs
from ..io import write_bytes_atomic, write_json_atomic
from .gates import VerifyThresholds

__all__ = ["VerifyReport", "verify_dataset"]

VERIFY_VERSION = 1
MIN_CALIBRATION_VIEWS = 4
MIN_POINTS_PER_VIEW = 6


@cache
def charuco_detector_bias() -> tuple[float, float]:
    """The constant offset of this OpenCV's CharucoDetector corners, measured on a board it drew itself.

    OpenCV 4.7 to 4.13 shift every ChArUco corner by +0.5 px in x and y (a +0.5 added after
    cornerSubPix; opencv/opencv#25539, fixed by opencv/opencv#28380). Judging ground truth against that
    would blame the dataset for the detector, so the offset is measured on `generateImage` output, whose
    corners are known exactly, rounded to a multiple of 0.5 px (so nothing but that bug is absorbed),
    subtracted from detections, and recorded in verify.json.
    """
    import cv2

    dictionary = cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_5X5_100)
    board = cv2.aruco.CharucoBoard((7, 5), 0.04, 0.03, dictionary)
    margin, square = 50, 100
    image = board.generateImage((7 * square + 2 * margin, 5 * square + 2 * margin), marginSize=margin)
    corners, ids, _, _ = cv2.aruco.CharucoDetector(board).detectBoard(image)
    if ids is None or len(ids) < 4:
        return (0.0, 0.0)
    truth = np.asarray(board.getChessboardCorners())[ids.ravel(), :2] / 0.04 * square + margin - 0.5
    offset = np.median(np.asarray(corners, dtype=np.float64).reshape(-1, 2) - truth, axis=0)
    return (float(np.round(offset[0] * 2) / 2), float(np.round(offset[1] * 2) / 2))


# -- detectors -------------------------------------------------------------------------------------


def _detector_parameters(border_bits: int = 1) -> Any:
    import cv2

    params = cv2.aruco.DetectorParameters()
    if hasattr(params, "validBitIdThreshold"):
        # New in OpenCV 4.14 (default 0.49). With the default, 4.14 to 5.1 reject 2 of the 5 tags that
        # 4.11 decodes (with the right ids) on a render with 3 px of motion blur; 0.5 gives 4.11's
        # detections there, so a dataset is judged the same whichever OpenCV verifies it.
        params.validBitIdThreshold = 0.5
    params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
    params.markerBorderBits = int(border_bits)
    return params


def _dictionary(family: str) -> Any:
    import cv2

    return cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, get_family(family).opencv_name))


class _Detectors:
    """Detectors built once per family / board definition and reused for every image."""

    def __init__(self) -> None:
        self._aruco: dict[tuple[str, int], Any] = {}
        self._charuco: dict[str, Any] = {}

    def aruco(self, family: str, border_bits: int = 1) -> Any:
        import cv2

        key = (family, border_bits)
        if key not in self._aruco:
            self._aruco[key] = cv2.aruco.ArucoDetector(_dictionary(family), _detector_parameters(border_bits))
        return self._aruco[key]

    def charuco(self, board: BoardDefinition) -> tuple[Any, Any]:
        import cv2

        key = board.model_dump_json()
        if key not in self._charuco:
            cv_board = charuco_board(board)
            params = _detector_parameters(board.effective_border_bits)
            self._charuco[key] = (cv2.aruco.CharucoDetector(cv_board, detectorParams=params), cv_board)
        return self._charuco[key]


# -- accumulation ----------------------------------------------------------------------------------


@dataclass
class _FamilyStats:
    kind: str
    expected: int = 0
    detected: int = 0
    false_positives: int = 0
    offsets: list[tuple[float, float]] = field(default_factory=list)
    centre_offsets: list[tuple[float, float]] = field(default_factory=list)
    missed_examples: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, detected: npt.NDArray[np.float64], truth: npt.NDArray[np.float64]) -> None:
        self.offsets.extend((float(dx), float(dy)) for dx, dy in (detected - truth).reshape(-1, 2))

    def add_tag(self, detected: npt.NDArray[np.float64], truth: npt.NDArray[np.float64]) -> None:
        """A tag's four corners, and its centre, where the detector's inward corner bias cancels."""
        self.add(detected, truth)
        dx, dy = detected.reshape(4, 2).mean(axis=0) - truth.reshape(4, 2).mean(axis=0)
        self.centre_offsets.append((float(dx), float(dy)))

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "expected": self.expected,
            "detected": self.detected,
            "detection_rate": self.detected / self.expected if self.expected else None,
            "false_positives": self.false_positives,
            "corner_error": _error_stats(self.offsets),
            **self.extra,
        }
        if self.centre_offsets:
            out["centre_error"] = _error_stats(self.centre_offsets)
        if self.missed_examples:
            out["missed_examples"] = self.missed_examples
        return out


def _error_stats(offsets: list[tuple[float, float]]) -> dict[str, Any]:
    if not offsets:
        return {"count": 0}
    d = np.asarray(offsets, dtype=np.float64)
    norms = np.linalg.norm(d, axis=1)
    return {
        "count": len(d),
        "mean_dx": float(d[:, 0].mean()),
        "mean_dy": float(d[:, 1].mean()),
        "median": float(np.median(norms)),
        "p95": float(np.percentile(norms, 95)),
        "max": float(norms.max()),
        "rms": float(math.sqrt(float(np.mean(norms**2)))),
    }


def _board_marker_ids(records: list[DetectionRecord], family: str) -> set[int]:
    ids: set[int] = set()
    for record in records:
        if (
            record.board_definition is not None
            and record.board_definition.num_markers > 0
            and record.board_definition.family.name == get_family(family).name
        ):
            ids.update(record.board_definition.resolved_marker_ids())
    return ids


def _verify_tags(
    gray: Any, records: list[DetectionRecord], detectors: _Detectors, stats: dict[str, _FamilyStats]
) -> None:
    tags = [r for r in records if r.record_type == "TAG"]
    for family in sorted({r.tag_family for r in tags}):
        corners, ids, _ = detectors.aruco(family).detectMarkers(gray)
        found = {}
        if ids is not None:
            for tag_id, quad in zip(ids.ravel().tolist(), corners, strict=True):
                found[int(tag_id)] = np.asarray(quad, dtype=np.float64).reshape(4, 2)
        entry = stats.setdefault(family, _FamilyStats(kind="tag"))
        truth_ids = {r.tag_id for r in tags if r.tag_family == family}
        board_ids = _board_marker_ids(records, family)
        entry.false_positives += sum(1 for i in found if i not in truth_ids and i not in board_ids)
        for record in tags:
            if record.tag_family != family or not record.fully_visible:
                continue
            entry.expected += 1
            detection = found.get(int(record.tag_id if record.tag_id is not None else -1))
            if detection is None:
                if len(entry.missed_examples) < 20:
                    entry.missed_examples.append({"image_id": record.image_id, "tag_id": record.tag_id})
                continue
            entry.detected += 1
            entry.add_tag(detection, np.asarray(record.corners, dtype=np.float64))


def _verify_charuco(
    gray: Any, record: DetectionRecord, detectors: _Detectors, entry: _FamilyStats
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]] | None:
    """Compares detected ChArUco corners with the keypoints; returns (object, image) points to calibrate."""
    assert record.board_definition is not None and record.keypoints is not None
    detector, cv_board = detectors.charuco(record.board_definition)
    charuco_corners, charuco_ids, _, _ = detector.detectBoard(gray)
    vis = np.asarray(record.keypoints_visibility or [], dtype=np.int64)
    truth = np.asarray(record.keypoints, dtype=np.float64)
    expected = set(np.flatnonzero(vis == 2).tolist())
    entry.expected += len(expected)
    if charuco_ids is None or len(charuco_ids) == 0:
        return None
    ids = charuco_ids.ravel().astype(int)
    points = np.asarray(charuco_corners, dtype=np.float64).reshape(-1, 2) - np.asarray(
        charuco_detector_bias()
    )
    keep = np.array([i in expected for i in ids], dtype=bool)
    entry.detected += int(keep.sum())
    entry.false_positives += int((~np.isin(ids, np.arange(len(vis)))).sum())
    entry.add(points[keep], truth[ids[keep]])
    object_points = np.asarray(cv_board.getChessboardCorners(), dtype=np.float32)[ids]
    return object_points, points.astype(np.float32)


APRILGRID_SUBPIX_WINDOW = 3
"""Half-window of cv2.cornerSubPix on AprilGrid saddles (Kalibr refines its tag corners the same way)."""


def _verify_aprilgrid(gray: Any, record: DetectionRecord, detectors: _Detectors, entry: _FamilyStats) -> None:
    """Tag corners of a Kalibr AprilGrid: OpenCV's TL, TR, BR, BL are Kalibr points b+1, b, b+2c, b+2c+1.

    On an AprilGrid each tag corner touches a black corner square, which drags ArUco's quad fit ~2 px
    outwards; the corners are saddle points there, so they are refined with cv2.cornerSubPix first.
    """
    import cv2

    board = record.board_definition
    assert board is not None and record.keypoints is not None
    corners, ids, _ = detectors.aruco(board.dictionary, board.effective_border_bits).detectMarkers(gray)
    vis = np.asarray(record.keypoints_visibility or [], dtype=np.int64)
    truth = np.asarray(record.keypoints, dtype=np.float64)
    marker_ids = board.resolved_marker_ids()
    cols = board.cols
    expected = 0
    for k in range(len(marker_ids)):
        base = (k // cols) * 4 * cols + (k % cols) * 2
        expected += int(all(vis[i] == 2 for i in (base + 1, base, base + 2 * cols, base + 2 * cols + 1)))
    entry.expected += expected
    if ids is None:
        return
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_COUNT, 50, 1e-3)
    window = (APRILGRID_SUBPIX_WINDOW, APRILGRID_SUBPIX_WINDOW)
    corners = [cv2.cornerSubPix(gray, np.asarray(q, np.float32).reshape(-1, 1, 2), window, (-1, -1), criteria)
               for q in corners]  # fmt: skip
    index_of = {tag_id: k for k, tag_id in enumerate(marker_ids)}
    for tag_id, quad in zip(ids.ravel().tolist(), corners, strict=True):
        found = index_of.get(int(tag_id))
        if found is None:
            entry.false_positives += 1
            continue
        base = (found // cols) * 4 * cols + (found % cols) * 2
        order = [base + 1, base, base + 2 * cols, base + 2 * cols + 1]
        if all(vis[i] == 2 for i in order):
            entry.detected += 1
            entry.add(np.asarray(quad, dtype=np.float64).reshape(4, 2), truth[order])


def detect_checkerboard(gray: Any, board: BoardDefinition) -> npt.NDArray[np.float64] | None:
    """`cv2.findChessboardCornersSB` on the whole pattern, in the board's keypoint order, or None.

    SB starts at the far end of the inner-corner grid from `findChessboardCorners` (boards.py): its
    points are reversed into keypoint order.
    """
    import cv2

    ok, found = cv2.findChessboardCornersSB(gray, (board.cols - 1, board.rows - 1))
    if not ok or found is None:
        return None
    return np.asarray(found, dtype=np.float64).reshape(-1, 2)[::-1].copy()


def _verify_checkerboard(
    gray: Any, record: DetectionRecord, entry: _FamilyStats
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]] | None:
    """Checkerboard corners against the keypoints when the whole pattern is in view (SB finds it whole).

    With rows + cols even the board looks the same turned by half a turn, so the detector's order is
    the view's: the two orders are tried and the closer one kept (no order is right or wrong there).
    """
    board = record.board_definition
    assert board is not None and record.keypoints is not None
    vis = np.asarray(record.keypoints_visibility or [], dtype=np.int64)
    if not (vis == 2).all():
        return None
    entry.expected += len(vis)
    found = detect_checkerboard(gray, board)
    if found is None:
        return None
    truth = np.asarray(record.keypoints, dtype=np.float64)
    if (board.rows + board.cols) % 2 == 0 and np.median(
        np.linalg.norm(found[::-1] - truth, axis=1)
    ) < np.median(np.linalg.norm(found - truth, axis=1)):
        found = found[::-1].copy()
    entry.detected += len(found)
    entry.add(found, truth)
    object_points = np.asarray(board_keypoints(board), dtype=np.float32)
    return object_points, found.astype(np.float32)


# -- calibration -----------------------------------------------------------------------------------


def _calibrate(
    views: list[tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]], record: DetectionRecord
) -> dict[str, Any]:
    """cv2.calibrateCamera (cv2.fisheye.calibrate for Kannala-Brandt) on ChArUco detections, vs the true K."""
    import cv2

    k_true = np.asarray(record.k_matrix, dtype=np.float64)
    size = (int(record.resolution[0]), int(record.resolution[1]))
    model = record.distortion_model
    result: dict[str, Any] = {"views": len(views), "distortion_model": model, "resolution": list(size)}
    try:
        if model == "kannala_brandt":
            flags = cv2.fisheye.CALIB_RECOMPUTE_EXTRINSIC | cv2.fisheye.CALIB_FIX_SKEW
            rms, k, dist, _, _ = cv2.fisheye.calibrate(
                [o.reshape(-1, 1, 3).astype(np.float64) for o, _ in views],
                [i.reshape(-1, 1, 2).astype(np.float64) for _, i in views],
                size,
                k_true.copy(),
                np.zeros(4),
                flags=flags | cv2.fisheye.CALIB_USE_INTRINSIC_GUESS,
                criteria=(cv2.TERM_CRITERIA_COUNT + cv2.TERM_CRITERIA_EPS, 100, 1e-12),
            )
            result["flags"] = "fisheye: RECOMPUTE_EXTRINSIC | FIX_SKEW | USE_INTRINSIC_GUESS"
        else:
            if model == "none":
                flags = cv2.CALIB_FIX_K1 | cv2.CALIB_FIX_K2 | cv2.CALIB_FIX_K3 | cv2.CALIB_ZERO_TANGENT_DIST
                result["flags"] = "FIX_K1 | FIX_K2 | FIX_K3 | ZERO_TANGENT_DIST (pinhole truth)"
            else:
                k3 = opencv_dist_coeffs(model, list(record.distortion_coeffs))[4]
                flags = cv2.CALIB_FIX_K3 if k3 == 0 else 0
                result["flags"] = "FIX_K3" if flags else "default (k1 k2 p1 p2 k3)"
            calibrate: Any = cv2.calibrateCamera  # the stubs refuse None for the initial K and D
            rms, k, dist, _, _ = calibrate(
                [o for o, _ in views], [i for _, i in views], size, None, None, flags=flags
            )
    except cv2.error as exc:
        result["error"] = str(exc).strip().splitlines()[-1]
        return result
    names = ("fx", "fy", "cx", "cy")
    true = (k_true[0, 0], k_true[1, 1], k_true[0, 2], k_true[1, 2])
    estimated = (k[0, 0], k[1, 1], k[0, 2], k[1, 2])
    result.update(
        {
            "rms_px": float(rms),
            "true": dict(zip(names, map(float, true), strict=True)),
            "estimated": dict(zip(names, map(float, estimated), strict=True)),
            "distortion_estimated": [float(c) for c in np.asarray(dist).ravel()],
            "distortion_true": [float(c) for c in record.distortion_coeffs],
            "focal_error_rel": max(abs(estimated[0] / true[0] - 1), abs(estimated[1] / true[1] - 1)),
            "principal_point_error_px": max(abs(estimated[2] - true[2]), abs(estimated[3] - true[3])),
        }
    )
    return result


# -- report ----------------------------------------------------------------------------------------


@dataclass
class VerifyReport:
    root: Path
    opencv_version: str
    detector: dict[str, Any]
    thresholds: dict[str, float]
    families: dict[str, dict[str, Any]]
    calibration: list[dict[str, Any]]
    images: dict[str, int]
    failures: list[str]
    plot: str | None = None

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": VERIFY_VERSION,
            "passed": self.passed,
            "failures": self.failures,
            "opencv_version": self.opencv_version,
            "detector": self.detector,
            "thresholds": self.thresholds,
            "images": self.images,
            "families": self.families,
            "calibration": self.calibration,
            "plot": self.plot,
        }

    def summary(self) -> str:
        lines = [
            f"verify {self.root} with OpenCV {self.opencv_version}: {'PASSED' if self.passed else 'FAILED'}"
        ]
        for name, fam in self.families.items():
            err = fam["corner_error"]
            rate = fam["detection_rate"]
            text = f"  {name}: detected {fam['detected']}/{fam['expected']}"
            text += f" ({rate:.1%})" if rate is not None else ""
            if err.get("count"):
                text += (
                    f", corner error median {err['median']:.3f} px, p95 {err['p95']:.3f} px, "
                    f"mean offset ({err['mean_dx']:+.3f}, {err['mean_dy']:+.3f}) px"
                )
            centre = fam.get("centre_error", {})
            if centre.get("count"):
                text += f", centre error median {centre['median']:.3f} px"
            lines.append(text)
        for cal in self.calibration:
            if "estimated" in cal:
                est, true = cal["estimated"], cal["true"]
                lines.append(
                    f"  calibration ({cal['views']} views): fx {est['fx']:.2f} (true {true['fx']:.2f}), "
                    f"fy {est['fy']:.2f} ({true['fy']:.2f}), cx {est['cx']:.2f} ({true['cx']:.2f}), "
                    f"cy {est['cy']:.2f} ({true['cy']:.2f}), rms {cal['rms_px']:.3f} px"
                )
        lines += [f"  threshold missed: {f}" for f in self.failures]
        return "\n".join(lines)


def _check(
    families: dict[str, dict[str, Any]], calibration: list[dict[str, Any]], t: VerifyThresholds
) -> list[str]:
    failures = []
    for name, fam in families.items():
        rate = fam["detection_rate"]
        if rate is not None and rate < t.min_detection_rate:
            failures.append(f"{name}: detection rate {rate:.3f} < {t.min_detection_rate}")
        err = fam["corner_error"]
        if not err.get("count"):
            continue
        for axis in ("mean_dx", "mean_dy"):
            if abs(err[axis]) > t.max_mean_offset_px:
                failures.append(f"{name}: |{axis}| {abs(err[axis]):.3f} px > {t.max_mean_offset_px}")
        if err["median"] > t.max_median_error_px:
            failures.append(f"{name}: median corner error {err['median']:.3f} px > {t.max_median_error_px}")
        if err["p95"] > t.max_p95_error_px:
            failures.append(f"{name}: p95 corner error {err['p95']:.3f} px > {t.max_p95_error_px}")
        centre = fam.get("centre_error", {})
        if centre.get("count") and centre["median"] > t.max_median_centre_error_px:
            failures.append(
                f"{name}: median centre error {centre['median']:.3f} px > {t.max_median_centre_error_px}"
            )
    for index, cal in enumerate(calibration):
        if "error" in cal:
            failures.append(f"calibration {index}: cv2 failed: {cal['error']}")
            continue
        if "estimated" not in cal:
            continue
        if cal["focal_error_rel"] > t.max_focal_error_rel:
            failures.append(
                f"calibration {index}: focal error {cal['focal_error_rel']:.2e} > {t.max_focal_error_rel}"
            )
        if cal["principal_point_error_px"] > t.max_principal_point_error_px:
            failures.append(
                f"calibration {index}: principal point error {cal['principal_point_error_px']:.3f} px > "
                f"{t.max_principal_point_error_px}"
            )
    return failures


def verify_dataset(
    out: str | Path,
    thresholds: VerifyThresholds | str | Path | dict[str, Any] | None = None,
    *,
    plot: bool = True,
    max_images: int | None = None,
) -> VerifyReport:
    """Runs OpenCV's detectors over the images of `out`, writes `verify.json` (and `verify.png`)."""
    import cv2

    root = Path(out)
    limits = thresholds if isinstance(thresholds, VerifyThresholds) else VerifyThresholds.load(thresholds)
    dataset = RenderTagDataset(root)
    detectors = _Detectors()
    stats: dict[str, _FamilyStats] = {}
    views: dict[str, tuple[DetectionRecord, list[Any]]] = {}
    checked = missing = unreadable = 0
    images = dataset.images if max_images is None else dataset.images[:max_images]
    for image in images:
        if not image.path.is_file():
            missing += 1
            continue
        gray = cv2.imread(str(image.path), cv2.IMREAD_GRAYSCALE)
        if gray is None:
            unreadable += 1
            continue
        checked += 1
        _verify_tags(gray, image.records, detectors, stats)
        for record in image.boards:
            board = record.board_definition
            if board is None or record.keypoints is None:
                continue
            key = f"{board.board_type}:{board.dictionary}"
            entry = stats.setdefault(key, _FamilyStats(kind=board.board_type))
            if board.board_type in ("charuco", "checkerboard"):
                if board.board_type == "charuco":
                    entry.extra["legacy_pattern"] = board.legacy_pattern
                    matched = _verify_charuco(gray, record, detectors, entry)
                else:
                    matched = _verify_checkerboard(gray, record, entry)
                if matched is not None and len(matched[0]) >= MIN_POINTS_PER_VIEW:
                    camera_key = json.dumps([record.k_matrix, record.resolution, record.distortion_model,
                                             record.distortion_coeffs])  # fmt: skip
                    views.setdefault(camera_key, (record, []))[1].append(matched)
            else:
                entry.extra["border_bits"] = board.effective_border_bits
                _verify_aprilgrid(gray, record, detectors, entry)
    if checked == 0:
        raise InputError(
            str(root), "images", f"no readable image to verify ({missing} missing, {unreadable} unreadable)"
        )
    calibration = [
        _calibrate(camera_views, record)
        for record, camera_views in views.values()
        if len(camera_views) >= MIN_CALIBRATION_VIEWS
    ]
    families = {name: stats[name].summary() for name in sorted(stats)}
    report = VerifyReport(
        root=root,
        opencv_version=cv2.__version__,
        detector={
            "aruco": "cv2.aruco.ArucoDetector, CORNER_REFINE_SUBPIX, markerBorderBits of the board (tags 1), "
            "validBitIdThreshold 0.5 where OpenCV has it (4.14+; 4.11's bit decision)",
            "aprilgrid": f"ArucoDetector, cornerSubPix on saddles (half-window {APRILGRID_SUBPIX_WINDOW})",
            "charuco": "cv2.aruco.CharucoDetector on CharucoBoard rebuilt from board_definition "
            "(setLegacyPattern as defined)",
            "charuco_bias_removed_px": list(charuco_detector_bias()),
            "checkerboard": "cv2.findChessboardCornersSB, whole pattern in view",
        },
        thresholds=limits.model_dump(),
        families=families,
        calibration=calibration,
        images={"checked": checked, "missing": missing, "unreadable": unreadable},
        failures=_check(families, calibration, limits),
    )
    if plot:
        write_bytes_atomic(root / "verify.png", _plot(stats))
        report.plot = "verify.png"
    write_json_atomic(root / "verify.json", report.to_dict())
    return report


def _plot(stats: dict[str, _FamilyStats]) -> bytes:
    """A panel per family: detected minus true corner offsets, labelled rings at 0.5, 1, 2 px, the mean."""
    from .plots import offsets_png

    return offsets_png({name: np.asarray(stats[name].offsets, dtype=np.float64) for name in sorted(stats)})
