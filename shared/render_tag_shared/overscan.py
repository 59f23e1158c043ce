"""Overscan: what Blender renders for a distorted camera, and the map back to the target image.

Blender renders only linear (pinhole) or equidistant-fisheye cameras. A Brown-Conrady target is
rendered as a larger pinhole image (`linear_overscan`), a Kannala-Brandt one as Blender's equidistant
fisheye (`equidistant_overscan`); `resample_map` then warps that render into the distorted target.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import numpy.typing as npt

from .image_space import image_size
from .lens import coeff_array, expected_coeff_count, k_params, project_points, unproject_pixels

__all__ = [
    "FISHEYE_EDGE_GUARD_PX",
    "equidistant_k",
    "equidistant_overscan",
    "linear_overscan",
    "project_equidistant",
    "resample_map",
]

ArrayLike = npt.ArrayLike
FloatArray = npt.NDArray[np.float64]

#: Extra clearance (px) between the furthest target ray and the edge of Blender's fisheye circle.
#: Outside the circle Cycles returns no ray (black); a bilinear sample reaches neighbours up to
#: sqrt(2) px away and each of those pixels integrates Cycles' 1.5 px pixel filter (about 1.06 px
#: diagonally), so 2.5 px keeps every contributing camera sample inside the circle.
FISHEYE_EDGE_GUARD_PX: Final[float] = 2.5


def _border_samples(resolution: tuple[int, int], step: float = 0.25) -> FloatArray:
    """Points every ``step`` px along the edge of the image area [-0.5, W-0.5] x [-0.5, H-0.5]."""
    w, h = resolution
    xs = np.linspace(-0.5, w - 0.5, math.ceil(w / step) + 1)
    ys = np.linspace(-0.5, h - 0.5, math.ceil(h / step) + 1)
    return np.concatenate(
        [
            np.stack([xs, np.full_like(xs, -0.5)], axis=-1),
            np.stack([xs, np.full_like(xs, h - 0.5)], axis=-1),
            np.stack([np.full_like(ys, -0.5), ys], axis=-1),
            np.stack([np.full_like(ys, w - 0.5), ys], axis=-1),
        ]
    )


def _target_rays(
    k_matrix: ArrayLike, resolution: tuple[int, int], model: str, coeffs: ArrayLike
) -> FloatArray:
    rays = unproject_pixels(_border_samples(resolution), k_matrix, model, coeffs)
    if not np.all(np.isfinite(rays)):
        raise ValueError(
            f"the {model} coefficients {np.asarray(coeffs).tolist()} do not map the whole "
            f"{resolution[0]}x{resolution[1]} image to rays: the lens model folds back inside the image"
        )
    return rays


def linear_overscan(
    k_matrix: ArrayLike,
    resolution: tuple[int, int],
    coeffs: ArrayLike,
    margin_px: float = 2.0,
) -> tuple[FloatArray, tuple[int, int]]:
    """Pinhole K and resolution of an undistorted render that covers a Brown-Conrady target image.

    The overscan image is the target's pixel grid extended by whole pixels on each side (same fx, fy;
    principal point shifted by the left/top padding, so not necessarily centred). Every ray of the
    target image area, corners of the border pixels included, projects with the returned K to a
    point within [margin, W_over - 1 - margin] x [margin, H_over - 1 - margin], i.e. at least
    ``margin_px`` inside the outermost pixel centres, so a bilinear (or wider) kernel has all its
    neighbours. Padding is never negative: a pincushion lens gets at least the target's size.

    Whole-pixel padding keeps the two grids aligned: with zero coefficients the resampling is an
    exact integer shift (no blur), and the render is as small as the coverage allows.
    """
    fx, fy, cx, cy = k_params(k_matrix)
    res = image_size(resolution)
    c = coeff_array("brown_conrady", coeffs)
    rays = _target_rays(k_matrix, res, "brown_conrady", c)
    u = fx * rays[:, 0] / rays[:, 2] + cx
    v = fy * rays[:, 1] / rays[:, 2] + cy
    # the sampled border bounds the covered region (the lens map is a homeomorphism on its domain);
    # 1e-6 px absorbs the sagitta between samples 0.25 px apart
    eps = 1e-6
    left = max(0, math.ceil(margin_px - float(u.min()) + eps))
    top = max(0, math.ceil(margin_px - float(v.min()) + eps))
    right = max(0, math.ceil(float(u.max()) + 1.0 + margin_px - res[0] + eps))
    bottom = max(0, math.ceil(float(v.max()) + 1.0 + margin_px - res[1] + eps))
    k_over = np.array([[fx, 0.0, cx + left], [0.0, fy, cy + top], [0.0, 0.0, 1.0]])
    return k_over, (res[0] + left + right, res[1] + top + bottom)


def equidistant_k(fov_rad: float, square_res: int) -> FloatArray:
    """K of Blender's equidistant fisheye on a square image, as a Kannala-Brandt camera with D = 0.

    Cycles maps the raster square to [-1, 1]^2 and a point at normalised radius r to the angle
    theta = r * fisheye_fov / 2, so fisheye_fov spans the full image width. In OpenCV pixels the
    centre is ((S - 1) / 2, (S - 1) / 2) and r_px = theta * S / fisheye_fov: f = S / fov. The image
    circle (radius S / 2 px) holds the rays; outside it Cycles renders nothing. Assumed orientation:
    image right = camera +x, image down = camera +y (no mirroring), as for Blender's pinhole camera.
    """
    if not (fov_rad > 0.0 and square_res > 0):
        raise ValueError("fov_rad and square_res must be positive")
    f = square_res / fov_rad
    c = (square_res - 1) / 2.0
    return np.array([[f, 0.0, c], [0.0, f, c], [0.0, 0.0, 1.0]])


def project_equidistant(points_cam: ArrayLike, fov_rad: float, square_res: int) -> FloatArray:
    """Pixels of camera-frame points in Blender's equidistant fisheye render (see equidistant_k)."""
    return project_points(points_cam, equidistant_k(fov_rad, square_res), "kannala_brandt", np.zeros(4))


