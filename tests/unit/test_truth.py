"""Ground truth of a recipe camera, judged by OpenCV: cv2.projectPoints and cv2.aruco's board geometry."""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np
import pytest

from render_tag_shared.boards import BoardDefinition, board_keypoints
from render_tag_shared.geometry import invert_rigid, quat_to_matrix
from render_tag_shared.recipe import SceneRecipe
from render_tag_shared.truth import camera_ground_truth

from ..builders import look_at, pinhole, quat_from_axis_angle

RNG_SEED = 1234


def scene(objects: list[dict[str, Any]], eye: Any, target: Any = (0, 0, 0), **intrinsics: Any) -> SceneRecipe:
    return SceneRecipe.model_validate(
        {
            "scene_id": 1,
            "random_seed": 1,
            "objects": objects,
            "cameras": [{"cam_to_world": look_at(eye, target), "intrinsics": pinhole(**intrinsics)}],
        }
    )


def tag(
    name: str, tag_id: int, position: Any = (0, 0, 0), quat: Any = (1, 0, 0, 0), size_mm: float = 100
) -> dict:
    pose = {"position": list(position), "rotation_quaternion": list(quat)}
    return {
        "type": "TAG",
        "name": name,
        "pose": pose,
        "tag_family": "tag36h11",
        "tag_id": tag_id,
        "size_mm": size_mm,
    }


def opencv_projection(recipe: SceneRecipe, obj_index: int, object_points: np.ndarray) -> np.ndarray:
    """cv2.projectPoints of object-frame points through the recipe's camera: the independent judge."""
    camera = recipe.cameras[0]
    obj_to_cam = invert_rigid(camera.matrix) @ recipe.objects[obj_index].pose.matrix()
    rvec, _ = cv2.Rodrigues(obj_to_cam[:3, :3])
    intr = camera.intrinsics
    dist = np.asarray(intr.distortion_coeffs, float)
    if intr.distortion_model == "kannala_brandt":
        uv, _ = cv2.fisheye.projectPoints(
            object_points[None].astype(float), rvec, obj_to_cam[:3, 3], intr.k, dist
        )
    else:
        uv, _ = cv2.projectPoints(object_points.astype(float), rvec, obj_to_cam[:3, 3], intr.k, dist)
    return uv.reshape(-1, 2)


OPENCV_MARKER = np.array([[-0.05, 0.05, 0], [0.05, 0.05, 0], [0.05, -0.05, 0], [-0.05, -0.05, 0]])
"""OpenCV's single-marker object points for a 100 mm marker (ARUCO_CCW_CENTER), TL, TR, BR, BL."""


@pytest.mark.parametrize(
    ("model", "coeffs"),
    [
        ("none", []),
        ("brown_conrady", [-0.2, 0.05, 0.001, -0.002, 0.01]),
        ("kannala_brandt", [0.05, -0.01, 0.002, 0.0]),
    ],
)
def test_tag_corners_equal_cv2_projectpoints(model: str, coeffs: list[float]) -> None:
    rng = np.random.default_rng(RNG_SEED)
    for trial in range(20):
        quat = quat_from_axis_angle(rng.normal(size=3), rng.uniform(-0.9, 0.9))
        recipe = scene(
            [tag("t", 3, rng.uniform(-0.2, 0.2, 3), quat)],
            eye=[rng.uniform(-0.3, 0.3), rng.uniform(-0.3, 0.3), rng.uniform(0.8, 1.5)],
            fx=600 + trial,
            fy=580,
            cx=315.0,
            cy=250.0,
            distortion_model=model,
            distortion_coeffs=coeffs,
        )
        (record,) = camera_ground_truth(recipe, 0)
        expected = opencv_projection(recipe, 0, OPENCV_MARKER)
        np.testing.assert_allclose(record.corners, expected, atol=1e-6)
        assert record.corners_visibility == [2, 2, 2, 2]


def test_front_view_corners_run_clockwise_in_the_image_with_tl_top_left() -> None:
    recipe = scene([tag("t", 0)], eye=[0, 0, 1.0], target=[0, 0, 0])
    # Looking straight down with image "up" undefined: pick up = +y so the marker reads upright.
    recipe.cameras[0].cam_to_world = look_at([0, 0, 1.0], [0, 0, 0], up=[0, 1, 0])
    (record,) = camera_ground_truth(recipe, 0)
    (tl, tr, br, bl) = np.asarray(record.corners)
    assert tl[0] < tr[0] and tl[1] < bl[1] and br[0] > bl[0] and br[1] > tr[1]
    np.testing.assert_allclose((tl + br) / 2, [319.5, 239.5], atol=1e-9)
    assert record.distance == pytest.approx(1.0)
    assert record.angle_of_incidence == pytest.approx(0.0, abs=1e-6)
    assert record.ppm == pytest.approx(600 * 0.1 / 8, rel=1e-3)  # tag36h11: 6 bits + 2 border = 8 modules
    # The pose is OpenCV's marker pose: solvePnP on the corners gives the same rotation and translation.
    ok, rvec, tvec = cv2.solvePnP(
        OPENCV_MARKER,
        np.asarray(record.corners),
        recipe.cameras[0].intrinsics.k,
        None,
        flags=cv2.SOLVEPNP_ITERATIVE,
    )
    assert ok
    np.testing.assert_allclose(tvec.ravel(), record.position, atol=1e-6)
    np.testing.assert_allclose(cv2.Rodrigues(rvec)[0], quat_to_matrix(record.rotation_quaternion), atol=1e-6)


