"""Datablock bookkeeping: what render-tag created, reuse of heavy images, and removal of orphans.

Every datablock the adapter creates carries the custom property `render_tag` (= 1). Building recipe
after recipe in one session reuses images (marker and board textures, HDRIs, background images) by
name, and removes render-tag's own datablocks that nothing uses any more, so memory stays flat
without touching the user's data. `purge_orphans` is the blunt tool for the headless worker.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import bpy
import numpy as np

from render_tag_shared.assets import asset_problem
from render_tag_shared.errors import InputError

OWNED = "render_tag"
"""Custom property marking a datablock render-tag created (and may delete)."""

STORED = "render_tag_recipe"
"""Custom property holding the JSON of the recipe part an object (or scene) was built from."""

T = TypeVar("T")


def need(value: T | None, what: str) -> T:
    """`value`, which Blender always provides but the type stubs declare optional (RNA pointers)."""
    if value is None:
        raise RuntimeError(f"Blender gave no {what}")
    return value


def set_enum(owner: bpy.types.bpy_struct, attr: str, value: str) -> None:
    """Set an enum whose items Blender fills at run time (OCIO colour spaces and views, render engines):
    the stubs freeze those at build time, so the value is checked by Blender, not by mypy."""
    setattr(owner, attr, value)


def custom_prop(datablock: bpy.types.bpy_struct, key: str, default: Any = None) -> Any:
    """A custom (ID) property's value, or `default` when unset (`bpy_struct.get`, typed)."""
    try:
        return datablock[key]
    except KeyError:
        return default


def camera_data(obj: bpy.types.Object) -> bpy.types.Camera:
    """The camera datablock of a camera object (TypeError for any other kind)."""
    if not isinstance(obj.data, bpy.types.Camera):
        raise TypeError(f"{obj.name} is not a camera")
    return obj.data


Lamp = bpy.types.PointLight | bpy.types.SpotLight | bpy.types.SunLight | bpy.types.AreaLight
"""The light kinds a recipe names; each has energy and colour (the `Light` base class has neither)."""


def lamp(data: object, name: str) -> Lamp:
    """`data` as one of the recipe's light kinds (TypeError for anything else)."""
    if not isinstance(data, Lamp):
        raise TypeError(f"{name} is not a point, spot, sun or area light")
    return data


def abspath(path: str) -> str:
    """A path with Blender's `//` (relative to the open .blend file) resolved."""
    return bpy.path.abspath(path)


def mark(datablock: bpy.types.ID) -> bpy.types.ID:
    datablock[OWNED] = 1
    return datablock


def owned(datablock: bpy.types.ID) -> bool:
    return bool(custom_prop(datablock, OWNED, 0))


def store_json(datablock: bpy.types.ID, value: Any, key: str = STORED) -> None:
    datablock[key] = json.dumps(value, sort_keys=True, allow_nan=False)


def load_json(datablock: bpy.types.ID, key: str = STORED) -> Any | None:
    text = custom_prop(datablock, key)
    if not isinstance(text, str):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _collections() -> Iterable[Any]:
    data = bpy.data
    return (
        data.objects,
        data.meshes,
        data.materials,
        data.lights,
        data.cameras,
        data.worlds,
        data.node_groups,
        data.textures,
        data.images,
        data.actions,
    )


def remove_owned_orphans() -> int:
    """Remove render-tag's datablocks that have no users left (repeat: removing frees others)."""
    removed = 0
    for _ in range(4):
        found = 0
        for collection in _collections():
            for block in list(collection):
                if block.users == 0 and owned(block) and not block.use_fake_user:
                    collection.remove(block)
                    found += 1
        removed += found
        if not found:
            break
    return removed


def purge_orphans() -> int:
    """Blender's own recursive purge of every orphan datablock (render-tag's and the user's)."""
    before = sum(len(c) for c in _collections())
    bpy.data.orphans_purge(do_local_ids=True, do_linked_ids=True, do_recursive=True)  # type: ignore[call-arg]  # 4.2 has these; the stubs do not
    return before - sum(len(c) for c in _collections())


def orphan_counts() -> dict[str, int]:
    """Datablocks without users, per kind: what a memory-flat session must keep at zero."""
    data = bpy.data
    kinds: dict[str, Iterable[bpy.types.ID]] = {
        "images": data.images,
        "meshes": data.meshes,
        "materials": data.materials,
        "textures": data.textures,
        "lights": data.lights,
        "cameras": data.cameras,
        "worlds": data.worlds,
        "node_groups": data.node_groups,
        "objects": data.objects,
        "actions": data.actions,
    }
    return {k: sum(1 for b in c if b.users == 0 and not b.use_fake_user) for k, c in kinds.items()}


def image_from_array(name: str, gray: np.ndarray) -> bpy.types.Image:
    """An owned, non-colour 8-bit image of a uint8 (H, W) array (row 0 at the top), reused by name.

    Non-Color: the texture values are reflectances, 0 and 1 exactly, not sRGB-encoded colours.
    """
    existing = bpy.data.images.get(name)
    h, w = gray.shape
    if existing is not None and owned(existing) and tuple(existing.size) == (w, h):
        return existing
    if existing is not None:
        existing.name = name + ".stale"
    image = bpy.data.images.new(name, width=w, height=h, alpha=False, float_buffer=False)
    mark(image)
    set_enum(need(image.colorspace_settings, "colour space"), "name", "Non-Color")
    values = gray[::-1].astype(np.float32) / 255.0  # Blender stores the bottom row first
    rgba = np.empty((h, w, 4), dtype=np.float32)
    rgba[..., 0] = rgba[..., 1] = rgba[..., 2] = values
    rgba[..., 3] = 1.0
    pixel_buffer(image).foreach_set(rgba.ravel())
    image.update()
    return image


def image_from_file(path: str, colorspace: str | None = None, field: str = "") -> bpy.types.Image:
    """An image file loaded once per session (Blender's own check_existing), marked as render-tag's.

    An unusable file (missing, a folder, not an image) is bad input (InputError naming `field`, never
    retried), as the host would have said had it seen the file: it may be gone since, or on another
    machine."""
    full = bpy.path.abspath(path)
    problem = asset_problem(full)
    if problem is not None:
        raise InputError("recipe", field, problem)
    try:
        image = bpy.data.images.load(full, check_existing=True)
    except RuntimeError as exc:  # a header that looked right, a body Blender cannot read
        raise InputError("recipe", field, f"{full!r}: Blender cannot read it ({exc})") from exc
    mark(image)
    if colorspace is not None:
        set_enum(need(image.colorspace_settings, "colour space"), "name", colorspace)
    return image


def pixel_buffer(image: bpy.types.Image) -> bpy.types.bpy_prop_array[float]:
    """`image.pixels`, a float array with `foreach_get/set` (the stubs type it as one float)."""
    pixels: bpy.types.bpy_prop_array[float] = image.pixels  # type: ignore[assignment]
    return pixels


@contextmanager
def temporarily(settings: list[tuple[Any, str, Any]]) -> Iterator[None]:
    """Sets (owner, attribute, value) triples, and puts the old values back afterwards."""
    saved = [(owner, attr, getattr(owner, attr)) for owner, attr, _ in settings if hasattr(owner, attr)]
    try:
        for owner, attr, value in settings:
            if hasattr(owner, attr):
                setattr(owner, attr, value)
        yield
    finally:
        for owner, attr, value in reversed(saved):
            setattr(owner, attr, value)
