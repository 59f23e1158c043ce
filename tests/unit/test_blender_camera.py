"""K ↔ Blender camera settings (render_tag_shared.blender_camera), without Blender.

Blender's own projection of these settings is checked in test_addon_scene.py; here the pure math:
the inverse really inverts, the DESIGN.md formulas hold, and every sensor fit reads back the same K.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from render_tag_shared.blender_camera import (
    SENSOR_WIDTH_MM,
    BlenderCameraParams,
    fisheye_fov_ok,
    k_from_camera_params,
    pinhole_settings,
    render_view,
)
from render_tag_shared.recipe import CameraIntrinsics


def _params(k: list[list[float]], resolution: tuple[int, int]) -> BlenderCameraParams:
    """The Blender settings `core.camera.apply_view` writes for a pinhole K."""
    s = pinhole_settings(k, resolution)
    return BlenderCameraParams(
        lens=s.lens,
        sensor_width=SENSOR_WIDTH_MM,
        sensor_height=SENSOR_WIDTH_MM * resolution[1] / resolution[0],
        sensor_fit="HORIZONTAL",
        shift_x=s.shift_x,
        shift_y=s.shift_y,
        resolution_x=s.width,
        resolution_y=s.height,
        pixel_aspect_x=s.pixel_aspect_x,
        pixel_aspect_y=s.pixel_aspect_y,
    )


@pytest.mark.parametrize(
    ("fx", "fy", "cx", "cy", "resolution"),
    [
        (600.0, 600.0, 319.5, 239.5, (640, 480)),  # square pixels, centred
        (600.0, 640.0, 300.2, 250.9, (640, 480)),  # fy > fx, off-centre
        (640.0, 600.0, 330.0, 228.0, (640, 480)),  # fy < fx
        (900.0, 870.0, 241.3, 401.7, (480, 800)),  # portrait
    ],
)
def test_k_round_trips_through_the_blender_settings(
    fx: float, fy: float, cx: float, cy: float, resolution: tuple[int, int]
) -> None:
    k = [[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]]
    back, res = k_from_camera_params(_params(k, resolution))
    assert res == resolution
    np.testing.assert_allclose(back, k, rtol=1e-12, atol=1e-9)


def test_square_pixels_follow_the_design_formulas() -> None:
    """DESIGN.md: lens = fx * S / W, shift_x = -(cx + 0.5 - W/2) / W, shift_y = (cy + 0.5 - H/2) / W."""
    s = pinhole_settings([[600.0, 0.0, 300.0], [0.0, 600.0, 250.0], [0.0, 0.0, 1.0]], (640, 480))
    assert s.lens == pytest.approx(600.0 * SENSOR_WIDTH_MM / 640)
    assert s.shift_x == pytest.approx(-(300.5 - 320) / 640)
    assert s.shift_y == pytest.approx((250.5 - 240) / 640)
    assert (s.pixel_aspect_x, s.pixel_aspect_y) == (1.0, 1.0)


def test_blender_clamps_pixel_aspects_to_at_least_one() -> None:
    wide = pinhole_settings([[600.0, 0.0, 320.0], [0.0, 660.0, 240.0], [0.0, 0.0, 1.0]], (640, 480))
    tall = pinhole_settings([[660.0, 0.0, 320.0], [0.0, 600.0, 240.0], [0.0, 0.0, 1.0]], (640, 480))
    assert (wide.pixel_aspect_x, wide.pixel_aspect_y) == pytest.approx((1.1, 1.0))
    assert (tall.pixel_aspect_x, tall.pixel_aspect_y) == pytest.approx((1.0, 1.1))


def test_every_sensor_fit_and_the_resolution_percentage() -> None:
    """A user's camera: 50 mm on a 36 x 24 mm sensor, 1920 x 1080 at 50 %, no shift."""
    base = {"lens": 50.0, "sensor_width": 36.0, "sensor_height": 24.0, "shift_x": 0.0, "shift_y": 0.0}
    size = {"resolution_x": 1920, "resolution_y": 1080, "resolution_percentage": 50}
    horizontal, res = k_from_camera_params(BlenderCameraParams(sensor_fit="HORIZONTAL", **base, **size))
    auto, _ = k_from_camera_params(BlenderCameraParams(sensor_fit="AUTO", **base, **size))
    vertical, _ = k_from_camera_params(BlenderCameraParams(sensor_fit="VERTICAL", **base, **size))
    assert res == (960, 540)
    assert horizontal == auto  # landscape: AUTO fits the width
    assert horizontal[0][0] == pytest.approx(50.0 * 960 / 36.0) and horizontal[1][1] == horizontal[0][0]
    assert vertical[1][1] == pytest.approx(50.0 * 540 / 24.0)
    assert (horizontal[0][2], horizontal[1][2]) == (479.5, 269.5)  # centred, in OpenCV's convention
    portrait, _ = k_from_camera_params(
        BlenderCameraParams(sensor_fit="AUTO", **base, resolution_x=540, resolution_y=960)
    )
    assert portrait[1][1] == pytest.approx(50.0 * 960 / 36.0)  # AUTO fits the longer side


def test_render_view_of_each_lens_model() -> None:
    k = [[300.0, 0.0, 159.5], [0.0, 300.0, 119.5], [0.0, 0.0, 1.0]]
    pinhole = CameraIntrinsics(k_matrix=k, resolution=(320, 240))
    assert render_view(pinhole) == ("perspective", k, (320, 240), None)
    bc = CameraIntrinsics(
        k_matrix=k, resolution=(320, 240), distortion_model="brown_conrady",
        distortion_coeffs=[-0.2, 0.05, 0.0, 0.0, 0.0],
    )  # fmt: skip
    projection, k_over, res, fov = render_view(bc)
    assert projection == "perspective" and fov is None and res[0] > 320 and k_over[0][0] == 300.0
    kb = CameraIntrinsics(
        k_matrix=k, resolution=(320, 240), distortion_model="kannala_brandt",
        distortion_coeffs=[0.01, 0.0, 0.0, 0.0],
    )  # fmt: skip
    projection, _, res, fov = render_view(kb)
    assert projection == "equidistant" and res[0] == res[1] and fov is not None and fisheye_fov_ok(fov)
    assert not fisheye_fov_ok(math.radians(5.0)) and not fisheye_fov_ok(11 * math.pi)
