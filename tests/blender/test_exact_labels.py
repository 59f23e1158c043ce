"""Exact labels under occlusion, instance masks, depth and normals, and the checkerboard, on real renders.

A box (an OCCLUDER object) stands over half of a tag and half of a ChArUco board; a larger tag and a
ground plane are in the clear. The pure ground truth knows only the recipe's rectangles, so what the
box hides can only come from the add-on's ray casts into the built scene: here it is checked against
an independent ray-box intersection. Masks are checked against each object's projected mesh, depth
against the poses, normals against the tag's rotation; OpenCV finds the clear tag where its label is.
320x240, Cycles CPU, 8 samples (16 for the checkerboard's sub-pixel check).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from render_tag.dataset.merge import merge_dataset
from render_tag.qa.verify import detect_checkerboard
from render_tag_shared.boards import marker_corners_object_frame
from render_tag_shared.passes import rle_decode
from render_tag_shared.recipe import BoardObject, SceneRecipe, TagObject, tag_corners_object_frame
from render_tag_shared.records import DetectionRecord, ImageLabels
from render_tag_shared.truth import board_outline_object_frame, camera_ground_truth, object_extent_m

from ..blender_helpers import addon_session, charuco_4x5, sun_world, to_gray
from ..builders import look_at, pinhole
from ..opencv_helpers import detect_tags

pytestmark = pytest.mark.slow
_ = addon_session  # the fixture, imported for pytest

BOX_CENTRE = np.array([-0.125, 0.02, 0.06])
BOX_SIZE = np.array([0.10, 0.42, 0.02])


def occlusion_recipe(outputs: tuple[str, ...] = ("masks", "depth", "normals")) -> dict[str, Any]:
    return {
        "scene_id": 11,
        "random_seed": 0,
        "world": sun_world(),
        "renderer": {"mode": "cycles", "samples": 8, "outputs": list(outputs)},
        "objects": [
            {
                "type": "BOARD",
                "name": "board",
                "board": charuco_4x5(),
                "margin_mm": 5.0,
                "pose": {"position": [-0.09, -0.07, 0.0]},
            },
            {
                "type": "TAG",
                "name": "tag_half",
                "tag_family": "tag36h11",
                "tag_id": 3,
                "size_mm": 80.0,
                "pose": {"position": [-0.09, 0.11, 0.0]},
            },
            {
                "type": "TAG",
                "name": "tag_clear",
                "tag_family": "tag36h11",
                "tag_id": 5,
                "size_mm": 160.0,
                "pose": {"position": [0.15, 0.02, 0.0]},
            },
            {
                "type": "OCCLUDER",
                "name": "box",
                "size_m": BOX_SIZE.tolist(),
                "pose": {"position": BOX_CENTRE.tolist()},
            },
            {
                "type": "PLANE",
                "name": "ground",
                "size_m": [3.0, 3.0],
                "color": [0.35, 0.35, 0.35],
                "pose": {"position": [0.0, 0.0, -0.02]},
            },
        ],
        "cameras": [
            {
                "cam_to_world": look_at([0.02, -0.09, 0.47], [0.02, 0.0, 0.0]),
                "intrinsics": pinhole(250.0, 250.0, 159.5, 119.5, (320, 240)),
            }
        ],
    }


@pytest.fixture(scope="module")
def rendered(
    addon_session: Any, tmp_path_factory: pytest.TempPathFactory
) -> tuple[SceneRecipe, Path, ImageLabels]:
    recipe = SceneRecipe.model_validate(occlusion_recipe())
    out = tmp_path_factory.mktemp("occlusion")
    (result,) = addon_session.render_recipe(recipe, out)
    return recipe, out, ImageLabels.model_validate_json(Path(result.labels_path).read_text())


def _world(obj: TagObject | BoardObject, points: np.ndarray) -> np.ndarray:
    pose = obj.pose.matrix()
    return points @ pose[:3, :3].T + pose[:3, 3]


def _label_points(recipe: SceneRecipe, record: DetectionRecord) -> np.ndarray:
    """World coordinates of a record's corners (and keypoints), in the record's order."""
    obj = next(o for o in recipe.objects if o.name == record.object_name)
    if record.record_type == "TAG":
        assert isinstance(obj, TagObject)
        return _world(obj, tag_corners_object_frame(obj.size_mm))
    assert isinstance(obj, BoardObject)
    if record.record_type == "MARKER":
        ids, corners = marker_corners_object_frame(obj.board)
        return _world(obj, corners[list(ids).index(record.tag_id)])
    keypoints = np.asarray(obj.keypoints_3d, dtype=float)
    return _world(obj, np.concatenate([board_outline_object_frame(obj.board), keypoints]))


def _box_hides(origin: np.ndarray, point: np.ndarray) -> tuple[bool, float]:
    """Slab test of the segment origin -> point against the box; also how far the call is from flipping."""
    lo, hi = BOX_CENTRE - BOX_SIZE / 2, BOX_CENTRE + BOX_SIZE / 2
    d = point - origin
    with np.errstate(divide="ignore"):
        t1, t2 = (lo - origin) / d, (hi - origin) / d
    t_near, t_far = np.minimum(t1, t2).max(), np.maximum(t1, t2).min()
    return bool(t_near <= t_far and 0 < t_near < 1), float(abs(t_far - t_near) * np.linalg.norm(d))


def _key(r: DetectionRecord) -> tuple[str, str, int | None]:
    return (r.record_type, r.object_name, r.tag_id)


def test_occluded_corners_are_sentinels_the_others_unchanged(rendered: Any) -> None:
    recipe, _, labels = rendered
    pure = {_key(r): r for r in camera_ground_truth(recipe, 0)}  # the box is no rectangle: unseen here
    got = {_key(r): r for r in labels.records}
    assert set(got) <= set(pure)  # a record goes when all its labels are hidden (checked below)
    origin = np.asarray(recipe.cameras[0].cam_to_world)[:3, 3]
    hidden_by_object: dict[str, list[bool]] = {}
    for key, truth in pure.items():
        points = list(truth.corners) + list(truth.keypoints or [])
        vis = list(truth.corners_visibility) + list(truth.keypoints_visibility or [])
        rendered_record = got.get(key)
        if rendered_record is None:
            got_points, got_vis = [(-1.0, -1.0)] * len(points), [0] * len(points)
        else:
            got_points = list(rendered_record.corners) + list(rendered_record.keypoints or [])
            got_vis = list(rendered_record.corners_visibility) + list(
                rendered_record.keypoints_visibility or []
            )
        for world, point, v, gp, gv in zip(
            _label_points(recipe, truth), points, vis, got_points, got_vis, strict=True
        ):
            if v == 0:
                assert gv == 0
                continue
            hides, margin = _box_hides(origin, world)
            assert margin > 1e-4 or not hides, "a point grazes the box edge: move the scene"
            hidden_by_object.setdefault(truth.object_name, []).append(hides)
            if hides:
                assert gv == 0 and tuple(gp) == (-1.0, -1.0), key
            else:
                assert gv == v and tuple(gp) == tuple(point), key
    # about half of the covered objects is hidden, the clear tag not at all
    for name in ("tag_half", "board"):
        share = np.mean(hidden_by_object[name])
        assert 0.25 <= share <= 0.75, (name, share)
    assert not any(hidden_by_object["tag_clear"])
    half = got[("TAG", "tag_half", 3)]
    assert half.corners_visibility == [0, 2, 2, 0] and half.corners[0] == (-1.0, -1.0)
    markers = [r for r in labels.records if r.record_type == "MARKER"]
    assert any(0 in r.corners_visibility and 2 in r.corners_visibility for r in markers)  # partly covered


def test_the_clear_tag_is_detected_at_its_label(rendered: Any) -> None:
    _, out, labels = rendered
    found = detect_tags(to_gray(out / "images" / "scene000011_cam00.png"), "tag36h11")
    (clear,) = [r for r in labels.records if r.object_name == "tag_clear"]
    assert 5 in found and 3 not in found  # half a tag is not a tag
    centre_error = np.linalg.norm(found[5].mean(axis=0) - np.asarray(clear.corners).mean(axis=0))
    assert centre_error < 0.3


def _inside_convex(polygon: np.ndarray, width: int, height: int) -> np.ndarray:
    """Pixel centres (OpenCV) inside a convex polygon."""
    ys, xs = np.mgrid[0:height, 0:width].astype(float)
    signs = []
    for a, b in zip(polygon, np.roll(polygon, -1, axis=0), strict=True):
        signs.append((b[0] - a[0]) * (ys - a[1]) - (b[1] - a[1]) * (xs - a[0]))
    stack = np.stack(signs)
    return np.asarray((stack >= 0).all(axis=0) | (stack <= 0).all(axis=0))


def _mesh_polygon(recipe: SceneRecipe, name: str) -> np.ndarray:
    """The object's quad (mesh: pattern plus margin) projected through the pinhole camera."""
    obj = next(o for o in recipe.objects if o.name == name)
    assert isinstance(obj, TagObject | BoardObject)
    w, h = object_extent_m(obj)
    quad = _world(
        obj, np.array([[-w / 2, h / 2, 0], [w / 2, h / 2, 0], [w / 2, -h / 2, 0], [-w / 2, -h / 2, 0]])
    )
    cam = np.linalg.inv(np.asarray(recipe.cameras[0].cam_to_world))
    p = quad @ cam[:3, :3].T + cam[:3, 3]
    k = np.asarray(recipe.cameras[0].intrinsics.k_matrix)
    uv = p @ k.T
    return uv[:, :2] / uv[:, 2:]