def equidistant_overscan(
    k_matrix: ArrayLike,
    resolution: tuple[int, int],
    coeffs: ArrayLike,
    margin_px: float = 2.0,
) -> tuple[float, int, FloatArray]:
    """Blender equidistant fisheye (fisheye_fov, square resolution, its K) covering a KB target image.

    The render keeps the target's centre magnification, f = max(fx, fy) px per radian, and is sized
    so the widest target ray lands at least ``margin_px + FISHEYE_EDGE_GUARD_PX`` inside the image
    circle. fisheye_fov = S / f exactly. The widest ray comes from a corner of the image area, since
    theta grows with the (convex) normalised radius. ValueError when the coefficients fold inside the
    image or the field of view would exceed 360 degrees.
    """
    fx, fy, _, _ = k_params(k_matrix)
    res = image_size(resolution)
    c = coeff_array("kannala_brandt", coeffs)
    rays = _target_rays(k_matrix, res, "kannala_brandt", c)
    theta_max = float(np.arctan2(np.hypot(rays[:, 0], rays[:, 1]), rays[:, 2]).max())
    f = max(fx, fy)
    square = math.ceil(2.0 * (f * theta_max + margin_px + FISHEYE_EDGE_GUARD_PX) + 1e-6)
    fov = square / f
    if fov > 2.0 * math.pi:
        raise ValueError(f"the target image needs a fisheye_fov of {math.degrees(fov):.1f} deg (> 360)")
    return fov, square, equidistant_k(fov, square)


def resample_map(
    k_matrix: ArrayLike,
    resolution: tuple[int, int],
    distortion_model: str,
    coeffs: ArrayLike | None,
    source_k: ArrayLike,
    source_model: str = "none",
) -> FloatArray:
    """(H, W, 2) source-image coordinates to sample for every target pixel centre.

    The source is the undistorted render: a pinhole ("none", K from linear_overscan) or Blender's
    equidistant fisheye ("kannala_brandt" with zero coefficients, K from equidistant_overscan).
    NaN where a target pixel has no ray. Feed it to any bilinear sampler (e.g. cv2.remap).
    """
    w, h = image_size(resolution)
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    rays = unproject_pixels(np.stack([gx, gy], axis=-1), k_matrix, distortion_model, coeffs)
    src_coeffs = np.zeros(expected_coeff_count(source_model))
    return project_points(rays, source_k, source_model, src_coeffs)
