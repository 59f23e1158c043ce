"""`render-tag preview OUT [--scene N]`: a contact sheet with the ground truth drawn on the images.

One look at corners drawn in their order (TL red, TR green, BR blue, BL yellow) over the pixels tells
whether labels and images agree, which no statistic does as quickly. Filled dots are visible (2),
rings are labelled but outside the image or the eval margin (1); unlabelled points (0) are not drawn.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from render_tag_shared.errors import InputError
from render_tag_shared.records import DetectionRecord

from ..dataset.reader import DatasetImage, RenderTagDataset
from ..io import write_png_atomic

__all__ = ["CORNER_COLOURS", "draw_ground_truth", "make_preview"]

BGR = tuple[int, int, int]
CORNER_COLOURS: tuple[BGR, BGR, BGR, BGR] = ((0, 0, 255), (0, 200, 0), (255, 90, 0), (0, 220, 255))
"""TL red, TR green, BR blue, BL yellow (BGR)."""
TAG_OUTLINE: BGR = (255, 255, 0)
BOARD_OUTLINE: BGR = (255, 0, 255)
KEYPOINT_VISIBLE: BGR = (255, 255, 0)
KEYPOINT_OUTSIDE: BGR = (0, 140, 255)
_SHIFT = 4  # cv2 drawing with 1/16 px precision
_FONT = 0


def _fixed(points: npt.NDArray[np.float64], scale: float) -> npt.NDArray[np.int32]:
    """OpenCV pixel coordinates of the original image -> fixed-point coordinates in the scaled tile."""
    return np.round(((points + 0.5) * scale - 0.5) * (1 << _SHIFT)).astype(np.int32)


def _mark_radius(points: npt.NDArray[np.float64], scale: float, largest: float) -> float:
    """A dot radius (tile px) a quarter of the spacing of neighbouring points, between 1 and `largest`:
    the marks of a far, small marker must not cover it."""
    finite = points[np.isfinite(points).all(axis=1)] * scale
    if len(finite) < 2:
        return largest
    gaps = np.linalg.norm(finite[:, None, :] - finite[None, :, :], axis=2)
    gaps[gaps == 0] = np.inf
    spacing = float(np.median(gaps.min(axis=1)))
    return float(np.clip(spacing / 4.0, 1.0, largest)) if np.isfinite(spacing) else largest


def _circle(tile: npt.NDArray[np.uint8], point: Any, radius: float, colour: BGR, thickness: int) -> None:
    import cv2

    centre = tuple(int(c) for c in _fixed(np.asarray(point, dtype=np.float64), 1.0))
    cv2.circle(tile, centre, max(1, round(radius * (1 << _SHIFT))), colour, thickness, cv2.LINE_AA, _SHIFT)


def _draw_record(tile: npt.NDArray[np.uint8], record: DetectionRecord, scale: float) -> None:
    import cv2

    outline = np.asarray(record.outline or record.corners, dtype=np.float64).reshape(-1, 2)
    outline = outline[np.isfinite(outline).all(axis=1)]
    colour = TAG_OUTLINE if record.record_type == "TAG" else BOARD_OUTLINE
    if len(outline) >= 2:
        cv2.polylines(tile, [_fixed(outline, scale)], True, colour, 1, cv2.LINE_AA, _SHIFT)
    if record.keypoints is not None and record.keypoints_visibility is not None:
        keypoints = np.asarray(record.keypoints, dtype=np.float64).reshape(-1, 2)
        kp_vis = np.asarray(record.keypoints_visibility[: len(keypoints)])
        radius = _mark_radius(keypoints[kp_vis > 0], scale, 2.5)
        for index, (point, v) in enumerate(zip(keypoints, kp_vis, strict=False)):
            if v == 0:
                continue
            at = (point + 0.5) * scale - 0.5
            kp_colour = KEYPOINT_VISIBLE if v == 2 else KEYPOINT_OUTSIDE
            _circle(tile, at, radius + 0.8, (0, 0, 0), -1 if v == 2 else 1)
            _circle(tile, at, radius, kp_colour, -1 if v == 2 else 1)
            if index == 0:  # where the library's corner ids start
                _circle(tile, at, 2 * radius + 1, kp_colour, 1)
    corners = np.asarray(record.corners, dtype=np.float64).reshape(-1, 2)[:4]
    vis = list(record.corners_visibility)[:4]
    labelled = corners[[v > 0 for v in vis]] if len(vis) == len(corners) else corners[:0]
    radius = _mark_radius(labelled, scale, 4.0)
    for index, (point, v) in enumerate(zip(corners, vis, strict=False)):
        if v == 0:
            continue
        _circle(tile, (point + 0.5) * scale - 0.5, radius, CORNER_COLOURS[index], -1 if v == 2 else 1)
    if len(labelled):
        in_tile = (labelled + 0.5) * scale - 0.5
        cx, cy = in_tile.mean(axis=0)
        text = record.tag_family if record.record_type == "BOARD" else f"{record.tag_id}"  # tags, markers
        size = 0.4
        (w, h), _ = cv2.getTextSize(text, _FONT, size, 1)
        extent = float(np.ptp(in_tile, axis=0).max()) if len(in_tile) > 1 else 0.0
        if record.record_type == "TAG" and extent < 2.5 * max(w, h):  # a small tag: its id beside it
            x, y = in_tile[:, 0].max() + 4, in_tile[:, 1].min() + h / 2
        else:
            x, y = cx - w / 2, cy + h / 2
        tile_h, tile_w = tile.shape[:2]
        org = (int(np.clip(x, 2, max(2, tile_w - w - 2))), int(np.clip(y, h + 2, max(h + 2, tile_h - 3))))
        cv2.putText(tile, text, org, _FONT, size, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(tile, text, org, _FONT, size, (255, 255, 255), 1, cv2.LINE_AA)


def draw_ground_truth(image: DatasetImage, tile_width: int = 480) -> npt.NDArray[np.uint8]:
    """The image (grey when missing) scaled to `tile_width`, with its records drawn on, and its id."""
    import cv2

    pixels = cv2.imread(str(image.path), cv2.IMREAD_COLOR) if image.path.is_file() else None
    width, height = image.width or 640, image.height or 480
    if pixels is None:
        pixels = np.full((height, width, 3), 64, dtype=np.uint8)
        cv2.putText(pixels, "no image", (10, height - 12), _FONT, 0.6, (200, 200, 200), 1, cv2.LINE_AA)
    scale = tile_width / pixels.shape[1]
    tile_height = max(1, round(pixels.shape[0] * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    tile = np.asarray(
        cv2.resize(pixels, (tile_width, tile_height), interpolation=interpolation), dtype=np.uint8
    )
    for record in image.records:
        _draw_record(tile, record, scale)
    header = np.full((22, tile_width, 3), 32, dtype=np.uint8)
    title = f"{image.image_id}  ({len(image.records)} records)"
    cv2.putText(header, title, (5, 16), _FONT, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return np.vstack([header, tile])


def _legend(width: int) -> npt.NDArray[np.uint8]:
    import cv2

    bar = np.full((28, width, 3), 255, dtype=np.uint8)
    x = 8
    items = [(c, name) for c, name in zip(CORNER_COLOURS, ("TL", "TR", "BR", "BL"), strict=True)]
    items += [(KEYPOINT_VISIBLE, "keypoint"), (KEYPOINT_OUTSIDE, "outside / margin (ring)")]
    for colour, name in items:
        cv2.circle(bar, (x + 6, 14), 6, (0, 0, 0), -1, cv2.LINE_AA)
        cv2.circle(bar, (x + 6, 14), 5, colour, -1, cv2.LINE_AA)
        cv2.putText(bar, name, (x + 16, 19), _FONT, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        x += 26 + 9 * len(name)
    return bar


def make_preview(
    out: str | Path,
    dest: str | Path | None = None,
    scene: int | None = None,
    max_images: int = 16,
    tile_width: int = 400,
) -> Path:
    """Writes the contact sheet (default OUT/preview.png) and returns its path.

    With `scene`, the cameras of that scene; otherwise up to `max_images` images spread evenly over the
    dataset. InputError when the dataset or the scene has no image.
    """
    dataset = RenderTagDataset(out)
    images = dataset.scene(scene) if scene is not None else dataset.images
    if not images:
        what = f"scene {scene}" if scene is not None else "the dataset"
        raise InputError(str(out), "scene" if scene is not None else "labels", f"{what} has no images")
    if len(images) > max_images:
        picks = np.linspace(0, len(images) - 1, max_images).round().astype(int)
        images = [images[i] for i in sorted(set(picks.tolist()))]
    tiles = [draw_ground_truth(image, tile_width) for image in images]
    columns = min(len(tiles), max(1, math.ceil(math.sqrt(len(tiles)))))
    rows = math.ceil(len(tiles) / columns)
    tile_h = max(t.shape[0] for t in tiles)
    gap = 4
    sheet = np.full((rows * (tile_h + gap) + gap, columns * (tile_width + gap) + gap, 3), 255, dtype=np.uint8)
    for index, tile in enumerate(tiles):
        r, c = divmod(index, columns)
        y, x = gap + r * (tile_h + gap), gap + c * (tile_width + gap)
        sheet[y : y + tile.shape[0], x : x + tile.shape[1]] = tile
    sheet = np.vstack([sheet, _legend(sheet.shape[1])])
    target = Path(dest) if dest is not None else Path(out) / "preview.png"
    return write_png_atomic(target, sheet)
