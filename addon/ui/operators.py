"""`bpy.ops.render_tag.*`: thin shells that turn operator properties into one call of the function API.

Everything an operator does is in `api` (which the headless worker calls directly), so the N-panel,
`blender -b --python-expr "import bpy; bpy.ops.render_tag.render_recipe(...)"` and
`python -c "import bpy; ..."` run the same code. No operator polls for a 3D viewport: all run in
background mode. Failures are reported with `self.report({'ERROR'}, ...)` and return CANCELLED, which
a Python caller receives as a RuntimeError carrying the message (the file and the field at fault).
"""

# No `from __future__ import annotations`: Blender reads the property annotations as objects.
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import bpy
from bpy.props import (
    FloatProperty,
    IntProperty,
    StringProperty,
)
from pydantic import ValidationError

from render_tag_shared.errors import InputError, input_error_from_validation
from render_tag_shared.files import write_text_atomic
from render_tag_shared.lens import expected_coeff_count
from render_tag_shared.recipe import RecipeFile
from render_tag_shared.recipe_io import dump_recipe_file, load_recipe_file

from .. import api
from ..core import camera as cam_adapter
from ..core.datablocks import camera_data
from ..core.export import active_camera_index
from ..prefs import cache_dir, preferences
from ..props import object_fields, scene_fields
from . import overlay
from .panel import ui_layout


def _call(op: bpy.types.Operator, action: Callable[[], str]) -> set[str]:
    """Runs one action; its message is reported as INFO, any failure as ERROR (then CANCELLED)."""
    try:
        message = action()
    except ValidationError as exc:  # a model built from the scene: lead with the field at fault
        op.report({"ERROR"}, str(input_error_from_validation(type(op).bl_idname, exc)))
        return {"CANCELLED"}
    except (InputError, ValueError, IndexError, OSError) as exc:
        op.report({"ERROR"}, str(exc))
        return {"CANCELLED"}
    except Exception as exc:  # a bug: keep the traceback on stderr, still report instead of crashing
        traceback.print_exc(file=sys.stderr)
        op.report({"ERROR"}, f"{type(exc).__name__}: {exc}")
        return {"CANCELLED"}
    if message:
        op.report({"INFO"}, message)
    return {"FINISHED"}


ModelT = TypeVar("ModelT")


def _validated(source: str, build: Callable[[], ModelT]) -> ModelT:
    """Builds a contract model; pydantic's report becomes an InputError naming the field."""
    try:
        return build()
    except ValidationError as exc:
        raise input_error_from_validation(source, exc) from exc


_recipe_cache: dict[str, tuple[float, int, RecipeFile]] = {}


def load_recipes(path: str) -> RecipeFile:
    """A recipe file, parsed once while it is unchanged (stepping through thousands stays instant)."""
    full = bpy.path.abspath(path)
    if not path:
        raise InputError("recipe file", "", "no recipe file given")
    try:
        stat = os.stat(full)
    except OSError as exc:
        raise InputError(full, "", f"cannot read: {exc.strerror}") from exc
    cached = _recipe_cache.get(full)
    if cached is not None and cached[:2] == (stat.st_mtime, stat.st_size):
        return cached[2]
    recipes = load_recipe_file(full)
    _recipe_cache[full] = (stat.st_mtime, stat.st_size, recipes)
    return recipes


def _select_only(context: bpy.types.Context, obj: bpy.types.Object) -> None:
    """Makes a new object the active and only selected one, as Blender's own Add menu does.

    From Blender 5.0 an object just linked into a collection is in `view_layer.objects` only after
    `view_layer.update()`; without it the new object stayed unselected and the old one active.
    """
    view_layer = context.view_layer
    if view_layer is None:
        return
    if obj.name not in view_layer.objects:
        view_layer.update()
    if obj.name not in view_layer.objects:  # linked into a scene this view layer does not show
        return
    for other in view_layer.objects.selected:
        other.select_set(False)
    obj.select_set(True)
    view_layer.objects.active = obj


class _FileInvoke:
    """Opens the file browser when invoked from the UI without a path; runs directly otherwise."""

    if TYPE_CHECKING:  # supplied by the operator class it is mixed into

        def execute(self, context: bpy.types.Context) -> set[str]: ...

    def invoke(self, context, event):
        if getattr(self, "filepath", ""):
            return self.execute(context)
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}


# --------------------------------------------------------------------------- recipes


