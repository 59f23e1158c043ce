"""Exports: Kalibr's target.yaml, OpenCV's CharucoBoard parameters, ROS camera_info, and a dataset's set."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from render_tag.dataset.exports import (
    camera_info_yaml,
    charuco_board,
    charuco_parameters,
    charuco_parameters_yaml,
    export_dataset,
    kalibr_target_yaml,
)
from render_tag.qa.preview import make_preview
from render_tag_shared.boards import BoardDefinition, board_keypoints, board_marker_corners
from render_tag_shared.lens import project_points
from render_tag_shared.recipe import BoardObject

from ..builders import CHARUCO, build_dataset, camera, charuco_scene, orbit, tag_scene

APRILGRID = {
    "board_type": "aprilgrid",
    "rows": 6,
    "cols": 6,
    "marker_size_mm": 50.0,
    "spacing_ratio": 0.3,
    "dictionary": "tag36h11",
}


def test_kalibr_target() -> None:
    target = yaml.safe_load(kalibr_target_yaml(BoardDefinition.model_validate(APRILGRID)))
    assert target == {
        "target_type": "aprilgrid",
        "tagCols": 6,
        "tagRows": 6,
        "tagSize": 0.05,
        "tagSpacing": 0.3,
    }
    other = kalibr_target_yaml(
        BoardDefinition.model_validate({**APRILGRID, "rows": 4, "dictionary": "tag25h9"})
    )
    assert "tag36h11" in other
    with pytest.raises(ValueError, match="aprilgrid"):
        kalibr_target_yaml(BoardDefinition.model_validate(CHARUCO))


@pytest.mark.parametrize("legacy", [False, True])
def test_charuco_parameters_rebuild_the_same_board(legacy: bool) -> None:
    definition = BoardDefinition.model_validate({**CHARUCO, "rows": 6, "legacy_pattern": legacy})
    params = yaml.safe_load(charuco_parameters_yaml(definition))
    assert params == json.loads(json.dumps(charuco_parameters(definition)))
    assert (params["squares_x"], params["squares_y"]) == (7, 6)
    assert params["square_length"] == 0.04 and params["marker_length"] == 0.03
    assert params["dictionary"] == "DICT_5X5_100" and params["legacy_pattern"] is legacy
    board = charuco_board(definition)
    assert board.getLegacyPattern() is legacy
    assert np.allclose(board.getChessboardCorners(), board_keypoints(definition), atol=1e-7)
    ids, corners = board_marker_corners(definition)
    assert board.getIds().ravel().tolist() == ids.tolist()
    assert np.allclose(np.asarray(board.getObjPoints()), corners, atol=1e-7)


@pytest.mark.parametrize(
    ("model", "coeffs", "ros_model"),
    [
        ("none", [], "plumb_bob"),
        ("brown_conrady", [-0.21, 0.05, 0.001, -0.0007, -0.004], "plumb_bob"),
        ("kannala_brandt", [0.02, -0.01, 0.003, -0.0005], "equidistant"),
    ],
)
def test_camera_info_reprojects_like_the_truth(model: str, coeffs: list[float], ros_model: str) -> None:
    k = [[612.5, 0.0, 331.25], [0.0, 608.0, 241.75], [0.0, 0.0, 1.0]]
    info = yaml.safe_load(camera_info_yaml(k, (640, 480), model, coeffs, "left"))
    assert (info["image_width"], info["image_height"], info["camera_name"]) == (640, 480, "left")
    assert info["distortion_model"] == ros_model
    kk = np.array(info["camera_matrix"]["data"]).reshape(3, 3)
    d = np.array(info["distortion_coefficients"]["data"])
    assert np.array(info["rectification_matrix"]["data"]).reshape(3, 3).tolist() == np.eye(3).tolist()
    assert np.array(info["projection_matrix"]["data"]).reshape(3, 4)[:, :3].tolist() == k
    points = np.array([[0.1, -0.2, 1.0], [-0.3, 0.25, 0.9], [0.0, 0.0, 2.0]])
    zero = np.zeros(3)
    if ros_model == "equidistant":
        uv, _ = cv2.fisheye.projectPoints(points.reshape(-1, 1, 3), zero, zero, kk, d)
    else:
        uv, _ = cv2.projectPoints(points, zero, zero, kk, d)
    assert np.allclose(uv.reshape(-1, 2), project_points(points, k, model, coeffs), atol=1e-9)


def test_export_dataset(tmp_path: Path) -> None:
    grid = tag_scene(2)
    board = BoardObject(name="grid", board=BoardDefinition.model_validate(APRILGRID))
    wide = [[450.0, 0.0, 319.5], [0.0, 450.0, 239.5], [0.0, 0.0, 1.0]]
    grid = grid.model_copy(
        update={"objects": [board], "cameras": [camera("wide", orbit(1.2, 20, 70), k=wide)]}
    )
    build_dataset(tmp_path, [charuco_scene(0, n_cameras=2), tag_scene(1, n_cameras=1), grid])
    written = {p.name for p in export_dataset(tmp_path)}
    assert written == {"target.yaml", "charuco_board.yaml", "charuco_board.json", "camera_info_00.yaml",
                       "camera_info_01.yaml", "cameras.json"}  # fmt: skip
    cameras = json.loads((tmp_path / "exports" / "cameras.json").read_text())
    assert cameras["camera_info_01.yaml"] == ["scene000002_cam00"]
    assert len(cameras["camera_info_00.yaml"]) == 3
    info = yaml.safe_load((tmp_path / "exports" / "camera_info_01.yaml").read_text())
    assert info["camera_matrix"]["data"][0] == 450.0


def test_preview_contact_sheet(tmp_path: Path) -> None:
    build_dataset(tmp_path, [tag_scene(0), charuco_scene(1, n_cameras=4)])
    (tmp_path / "images").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "scene000000_cam00.png"), np.full((480, 640, 3), 180, np.uint8))
    sheet = cv2.imread(str(make_preview(tmp_path)))
    assert sheet is not None and sheet.shape[1] > 3 * 400
    one = cv2.imread(str(make_preview(tmp_path, tmp_path / "one.png", scene=1, tile_width=320)))
    assert one is not None and one.shape[1] == 2 * 320 + 3 * 4
    # The TL corner of a visible tag is drawn in red where the label says it is.
    tile = cv2.imread(str(make_preview(tmp_path, tmp_path / "tl.png", scene=0, tile_width=640)))
    assert tile is not None
    from render_tag.dataset import RenderTagDataset

    x, y = RenderTagDataset(tmp_path)["scene000000_cam00"].tags[0].corners[0]
    b, g, r = tile[4 + 22 + round(y), 4 + round(x)].tolist()
    assert r > 200 and g < 60 and b < 60
