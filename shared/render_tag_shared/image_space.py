"""Image-space helpers: OpenCV's pixel convention, visibility, the COCO sentinel, polygons and boxes.

Pixels follow OpenCV: the centre of the top-left pixel is (0, 0); the image area of a W x H image is
the rectangle [-0.5, W - 0.5] x [-0.5, H - 0.5] (outer edges of the border pixels). Pure numpy.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = [
    "apply_sentinel",
    "bbox_xywh",
    "image_size",
    "is_clockwise_in_image",
    "point_rows",
    "polygon_area",
    "visibility",
    "visibility_checked",
]

ArrayLike = npt.ArrayLike
FloatArray = npt.NDArray[np.float64]


def image_size(resolution: tuple[int, int] | ArrayLike) -> tuple[int, int]:
    """(width, height) as ints; ValueError unless both are positive."""
    w, h = (int(v) for v in np.asarray(resolution).reshape(-1)[:2])
    if w <= 0 or h <= 0:
        raise ValueError(f"resolution must be positive, got {(w, h)}")
    return w, h


def point_rows(points: ArrayLike, dim: int, name: str) -> tuple[FloatArray, tuple[int, ...]]:
    """Points (..., dim) as float64 rows (N, dim) and the leading shape to restore; ValueError otherwise."""
    p = np.asarray(points, dtype=np.float64)
    if p.shape[-1:] != (dim,):
        raise ValueError(f"{name} must have shape (..., {dim}), got {p.shape}")
    return p.reshape(-1, dim), p.shape[:-1]


# --------------------------------------------------------------------------- visibility


def visibility(
    uv: ArrayLike, resolution: tuple[int, int], eval_margin_px: float = 0.0
) -> npt.NDArray[np.int8]:
    """COCO-style ternary visibility (...,) of pixels (..., 2).

    2: inside the valid area [m - 0.5, W - 0.5 - m] x [m - 0.5, H - 0.5 - m] (m = eval_margin_px,
    bounds inclusive): with m = 0 that is the whole image area in OpenCV's pixel-centre convention,
    and each m shrinks it by m px from every edge. 1: labelled (finite) but outside that area.
    0: not labelled (any non-finite coordinate, e.g. NaN from projection).
    """
    w, h = image_size(resolution)
    q, lead = point_rows(uv, 2, "uv")
    return visibility_checked(q, w, h, float(eval_margin_px)).reshape(lead)


def visibility_checked(q: FloatArray, w: int, h: int, m: float) -> npt.NDArray[np.int8]:
    """visibility of (N, 2) float64 pixels in a checked w x h image with margin m (floats and ints)."""
    finite = np.all(np.isfinite(q), axis=-1)
    # comparisons with NaN are False and raise no floating-point error (no errstate needed)
    inside = (q[:, 0] >= m - 0.5) & (q[:, 0] <= w - 0.5 - m) & (q[:, 1] >= m - 0.5) & (q[:, 1] <= h - 0.5 - m)
    return np.where(finite, np.where(inside, 2, 1), 0).astype(np.int8)


def apply_sentinel(uv: ArrayLike, vis: ArrayLike) -> FloatArray:
    """Copy of uv (..., 2) with the COCO sentinel (-1, -1) wherever vis == 0."""
    out = np.array(uv, dtype=np.float64, copy=True)
    v = np.asarray(vis)
    if out.shape[:-1] != v.shape or out.shape[-1:] != (2,):
        raise ValueError(f"uv {out.shape} and vis {v.shape} do not match")
    out[v == 0] = -1.0
    return out


# --------------------------------------------------------------------------- polygons


def polygon_area(uv: ArrayLike) -> float:
    """Signed shoelace area of a polygon (N, 2) in image pixels (y down).

    Positive when the vertices run clockwise as seen on screen: a tag's TL, TR, BR, BL corners
    give a positive area (for (0,0), (1,0), (1,1), (0,1): +1). Negative means the order is mirrored
    (the tag is seen from behind, or the corners are scrambled). NaN if any vertex is NaN.
    """
    q = np.asarray(uv, dtype=np.float64)
    if q.ndim != 2 or q.shape[1] != 2:
        raise ValueError(f"polygon must have shape (N, 2), got {q.shape}")
    x, y = q[:, 0], q[:, 1]
    wrap = x[-1] * y[0] - x[0] * y[-1]
    return float(0.5 * (np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1]) + wrap))


def is_clockwise_in_image(uv: ArrayLike) -> bool:
    """True when the polygon runs clockwise on screen (positive polygon_area); False if degenerate/NaN."""
    return polygon_area(uv) > 0.0


def bbox_xywh(
    uv: ArrayLike, clip_resolution: tuple[int, int] | None = None
) -> tuple[float, float, float, float]:
    """COCO-style (x_min, y_min, width, height) of the finite points in uv (..., 2), in OpenCV pixels.

    With ``clip_resolution`` the box is clipped to the image area [-0.5, W - 0.5] x [-0.5, H - 0.5].
    ValueError when no point is finite (there is no box to report).
    """
    q, _ = point_rows(uv, 2, "uv")
    q = q[np.all(np.isfinite(q), axis=-1)]
    if q.size == 0:
        raise ValueError("bbox of no finite points")
    x0, y0 = q.min(axis=0)
    x1, y1 = q.max(axis=0)
    if clip_resolution is not None:
        w, h = image_size(clip_resolution)
        x0, x1 = np.clip([x0, x1], -0.5, w - 0.5)
        y0, y1 = np.clip([y0, y1], -0.5, h - 0.5)
    return float(x0), float(y0), float(x1 - x0), float(y1 - y0)