def test_eval_margin_and_outside_image_give_visibility_one() -> None:
    # The camera looks at a point 0.45 m to the side: the tag sits near the left edge (x 19.5 to 79.5).
    recipe = scene([tag("t", 0)], eye=[0.45, 0, 1.0], target=[0.45, 0, 0])
    recipe.cameras[0].cam_to_world = look_at([0.45, 0, 1.0], [0.45, 0, 0], up=[0, 1, 0])
    (plain,) = camera_ground_truth(recipe, 0)
    xs = np.asarray(plain.corners)[:, 0]
    assert xs.min() < 40 and xs.min() > -0.5
    margin = float(xs.min() + 1.0)  # the left corners fall inside this margin
    recipe.cameras[0].intrinsics.eval_margin_px = margin
    (record,) = camera_ground_truth(recipe, 0)
    left = xs < margin - 0.5
    assert [v for v, lft in zip(record.corners_visibility, left, strict=True) if lft] == [1] * int(left.sum())
    assert all(v == 2 for v, lft in zip(record.corners_visibility, left, strict=True) if not lft)
    np.testing.assert_allclose(record.corners, plain.corners)  # labelled points keep their coordinates
    recipe.cameras[0].cam_to_world = look_at([0.49, 0, 1.0], [0.49, 0, 0], up=[0, 1, 0])
    (outside,) = camera_ground_truth(recipe, 0)
    assert 1 in outside.corners_visibility and all(v in (1, 2) for v in outside.corners_visibility)


def test_tag_seen_from_behind_is_not_labelled() -> None:
    back = quat_from_axis_angle([1, 0, 0], math.pi)
    recipe = scene([tag("t", 0, quat=back)], eye=[0, -0.2, 1.0])
    assert camera_ground_truth(recipe, 0) == []


def test_occluded_corners_get_the_sentinel() -> None:
    occluder = {
        "type": "PLANE",
        "name": "card",
        "pose": {"position": [0.05, 0.05, 0.3]},
        "size_m": [0.06, 0.06],
    }
    recipe = scene([tag("t", 0), occluder], eye=[0, 0, 1.0])
    recipe.cameras[0].cam_to_world = look_at([0, 0, 1.0], [0, 0, 0], up=[0, 1, 0])
    (record,) = camera_ground_truth(recipe, 0)
    # The card hides the TR corner (+x, +y) only.
    assert record.corners_visibility == [2, 0, 2, 2]
    assert record.corners[1] == (-1.0, -1.0)
    (unoccluded,) = camera_ground_truth(recipe, 0, occlusion=False)
    assert unoccluded.corners_visibility == [2, 2, 2, 2]


def test_tag_out_of_view_has_no_record_and_behind_camera_is_not_labelled() -> None:
    recipe = scene([tag("far", 0, position=[5, 0, 0]), tag("near", 1)], eye=[0, 0, 1.0])
    names = [r.object_name for r in camera_ground_truth(recipe, 0)]
    assert names == ["near"]
    behind = scene([tag("t", 0, position=[0, 0, 2.0])], eye=[0, 0, 1.0])
    assert camera_ground_truth(behind, 0) == []


CHARUCO = {
    "board_type": "charuco",
    "rows": 5,
    "cols": 7,
    "square_size_mm": 40,
    "marker_size_mm": 30,
    "dictionary": "DICT_5X5_100",
}


def test_board_keypoints_equal_cv2_projection_of_the_opencv_board() -> None:
    definition = BoardDefinition.model_validate(CHARUCO)
    board = cv2.aruco.CharucoBoard(
        (7, 5), 0.04, 0.03, cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_5X5_100)
    )
    np.testing.assert_allclose(board_keypoints(definition), board.getChessboardCorners(), atol=1e-9)
    quat = quat_from_axis_angle([1, 0.3, 0], 0.5)
    recipe = scene(
        [{"type": "BOARD", "name": "b", "pose": {"rotation_quaternion": quat}, "board": CHARUCO}],
        [0.1, -0.3, 0.9],
    )
    record, *markers = camera_ground_truth(recipe, 0)
    assert record.record_type == "BOARD" and record.tag_id is None and record.tag_family == "DICT_5X5_100"
    # The stored pose is that of OpenCV's board frame: OpenCV's corners projected with it are the keypoints.
    rotation = quat_to_matrix(record.rotation_quaternion)
    rvec, _ = cv2.Rodrigues(rotation)
    uv, _ = cv2.projectPoints(
        board.getChessboardCorners(),
        rvec,
        np.asarray(record.position),
        record.k_matrix and np.asarray(record.k_matrix),
        None,
    )
    np.testing.assert_allclose(record.keypoints, uv.reshape(-1, 2), atol=1e-6)
    assert record.keypoints_visibility == [2] * 24
    # One MARKER record per marker: its id and OpenCV's marker corners (getObjPoints) projected.
    assert [m.record_type for m in markers] == ["MARKER"] * 17
    assert [m.tag_id for m in markers] == board.getIds().ravel().tolist()
    for marker, obj_points in zip(markers, board.getObjPoints(), strict=True):
        uv, _ = cv2.projectPoints(
            obj_points, rvec, np.asarray(record.position), np.asarray(record.k_matrix), None
        )
        np.testing.assert_allclose(marker.corners, uv.reshape(-1, 2), atol=1e-6)
        assert marker.object_name == "b" and marker.tag_family == "DICT_5X5_100" and marker.tag_size_mm == 30
        # the marker's own pose maps a single tag's corners onto them, as a loose tag's does
        rot, _ = cv2.Rodrigues(quat_to_matrix(marker.rotation_quaternion))
        half = 0.015
        tag = np.array([[-half, half, 0], [half, half, 0], [half, -half, 0], [-half, -half, 0]])
        uv, _ = cv2.projectPoints(tag, rot, np.asarray(marker.position), np.asarray(marker.k_matrix), None)
        np.testing.assert_allclose(marker.corners, uv.reshape(-1, 2), atol=1e-6)
