"""The function API of the add-on: what the operators and the headless worker call.

Pure translation between recipes and the core (`core/` is where bpy is driven). Every call takes
and returns recipe models (or their dict form, validated here), so the N-panel, `bpy.ops.render_tag.*`
and a worker process rendering thousands of recipes run the same code.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from render_tag_shared import imaging
from render_tag_shared import passes as pass_files
from render_tag_shared.boards import BoardDefinition
from render_tag_shared.files import write_json_atomic
from render_tag_shared.recipe import BoardObject, CameraIntrinsics, SceneRecipe, TagObject
from render_tag_shared.recipe_io import load_recipe_file
from render_tag_shared.records import ImageOutputs
from render_tag_shared.regions import marker_region
from render_tag_shared.truth import image_labels

from .core import authoring, datablocks, export, passes, renderer, viewport
from .core import scene as scenes
from .core.settings import object_model

__all__ = [
    "RenderResult",
    "add_board",
    "add_tag",
    "build_scene",
    "compute_devices",
    "export_scene_recipe",
    "marker_textures_shown",
    "purge_orphans",
    "refresh_object",
    "render_recipe",
    "render_recipe_file",
    "set_camera_intrinsics",
    "set_marker_textures",
    "show_marker_textures",
]


@dataclass(frozen=True)
class RenderResult:
    """One rendered camera: its files and where the time went (seconds)."""

    image_id: str
    image_path: Path
    labels_path: Path
    timings: dict[str, float] = field(default_factory=dict)


def _recipe(recipe: SceneRecipe | dict[str, Any]) -> SceneRecipe:
    return recipe if isinstance(recipe, SceneRecipe) else SceneRecipe.model_validate(recipe)


# --------------------------------------------------------------------------- build and render


def build_scene(recipe: SceneRecipe | dict[str, Any], camera_index: int = 0) -> Any:
    """Build `recipe` into render-tag's scene, seen from camera `camera_index`; returns the scene."""
    return scenes.build_scene(_recipe(recipe), camera_index)


def render_recipe(
    recipe: SceneRecipe | dict[str, Any],
    out_dir: str | Path,
    camera_indices: Iterable[int] | None = None,
) -> list[RenderResult]:
    """Render cameras of a recipe to `out_dir/images/<image_id>.png` and `out_dir/labels/<image_id>.json`.

    The scene is built once; each camera is rendered linear, post-processed in numpy
    (`render_tag_shared.imaging`) and written atomically with its ground truth.
    """
    recipe = _recipe(recipe)
    out = Path(datablocks.abspath(str(out_dir)))
    indices = list(range(len(recipe.cameras))) if camera_indices is None else list(camera_indices)
    for index in indices:
        if not 0 <= index < len(recipe.cameras):
            raise IndexError(f"camera index {index} is outside the recipe's {len(recipe.cameras)} cameras")
    results: list[RenderResult] = []
    if not indices:
        return results
    t0 = time.perf_counter()
    # the work scene is not made the window's scene: a preview render leaves the user where they are
    scene = scenes.build_scene(recipe, indices[0], scenes.work_scene(activate=False))
    build_time = time.perf_counter() - t0
    for n, index in enumerate(indices):
        t1 = time.perf_counter()
        if n > 0:
            scenes.select_camera(scene, recipe, index)
        t2 = time.perf_counter()
        linear = renderer.render_linear(scene)
        region_samples = recipe.renderer.region_samples
        if region_samples is not None:
            region = marker_region(recipe, index)
            holdouts = scenes.objects_other_than(scene, recipe, (TagObject, BoardObject))
            linear = renderer.render_marker_region(scene, linear, region, region_samples, holdouts)
        t3 = time.perf_counter()
        camera = recipe.cameras[index]
        pixels = imaging.postprocess(linear, camera)
        t4 = time.perf_counter()
        image_id = recipe.image_id(index)
        image_path = imaging.write_png_atomic(out / "images" / f"{image_id}.png", pixels)
        outputs = _write_outputs(scene, recipe, index, out) if recipe.renderer.outputs else None
        labels = image_labels(
            recipe,
            index,
            render_environment=renderer.render_environment(scene),
            hidden=passes.hidden_test(scene),
            outputs=outputs,
        )
        labels_path = write_json_atomic(
            out / "labels" / f"{image_id}.json", labels.model_dump(mode="json"), indent=None
        )
        t5 = time.perf_counter()
        build = build_time + (t2 - t1) if n == 0 else t2 - t1
        results.append(
            RenderResult(
                image_id=image_id,
                image_path=image_path,
                labels_path=labels_path,
                timings={"build": build, "render": t3 - t2, "post": t4 - t3, "write": t5 - t4},
            )
        )
    return results


