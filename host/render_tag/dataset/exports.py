"""Exports in the formats calibration users already have: Kalibr, OpenCV, ROS.

A synthetic calibration dataset is only useful if the calibration tool is told exactly which target and
which camera produced it. These writers translate a board definition and a camera into Kalibr's
`target.yaml`, OpenCV's `CharucoBoard` parameters and ROS's `camera_info` calibration file, with the
same units and conventions those tools use (metres, OpenCV pixel centres, which ROS shares).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from render_tag_shared.boards import BoardDefinition

from ..io import write_json_atomic, write_text_atomic
from .reader import RenderTagDataset

__all__ = [
    "camera_info",
    "camera_info_yaml",
    "charuco_board",
    "charuco_parameters",
    "charuco_parameters_yaml",
    "export_dataset",
    "kalibr_target",
    "kalibr_target_yaml",
]

ROS_DISTORTION = {"none": "plumb_bob", "brown_conrady": "plumb_bob", "kannala_brandt": "equidistant"}


def _num(value: float) -> str:
    """A number as YAML and JSON both read it back exactly (shortest repr; integers without .0)."""
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def _seq(values: Sequence[float]) -> str:
    return "[" + ", ".join(_num(v) for v in values) + "]"


# -- Kalibr ----------------------------------------------------------------------------------------


def kalibr_target(board: BoardDefinition) -> dict[str, Any]:
    """Kalibr's target: an AprilGrid (tagSize is the black border's edge in metres, tagSpacing gap /
    tagSize) or a checkerboard (targetCols x targetRows inner corners, spacings in metres)."""
    if board.board_type == "checkerboard":
        square = float(board.square_size_mm or 0.0) / 1000.0
        return {
            "target_type": "checkerboard",
            "targetCols": board.cols - 1,
            "targetRows": board.rows - 1,
            "rowSpacingMeters": square,
            "colSpacingMeters": square,
        }
    if board.board_type != "aprilgrid":
        raise ValueError(f"Kalibr's target.yaml describes an aprilgrid, not a {board.board_type} board")
    return {
        "target_type": "aprilgrid",
        "tagCols": board.cols,
        "tagRows": board.rows,
        "tagSize": board.marker_size_mm / 1000.0,
        "tagSpacing": float(board.spacing_ratio or 0.0),
    }


def kalibr_target_yaml(board: BoardDefinition) -> str:
    target = kalibr_target(board)
    if target["target_type"] == "checkerboard":
        return "\n".join([
            "target_type: 'checkerboard' # gridtype",
            f"targetCols: {target['targetCols']} # number of internal chessboard corners along x",
            f"targetRows: {target['targetRows']} # number of internal chessboard corners along y",
            f"rowSpacingMeters: {_num(target['rowSpacingMeters'])} # size of one chessboard square [m]",
            f"colSpacingMeters: {_num(target['colSpacingMeters'])} # size of one chessboard square [m]",
        ]) + "\n"  # fmt: skip
    lines = [
        f"target_type: '{target['target_type']}' # gridtype",
        f"tagCols: {target['tagCols']} # number of apriltags along x",
        f"tagRows: {target['tagRows']} # number of apriltags along y",
        f"tagSize: {_num(target['tagSize'])} # size of apriltag, edge to edge [m]",
        f"tagSpacing: {_num(target['tagSpacing'])} # ratio of space between tags to tagSize",
    ]
    notes = []
    if board.family.name != "tag36h11":
        notes.append(
            f"# note: the board uses {board.family.name}; Kalibr's aprilgrid detector reads tag36h11"
        )
    if board.effective_border_bits != 2:
        notes.append(f"# note: tags have a {board.effective_border_bits}-bit border; Kalibr prints 2 bits")
    if board.marker_ids is not None and board.marker_ids != list(range(board.num_markers)):
        notes.append("# note: custom marker ids; Kalibr expects ids 0..n-1 from the bottom-left")
    return "\n".join(lines + notes) + "\n"


# -- OpenCV ChArUco --------------------------------------------------------------------------------


def charuco_parameters(board: BoardDefinition) -> dict[str, Any]:
    """What `cv2.aruco.CharucoBoard` needs (lengths in metres), and the legacy-pattern flag."""
    if board.board_type != "charuco" or board.square_size_mm is None:
        raise ValueError(f"OpenCV's CharucoBoard parameters describe a charuco board, not {board.board_type}")
    ids = board.resolved_marker_ids()
    return {
        "board_type": "charuco",
        "squares_x": board.cols,
        "squares_y": board.rows,
        "square_length": board.square_size_mm / 1000.0,
        "marker_length": board.marker_size_mm / 1000.0,
        "units": "m",
        "dictionary": board.family.opencv_name,
        "legacy_pattern": board.legacy_pattern,
        "marker_ids": ids,
        "opencv": (
            f"cv2.aruco.CharucoBoard(({board.cols}, {board.rows}), {board.square_size_mm / 1000.0!r}, "
            f"{board.marker_size_mm / 1000.0!r}, cv2.aruco.getPredefinedDictionary(cv2.aruco."
            f"{board.family.opencv_name}), np.array(marker_ids)); board.setLegacyPattern("
            f"{board.legacy_pattern})"
        ),
    }


def charuco_parameters_yaml(board: BoardDefinition) -> str:
    import yaml

    return str(
        yaml.safe_dump(charuco_parameters(board), sort_keys=False, default_flow_style=None, width=1000)
    )


def charuco_board(board: BoardDefinition) -> Any:
    """The `cv2.aruco.CharucoBoard` of a definition (OpenCV >= 4.6, legacy pattern set as defined)."""
    import cv2

    params = charuco_parameters(board)
    dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, params["dictionary"]))
    result = cv2.aruco.CharucoBoard(
        (params["squares_x"], params["squares_y"]),
        params["square_length"],
        params["marker_length"],
        dictionary,
        np.asarray(params["marker_ids"], dtype=np.int32),
    )
    result.setLegacyPattern(bool(params["legacy_pattern"]))
    return result


# -- ROS / OpenCV camera ---------------------------------------------------------------------------


def camera_info(
    k_matrix: Sequence[Sequence[float]],
    resolution: tuple[int, int],
    distortion_model: str,
    distortion_coeffs: Sequence[float],
    camera_name: str = "camera",
) -> dict[str, Any]:
    """ROS's camera calibration file (camera_calibration_parsers), pinhole/plumb_bob or equidistant.

    ROS and OpenCV share the pixel convention, so K needs no shift. R is the identity (monocular) and
    P = [K | 0]: the rectified camera keeps the intrinsics.
    """
    k = np.asarray(k_matrix, dtype=np.float64)
    coeffs = [float(c) for c in distortion_coeffs]
    if distortion_model == "none":
        coeffs = [0.0] * 5
    p = np.hstack([k, np.zeros((3, 1))])
    return {
        "image_width": int(resolution[0]),
        "image_height": int(resolution[1]),
        "camera_name": camera_name,
        "camera_matrix": {"rows": 3, "cols": 3, "data": [float(v) for v in k.ravel()]},
        "distortion_model": ROS_DISTORTION[distortion_model],
        "distortion_coefficients": {"rows": 1, "cols": len(coeffs), "data": coeffs},
        "rectification_matrix": {"rows": 3, "cols": 3, "data": [float(v) for v in np.eye(3).ravel()]},
        "projection_matrix": {"rows": 3, "cols": 4, "data": [float(v) for v in p.ravel()]},
    }


def camera_info_yaml(
    k_matrix: Sequence[Sequence[float]],
    resolution: tuple[int, int],
    distortion_model: str,
    distortion_coeffs: Sequence[float],
    camera_name: str = "camera",
) -> str:
    info = camera_info(k_matrix, resolution, distortion_model, distortion_coeffs, camera_name)
    lines = [
        f"image_width: {info['image_width']}",
        f"image_height: {info['image_height']}",
        f"camera_name: {json.dumps(info['camera_name'])}",
    ]
    for key in ("camera_matrix", "distortion_model", "distortion_coefficients", "rectification_matrix",
                "projection_matrix"):  # fmt: skip
        value = info[key]
        if isinstance(value, str):
            lines.append(f"{key}: {value}")
            continue
        lines += [
            f"{key}:",
            f"  rows: {value['rows']}",
            f"  cols: {value['cols']}",
            f"  data: {_seq(value['data'])}",
        ]
    return "\n".join(lines) + "\n"


# -- a dataset's exports ---------------------------------------------------------------------------


def export_dataset(out: str | Path, dest: str | Path | None = None) -> list[Path]:
    """Writes OUT/exports/: target.yaml (AprilGrid, checkerboard), charuco_board.yaml/.json (ChArUco),
    camera_info*.yaml.

    One file per distinct board and per distinct camera (K, resolution, lens); with several cameras,
    `cameras.json` maps each camera file to its image ids.
    """
    dataset = RenderTagDataset(out)
    folder = Path(dest) if dest is not None else Path(out) / "exports"
    written: list[Path] = []
    boards: dict[str, BoardDefinition] = {}
    cameras: dict[str, tuple[Any, list[str]]] = {}
    for record in dataset.records:
        if record.board_definition is not None:
            boards.setdefault(record.board_definition.model_dump_json(), record.board_definition)
        key = json.dumps(
            [record.k_matrix, record.resolution, record.distortion_model, record.distortion_coeffs]
        )
        entry = cameras.setdefault(key, (record, []))
        if record.image_id not in entry[1]:
            entry[1].append(record.image_id)

    by_type: dict[str, list[BoardDefinition]] = {}
    for board in boards.values():
        by_type.setdefault(board.board_type, []).append(board)
    for board_type, group in sorted(by_type.items()):
        for index, board in enumerate(group):
            suffix = "" if len(group) == 1 else f"_{index + 1}"
            if board_type in ("aprilgrid", "checkerboard"):
                written.append(write_text_atomic(folder / f"target{suffix}.yaml", kalibr_target_yaml(board)))
            else:
                stem = folder / f"charuco_board{suffix}"
                written.append(write_text_atomic(stem.with_suffix(".yaml"), charuco_parameters_yaml(board)))
                written.append(write_json_atomic(stem.with_suffix(".json"), charuco_parameters(board)))

    ordered = sorted(cameras.values(), key=lambda item: item[1][0])
    index_doc: dict[str, list[str]] = {}
    for number, (record, image_ids) in enumerate(ordered):
        name = "camera_info.yaml" if len(ordered) == 1 else f"camera_info_{number:02d}.yaml"
        text = camera_info_yaml(record.k_matrix, record.resolution, record.distortion_model,
                                record.distortion_coeffs, record.camera_name)  # fmt: skip
        written.append(write_text_atomic(folder / name, text))
        index_doc[name] = sorted(image_ids)
    if len(ordered) > 1:
        written.append(write_json_atomic(folder / "cameras.json", index_doc))
    return written
