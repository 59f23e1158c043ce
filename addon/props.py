"""The add-on's Blender properties: `Object.render_tag`, `Scene.render_tag`, and the operators' fields.

Every property is specified once, in `object_fields` and `scene_fields`; the property groups and the
operator dialogs (`ui/operators.py`) take their fields from there, so a range or default cannot
drift between the N-panel and an operator. What the values mean in a recipe is `core/settings.py`.
Changing a tag's or board's settings rebuilds its mesh and texture at once (`callbacks.py`).
"""

# No `from __future__ import annotations` here: Blender reads the property annotations as objects.
from collections.abc import Callable
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
from render_tag_shared.lens import DISTORTION_MODELS

from .callbacks import refresh_object as _refresh  # globals without `bpy`: see callbacks.py
from .core.settings import COEFF_SLOTS

FAMILY_ITEMS = [(name, name, f"{name} markers (OpenCV's images, bit for bit)") for name in FAMILY_NAMES]
"""Enum items shared by the N-panel's properties and the operators' dialogs."""
BOARD_TYPE_ITEMS = [
    ("charuco", "ChArUco", "OpenCV ChArUco board"),
    ("aprilgrid", "AprilGrid", "Kalibr AprilGrid"),
    ("checkerboard", "Checkerboard", "OpenCV / Kalibr checkerboard (no markers)"),
]
_LENS_LABELS = {
    "none": ("Pinhole", "No distortion: K alone"),
    "brown_conrady": ("Brown-Conrady", "k1, k2, p1, p2, k3 (cv2.projectPoints)"),
    "kannala_brandt": ("Kannala-Brandt", "k1..k4 (cv2.fisheye)"),
}
LENS_ITEMS = [(model, *_LENS_LABELS[model]) for model in DISTORTION_MODELS]
"""One item per lens model of the contract (a model without a label fails at import)."""

Update = Callable[[Any, bpy.types.Context], None] | None
Fields = dict[str, Any]
"""Property name → Blender's deferred property definition, as a class's `__annotations__` holds them."""


def object_fields(*names: str, update: Update = None) -> Fields:
    """The named fields of an authored object's settings (tag, board, plane), each defined only here."""
    u: dict[str, Any] = {} if update is None else {"update": update}
    specs: Fields = {
        "kind": EnumProperty(
            name="Kind",
            description="What this object is in an exported recipe; None leaves it out",
            items=[
                ("NONE", "None", "Not part of the recipe"),
                ("TAG", "Tag", "A single marker"),
                ("BOARD", "Board", "A ChArUco board or an AprilGrid"),
                ("PLANE", "Plane", "A plain or textured rectangle (background, distractor)"),
            ],
            default="NONE",
            **u,
        ),
        "family": EnumProperty(
            name="Family",
            description="Marker dictionary: AprilTag families and OpenCV's ArUco dictionaries",
            items=FAMILY_ITEMS,
            default="tag36h11",
            **u,
        ),
        "tag_id": IntProperty(
            name="ID",
            description="The marker's id within its family (0 up to the family's size - 1)",
            min=0,
            default=0,
            **u,
        ),
        "size_mm": FloatProperty(
            name="Size (mm)",
            description="Edge of the black border, as OpenCV measures a marker, in millimetres",
            min=1.0,
            default=100.0,
            **u,
        ),
        "border_bits": IntProperty(
            name="Border bits",
            description="Width of the black border, in modules (bits) of the marker's grid",
            min=1,
            max=4,
            default=1,
            **u,
        ),
        "margin_modules": FloatProperty(
            name="Quiet zone",
            description="White margin around the black border, in modules (bits) of the marker's grid",
            min=0.0,
            default=1.0,
            **u,
        ),
        "roughness": FloatProperty(
            name="Roughness",
            description="Surface roughness of the print, unitless from 0 (mirror) to 1 (matte)",
            min=0.0,
            max=1.0,
            default=0.9,
            **u,
        ),
        "board_type": EnumProperty(
            name="Board",
            description="Board layout: OpenCV's ChArUco or Kalibr's AprilGrid",
            items=BOARD_TYPE_ITEMS,
            default="charuco",
            **u,
        ),
        "rows": IntProperty(
            name="Rows",
            description="Squares (ChArUco) or tags (AprilGrid) down the board",
            min=1,
            default=5,
            **u,
        ),
        "cols": IntProperty(
            name="Columns",
            description="Squares (ChArUco) or tags (AprilGrid) across the board",
            min=1,
            default=7,
            **u,
        ),
        "square_size_mm": FloatProperty(
            name="Square (mm)",
            description="Edge of a chessboard square, in millimetres",
            min=0.1,
            default=40.0,
            **u,
        ),
        "marker_size_mm": FloatProperty(
            name="Marker (mm)",
            description="Edge of a marker's black border, in millimetres",
            min=0.1,
            default=30.0,
            **u,
        ),
        "spacing_ratio": FloatProperty(
            name="Spacing ratio",
            description="AprilGrid: gap between tags over the tag size, unitless (Kalibr's tagSpacing)",
            min=0.01,
            default=0.3,
            **u,
        ),
        "dictionary": EnumProperty(
            name="Dictionary",
            description="Marker dictionary of the board's markers",
            items=FAMILY_ITEMS,
            default="DICT_5X5_100",
            **u,
        ),
        "legacy_pattern": BoolProperty(
            name="Legacy pattern",
            description="ChArUco: the layout of OpenCV before 4.6, which differs for an even number of rows",
            default=False,
            **u,
        ),
        "board_border_bits": IntProperty(
            name="Marker border",
            description="Black border of each marker, in modules (bits); 0: the library's default",
            min=0,
            max=4,
            default=0,
            **u,
        ),
        "board_margin_mm": FloatProperty(
            name="Margin (mm)",
            description="White margin around the board's pattern, in millimetres",
            min=0.0,
            default=0.0,
            **u,
        ),
        "plane_size_m": FloatVectorProperty(
            name="Size (m)",
            description="Width and height of the plane, in metres",
            size=2,
            min=0.001,
            default=(1.0, 1.0),
            **u,
        ),
        "plane_color": FloatVectorProperty(
            name="Colour",
            description="Linear RGB of the plane's surface, unitless from 0 to 1 (used without a texture)",
            subtype="COLOR",
            size=3,
            min=0.0,
            max=1.0,
            default=(0.5, 0.5, 0.5),
            **u,
        ),
        "plane_texture": StringProperty(
            name="Texture",
            description="Image file on the plane; empty: the plain colour",
            subtype="FILE_PATH",
            default="",
            **u,
        ),
        "texture_repeat": FloatProperty(
            name="Repeat",
            description="How many times the texture repeats across the plane, unitless",
            min=0.001,
            default=1.0,
            **u,
        ),
    }
    return {name: specs[name] for name in names or specs}