def _build(context, path: str, scene_index: int, camera_index: int) -> str:
    """Builds scene `scene_index` of a recipe file and remembers where the stepping stands."""
    recipes = load_recipes(path).recipes
    if not 0 <= scene_index < len(recipes):
        raise IndexError(
            f"{bpy.path.abspath(path)}: scene index {scene_index} is outside its {len(recipes)} scenes"
        )
    recipe = recipes[scene_index]
    built = api.build_scene(recipe, camera_index)
    api.show_marker_textures()
    for scene in (context.scene, built) if built != context.scene else (built,):
        settings = scene.render_tag
        settings.recipe_path = path
        settings.scene_index = scene_index
        settings.camera_index = camera_index
    overlay.mark_dirty()
    return (
        f"scene {scene_index + 1}/{len(recipes)} (scene_id {recipe.scene_id}), "
        f"camera {camera_index + 1}/{len(recipe.cameras)}"
    )


class RENDER_TAG_OT_build_recipe(_FileInvoke, bpy.types.Operator):
    """Build one scene of a recipe file (objects, lights, world and camera) into the Render Tag scene"""

    bl_idname = "render_tag.build_recipe"
    bl_label = "Build Recipe Scene"
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012 (Blender wants a plain set)

    __annotations__ = {
        "filepath": StringProperty(
            name="Recipe file", description="The recipes.json to build a scene from", subtype="FILE_PATH"
        ),
        "filter_glob": StringProperty(default="*.json", options={"HIDDEN"}),
        "scene_index": IntProperty(
            name="Scene index", description="Which scene of the file to build (0: the first)", min=0
        ),
        "camera_index": IntProperty(
            name="Camera index", description="Which of its cameras to look through (0: the first)", min=0
        ),
    }
    if TYPE_CHECKING:
        filepath: str
        scene_index: int
        camera_index: int

    def execute(self, context):
        return _call(self, lambda: _build(context, self.filepath, self.scene_index, self.camera_index))


class RENDER_TAG_OT_step_scene(bpy.types.Operator):
    """Build the next (or previous) scene of the loaded recipe file"""

    bl_idname = "render_tag.step_scene"
    bl_label = "Step Scene"
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012 (Blender wants a plain set)

    __annotations__ = {
        "delta": IntProperty(
            name="Step", description="How many scenes to move: 1 the next, -1 the previous (wraps)", default=1
        ),
    }
    if TYPE_CHECKING:
        delta: int

    def execute(self, context):
        settings = context.scene.render_tag

        def step() -> str:
            count = len(load_recipes(settings.recipe_path).recipes)
            if count == 0:
                raise IndexError(f"{settings.recipe_path}: the file holds no recipes")
            return _build(context, settings.recipe_path, (settings.scene_index + self.delta) % count, 0)

        return _call(self, step)


class RENDER_TAG_OT_step_camera(bpy.types.Operator):
    """Look through the next (or previous) camera of the current recipe scene"""

    bl_idname = "render_tag.step_camera"
    bl_label = "Step Camera"
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012 (Blender wants a plain set)

    __annotations__ = {
        "delta": IntProperty(
            name="Step",
            description="How many cameras to move: 1 the next, -1 the previous (wraps)",
            default=1,
        ),
    }
    if TYPE_CHECKING:
        delta: int

    def execute(self, context):
        settings = context.scene.render_tag

        def step() -> str:
            recipes = load_recipes(settings.recipe_path).recipes
            if not 0 <= settings.scene_index < len(recipes):
                raise IndexError(
                    f"{settings.recipe_path}: no scene {settings.scene_index}; load the file first"
                )
            count = len(recipes[settings.scene_index].cameras)
            index = (settings.camera_index + self.delta) % count
            return _build(context, settings.recipe_path, settings.scene_index, index)

        return _call(self, step)


class RENDER_TAG_OT_render_recipe(bpy.types.Operator):
    """Render recipes[start:stop] of a recipe file, images and labels, into an output folder"""

    bl_idname = "render_tag.render_recipe"
    bl_label = "Render Recipe File"

    __annotations__ = {
        "filepath": StringProperty(
            name="Recipe file", description="The recipes.json to render", subtype="FILE_PATH"
        ),
        "output_dir": StringProperty(
            name="Output folder", description="Where images/ and labels/ are written", subtype="DIR_PATH"
        ),
        "start": IntProperty(
            name="Start", description="Index of the first scene to render (0: the first)", min=0, default=0
        ),
        "stop": IntProperty(
            name="Stop",
            description="Index one past the last scene to render; -1: to the end",
            min=-1,
            default=-1,
        ),
    }
    if TYPE_CHECKING:
        filepath: str
        output_dir: str
        start: int
        stop: int

    def execute(self, context):
        def render() -> str:
            if not self.filepath:
                raise InputError("render_recipe", "filepath", "no recipe file given")
            if not self.output_dir:
                raise InputError("render_recipe", "output_dir", "no output folder given")
            stop = None if self.stop < 0 else self.stop
            results = api.render_recipe_file(self.filepath, self.output_dir, self.start, stop)
            return f"rendered {len(results)} images into {bpy.path.abspath(self.output_dir)}"

        return _call(self, render)


