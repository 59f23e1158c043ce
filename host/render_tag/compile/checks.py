"""Checks of compiled recipes that warn before anything renders.

Markers imaged below about 3.5 pixels per module are lost by OpenCV's detectors (an AprilGrid at
320x240 with ~3 px per module: 3 of 144 found), so a dataset labelling them teaches detectors what they
cannot see and fails `render-tag verify`. `camera.ppm_min` keeps the sampler above a bound; this check
finds the cameras of a job without one that fall below it.
"""

from __future__ import annotations

from dataclasses import dataclass

from render_tag_shared.recipe import RecipeFile
from render_tag_shared.truth import observe_camera

from .errors import CompileError

__all__ = ["MIN_MODULE_PX", "SmallModules", "check_module_size", "small_modules"]

MIN_MODULE_PX = 3.5
"""Pixels per marker module below which a camera's view is reported."""


@dataclass(frozen=True)
class SmallModules:
    """A camera that sees a tag or board with fewer than MIN_MODULE_PX pixels per module."""

    scene_id: int
    camera_index: int
    object_name: str
    ppm: float


def small_modules(recipes: RecipeFile, threshold: float = MIN_MODULE_PX) -> list[SmallModules]:
    """Every camera whose smallest marker module (over the tags and boards it labels) is below
    `threshold` pixels, with that module size (the labels' own `ppm`)."""
    found = []
    for recipe in recipes.recipes:
        for index in range(len(recipe.cameras)):
            seen = observe_camera(recipe, index)
            if not seen:
                continue
            worst = min(seen, key=lambda o: o.ppm)
            if worst.ppm < threshold:
                found.append(SmallModules(recipe.scene_id, index, worst.obj.name, float(worst.ppm)))
    return found


def check_module_size(
    recipes: RecipeFile, source: str, *, strict: bool = False, threshold: float = MIN_MODULE_PX
) -> list[str]:
    """Warning lines for cameras below `threshold` px per module (none: an empty list); with `strict`
    a CompileError naming `camera.ppm_min` instead, so nothing is written or rendered."""
    small = small_modules(recipes, threshold)
    if not small:
        return []
    cameras = sum(len(r.cameras) for r in recipes.recipes)
    worst = min(small, key=lambda s: s.ppm)
    message = (
        f"{len(small)} of {cameras} cameras see a marker below {threshold} px per module (lowest "
        f"{worst.ppm:.2f} px: scene {worst.scene_id} camera {worst.camera_index}, {worst.object_name}); "
        f"detectors lose such markers: set camera.ppm_min: {threshold}, move the camera closer or raise "
        "the resolution"
    )
    if strict:
        raise CompileError(source, "camera.ppm_min", message, scene_index=worst.scene_id, rule="ppm_min")
    return [message]
