"""K and resolution ↔ Blender camera settings (lens, sensor fit, shift, pixel aspect): pure math, no bpy.

Derivation (Blender's `BKE_camera_params_compute_viewplane` and Cycles' `blender_camera_viewplane`
agree on it). With `sensor_fit = 'HORIZONTAL'`, sensor width S (mm), focal length L (mm), image
W x H and pixel aspect (ax, ay), let ycor = ay / ax. The view plane at unit depth spans S / L across
the W columns and ycor * H * S / (L * W) across the H rows, so

    fx = L * W / S                      fy = fx / ycor = fx * ax / ay

Blender clamps both aspects to >= 1, so fy > fx takes ax = fy / fx, ay = 1 and fy < fx takes
ax = 1, ay = fx / fy. The shift moves the view plane by shift * W column widths (both axes, since
the fit is horizontal); the optical axis then crosses the image `W / 2 - shift_x * W` pixel edges
from the left and `H / 2 + shift_y * W / ycor` rows from the top. OpenCV counts from the centre of the
first pixel (half a pixel in), hence

    shift_x = -(cx + 0.5 - W / 2) / W   shift_y = (cy + 0.5 - H / 2) * ycor / W

Here so it is tested without Blender (tests/test_blender_camera.py); the add-on's `core/camera.py`
only copies these numbers onto Blender data, and `tests/test_addon_scene.py` checks them against
Blender's own projection and the render tests against what OpenCV finds in Cycles' pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .recipe import CameraIntrinsics

__all__ = [
    "SENSOR_WIDTH_MM",
    "BlenderCameraParams",
    "PinholeSettings",
    "fisheye_fov_ok",
    "k_from_camera_params",
    "pinhole_settings",
    "render_view",
]

SENSOR_WIDTH_MM = 36.0
"""Full-frame width: only the ratio lens / sensor matters for the projection; depth of field uses it."""

Projection = Literal["perspective", "equidistant"]


@dataclass(frozen=True)
class PinholeSettings:
    """What Blender needs for one pinhole K: everything is exact in float64 before Blender stores it."""

    lens: float
    shift_x: float
    shift_y: float
    pixel_aspect_x: float
    pixel_aspect_y: float
    width: int
    height: int


@dataclass(frozen=True)
class BlenderCameraParams:
    """The Blender camera and render settings that fix a perspective camera's projection."""

    lens: float
    sensor_width: float
    sensor_height: float
    sensor_fit: str
    """'AUTO', 'HORIZONTAL' or 'VERTICAL' (Blender's `Camera.sensor_fit`)."""
    shift_x: float
    shift_y: float
    resolution_x: int
    resolution_y: int
    resolution_percentage: int = 100
    pixel_aspect_x: float = 1.0
    pixel_aspect_y: float = 1.0


def pinhole_settings(
    k_matrix: np.ndarray | list[list[float]], resolution: tuple[int, int]
) -> PinholeSettings:
    """Lens, shift and pixel aspect that make Blender project exactly as K does (see the module doc)."""
    k = np.asarray(k_matrix, dtype=np.float64)
    fx, fy, cx, cy = float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2])
    w, h = int(resolution[0]), int(resolution[1])
    ax, ay = (fy / fx, 1.0) if fy >= fx else (1.0, fx / fy)
    ycor = ay / ax
    return PinholeSettings(
        lens=fx * SENSOR_WIDTH_MM / w,
        shift_x=-(cx + 0.5 - w / 2.0) / w,
        shift_y=(cy + 0.5 - h / 2.0) * ycor / w,
        pixel_aspect_x=ax,
        pixel_aspect_y=ay,
        width=w,
        height=h,
    )


def k_from_camera_params(p: BlenderCameraParams) -> tuple[list[list[float]], tuple[int, int]]:
    """K and resolution of a perspective Blender camera, any sensor fit (the inverse of pinhole_settings)."""
    scale = p.resolution_percentage / 100.0
    w = max(1, int(p.resolution_x * scale))
    h = max(1, int(p.resolution_y * scale))
    ax, ay = float(p.pixel_aspect_x), float(p.pixel_aspect_y)
    ycor = ay / ax
    if p.sensor_fit == "AUTO":
        horizontal = ax * w >= ay * h
        sensor = p.sensor_width
    else:
        horizontal = p.sensor_fit == "HORIZONTAL"
        sensor = p.sensor_width if horizontal else p.sensor_height
    viewfac = float(w) if horizontal else ycor * h
    fx = p.lens * viewfac / sensor
    fy = fx / ycor
    cx = w / 2.0 - p.shift_x * viewfac - 0.5
    cy = h / 2.0 + p.shift_y * viewfac / ycor - 0.5
    return [[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], (w, h)


def render_view(
    intrinsics: CameraIntrinsics,
) -> tuple[Projection, list[list[float]], tuple[int, int], float | None]:
    """What Blender renders for a camera: (projection, K, resolution, fisheye_fov).

    The target pinhole itself without distortion; the overscan pinhole for Brown-Conrady; the
    equidistant fisheye for Kannala-Brandt. The image is warped to the target afterwards.
    """
    target = intrinsics.overscan
    if intrinsics.distortion_model == "none" or target is None:
        return "perspective", intrinsics.k_matrix, intrinsics.resolution, None
    return target.projection, target.k_matrix, target.resolution, target.fov_rad


def fisheye_fov_ok(fov_rad: float) -> bool:
    """Blender's fisheye_fov range is [10 deg, 10 pi]."""
    return math.radians(10.0) <= fov_rad <= 10.0 * math.pi