class RENDER_TAG_OT_export_recipe(_FileInvoke, bpy.types.Operator):
    """Write the authored scene as a recipe file that the host renders identically"""

    bl_idname = "render_tag.export_recipe"
    bl_label = "Export Recipe"

    __annotations__ = {
        "filepath": StringProperty(
            name="Recipe file",
            description="The recipes.json to write (replaced if it exists)",
            subtype="FILE_PATH",
        ),
        "filter_glob": StringProperty(default="*.json", options={"HIDDEN"}),
        "scene_id": IntProperty(
            name="Scene id",
            description="scene_id of the exported recipe (names its images); -1: the built recipe's (or 0)",
            min=-1,
            default=-1,
        ),
        "random_seed": IntProperty(
            name="Random seed",
            description="random_seed of the exported recipe (sensor noise); -1: the built recipe's (or 0)",
            min=-1,
            default=-1,
        ),
    }
    if TYPE_CHECKING:
        filepath: str
        scene_id: int
        random_seed: int

    def execute(self, context):
        def export() -> str:
            if not self.filepath:
                raise InputError("export_recipe", "filepath", "no file to write to")
            recipe = api.export_scene_recipe(
                context.scene,
                scene_id=None if self.scene_id < 0 else self.scene_id,
                random_seed=None if self.random_seed < 0 else self.random_seed,
            )
            path = Path(bpy.path.abspath(self.filepath))
            write_text_atomic(path, dump_recipe_file(RecipeFile(recipes=[recipe])))
            return f"exported {len(recipe.objects)} objects and {len(recipe.cameras)} cameras to {path}"

        return _call(self, export)


# --------------------------------------------------------------------------- authoring


class RENDER_TAG_OT_add_tag(bpy.types.Operator):
    """Add a marker (a plane with its exact texture) at the 3D cursor"""

    bl_idname = "render_tag.add_tag"
    bl_label = "Add Tag"
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012 (Blender wants a plain set)

    __annotations__ = {
        **object_fields("family", "tag_id", "size_mm", "border_bits", "margin_modules"),
        "name": StringProperty(name="Name", description="Name of the new object; empty: tag0, tag1, ..."),
    }
    if TYPE_CHECKING:
        family: str
        tag_id: int
        size_mm: float
        border_bits: int
        margin_modules: float
        name: str

    def execute(self, context):
        def add() -> str:
            obj = api.add_tag(
                self.family,
                self.tag_id,
                self.size_mm,
                name=self.name or None,
                location=tuple(context.scene.cursor.location),
                border_bits=self.border_bits,
                margin_modules=self.margin_modules,
                scene=context.scene,
            )
            _select_only(context, obj)
            api.show_marker_textures()
            overlay.mark_dirty()
            return f"added {obj.name}: {self.family} id {self.tag_id}"

        return _call(self, add)


_BOARD_FIELDS = (
    "board_type",
    "rows",
    "cols",
    "square_size_mm",
    "marker_size_mm",
    "spacing_ratio",
    "dictionary",
    "legacy_pattern",
)


class RENDER_TAG_OT_add_board(bpy.types.Operator):
    """Add a ChArUco board or an AprilGrid at the 3D cursor"""

    bl_idname = "render_tag.add_board"
    bl_label = "Add Board"
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012 (Blender wants a plain set)

    __annotations__ = {
        **object_fields(*_BOARD_FIELDS),
        "margin_mm": object_fields("board_margin_mm")["board_margin_mm"],
        "name": StringProperty(name="Name", description="Name of the new object; empty: board0, board1, ..."),
    }
    if TYPE_CHECKING:
        board_type: str
        rows: int
        cols: int
        square_size_mm: float
        marker_size_mm: float
        spacing_ratio: float
        dictionary: str
        legacy_pattern: bool
        margin_mm: float
        name: str

    def execute(self, context):
        def add() -> str:
            from render_tag_shared.boards import BoardDefinition

            charuco = self.board_type == "charuco"
            checker = self.board_type == "checkerboard"
            fields = {
                "board_type": self.board_type,
                "rows": self.rows,
                "cols": self.cols,
                "square_size_mm": self.square_size_mm if charuco or checker else None,
                "marker_size_mm": self.square_size_mm if checker else self.marker_size_mm,
                "spacing_ratio": None if charuco or checker else self.spacing_ratio,
                "dictionary": "" if checker else self.dictionary,
                "legacy_pattern": self.legacy_pattern and charuco,
            }
            definition = _validated("add_board", lambda: BoardDefinition.model_validate(fields))
            obj = api.add_board(
                definition,
                name=self.name or None,
                location=tuple(context.scene.cursor.location),
                margin_mm=self.margin_mm,
                scene=context.scene,
            )
            _select_only(context, obj)
            api.show_marker_textures()
            overlay.mark_dirty()
            return f"added {obj.name}: {self.board_type} {self.rows}x{self.cols} {self.dictionary}"

        return _call(self, add)