def test_masks_agree_with_the_objects(rendered: Any) -> None:
    recipe, out, labels = rendered
    ids = cv2.imread(str(out / "masks" / "scene000011_cam00.png"), cv2.IMREAD_UNCHANGED)
    assert ids.dtype == np.uint16 and ids.shape == (240, 320)
    assert labels.outputs is not None
    entries = {m.object_name: m for m in labels.outputs.mask_objects}
    assert [m.id for m in labels.outputs.mask_objects] == [1, 2, 3, 4, 5]  # recipe index + 1
    for entry in entries.values():
        mask = ids == entry.id
        assert entry.area == int(mask.sum())
        if entry.area:
            assert entry.rle is not None and np.array_equal(rle_decode(entry.rle), mask)
    clear = _inside_convex(_mesh_polygon(recipe, "tag_clear"), 320, 240)
    mask = ids == entries["tag_clear"].id
    xs = np.flatnonzero(mask.any(axis=0))
    assert xs[-1] - xs[0] >= 100  # an unoccluded object at least 100 px across
    iou = (mask & clear).sum() / (mask | clear).sum()
    assert iou >= 0.98, iou
    for name in ("tag_half", "board"):  # covered: the mask is the polygon less what the box covers
        polygon = _inside_convex(_mesh_polygon(recipe, name), 320, 240)
        mask = ids == entries[name].id
        assert (mask & polygon).sum() >= 0.98 * mask.sum()
        covered = polygon & ~mask
        assert 0.25 < covered.sum() / polygon.sum() < 0.75
        assert (ids[covered] == entries["box"].id).mean() > 0.95


