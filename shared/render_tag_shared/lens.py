"""Lens models: OpenCV's pinhole, Brown-Conrady and Kannala-Brandt projections and their inverse.

Pure numpy, so the add-on (inside Blender), the host and the audit compute the same pixels. This is
the one home of the lens models the contract names (`DistortionModel`) and of their coefficient counts.

Conventions
-----------
* Pixels follow OpenCV (see `image_space`): the centre of the top-left pixel is (0, 0).
* The camera frame is OpenCV's: x right, y down, z forward (the optical axis).
* ``K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]``. Skew must be zero (cv2.projectPoints ignores it,
  so accepting it would silently disagree with OpenCV).
* Distortion models and their coefficient vectors:

  - ``"none"``: ``[]``, pinhole.
  - ``"brown_conrady"``: ``[k1, k2, p1, p2, k3]``, exactly cv2.projectPoints' 5-vector.
  - ``"kannala_brandt"``: ``[k1, k2, k3, k4]``, exactly cv2.fisheye.projectPoints' D.

* Points that cannot be imaged give NaN, never a plausible-looking pixel: z <= 0 for the pinhole and
  Brown-Conrady models (cv2 would divide by a negative depth and mirror the point into the image).
  Kannala-Brandt measures theta = atan2(sqrt(x^2 + y^2), z), which equals cv2's atan(r) for z > 0
  and extends smoothly past 90 degrees (a fisheye sees behind its principal plane); only the
  direction straight backwards (and the origin), where the azimuth is undefined, gives NaN.
* :func:`project_points` reproduces OpenCV even where a polynomial model folds back on itself (beyond
  the radius where the distorted radius stops growing). Rays past that fold cannot appear in a
  physical image; :func:`unproject_pixels` never returns them and :func:`in_lens_domain` tells them
  apart, so ground truth can mark such points as not visible.
"""

from __future__ import annotations

import math
from typing import Final, Literal, get_args

import numpy as np
import numpy.typing as npt

from .image_space import point_rows

__all__ = [
    "COEFF_COUNTS",
    "DISTORTION_MODELS",
    "DistortionModel",
    "coeff_array",
    "expected_coeff_count",
    "in_lens_domain",
    "in_lens_domain_checked",
    "k_params",
    "max_valid_angle",
    "project_checked",
    "project_points",
    "unproject_pixels",
]

ArrayLike = npt.ArrayLike
FloatArray = npt.NDArray[np.float64]

DistortionModel = Literal["none", "brown_conrady", "kannala_brandt"]
"""The lens models a recipe may name, in the order of the contract."""
DISTORTION_MODELS: Final[tuple[str, ...]] = get_args(DistortionModel)
COEFF_COUNTS: Final[dict[str, int]] = {"none": 0, "brown_conrady": 5, "kannala_brandt": 4}
"""How many distortion coefficients each model takes (OpenCV's vectors, see the module doc)."""

# Newton tolerances: pixel residual we aim for, and the residual above which a pixel is declared
# not invertible (NaN) instead of returning a wrong ray.
_TARGET_RESIDUAL_PX: Final[float] = 1e-11
_ACCEPT_RESIDUAL_PX: Final[float] = 1e-7


# --------------------------------------------------------------------------- validation


def expected_coeff_count(model: str) -> int:
    """Number of distortion coefficients a model takes (0, 5, 4); ValueError for unknown models."""
    try:
        return COEFF_COUNTS[model]
    except KeyError:
        raise ValueError(f"unknown distortion model {model!r}; expected one of {DISTORTION_MODELS}") from None


def coeff_array(model: str, coeffs: ArrayLike | None) -> FloatArray:
    """The checked coefficient vector of a model (float64); ValueError on a wrong count or non-finite."""
    n = expected_coeff_count(model)
    c = np.zeros(0) if coeffs is None else np.asarray(coeffs, dtype=np.float64).reshape(-1)
    if c.size != n:
        raise ValueError(f"distortion model {model!r} takes {n} coefficients, got {c.size}")
    if not np.all(np.isfinite(c)):
        raise ValueError("distortion coefficients must be finite")
    return c


def k_params(k_matrix: ArrayLike) -> tuple[float, float, float, float]:
    """(fx, fy, cx, cy) of a checked K; ValueError on skew, a wrong shape or non-positive focal lengths."""
    k = np.asarray(k_matrix, dtype=np.float64)
    if k.shape != (3, 3):
        raise ValueError(f"K must be 3x3, got shape {k.shape}")
    if k[0, 1] != 0.0 or k[1, 0] != 0.0 or not np.array_equal(k[2], [0.0, 0.0, 1.0]):
        raise ValueError("K must be [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] (no skew)")
    fx, fy, cx, cy = float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2])
    if not (fx > 0.0 and fy > 0.0 and math.isfinite(cx) and math.isfinite(cy)):
        raise ValueError("K needs fx > 0, fy > 0 and finite cx, cy")
    return fx, fy, cx, cy


