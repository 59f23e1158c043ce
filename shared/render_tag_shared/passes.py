"""Per-image data passes (renderer.outputs): instance masks, depth and normals, as files and labels.

The add-on renders one extra Cycles pass per camera with every surface replaced by an emission of
(object id, z depth) or (normal), at 1 sample and a 0.01 px pixel filter, so each pixel holds what the
ray through its centre (OpenCV's pixel centre) hits first: exact values, no antialiasing, no blend of
two objects at an edge. This module turns those float buffers into the files and label entries:

- masks/<image_id>.png: uint16, the id of the object seen at each pixel: recipe object i has id i + 1
  (`mask_id`), 0 is the world (nothing); `ImageOutputs.mask_objects` lists every id with its object
  name and type, the count, bbox and COCO RLE of its visible pixels.
- depth/<image_id>.png: uint16 millimetres of z along the optical axis (OpenCV's Z, what depth cameras
  give), 0 where there is no surface or it lies beyond 65.535 m. A PNG rather than EXR: every tool
  reads it (cv2.IMREAD_UNCHANGED, PIL), it is lossless and deterministic here, and 1 mm steps hold the
  depth of a marker scene (0.5 mm worst-case rounding).
- normals/<image_id>.png: uint16 RGB, the unit surface normal in OpenCV camera axes, (n + 1) / 2 * 65535.

For a distorted camera the passes are rendered at the overscan view and resampled nearest-neighbour
into the target image (as the picture is, bilinearly): a pixel there takes the value of the overscan
ray nearest to its own, at most half an overscan pixel away.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .imaging import warp_to_target
from .recipe import CameraIntrinsics, SceneRecipe
from .records import ImageOutputs, MaskObject

__all__ = [
    "DEPTH_MAX_MM",
    "MAX_MASK_ID",
    "depth_png",
    "image_outputs",
    "mask_id",
    "mask_objects",
    "normals_png",
    "rle_decode",
    "rle_encode",
    "to_target",
]

MAX_MASK_ID = 32767
"""Blender's Object.pass_index tops out here: a recipe with more objects cannot have masks."""

DEPTH_MAX_MM = 65535


def mask_id(object_index: int) -> int:
    """The id of recipe object `object_index` in the masks (0 is left for the world)."""
    return object_index + 1


def rle_encode(mask: npt.ArrayLike) -> dict[str, Any]:
    """COCO's uncompressed RLE of a boolean (H, W) mask: column-major runs, starting with a 0-run."""
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    edges = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    bounds = np.concatenate([[0], edges, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0, *counts]
    h, w = np.shape(mask)
    return {"size": [int(h), int(w)], "counts": [int(c) for c in counts]}


def rle_decode(rle: dict[str, Any]) -> npt.NDArray[np.bool_]:
    """The mask of `rle_encode` (and of any uncompressed COCO RLE)."""
    h, w = rle["size"]
    values = np.zeros(len(rle["counts"]), dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, rle["counts"])
    return flat.reshape((w, h)).T.copy()


def mask_objects(recipe: SceneRecipe, ids: npt.NDArray[np.integer]) -> list[MaskObject]:
    """Every object of the recipe with its id, and the count, bbox (OpenCV coordinates: a pixel is the
    square of side 1 around its centre) and RLE of the pixels where it is seen."""
    present = set(np.unique(ids).tolist())
    out = []
    for index, obj in enumerate(recipe.objects):
        value = mask_id(index)
        entry = MaskObject(id=value, object_name=obj.name, object_type=obj.type)
        if value in present:
            mask = ids == value
            rows = np.flatnonzero(mask.any(axis=1))
            cols = np.flatnonzero(mask.any(axis=0))
            x0, y0 = int(cols[0]), int(rows[0])
            bbox = (x0 - 0.5, y0 - 0.5, float(cols[-1] - x0 + 1), float(rows[-1] - y0 + 1))
            entry = entry.model_copy(update={"area": int(mask.sum()), "bbox": bbox, "rle": rle_encode(mask)})
        out.append(entry)
    return out


def depth_png(z_m: npt.ArrayLike, valid: npt.ArrayLike) -> npt.NDArray[np.uint16]:
    """uint16 millimetres of z (metres) where `valid`, 0 elsewhere and beyond 65.535 m."""
    z = np.asarray(z_m, dtype=np.float64)
    mm = np.rint(z * 1000.0)
    ok = np.asarray(valid, dtype=bool) & np.isfinite(mm) & (mm > 0) & (mm <= DEPTH_MAX_MM)
    return np.where(ok, mm, 0).astype(np.uint16)


def normals_png(normals: npt.ArrayLike, valid: npt.ArrayLike) -> npt.NDArray[np.uint16]:
    """uint16 RGB of unit normals (H, W, 3) in [-1, 1]: (n + 1) / 2 * 65535, 0 where not `valid`."""
    n = np.asarray(normals, dtype=np.float64)
    length = np.linalg.norm(n, axis=2, keepdims=True)
    unit = np.divide(n, length, out=np.zeros_like(n), where=length > 0)
    coded = np.rint((np.clip(unit, -1.0, 1.0) + 1.0) / 2.0 * 65535.0)
    return np.where(np.asarray(valid, dtype=bool)[..., None], coded, 0).astype(np.uint16)


def to_target(buffer: npt.ArrayLike, intrinsics: CameraIntrinsics) -> npt.NDArray[Any]:
    """A pass rendered at the camera's render view, in the target image (nearest for a distorted lens)."""
    array = np.asarray(buffer)
    if intrinsics.distortion_model == "none":
        return array
    return np.asarray(warp_to_target(array, intrinsics, mode="nearest", fill=0))


def image_outputs(
    recipe: SceneRecipe, image_id: str, ids: npt.NDArray[np.integer] | None, kinds: Sequence[str]
) -> ImageOutputs:
    """The label file's `outputs` entry of one image: file names and, with masks, the mask objects."""
    return ImageOutputs(
        masks=f"masks/{image_id}.png" if "masks" in kinds else None,
        depth=f"depth/{image_id}.png" if "depth" in kinds else None,
        normals=f"normals/{image_id}.png" if "normals" in kinds else None,
        mask_objects=mask_objects(recipe, ids) if ids is not None and "masks" in kinds else [],
    )
