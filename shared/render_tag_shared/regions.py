"""Where the ground truth lives in a render: the pixels of the tags' and boards' rectangles.

Every keypoint and corner of the labels is an edge inside a tag's or a board's rectangle (its printed
pattern and paper margin), and the noise of a Cycles render at those edges is what moves them. The
add-on spends `renderer.marker_samples` on these pixels and `renderer.samples` on the rest of the
frame (`render_tag_addon.core.renderer.render_marker_region`). Pixels are those of the frame Blender
renders (`blender_camera.render_view`: the overscan image for a distorted lens), before any warp.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .blender_camera import render_view
from .geometry import invert_rigid
from .lens import project_points
from .recipe import BoardObject, SceneRecipe, TagObject
from .truth import OUTLINE_SAMPLES_PER_EDGE, object_extent_m, outline_object_frame

__all__ = ["MarkerRegion", "marker_outlines", "marker_region", "polygon_mask"]

BoolArray = npt.NDArray[np.bool_]

GROW_PX = 1
"""Pixels added around each rectangle: a pixel whose centre lies just outside still sees the edge
through its filter (a 1 px box reaches 0.5 px, Blackman-Harris 1.5 px 0.75 px)."""


@dataclass(frozen=True)
class MarkerRegion:
    """The render's pixels inside some marker rectangle (row 0 on top) and their bounding box."""

    mask: BoolArray
    x0: int
    y0: int
    x1: int
    y1: int
    """Inclusive bounds of the mask's pixels; an empty region has x1 < x0."""

    @property
    def empty(self) -> bool:
        return self.x1 < self.x0

    @property
    def fraction(self) -> float:
        """Share of the frame's pixels in the region (what the extra samples cost, roughly)."""
        return float(self.mask.mean())


def marker_outlines(recipe: SceneRecipe, camera_index: int) -> list[npt.NDArray[np.float64]]:
    """Each tag's and board's rectangle in front of the camera as a closed polygon (N, 2) in the render's
    pixels (OpenCV's convention). One reaching behind a pinhole camera has no outline in the image plane:
    it gets the whole frame."""
    camera = recipe.cameras[camera_index]
    projection, k, (width, height), _ = render_view(camera.intrinsics)
    fisheye = projection == "equidistant"
    world_to_camera = invert_rigid(camera.matrix)
    frame = np.array([[-0.5, -0.5], [width - 0.5, -0.5], [width - 0.5, height - 0.5], [-0.5, height - 0.5]])
    outlines = []
    for obj in recipe.objects:
        if not isinstance(obj, TagObject | BoardObject):
            continue
        half_w, half_h = (side / 2.0 for side in object_extent_m(obj))
        corners = np.array(
            [[-half_w, half_h, 0.0], [half_w, half_h, 0.0], [half_w, -half_h, 0.0], [-half_w, -half_h, 0.0]]
        )
        # edges sampled for a fisheye render, where straight edges curve; a pinhole keeps them straight
        points = outline_object_frame(corners, OUTLINE_SAMPLES_PER_EDGE if fisheye else 1)
        to_camera = world_to_camera @ obj.pose.matrix()
        in_camera = points @ to_camera[:3, :3].T + to_camera[:3, 3]
        if fisheye:
            uv = project_points(in_camera, k, "kannala_brandt", np.zeros(4))
        elif bool((in_camera[:, 2] > 0.0).all()):
            uv = project_points(in_camera, k)
        elif bool((in_camera[:, 2] <= 0.0).all()):
            continue  # wholly behind the camera: not in the picture
        else:
            uv = np.full((len(points), 2), np.nan)
        outlines.append(frame if not np.isfinite(uv).all() else uv)
    return outlines


def polygon_mask(
    polygons: list[npt.NDArray[np.float64]], width: int, height: int, grow_px: int = 0
) -> BoolArray:
    """Pixels (H, W) whose centre lies inside any polygon (even-odd rule), grown by `grow_px` pixels
    (each step adds the four neighbours)."""
    mask = np.zeros((height, width), dtype=bool)
    for polygon in polygons:
        x_lo = max(0, int(np.floor(polygon[:, 0].min())))
        x_hi = min(width - 1, int(np.ceil(polygon[:, 0].max())))
        y_lo = max(0, int(np.floor(polygon[:, 1].min())))
        y_hi = min(height - 1, int(np.ceil(polygon[:, 1].max())))
        if x_hi < x_lo or y_hi < y_lo:
            continue
        xs = np.arange(x_lo, x_hi + 1, dtype=np.float64)[None, :]
        ys = np.arange(y_lo, y_hi + 1, dtype=np.float64)[:, None]
        inside = np.zeros((len(ys), xs.shape[1]), dtype=bool)
        for (xa, ya), (xb, yb) in zip(polygon, np.roll(polygon, -1, axis=0), strict=True):
            if ya == yb:
                continue
            crosses = (ya > ys) != (yb > ys)  # the edge spans this row of centres
            x_at = xa + (ys - ya) * (xb - xa) / (yb - ya)
            inside ^= crosses & (xs < x_at)
        mask[y_lo : y_hi + 1, x_lo : x_hi + 1] |= inside
    for _ in range(grow_px):
        grown = mask.copy()
        grown[1:, :] |= mask[:-1, :]
        grown[:-1, :] |= mask[1:, :]
        grown[:, 1:] |= mask[:, :-1]
        grown[:, :-1] |= mask[:, 1:]
        mask = grown
    return mask


def marker_region(recipe: SceneRecipe, camera_index: int) -> MarkerRegion:
    """The pixels of camera `camera_index`'s render where the truth lives, grown by GROW_PX."""
    _, _, (width, height), _ = render_view(recipe.cameras[camera_index].intrinsics)
    mask = polygon_mask(marker_outlines(recipe, camera_index), width, height, GROW_PX)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        return MarkerRegion(mask, 0, 0, -1, -1)
    return MarkerRegion(mask, int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1]))
