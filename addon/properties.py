"""Authoring settings stored on Blender data: `Object.render_tag` and `Scene.render_tag`.

The N-panel edits these; `api.export_scene_recipe` reads them (with the object transforms) into a
recipe, and `adapter.build_scene` writes them on what it builds, so a built scene can be edited and
exported again. Changing a tag's or board's settings rebuilds its mesh and texture at once.
"""

# No `from __future__ import annotations` here: Blender reads the property annotations as objects.
import contextlib
from collections.abc import Iterator
from typing import Any

import bpy
from bpy.props import (
    BoolProperty,
    EnumProperty,
    FloatProperty,
    FloatVectorProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from render_tag_shared.families import FAMILY_NAMES

from .callbacks import refresh_object as _refresh  # globals without `bpy`: see callbacks.py

FAMILY_ITEMS = [(name, name, f"{name} markers") for name in FAMILY_NAMES]
"""Enum items shared by the N-panel's properties and the operators' dialogs."""
BOARD_TYPE_ITEMS = [
    ("charuco", "ChArUco", "OpenCV ChArUco board"),
    ("aprilgrid", "AprilGrid", "Kalibr AprilGrid"),
]
LENS_ITEMS = [
    ("none", "Pinhole", "No distortion"),
    ("brown_conrady", "Brown-Conrady", "k1, k2, p1, p2, k3 (cv2.projectPoints)"),
    ("kannala_brandt", "Kannala-Brandt", "k1..k4 (cv2.fisheye)"),
]
_suspended = 0


@contextlib.contextmanager
def suspend_updates() -> Iterator[None]:
    """Write several settings without rebuilding the object after each one."""
    global _suspended
    _suspended += 1
    try:
        yield
    finally:
        _suspended -= 1


def on_settings_changed(self: Any, context: Any) -> None:
    """Property update (via `callbacks.refresh_object`): rebuild the object from its settings.

    Errors are reported, not raised.
    """
    if _suspended:
        return
    obj = self.id_data
    if not isinstance(obj, bpy.types.Object) or self.kind == "NONE":
        return
    from . import api

    try:
        api.refresh_object(obj)
    except ValueError as exc:  # an invalid combination while editing: keep the old geometry
        print(f"render_tag: {obj.name}: {exc}")


class RenderTagObjectSettings(bpy.types.PropertyGroup):
    """What an object is to render-tag: a tag, a board, a plane, or nothing."""

    kind: EnumProperty(  # type: ignore[valid-type]
        name="Kind",
        items=[
            ("NONE", "None", "Not part of the recipe"),
            ("TAG", "Tag", "A single marker"),
            ("BOARD", "Board", "A ChArUco board or an AprilGrid"),
            ("PLANE", "Plane", "A plain or textured rectangle (background, distractor)"),
        ],
        default="NONE",
        update=_refresh,
    )
    family: EnumProperty(name="Family", items=FAMILY_ITEMS, default="tag36h11", update=_refresh)  # type: ignore[valid-type]
    tag_id: IntProperty(name="ID", min=0, default=0, update=_refresh)  # type: ignore[valid-type]
    size_mm: FloatProperty(  # type: ignore[valid-type]
        name="Size (mm)", description="Edge of the black border", min=1.0, default=100.0, update=_refresh
    )
    border_bits: IntProperty(name="Border bits", min=1, max=4, default=1, update=_refresh)  # type: ignore[valid-type]
    margin_modules: FloatProperty(  # type: ignore[valid-type]
        name="Quiet zone", description="White margin in modules", min=0.0, default=1.0, update=_refresh
    )
    roughness: FloatProperty(name="Roughness", min=0.0, max=1.0, default=0.9, update=_refresh)  # type: ignore[valid-type]
    board_type: EnumProperty(  # type: ignore[valid-type]
        name="Board", items=BOARD_TYPE_ITEMS, default="charuco", update=_refresh
    )
    rows: IntProperty(name="Rows", min=1, default=5, update=_refresh)  # type: ignore[valid-type]
    cols: IntProperty(name="Columns", min=1, default=7, update=_refresh)  # type: ignore[valid-type]
    square_size_mm: FloatProperty(name="Square (mm)", min=0.1, default=40.0, update=_refresh)  # type: ignore[valid-type]
    marker_size_mm: FloatProperty(name="Marker (mm)", min=0.1, default=30.0, update=_refresh)  # type: ignore[valid-type]
    spacing_ratio: FloatProperty(name="Spacing ratio", min=0.01, default=0.3, update=_refresh)  # type: ignore[valid-type]
    dictionary: EnumProperty(name="Dictionary", items=FAMILY_ITEMS, default="DICT_5X5_100", update=_refresh)  # type: ignore[valid-type]
    legacy_pattern: BoolProperty(name="Legacy pattern", default=False, update=_refresh)  # type: ignore[valid-type]
    board_border_bits: IntProperty(  # type: ignore[valid-type]
        name="Marker border", description="0: the library's default", min=0, max=4, default=0, update=_refresh
    )
    board_margin_mm: FloatProperty(name="Margin (mm)", min=0.0, default=0.0, update=_refresh)  # type: ignore[valid-type]
    plane_size_m: FloatVectorProperty(name="Size (m)", size=2, min=0.001, default=(1.0, 1.0), update=_refresh)  # type: ignore[valid-type]
    plane_color: FloatVectorProperty(  # type: ignore[valid-type]
        name="Colour", subtype="COLOR", size=3, min=0.0, max=1.0, default=(0.5, 0.5, 0.5), update=_refresh
    )
    plane_texture: StringProperty(name="Texture", subtype="FILE_PATH", default="", update=_refresh)  # type: ignore[valid-type]
    texture_repeat: FloatProperty(name="Repeat", min=0.001, default=1.0, update=_refresh)  # type: ignore[valid-type]


class RenderTagSceneSettings(bpy.types.PropertyGroup):
    """Recipe file navigation, output, lens model and renderer of the authored scene."""

    recipe_path: StringProperty(name="Recipe file", subtype="FILE_PATH", default="")  # type: ignore[valid-type]
    scene_index: IntProperty(name="Scene", min=0, default=0)  # type: ignore[valid-type]
    camera_index: IntProperty(name="Camera", min=0, default=0)  # type: ignore[valid-type]
    output_dir: StringProperty(name="Output", subtype="DIR_PATH", default="//render_tag_output")  # type: ignore[valid-type]
    eval_margin_px: FloatProperty(name="Eval margin (px)", min=0.0, default=0.0)  # type: ignore[valid-type]
    distortion_model: EnumProperty(name="Lens model", items=LENS_ITEMS, default="none")  # type: ignore[valid-type]
    distortion_coeffs: FloatVectorProperty(name="Coefficients", size=5, default=(0.0,) * 5)  # type: ignore[valid-type]
    renderer_mode: EnumProperty(  # type: ignore[valid-type]
        name="Renderer",
        items=[("cycles", "Cycles", ""), ("eevee", "EEVEE", ""), ("workbench", "Workbench", "")],
        default="cycles",
    )
    samples: IntProperty(name="Samples", min=1, default=32)  # type: ignore[valid-type]
    denoise: BoolProperty(name="Denoise", default=False)  # type: ignore[valid-type]


CLASSES = (RenderTagObjectSettings, RenderTagSceneSettings)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Object.render_tag = PointerProperty(type=RenderTagObjectSettings)
    bpy.types.Scene.render_tag = PointerProperty(type=RenderTagSceneSettings)


def unregister() -> None:
    for attr, owner in (("render_tag", bpy.types.Scene), ("render_tag", bpy.types.Object)):
        if hasattr(owner, attr):
            delattr(owner, attr)
    for cls in reversed(CLASSES):
        if getattr(cls, "is_registered", False):
            bpy.utils.unregister_class(cls)


def registered() -> bool:
    return hasattr(bpy.types.Object, "render_tag") and hasattr(bpy.types.Scene, "render_tag")


# --------------------------------------------------------------------------- recipe <-> settings


def write_object_settings(obj: bpy.types.Object, entry: dict[str, Any]) -> None:
    """Copy a recipe object's fields (JSON form) onto `obj.render_tag` (lights and cameras: nothing)."""
    settings = getattr(obj, "render_tag", None)
    kind = entry.get("type")
    if settings is None or kind not in ("TAG", "BOARD", "PLANE"):
        return
    with suspend_updates():
        settings.kind = kind
        settings.roughness = entry.get("roughness", 0.9)
        if kind == "TAG":
            settings.family = entry["tag_family"]
            settings.tag_id = entry["tag_id"]
            settings.size_mm = entry["size_mm"]
            settings.border_bits = entry["border_bits"]
            settings.margin_modules = entry["margin_modules"]
        elif kind == "BOARD":
            board = entry["board"]
            settings.board_type = board["board_type"]
            settings.rows = board["rows"]
            settings.cols = board["cols"]
            if board.get("square_size_mm") is not None:
                settings.square_size_mm = board["square_size_mm"]
            settings.marker_size_mm = board["marker_size_mm"]
            if board.get("spacing_ratio") is not None:
                settings.spacing_ratio = board["spacing_ratio"]
            settings.dictionary = board["dictionary"]
            settings.legacy_pattern = bool(board.get("legacy_pattern", False))
            settings.board_border_bits = board.get("border_bits") or 0
            settings.board_margin_mm = entry.get("margin_mm", 0.0)
        else:
            settings.plane_size_m = entry["size_m"]
            settings.plane_color = entry["color"]
            settings.plane_texture = entry.get("texture") or ""
            settings.texture_repeat = entry.get("texture_repeat", 1.0)


def _nice(value: float) -> float:
    """A float32 setting as the decimal the user typed (7 significant digits)."""
    return float(f"{float(value):.7g}")


def read_object_settings(obj: bpy.types.Object) -> dict[str, Any] | None:
    """The recipe fields `obj.render_tag` describes (without name and pose), or None."""
    settings = getattr(obj, "render_tag", None)
    if settings is None or settings.kind == "NONE":
        return None
    out: dict[str, Any] = {"type": settings.kind, "roughness": _nice(settings.roughness)}
    if settings.kind == "TAG":
        out.update(
            tag_family=settings.family,
            tag_id=int(settings.tag_id),
            size_mm=_nice(settings.size_mm),
            border_bits=int(settings.border_bits),
            margin_modules=_nice(settings.margin_modules),
        )
    elif settings.kind == "BOARD":
        charuco = settings.board_type == "charuco"
        out["board"] = {
            "board_type": settings.board_type,
            "rows": int(settings.rows),
            "cols": int(settings.cols),
            "square_size_mm": _nice(settings.square_size_mm) if charuco else None,
            "marker_size_mm": _nice(settings.marker_size_mm),
            "spacing_ratio": None if charuco else _nice(settings.spacing_ratio),
            "dictionary": settings.dictionary,
            "legacy_pattern": bool(settings.legacy_pattern) if charuco else False,
            "border_bits": int(settings.board_border_bits) or None,
            "marker_ids": None,
        }
        out["margin_mm"] = _nice(settings.board_margin_mm)
    else:
        out.update(
            size_m=[_nice(v) for v in settings.plane_size_m],
            color=[_nice(v) for v in settings.plane_color],
            texture=settings.plane_texture or None,
            texture_repeat=_nice(settings.texture_repeat),
        )
    return out


def write_scene_settings(scene: bpy.types.Scene, recipe: Any, camera_index: int) -> None:
    """Mirror a built recipe's lens model, eval margin and renderer on `scene.render_tag`."""
    settings = getattr(scene, "render_tag", None)
    if settings is None:
        return
    intr = recipe.cameras[camera_index].intrinsics
    settings.camera_index = camera_index
    settings.eval_margin_px = intr.eval_margin_px
    settings.distortion_model = intr.distortion_model
    coeffs = list(intr.distortion_coeffs) + [0.0] * (5 - len(intr.distortion_coeffs))
    settings.distortion_coeffs = coeffs
    settings.renderer_mode = recipe.renderer.mode
    settings.samples = recipe.renderer.samples
    settings.denoise = recipe.renderer.denoise


def read_scene_settings(scene: bpy.types.Scene) -> dict[str, Any] | None:
    settings = getattr(scene, "render_tag", None)
    if settings is None:
        return None
    n = {"none": 0, "brown_conrady": 5, "kannala_brandt": 4}[settings.distortion_model]
    return {
        "distortion_model": settings.distortion_model,
        "distortion_coeffs": [_nice(c) for c in settings.distortion_coeffs][:n],
        "eval_margin_px": _nice(settings.eval_margin_px),
        "renderer": {
            "mode": settings.renderer_mode,
            "samples": int(settings.samples),
            "denoise": bool(settings.denoise),
        },
    }