_INTRINSIC_KEYS = ("fx", "fy", "cx", "cy", "width", "height")
_LENS_FIELDS = ("distortion_model", "distortion_coeffs", "eval_margin_px")


class RENDER_TAG_OT_set_camera_intrinsics(bpy.types.Operator):
    """Make the camera project exactly as K does (OpenCV's convention); unset values keep the camera's"""

    bl_idname = "render_tag.set_camera_intrinsics"
    bl_label = "Set Camera Intrinsics"
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012 (Blender wants a plain set)

    __annotations__ = {
        "camera": StringProperty(
            name="Camera", description="Name of the camera object; empty: the scene's camera"
        ),
        "fx": FloatProperty(
            name="fx",
            description="Focal length along x, in pixels (px), as in OpenCV's K",
            min=1e-3,
            default=600.0,
        ),
        "fy": FloatProperty(
            name="fy",
            description="Focal length along y, in pixels (px), as in OpenCV's K",
            min=1e-3,
            default=600.0,
        ),
        "cx": FloatProperty(
            name="cx",
            description="Principal point x, in pixels (px); the top-left pixel's centre is 0",
            default=319.5,
        ),
        "cy": FloatProperty(
            name="cy",
            description="Principal point y, in pixels (px); the top-left pixel's centre is 0",
            default=239.5,
        ),
        "width": IntProperty(name="Width", description="Image width in pixels", min=1, default=640),
        "height": IntProperty(name="Height", description="Image height in pixels", min=1, default=480),
        **scene_fields(*_LENS_FIELDS),
    }
    if TYPE_CHECKING:
        camera: str
        fx: float
        fy: float
        cx: float
        cy: float
        width: int
        height: int
        distortion_model: str
        distortion_coeffs: Sequence[float]
        eval_margin_px: float

    def _camera_object(self, context) -> bpy.types.Object:
        obj = bpy.data.objects.get(self.camera) if self.camera else context.scene.camera
        if obj is None or obj.type != "CAMERA":
            raise InputError(
                "set_camera_intrinsics", "camera", f"no camera object {self.camera or '(scene camera)'}"
            )
        return obj

    def _fill_unset(self, context, obj: bpy.types.Object) -> None:
        """Values the caller did not give come from the camera and the scene's lens settings."""
        k, (width, height) = cam_adapter.k_from_blender(camera_data(obj), context.scene.render)
        current = {
            "fx": k[0][0],
            "fy": k[1][1],
            "cx": k[0][2],
            "cy": k[1][2],
            "width": width,
            "height": height,
        }
        for key, value in current.items():
            if not self.properties.is_property_set(key):
                setattr(self, key, value)
        settings = context.scene.render_tag
        for key in _LENS_FIELDS:
            if not self.properties.is_property_set(key):
                setattr(self, key, getattr(settings, key))

    def invoke(self, context, event):
        def fill() -> str:
            self._fill_unset(context, self._camera_object(context))
            return ""

        if _call(self, fill) != {"FINISHED"}:
            return {"CANCELLED"}
        return context.window_manager.invoke_props_dialog(self)

    def draw(self, context):
        layout = ui_layout(self)
        for key in ("camera", *_INTRINSIC_KEYS, "distortion_model"):
            layout.prop(self, key)
        if self.distortion_model != "none":
            layout.prop(self, "distortion_coeffs")
        layout.prop(self, "eval_margin_px")

    def execute(self, context):
        def apply() -> str:
            from render_tag_shared.recipe import CameraIntrinsics

            obj = self._camera_object(context)
            self._fill_unset(context, obj)
            count = expected_coeff_count(self.distortion_model)
            fields = {
                "k_matrix": [[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]],
                "resolution": (self.width, self.height),
                "distortion_model": self.distortion_model,
                "distortion_coeffs": list(self.distortion_coeffs)[:count],
                "eval_margin_px": self.eval_margin_px,
            }
            intrinsics = _validated("set_camera_intrinsics", lambda: CameraIntrinsics.model_validate(fields))
            api.set_camera_intrinsics(obj, intrinsics, scene=context.scene)
            overlay.mark_dirty()
            k = f"fx {self.fx:g} fy {self.fy:g} cx {self.cx:g} cy {self.cy:g}"
            return f"{obj.name}: {k}, {self.width}x{self.height}"

        return _call(self, apply)