# --------------------------------------------------------------------------- radial polynomials


def _odd_poly(t: FloatArray, c: FloatArray) -> FloatArray:
    """t * (1 + c0 t^2 + c1 t^4 + ...): the radial map of both models (r for BC, theta for KB)."""
    t2 = t * t
    acc = np.zeros_like(t)
    for ci in c[::-1]:
        acc = (acc + ci) * t2
    return t * (1.0 + acc)


def _odd_poly_deriv(t: FloatArray, c: FloatArray) -> FloatArray:
    t2 = t * t
    acc = np.zeros_like(t)
    for i in range(len(c) - 1, -1, -1):
        acc = (acc + (2 * i + 3) * c[i]) * t2
    return 1.0 + acc


def _fold_limit(c: FloatArray, cap: float) -> float:
    """Smallest t > 0 where d/dt [t (1 + c0 t^2 + ...)] reaches 0, or ``cap``.

    Up to that point the radial map is strictly increasing, hence invertible; beyond it the model
    folds back and two rays share one pixel.
    """
    # derivative as a polynomial in s = t^2: 1 + 3 c0 s + 5 c1 s^2 + ...; np.roots wants highest first
    poly = np.append(((2.0 * np.arange(c.size) + 3.0) * c)[::-1], 1.0)
    nz = np.flatnonzero(poly)
    if nz.size == 0 or nz[0] == len(poly) - 1:
        return cap
    roots = np.roots(poly[nz[0] :])
    real = roots[np.abs(roots.imag) <= 1e-9 * np.maximum(1.0, np.abs(roots))].real
    pos = real[real > 0.0]
    if pos.size == 0:
        return cap
    return min(float(np.sqrt(pos.min())), cap)


def max_valid_angle(model: str, coeffs: ArrayLike | None = None) -> float:
    """Largest angle (radians, from the optical axis) a lens model can image without folding.

    "none": pi/2. Brown-Conrady: atan of the normalised radius where r (1 + k1 r^2 + k2 r^4 + k3 r^6)
    stops increasing (the tangential terms are small and ignored here), below pi/2. Kannala-Brandt:
    the theta where theta_d(theta) stops increasing, at most pi.
    """
    c = coeff_array(model, coeffs)
    if model == "none":
        return math.pi / 2
    if model == "brown_conrady":
        r_max = _fold_limit(c[[0, 1, 4]], math.inf)
        return math.atan(r_max) if math.isfinite(r_max) else math.pi / 2
    return _fold_limit(c, math.pi)