def _inverse_depth_at(depth_mm: np.ndarray, x: float, y: float) -> float:
    """z (metres) at a sub-pixel point: 1/z is bilinear in the image on a plane, so interpolate that."""
    x0, y0 = int(np.floor(x)), int(np.floor(y))
    fx, fy = x - x0, y - y0
    patch = depth_mm[y0 : y0 + 2, x0 : x0 + 2].astype(float) / 1000.0
    assert (patch > 0).all()
    inv = 1.0 / patch
    top = inv[0, 0] * (1 - fx) + inv[0, 1] * fx
    bottom = inv[1, 0] * (1 - fx) + inv[1, 1] * fx
    return 1.0 / (top * (1 - fy) + bottom * fy)


def test_depth_and_normals_match_the_poses(rendered: Any) -> None:
    recipe, out, labels = rendered
    depth = cv2.imread(str(out / "depth" / "scene000011_cam00.png"), cv2.IMREAD_UNCHANGED)
    assert depth.dtype == np.uint16 and depth.shape == (240, 320)
    ids = cv2.imread(str(out / "masks" / "scene000011_cam00.png"), cv2.IMREAD_UNCHANGED)
    k = np.asarray(recipe.cameras[0].intrinsics.k_matrix)
    cam = np.linalg.inv(np.asarray(recipe.cameras[0].cam_to_world))
    (clear,) = [r for r in labels.records if r.object_name == "tag_clear"]
    board_obj = next(o for o in recipe.objects if o.name == "board")
    assert isinstance(board_obj, BoardObject)
    (board,) = [r for r in labels.records if r.record_type == "BOARD"]
    seen = [
        p
        for p, v in zip(
            _world(board_obj, np.asarray(board_obj.keypoints_3d)),
            board.keypoints_visibility or [],
            strict=True,
        )
        if v == 2
    ]
    checks = [("tag_clear", 3, np.asarray(clear.position))]  # the tag's centre, in the camera frame
    checks += [("board", 1, cam[:3, :3] @ p + cam[:3, 3]) for p in seen]
    compared = 0
    for name, object_id, centre in checks:
        u, v, _ = k @ centre / centre[2]
        x0, y0 = int(np.floor(u)), int(np.floor(v))
        if not (ids[y0 : y0 + 2, x0 : x0 + 2] == object_id).all():
            continue  # next to the box's edge: the depth there is the box's
        assert abs(_inverse_depth_at(depth, u, v) - centre[2]) < 0.001, name
        compared += 1
    assert compared >= 5
    normals = cv2.imread(str(out / "normals" / "scene000011_cam00.png"), cv2.IMREAD_UNCHANGED)[..., ::-1]
    n = normals.astype(float) / 65535.0 * 2.0 - 1.0
    tag_n = n[ids == 3].mean(axis=0)
    expected = np.linalg.inv(np.asarray(recipe.cameras[0].cam_to_world))[:3, :3] @ np.array([0.0, 0.0, 1.0])
    assert np.dot(tag_n / np.linalg.norm(tag_n), expected) > 0.9999