def _write_outputs(scene: Any, recipe: SceneRecipe, index: int, out: Path) -> ImageOutputs:
    """masks/, depth/ and normals/ of one camera (renderer.outputs) from the point-sampled data pass."""
    kinds = list(recipe.renderer.outputs)
    if "masks" in kinds and len(recipe.objects) > pass_files.MAX_MASK_ID:
        raise ValueError(
            f"masks hold at most {pass_files.MAX_MASK_ID} objects; the recipe has {len(recipe.objects)}"
        )
    intrinsics = recipe.cameras[index].intrinsics
    image_id = recipe.image_id(index)
    ids = None
    if "masks" in kinds or "depth" in kinds:
        data = pass_files.to_target(passes.render_data_pass(scene, "ids"), intrinsics)
        seen = data[..., 3] > 0.5
        ids = np.where(seen, np.rint(data[..., 0]), 0).astype(np.uint16)
        if "masks" in kinds:
            imaging.write_png_atomic(out / "masks" / f"{image_id}.png", ids)
        if "depth" in kinds:
            imaging.write_png_atomic(
                out / "depth" / f"{image_id}.png", pass_files.depth_png(data[..., 1], seen)
            )
    if "normals" in kinds:
        data = pass_files.to_target(passes.render_data_pass(scene, "normals"), intrinsics)
        blender = data[..., :3].astype(np.float64) * 2.0 - 1.0
        opencv = blender * np.array([1.0, -1.0, 1.0])  # Cycles' camera axes (y up, z forward) to OpenCV's
        imaging.write_png_atomic(
            out / "normals" / f"{image_id}.png", pass_files.normals_png(opencv, data[..., 3] > 0.5)
        )
    return pass_files.image_outputs(recipe, image_id, ids, kinds)


def render_recipe_file(
    path: str | Path, out_dir: str | Path, start: int = 0, stop: int | None = None
) -> list[RenderResult]:
    """Render recipes[start:stop] of a recipe file (every camera of each)."""
    recipes = load_recipe_file(datablocks.abspath(str(path))).recipes
    results: list[RenderResult] = []
    for recipe in recipes[start:stop]:
        results.extend(render_recipe(recipe, out_dir))
    return results


def compute_devices() -> dict[str, Any]:
    """What Cycles can render on here: `{"backends": [...], "devices": [[backend, name, id], ...]}`.

    The host asks a worker for this before rendering recipes that say `renderer.device: gpu`, so a
    machine without a GPU is refused up front (exit 2) instead of failing scene after scene.
    """
    devices, backends = renderer.cycles_devices()
    return {"backends": backends, "devices": [[d.backend, d.name, d.id] for d in devices]}


def purge_orphans() -> int:
    """Remove every datablock without users (Blender's recursive purge); returns how many went."""
    datablocks.remove_owned_orphans()
    return datablocks.purge_orphans()


# --------------------------------------------------------------------------- authoring


def refresh_object(obj: Any) -> None:
    """Rebuild an authored object's mesh and texture from `obj.render_tag` (the N-panel's live edit)."""
    authoring.refresh_object(obj)


