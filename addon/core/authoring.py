"""Authored objects: creating and updating the tags, boards and planes a user places by hand.

The function API (`api.add_tag`, `api.add_board`, `api.refresh_object`, `api.set_camera_intrinsics`)
validates recipe models and calls these; an authored object is a textured mesh with
`Object.render_tag` settings (`settings.py`), so `export.scene_recipe` reads it back into a recipe
entry, and editing those settings rebuilds it (`on_settings_changed`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import bpy
from mathutils import Quaternion, Vector

from render_tag_shared.recipe import BoardObject, CameraIntrinsics, PlaneObject, TagObject

from . import datablocks
from . import scene as scene_adapter
from .camera import apply_view
from .settings import (
    object_model,
    read_object_settings,
    scene_settings,
    updates_suspended,
    write_lens_settings,
    write_object_settings,
)


def target_scene(scene: bpy.types.Scene | None) -> bpy.types.Scene:
    """`scene`, or the context's scene when None."""
    return scene if scene is not None else datablocks.need(bpy.context.scene, "scene in the context")


def place(obj: bpy.types.Object, location: Sequence[float], rotation_quaternion: Sequence[float]) -> None:
    scene_adapter.set_pose(obj, Vector(location), Quaternion(rotation_quaternion))


def replace_geometry(obj: bpy.types.Object, model: TagObject | BoardObject | PlaneObject) -> None:
    """Give `obj` the mesh and material of a recipe object (its transform is kept)."""
    old = obj.data
    obj.data = scene_adapter.object_mesh(model)
    if isinstance(old, bpy.types.Mesh) and old.users == 0 and datablocks.owned(old):
        for material in list(old.materials):
            old.materials.pop()
            if material is not None and material.users == 0 and datablocks.owned(material):
                bpy.data.materials.remove(material)
        bpy.data.meshes.remove(old)


def authored_entry(obj: bpy.types.Object) -> dict[str, Any] | None:
    """The recipe entry (without pose) of an authored object's `render_tag` settings, or None."""
    entry = read_object_settings(obj)
    if entry is None:
        return None
    entry["name"] = datablocks.custom_prop(obj, "render_tag_name", obj.name)
    return entry


def new_authored(
    scene: bpy.types.Scene | None,
    entry: dict[str, Any],
    model: TagObject | BoardObject | PlaneObject,
    location: Sequence[float],
    rotation_quaternion: Sequence[float],
) -> bpy.types.Object:
    """Link a new authored object built from `model` (settings from `entry`) into `scene`."""
    target = target_scene(scene)
    mesh = bpy.data.meshes.new(entry["name"])
    datablocks.mark(mesh)
    obj = bpy.data.objects.new(entry["name"], mesh)
    datablocks.mark(obj)
    target.collection.objects.link(obj)
    replace_geometry(obj, model)
    write_object_settings(obj, entry)
    place(obj, location, rotation_quaternion)
    return obj


def unique_name(prefix: str) -> str:
    """`<prefix><n>` for the lowest n no object is named yet."""
    n = 0
    while f"{prefix}{n}" in bpy.data.objects:
        n += 1
    return f"{prefix}{n}"


def apply_intrinsics(
    camera_object: bpy.types.Object, intr: CameraIntrinsics, scene: bpy.types.Scene | None = None
) -> None:
    """Make a Blender camera (and its scene's resolution) project exactly as `intr` does."""
    if camera_object.type != "CAMERA":
        raise ValueError(f"{camera_object.name} is not a camera")
    target = target_scene(scene)
    apply_view(
        datablocks.camera_data(camera_object), target, "perspective", intr.k_matrix, intr.resolution, None
    )
    stored = datablocks.load_json(camera_object) or {}
    stored["intrinsics"] = intr.model_dump(mode="json")
    datablocks.store_json(camera_object, stored)
    settings = scene_settings(target)
    if settings is not None:
        write_lens_settings(settings, intr)


def refresh_object(obj: bpy.types.Object) -> None:
    """Rebuild an authored object's mesh and texture from `obj.render_tag` (the N-panel's live edit)."""
    entry = authored_entry(obj)
    if entry is None:
        return
    replace_geometry(obj, object_model(entry))


def on_settings_changed(settings: bpy.types.PropertyGroup, context: bpy.types.Context) -> None:
    """Property update (via `callbacks.refresh_object`): rebuild the object from its settings.

    Errors are reported, not raised: Blender calls this while the user types.
    """
    if updates_suspended():
        return
    obj = settings.id_data
    if not isinstance(obj, bpy.types.Object) or getattr(settings, "kind", "NONE") == "NONE":
        return
    try:
        refresh_object(obj)
    except ValueError as exc:  # an invalid combination while editing: keep the old geometry
        print(f"render_tag: {obj.name}: {exc}")