def test_merge_writes_mask_segmentation_and_marker_rows(rendered: Any, tmp_path: Path) -> None:
    _, out, labels = rendered
    report = merge_dataset([out], tmp_path / "merged")
    assert report.ok
    merged = tmp_path / "merged"
    assert (merged / "masks" / "scene000011_cam00.png").is_file() and (merged / "depth").is_dir()
    coco = json.loads((merged / "coco_labels.json").read_text())
    ids = cv2.imread(str(merged / "masks" / "scene000011_cam00.png"), cv2.IMREAD_UNCHANGED)
    half = next(a for a in coco["annotations"] if a["attributes"].get("object_name") == "tag_half")
    assert np.array_equal(rle_decode(half["segmentation"]), ids == 2) and half["area"] == int(
        (ids == 2).sum()
    )
    rows = (merged / "ground_truth.csv").read_text().splitlines()
    assert sum(1 for row in rows if row.split(",")[1] == "DICT_4X4_50") == len(
        [r for r in labels.records if r.record_type == "MARKER"]
    )


def test_no_outputs_asked_no_files(addon_session: Any, tmp_path: Path) -> None:
    recipe = SceneRecipe.model_validate(occlusion_recipe(outputs=()))
    assert "outputs" not in recipe.renderer.model_dump()  # recipes that ask for nothing keep their bytes
    (result,) = addon_session.render_recipe(recipe, tmp_path)
    assert "outputs" not in json.loads(Path(result.labels_path).read_text())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "labels"]


def checkerboard_recipe() -> dict[str, Any]:
    return {
        "scene_id": 12,
        "random_seed": 0,
        "world": sun_world(),
        "renderer": {"mode": "cycles", "samples": 16},
        "objects": [
            {
                "type": "BOARD",
                "name": "checker",
                "margin_mm": 15.0,
                "board": {"board_type": "checkerboard", "rows": 7, "cols": 10, "square_size_mm": 22.0},
                "pose": {"rotation_quaternion": [0.995, 0.08, 0.05, 0.03]},
            },
            {
                "type": "PLANE",
                "name": "ground",
                "size_m": [3.0, 3.0],
                "color": [0.3, 0.3, 0.3],
                "pose": {"position": [0.0, 0.0, -0.05]},
            },
        ],
        "cameras": [
            {
                "cam_to_world": look_at([0.03, -0.06, 0.42], [0.0, 0.0, 0.0]),
                "intrinsics": pinhole(330.0, 330.0, 161.2, 118.7, (320, 240)),
            }
        ],
    }


def test_checkerboard_found_by_findchessboardcornerssb_at_the_truth(
    addon_session: Any, tmp_path: Path
) -> None:
    recipe = SceneRecipe.model_validate(checkerboard_recipe())
    (result,) = addon_session.render_recipe(recipe, tmp_path)
    labels = ImageLabels.model_validate_json(Path(result.labels_path).read_text())
    (board,) = labels.records
    assert board.record_type == "BOARD" and board.keypoints_visibility == [2] * 54
    defn = board.board_definition
    assert defn is not None
    found = detect_checkerboard(to_gray(Path(result.image_path)), defn)
    assert found is not None and len(found) == 54
    error = np.linalg.norm(found - np.asarray(board.keypoints), axis=1)
    assert np.median(error) <= 0.1, np.median(error)
    assert error.max() < 0.3