def _radial_inverse(target: FloatArray, c: FloatArray, t_max: float) -> FloatArray:
    """Solve t (1 + c0 t^2 + ...) = target for t in [0, t_max), vectorised; NaN where no such t.

    Newton's method kept inside a shrinking bracket (bisection when a step leaves it), so it cannot
    diverge whatever the coefficients: the map is increasing on [0, t_max) by construction.
    """
    target = np.asarray(target, dtype=np.float64)
    finite = np.isfinite(target) & (target >= 0.0)
    tgt = np.where(finite, target, 0.0)
    if math.isfinite(t_max):
        hi = np.full_like(tgt, t_max)
        ok = finite & (tgt < _odd_poly(hi, c))
    else:
        # increasing on [0, inf): grow the bracket until it holds the root
        hi = np.maximum(tgt, 1.0)
        for _ in range(1100):
            short = _odd_poly(hi, c) < tgt
            if not short.any():
                break
            hi = np.where(short, hi * 2.0, hi)
        ok = finite & np.isfinite(hi)
    tgt = np.where(ok, tgt, 0.0)
    hi = np.where(ok, hi, 1.0)
    lo = np.zeros_like(tgt)
    t = np.clip(tgt, lo, hi)
    for _ in range(200):
        g = _odd_poly(t, c) - tgt
        lo = np.where(g <= 0.0, t, lo)
        hi = np.where(g > 0.0, t, hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            t_new = t - g / _odd_poly_deriv(t, c)
        outside = ~np.isfinite(t_new) | (t_new < lo) | (t_new > hi)
        t_new = np.where(outside, 0.5 * (lo + hi), t_new)
        done = np.abs(t_new - t) <= 1e-15 * np.maximum(t, 1e-300)
        t = t_new
        if done.all():
            break
    return np.where(ok, t, np.nan)


# --------------------------------------------------------------------------- Brown-Conrady


def _bc_distort(x: FloatArray, y: FloatArray, c: FloatArray) -> tuple[FloatArray, FloatArray]:
    k1, k2, p1, p2, k3 = c
    r2 = x * x + y * y
    radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
    xy2 = 2.0 * x * y
    xd = x * radial + p1 * xy2 + p2 * (r2 + 2.0 * x * x)
    yd = y * radial + p1 * (r2 + 2.0 * y * y) + p2 * xy2
    return xd, yd


def _bc_jacobian(
    x: FloatArray, y: FloatArray, c: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    k1, k2, p1, p2, k3 = c
    r2 = x * x + y * y
    radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
    d_radial_dr2 = k1 + r2 * (2.0 * k2 + 3.0 * r2 * k3)
    dr_dx = 2.0 * x * d_radial_dr2
    dr_dy = 2.0 * y * d_radial_dr2
    j11 = radial + x * dr_dx + 2.0 * p1 * y + 6.0 * p2 * x
    j12 = x * dr_dy + 2.0 * p1 * x + 2.0 * p2 * y
    j21 = y * dr_dx + 2.0 * p1 * x + 2.0 * p2 * y
    j22 = radial + y * dr_dy + 6.0 * p1 * y + 2.0 * p2 * x
    return j11, j12, j21, j22


def _bc_undistort(
    xt: FloatArray, yt: FloatArray, c: FloatArray, fx: float, fy: float
) -> tuple[FloatArray, FloatArray]:
    """Normalised undistorted (x, y) whose Brown-Conrady image is (xt, yt); NaN if none in the domain.

    Start from the exact inverse of the radial part (robust for strong barrel distortion, where the
    usual fixed-point iteration of cv2.undistortPoints stalls), then Newton on the full 2-D model
    with step halving, to a pixel residual near double precision.
    """
    radial_c = c[[0, 1, 4]]
    r_max = _fold_limit(radial_c, math.inf)
    rd = np.hypot(xt, yt)
    r0 = _radial_inverse(rd, radial_c, r_max)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(rd > 0.0, r0 / rd, 1.0)
    x = xt * scale
    y = yt * scale
    start_ok = np.isfinite(x) & np.isfinite(y)
    x = np.where(start_ok, x, 0.0)
    y = np.where(start_ok, y, 0.0)

    def residual(xx: FloatArray, yy: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        xd, yd = _bc_distort(xx, yy, c)
        ex, ey = xd - xt, yd - yt
        with np.errstate(invalid="ignore"):
            return ex, ey, np.hypot(ex * fx, ey * fy)

    ex, ey, res = residual(x, y)
    for _ in range(60):
        active = start_ok & (res > _TARGET_RESIDUAL_PX)
        if not active.any():
            break
        j11, j12, j21, j22 = _bc_jacobian(x, y, c)
        det = j11 * j22 - j12 * j21
        with np.errstate(divide="ignore", invalid="ignore"):
            dx = (j22 * ex - j12 * ey) / det
            dy = (j11 * ey - j21 * ex) / det
        dx = np.where(active & np.isfinite(dx), dx, 0.0)
        dy = np.where(active & np.isfinite(dy), dy, 0.0)
        step = np.ones_like(x)
        improved = np.zeros(x.shape, dtype=bool)
        for _ in range(30):
            xn, yn = x - step * dx, y - step * dy
            exn, eyn, resn = residual(xn, yn)
            better = active & ~improved & (resn < res)
            x, y = np.where(better, xn, x), np.where(better, yn, y)
            ex, ey = np.where(better, exn, ex), np.where(better, eyn, ey)
            res = np.where(better, resn, res)
            improved |= better
            if (improved | ~active).all():
                break
            step = np.where(improved, step, 0.5 * step)
        if not improved.any():
            break
    # reject rays past the radial fold (outside the physical image) and non-converged pixels
    j11, j12, j21, j22 = _bc_jacobian(x, y, c)
    ok = start_ok & (res <= _ACCEPT_RESIDUAL_PX) & (j11 * j22 - j12 * j21 > 0.0)
    if math.isfinite(r_max):
        ok &= np.hypot(x, y) < r_max
    return np.where(ok, x, np.nan), np.where(ok, y, np.nan)


# --------------------------------------------------------------------------- projection


def project_points(
    points_cam: ArrayLike,
    k_matrix: ArrayLike,
    distortion_model: str = "none",
    coeffs: ArrayLike | None = None,
) -> FloatArray:
    """Pixels (..., 2) of camera-frame points (..., 3), as cv2.projectPoints / cv2.fisheye.projectPoints.

    Matches OpenCV with rvec = tvec = 0 to rounding for every point in front of the camera. NaN for
    points that cannot be imaged: z <= 0 for "none"/"brown_conrady"; for "kannala_brandt" only the
    origin and points straight behind the camera (theta is measured with atan2, so directions past
    90 degrees are projected as a real fisheye images them, where cv2 would mirror them forwards).
    """
    c = coeff_array(distortion_model, coeffs)
    fx, fy, cx, cy = k_params(k_matrix)
    p, lead = point_rows(points_cam, 3, "points_cam")
    return project_checked(p, fx, fy, cx, cy, distortion_model, c).reshape(*lead, 2)


def project_checked(
    p: FloatArray, fx: float, fy: float, cx: float, cy: float, distortion_model: str, c: FloatArray
) -> FloatArray:
    """project_points on inputs that are already checked: (N, 3) float64 points, K's four numbers, and
    the model's coefficient array. For hot loops that project many point sets through one camera."""
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    if distortion_model == "none" and bool((z > 0.0).all()):
        # every point in front: no division by zero, and the same arithmetic as below
        uv = np.stack([fx * (x / z) + cx, fy * (y / z) + cy], axis=-1)
        uv[~np.all(np.isfinite(uv), axis=-1)] = np.nan
        return uv
    with np.errstate(divide="ignore", invalid="ignore"):
        if distortion_model == "kannala_brandt":
            rho = np.hypot(x, y)
            theta = np.arctan2(rho, z)
            theta_d = _odd_poly(theta, c)
            # theta_d / rho -> 1 / z on the axis (the limit cv2 also takes for r < 1e-8)
            scale = np.where(rho > 0.0, theta_d / rho, 1.0 / z)
            bad = ((rho == 0.0) & (z <= 0.0)) | ~np.isfinite(scale)
            xd, yd = x * scale, y * scale
        else:
            bad = ~(z > 0.0)
            xn, yn = x / z, y / z
            xd, yd = _bc_distort(xn, yn, c) if distortion_model == "brown_conrady" else (xn, yn)
    uv = np.stack([fx * xd + cx, fy * yd + cy], axis=-1)
    uv[bad | ~np.all(np.isfinite(uv), axis=-1)] = np.nan
    return uv


def unproject_pixels(
    uv: ArrayLike,
    k_matrix: ArrayLike,
    distortion_model: str = "none",
    coeffs: ArrayLike | None = None,
) -> FloatArray:
    """Unit rays (..., 3) in the camera frame through pixels (..., 2): the inverse of project_points.

    ``project_points(unproject_pixels(uv)) == uv`` to about 1e-10 px. A pixel gives NaN when no ray
    inside the lens's valid domain (see :func:`in_lens_domain`) images there, e.g. outside a
    fisheye's image circle or past the fold of a strongly distorted Brown-Conrady lens. This is what
    the renderer uses to resample an undistorted overscan render into the distorted target image.
    """
    c = coeff_array(distortion_model, coeffs)
    fx, fy, cx, cy = k_params(k_matrix)
    q, lead = point_rows(uv, 2, "uv")
    xt = (q[:, 0] - cx) / fx
    yt = (q[:, 1] - cy) / fy
    if distortion_model == "kannala_brandt":
        theta_d = np.hypot(xt, yt)
        theta = _radial_inverse(theta_d, c, max_valid_angle(distortion_model, c))
        with np.errstate(divide="ignore", invalid="ignore"):
            s = np.where(theta_d > 0.0, np.sin(theta) / theta_d, 1.0)
        rays = np.stack([xt * s, yt * s, np.cos(theta)], axis=-1)
    else:
        if distortion_model == "brown_conrady":
            xt, yt = _bc_undistort(xt, yt, c, fx, fy)
        rays = np.stack([xt, yt, np.ones_like(xt)], axis=-1)
        rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
    rays[~np.all(np.isfinite(rays), axis=-1)] = np.nan
    return rays.reshape(*lead, 3)


def in_lens_domain(
    points_cam: ArrayLike, distortion_model: str, coeffs: ArrayLike | None = None
) -> np.ndarray:
    """Boolean mask (...,): which points a physical lens of this model can image at all.

    False behind the pinhole/Brown-Conrady camera (z <= 0) and beyond :func:`max_valid_angle`,
    where the polynomial folds back. Ground truth should not call such points visible even when
    cv2's formula puts them inside the image, because the rendered image cannot show them there.
    """
    p, lead = point_rows(points_cam, 3, "points_cam")
    return in_lens_domain_checked(p, distortion_model, max_valid_angle(distortion_model, coeffs)).reshape(
        lead
    )


def in_lens_domain_checked(p: FloatArray, distortion_model: str, theta_max: float) -> np.ndarray:
    """in_lens_domain on (N, 3) float64 points, with the model's max_valid_angle already computed."""
    theta = np.arctan2(np.hypot(p[:, 0], p[:, 1]), p[:, 2])
    ok = np.all(np.isfinite(p), axis=-1) & (theta < theta_max) & np.any(p != 0.0, axis=-1)
    if distortion_model != "kannala_brandt":
        ok &= p[:, 2] > 0.0
    return ok