# --------------------------------------------------------------------------- preview and overlay


class RENDER_TAG_OT_preview_render(bpy.types.Operator):
    """Render the authored scene's active camera as the host would, into the image 'Render Tag Preview'"""

    bl_idname = "render_tag.preview_render"
    bl_label = "Preview Render"

    __annotations__ = {
        "samples": IntProperty(
            name="Samples",
            description="Cycles samples per pixel of the preview; 0: the preferences' preview samples",
            min=0,
            default=0,
        ),
    }
    if TYPE_CHECKING:
        samples: int

    def execute(self, context):
        def preview() -> str:
            scene = context.scene
            window = context.window
            recipe = api.export_scene_recipe(scene)
            prefs = preferences()
            samples = self.samples or (prefs.preview_samples if prefs is not None else 0)
            if samples:
                recipe = recipe.model_copy(
                    update={"renderer": recipe.renderer.model_copy(update={"samples": samples})}
                )
            index = active_camera_index(scene, len(recipe.cameras))
            try:
                results = api.render_recipe(recipe, cache_dir() / "preview", camera_indices=[index])
            finally:
                if window is not None and window.scene != scene:
                    window.scene = scene  # the render builds into the Render Tag scene: come back
            image = show_preview(results[0].image_path, context)
            return f"preview {image.size[0]}x{image.size[1]}: {results[0].image_path}"

        return _call(self, preview)


PREVIEW_IMAGE = "Render Tag Preview"


def show_preview(path: Path, context) -> bpy.types.Image:
    """Loads the rendered PNG as one reusable image and shows it in an open Image Editor, if any."""
    image = bpy.data.images.get(PREVIEW_IMAGE)
    if image is None:
        image = bpy.data.images.load(str(path))
        image.name = PREVIEW_IMAGE
    else:
        image.filepath = str(path)
        image.reload()
    screen = context.screen
    for area in screen.areas if screen is not None else ():
        if area.type == "IMAGE_EDITOR":
            area.spaces.active.image = image
            area.tag_redraw()
            break
    return image


class RENDER_TAG_OT_toggle_overlay(bpy.types.Operator):
    """Draw (or stop drawing) the ground-truth corners and ids of the active camera over the viewport"""

    bl_idname = "render_tag.toggle_overlay"
    bl_label = "Toggle Ground-Truth Overlay"

    def execute(self, context):
        def toggle() -> str:
            if overlay.is_enabled():
                overlay.disable()
                return "overlay off"
            overlay.enable()
            overlay.refresh(context.scene)
            return "overlay on"

        return _call(self, toggle)


class RENDER_TAG_OT_toggle_marker_textures(bpy.types.Operator):
    """Show markers' textures in Solid view (colour Texture), or go back to Blender's Material colour"""

    bl_idname = "render_tag.toggle_marker_textures"
    bl_label = "Marker Textures"
    bl_options = {"REGISTER", "UNDO"}  # noqa: RUF012 (Blender wants a plain set)

    def execute(self, context):
        def toggle() -> str:
            show = not api.marker_textures_shown(context.screen)
            count = api.set_marker_textures(context.screen, show)
            if count == 0:
                return "no 3D viewport on this screen"
            return f"Solid view colour: {'Texture' if show else 'Material'} in {count} viewport(s)"

        return _call(self, toggle)


CLASSES = (
    RENDER_TAG_OT_build_recipe,
    RENDER_TAG_OT_step_scene,
    RENDER_TAG_OT_step_camera,
    RENDER_TAG_OT_render_recipe,
    RENDER_TAG_OT_export_recipe,
    RENDER_TAG_OT_add_tag,
    RENDER_TAG_OT_add_board,
    RENDER_TAG_OT_set_camera_intrinsics,
    RENDER_TAG_OT_preview_render,
    RENDER_TAG_OT_toggle_overlay,
    RENDER_TAG_OT_toggle_marker_textures,
)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
