"""Shared pieces of the add-on tests: importing the add-on package, a registered session, recipes, detectors.

The add-on is imported as the package `addon` from the repository root (the extension zip makes it
`bl_ext.<repo>.render_tag`; the code only uses relative imports, so both work).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import cv2
import numpy as np
import pytest

from .builders import REPO_ROOT, look_at, pinhole, quat_from_axis_angle


def import_addon() -> ModuleType:
    """The add-on package (`addon`), importable from the repository root."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    return importlib.import_module("addon")


@pytest.fixture(scope="module")
def addon_session() -> Iterator[Any]:
    """A factory-fresh Blender with render-tag's properties registered; yields `addon.api`."""
    import bpy

    import_addon()
    api = importlib.import_module("addon.api")
    properties = importlib.import_module("addon.props")
    bpy.ops.wm.read_factory_settings(use_empty=True)
    was_registered = properties.registered()
    if not was_registered:
        properties.register()
    try:
        yield api
    finally:
        if not was_registered:
            properties.unregister()


# --------------------------------------------------------------------------- recipes


def sun_world() -> dict[str, Any]:
    """The test scenes' world: one SUN overhead and a white background at 0.6."""
    return {
        "lights": [{"type": "SUN", "energy": 2.0, "pose": {"position": [0, 0, 2]}}],
        "background_color": [1.0, 1.0, 1.0],
        "background_strength": 0.6,
    }


def charuco_4x5() -> dict[str, Any]:
    """The test ChArUco board: 4 x 5 squares of 40 mm, 30 mm DICT_4X4_50 markers."""
    return {
        "board_type": "charuco",
        "rows": 4,
        "cols": 5,
        "square_size_mm": 40.0,
        "marker_size_mm": 30.0,
        "dictionary": "DICT_4X4_50",
    }


def tag_recipe(
    distortion: str = "none",
    *,
    samples: int = 32,
    scene_id: int = 1,
    family: str = "DICT_4X4_50",
    tone: str = "srgb",
    seed: int = 0,
) -> dict[str, Any]:
    """Six tags at varied poses in front of a grey plane, 320x240, lit evenly (sky and sun)."""
    if distortion == "kannala_brandt":
        intrinsics = pinhole(
            230.0,
            236.0,
            162.3,
            117.1,
            (320, 240),
            distortion_model="kannala_brandt",
            distortion_coeffs=[0.04, -0.012, 0.003, -0.0004],
        )
        eye = [0.03, -0.12, 0.42]
    else:
        intrinsics = pinhole(300.0, 318.0, 165.2, 112.7, (320, 240))
        eye = [0.04, -0.16, 0.58]
        if distortion == "brown_conrady":
            intrinsics.update(
                distortion_model="brown_conrady", distortion_coeffs=[-0.22, 0.06, 0.0012, -0.0009, 0.0]
            )
    poses = [
        ((-0.10, 0.055), (1, 0, 0), 0.45),
        ((0.0, 0.06), (0, 1, 0), -0.35),
        ((0.10, 0.055), (1, 1, 0), 0.5),
        ((-0.10, -0.055), (0, 0, 1), 0.9),
        ((0.0, -0.06), (1, -1, 0), -0.4),
        ((0.10, -0.055), (0, 1, 1), 0.55),
    ]
    objects: list[dict[str, Any]] = [
        {
            "type": "TAG",
            "name": f"tag{i}",
            "tag_family": family,
            "tag_id": 2 * i + 1,
            "size_mm": 60.0,
            "pose": {"position": [x, y, 0.0], "rotation_quaternion": quat_from_axis_angle(axis, angle)},
        }
        for i, ((x, y), axis, angle) in enumerate(poses)
    ]
    objects.append(
        {
            "type": "PLANE",
            "name": "ground",
            "size_m": [4.0, 4.0],
            "color": [0.35, 0.35, 0.35],
            "pose": {"position": [0.0, 0.0, -0.06]},
        }
    )
    return {
        "scene_id": scene_id,
        "random_seed": seed,
        "world": sun_world(),
        "renderer": {"mode": "cycles", "samples": samples, "seed": seed},
        "objects": objects,
        "cameras": [
            {
                "cam_to_world": look_at(eye, [0.0, 0.0, 0.0]),
                "intrinsics": intrinsics,
                "tone_mapping": {"curve": tone},
            }
        ],
    }


def charuco_recipe(samples: int = 32) -> dict[str, Any]:
    """A 4x5 ChArUco board (DICT_4X4_50, 40 mm squares) seen at an angle, 320x240."""
    return {
        "scene_id": 7,
        "random_seed": 0,
        "world": sun_world(),
        "renderer": {"mode": "cycles", "samples": samples},
        "objects": [
            {
                "type": "BOARD",
                "name": "board",
                "board": charuco_4x5(),
                "margin_mm": 10.0,
                "pose": {"rotation_quaternion": quat_from_axis_angle((0.2, 1.0, 0.1), 0.35)},
            },
            {
                "type": "PLANE",
                "name": "ground",
                "size_m": [4.0, 4.0],
                "color": [0.3, 0.3, 0.3],
                "pose": {"position": [0.0, 0.0, -0.15]},
            },
        ],
        "cameras": [
            {
                "cam_to_world": look_at([0.04, -0.09, 0.33], [0.0, 0.0, 0.0]),
                "intrinsics": pinhole(310.0, 305.0, 158.9, 122.4, (320, 240)),
            }
        ],
    }


def aprilgrid_recipe(samples: int = 32) -> dict[str, Any]:
    """A 3x4 Kalibr AprilGrid (tag36h11, 45 mm tags, spacing 0.3) seen at an angle, 320x240."""
    recipe = charuco_recipe(samples)
    recipe["scene_id"] = 8
    recipe["objects"][0] = {
        "type": "BOARD",
        "name": "grid",
        "board": {
            "board_type": "aprilgrid",
            "rows": 3,
            "cols": 4,
            "marker_size_mm": 45.0,
            "spacing_ratio": 0.3,
            "dictionary": "tag36h11",
        },
        "margin_mm": 12.0,
        "pose": {"rotation_quaternion": quat_from_axis_angle((-0.3, 1.0, 0.2), 0.25)},
    }
    recipe["cameras"][0]["cam_to_world"] = look_at([-0.03, -0.08, 0.37], [0.0, 0.0, 0.0])
    return recipe


# --------------------------------------------------------------------------- detectors


def to_gray(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    assert image is not None, f"cannot read {path}"
    return image