def _new_authored(
    scene: Any,
    entry: dict[str, Any],
    location: Sequence[float],
    rotation_quaternion: Sequence[float],
) -> Any:
    return authoring.new_authored(scene, entry, object_model(entry), location, rotation_quaternion)


def add_tag(
    family: str = "tag36h11",
    tag_id: int = 0,
    size_mm: float = 100.0,
    *,
    name: str | None = None,
    location: Sequence[float] = (0.0, 0.0, 0.0),
    rotation_quaternion: Sequence[float] = (1.0, 0.0, 0.0, 0.0),
    border_bits: int = 1,
    margin_modules: float = 1.0,
    roughness: float = 0.9,
    scene: Any = None,
) -> Any:
    """Add an authored tag (a textured plane with `Object.render_tag` settings) to a scene."""
    entry = TagObject(
        name=name or authoring.unique_name("tag"),
        tag_family=family,
        tag_id=tag_id,
        size_mm=size_mm,
        border_bits=border_bits,
        margin_modules=margin_modules,
        roughness=roughness,
    ).model_dump(mode="json")
    return _new_authored(scene, entry, location, rotation_quaternion)


def add_board(
    definition: BoardDefinition | dict[str, Any],
    *,
    name: str | None = None,
    location: Sequence[float] = (0.0, 0.0, 0.0),
    rotation_quaternion: Sequence[float] = (1.0, 0.0, 0.0, 0.0),
    margin_mm: float = 0.0,
    roughness: float = 0.9,
    scene: Any = None,
) -> Any:
    """Add an authored ChArUco board or AprilGrid to a scene."""
    defn = (
        definition if isinstance(definition, BoardDefinition) else BoardDefinition.model_validate(definition)
    )
    entry = BoardObject(
        name=name or authoring.unique_name("board"), board=defn, margin_mm=margin_mm, roughness=roughness
    ).model_dump(mode="json")
    return _new_authored(scene, entry, location, rotation_quaternion)


def set_camera_intrinsics(
    camera_object: Any,
    intrinsics: CameraIntrinsics | dict[str, Any],
    scene: Any = None,
) -> None:
    """Make a Blender camera (and its scene's resolution) project exactly as K does.

    The camera previews the undistorted target; the lens model and eval margin go to
    `scene.render_tag` and the exact intrinsics onto the camera, so an export gives them back.
    """
    intr = (
        intrinsics
        if isinstance(intrinsics, CameraIntrinsics)
        else CameraIntrinsics.model_validate(intrinsics)
    )
    authoring.apply_intrinsics(camera_object, intr, scene)


# --------------------------------------------------------------------------- viewport


def show_marker_textures() -> int:
    """Make markers visible in Solid view: 3D viewports on Blender's default colour switch to Texture.

    Each viewport at most once a session (see `core/viewport.py`); returns how many switched.
    """
    return viewport.show_marker_textures()


def marker_textures_shown(screen: Any) -> bool:
    """True when every 3D viewport of `screen` shows textures in Solid view."""
    return viewport.marker_textures_shown(screen)


def set_marker_textures(screen: Any, show: bool) -> int:
    """Solid colour Texture (show) or Material for `screen`'s 3D viewports; returns how many."""
    return viewport.set_marker_textures(screen, show)


# --------------------------------------------------------------------------- export


def export_scene_recipe(
    scene: Any = None, scene_id: int | None = None, random_seed: int | None = None
) -> SceneRecipe:
    """The recipe of a scene: its tags, boards, planes, lights, world, renderer and active camera.

    The inverse of `build_scene`: each object's stored recipe entry is kept while the Blender data
    still agrees with it (to float32 precision), so export → build → export gives the same recipe.
    `scene_id` and `random_seed` default to the built recipe's (or 0).
    """
    return SceneRecipe.model_validate(export.scene_recipe(scene, scene_id, random_seed))