def scene_fields(*names: str) -> Fields:
    """The named fields of the scene's settings (recipe stepping, lens model, renderer), defined only here."""
    specs: Fields = {
        "recipe_path": StringProperty(
            name="Recipe file",
            description="A recipes.json to step through and render",
            subtype="FILE_PATH",
            default="",
        ),
        "scene_index": IntProperty(
            name="Scene",
            description="Which scene of the recipe file is built (0: the first)",
            min=0,
            default=0,
        ),
        "camera_index": IntProperty(
            name="Camera",
            description="Which camera of that scene the view looks through (0: the first)",
            min=0,
            default=0,
        ),
        "output_dir": StringProperty(
            name="Output",
            description="Folder that Render File writes images/ and labels/ into",
            subtype="DIR_PATH",
            default="//render_tag_output",
        ),
        "eval_margin_px": FloatProperty(
            name="Eval margin",
            description="Corners closer than this to the image edge count as not visible, in pixels (px)",
            subtype="PIXEL",
            min=0.0,
            default=0.0,
        ),
        "distortion_model": EnumProperty(
            name="Lens model",
            description="Lens distortion of the camera, as OpenCV models it",
            items=LENS_ITEMS,
            default="none",
        ),
        "distortion_coeffs": FloatVectorProperty(
            name="Coefficients",
            description="Distortion coefficients in OpenCV's order, unitless (normalised image coordinates); "
            "only the lens model's first ones are used",
            size=COEFF_SLOTS,
            default=(0.0,) * COEFF_SLOTS,
        ),
        "renderer_mode": EnumProperty(
            name="Renderer",
            description="Render engine of the recipe",
            items=[
                ("cycles", "Cycles", "Path tracing: the accurate one, for data"),
                (
                    "eevee",
                    "EEVEE",
                    "Rasterised with shading: fast on a GPU, about 30 s a frame on software GL",
                ),
                ("workbench", "Workbench", "Flat textures, no lighting: the fastest preview"),
            ],
            default="cycles",
        ),
        "samples": IntProperty(
            name="Samples",
            description="Samples per pixel (Cycles; EEVEE's anti-aliasing samples)",
            min=1,
            default=32,
        ),
        "marker_samples": IntProperty(
            name="Marker Samples",
            description="Cycles samples inside the tags and boards, where the ground truth lives (the "
            "markers rendered again alone, laid over the frame); 0, or not above Samples: one render",
            min=0,
            default=0,
        ),
        "denoise": BoolProperty(
            name="Denoise", description="Denoise Cycles' render with OpenImageDenoise", default=False
        ),
        "device": EnumProperty(
            name="Device",
            description="Where Cycles renders (the labels' render_environment records what was used)",
            items=[
                ("auto", "Auto", "A GPU when Blender reports one, else the CPU (with a warning)"),
                ("cpu", "CPU", "Always the CPU"),
                ("gpu", "GPU", "The best GPU backend Cycles reports; an error when there is none"),
            ],
            default="auto",
        ),
    }
    return {name: specs[name] for name in names or specs}


class RenderTagObjectSettings(bpy.types.PropertyGroup):
    """What an object is to render-tag: a tag, a board, a plane, or nothing."""

    __annotations__ = object_fields(update=_refresh)


class RenderTagSceneSettings(bpy.types.PropertyGroup):
    """Recipe file navigation, output, lens model and renderer of the authored scene."""

    __annotations__ = scene_fields()


CLASSES = (RenderTagObjectSettings, RenderTagSceneSettings)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    # new RNA properties on Blender's own types: not attributes the stubs can know
    bpy.types.Object.render_tag = PointerProperty(type=RenderTagObjectSettings)  # type: ignore[attr-defined]
    bpy.types.Scene.render_tag = PointerProperty(type=RenderTagSceneSettings)  # type: ignore[attr-defined]


def unregister() -> None:
    for attr, owner in (("render_tag", bpy.types.Scene), ("render_tag", bpy.types.Object)):
        if hasattr(owner, attr):
            delattr(owner, attr)
    for cls in reversed(CLASSES):
        if getattr(cls, "is_registered", False):
            bpy.utils.unregister_class(cls)


def registered() -> bool:
    return hasattr(bpy.types.Object, "render_tag") and hasattr(bpy.types.Scene, "render_tag")
