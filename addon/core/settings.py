"""Recipe ↔ authoring settings: what `Object.render_tag` and `Scene.render_tag` hold, in recipe terms.

The property groups themselves are declared in `props.py` (the UI's side); this module only reads
and writes their values, by attribute name, so the core never imports the property module. The
protocols below state the attributes it relies on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import bpy

from render_tag_shared.lens import COEFF_COUNTS
from render_tag_shared.recipe import BoardObject, CameraIntrinsics, PlaneObject, SceneRecipe, TagObject

COEFF_SLOTS = max(COEFF_COUNTS.values())
"""Length of the coefficient vector the N-panel shows: the longest model's (unused slots are 0)."""


class ObjectSettings(Protocol):
    """`Object.render_tag`: what an object is to render-tag and the fields of its recipe entry."""

    kind: str
    family: str
    tag_id: int
    size_mm: float
    border_bits: int
    margin_modules: float
    roughness: float
    board_type: str
    rows: int
    cols: int
    square_size_mm: float
    marker_size_mm: float
    spacing_ratio: float
    dictionary: str
    legacy_pattern: bool
    board_border_bits: int
    board_margin_mm: float
    plane_size_m: Sequence[float]
    plane_color: Sequence[float]
    plane_texture: str
    texture_repeat: float


class SceneSettings(Protocol):
    """`Scene.render_tag`: recipe-file stepping, the lens model and the renderer of the authored scene."""

    recipe_path: str
    scene_index: int
    camera_index: int
    output_dir: str
    eval_margin_px: float
    distortion_model: str
    distortion_coeffs: Sequence[float]
    renderer_mode: str
    samples: int
    marker_samples: int
    denoise: bool
    device: str


def object_settings(obj: bpy.types.Object) -> ObjectSettings | None:
    """`obj.render_tag`, or None while the property group is not registered."""
    settings: ObjectSettings | None = getattr(obj, "render_tag", None)
    return settings


def scene_settings(scene: bpy.types.Scene) -> SceneSettings | None:
    """`scene.render_tag`, or None while the property group is not registered."""
    settings: SceneSettings | None = getattr(scene, "render_tag", None)
    return settings


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


def updates_suspended() -> bool:
    """Whether a settings write is in progress (the `update=` callback then does nothing)."""
    return _suspended > 0


def nice_float(value: float) -> float:
    """A float read from Blender's float32 storage, as the decimal a user typed (7 significant digits)."""
    return float(f"{float(value):.7g}")


def object_model(entry: dict[str, Any]) -> TagObject | BoardObject | PlaneObject:
    """The recipe model of an authored object's entry (validated: ValueError names the field)."""
    kind = entry["type"]
    if kind == "TAG":
        return TagObject.model_validate(entry)
    if kind == "BOARD":
        return BoardObject.model_validate(entry)
    return PlaneObject.model_validate(entry)


# --------------------------------------------------------------------------- objects


def write_object_settings(obj: bpy.types.Object, entry: dict[str, Any]) -> None:
    """Copy a recipe object's fields (JSON form) onto `obj.render_tag` (lights and cameras: nothing)."""
    settings = object_settings(obj)
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
            if board["dictionary"]:  # a checkerboard has none
                settings.dictionary = board["dictionary"]
            settings.legacy_pattern = bool(board.get("legacy_pattern", False))
            settings.board_border_bits = board.get("border_bits") or 0
            settings.board_margin_mm = entry.get("margin_mm", 0.0)
        else:
            settings.plane_size_m = entry["size_m"]
            settings.plane_color = entry["color"]
            settings.plane_texture = entry.get("texture") or ""
            settings.texture_repeat = entry.get("texture_repeat", 1.0)


def read_object_settings(obj: bpy.types.Object) -> dict[str, Any] | None:
    """The recipe fields `obj.render_tag` describes (without name and pose), or None."""
    settings = object_settings(obj)
    if settings is None or settings.kind == "NONE":
        return None
    nice = nice_float
    out: dict[str, Any] = {"type": settings.kind, "roughness": nice(settings.roughness)}
    if settings.kind == "TAG":
        out.update(
            tag_family=settings.family,
            tag_id=int(settings.tag_id),
            size_mm=nice(settings.size_mm),
            border_bits=int(settings.border_bits),
            margin_modules=nice(settings.margin_modules),
        )
    elif settings.kind == "BOARD":
        charuco = settings.board_type == "charuco"
        checker = settings.board_type == "checkerboard"
        squares = charuco or checker
        out["board"] = {
            "board_type": settings.board_type,
            "rows": int(settings.rows),
            "cols": int(settings.cols),
            "square_size_mm": nice(settings.square_size_mm) if squares else None,
            "marker_size_mm": nice(settings.square_size_mm if checker else settings.marker_size_mm),
            "spacing_ratio": None if squares else nice(settings.spacing_ratio),
            "dictionary": "" if checker else settings.dictionary,
            "legacy_pattern": bool(settings.legacy_pattern) if charuco else False,
            "border_bits": None if checker else int(settings.board_border_bits) or None,
            "marker_ids": None,
        }
        out["margin_mm"] = nice(settings.board_margin_mm)
    else:
        out.update(
            size_m=[nice(v) for v in settings.plane_size_m],
            color=[nice(v) for v in settings.plane_color],
            texture=settings.plane_texture or None,
            texture_repeat=nice(settings.texture_repeat),
        )
    return out


# --------------------------------------------------------------------------- scenes


def write_lens_settings(settings: SceneSettings, intr: CameraIntrinsics) -> None:
    """The lens model and eval margin of a camera onto `scene.render_tag` (the camera holds K)."""
    settings.distortion_model = intr.distortion_model
    coeffs = list(intr.distortion_coeffs)
    settings.distortion_coeffs = coeffs + [0.0] * (COEFF_SLOTS - len(coeffs))
    settings.eval_margin_px = intr.eval_margin_px


def write_scene_settings(scene: bpy.types.Scene, recipe: SceneRecipe, camera_index: int) -> None:
    """Mirror a built recipe's lens model, eval margin and renderer on `scene.render_tag`."""
    settings = scene_settings(scene)
    if settings is None:
        return
    settings.camera_index = camera_index
    write_lens_settings(settings, recipe.cameras[camera_index].intrinsics)
    settings.renderer_mode = recipe.renderer.mode
    settings.samples = recipe.renderer.samples
    settings.marker_samples = recipe.renderer.marker_samples or 0
    settings.denoise = recipe.renderer.denoise
    settings.device = recipe.renderer.device


def read_scene_settings(scene: bpy.types.Scene) -> dict[str, Any] | None:
    """The lens model, eval margin and renderer `scene.render_tag` describes, or None."""
    settings = scene_settings(scene)
    if settings is None:
        return None
    n = COEFF_COUNTS[settings.distortion_model]
    return {
        "distortion_model": settings.distortion_model,
        "distortion_coeffs": [nice_float(c) for c in settings.distortion_coeffs][:n],
        "eval_margin_px": nice_float(settings.eval_margin_px),
        "renderer": {
            "mode": settings.renderer_mode,
            "samples": int(settings.samples),
            "marker_samples": int(settings.marker_samples) or None,
            "denoise": bool(settings.denoise),
            "device": settings.device,
        },
    }
