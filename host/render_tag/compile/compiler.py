"""The compiler: a `GenConfig` in, fully resolved `SceneRecipe`s out.

Every random decision of a job is made here, so a worker only renders. Scene N draws from
`derive_seed(job_seed, "scene", N)` and labelled sub-seeds of it, never from a running generator, so
its recipe depends on the config and N alone: any shard split compiles the same bytes.

Geometry of a scene: the subject (loose tags or one board) lies flat, faces +z, is centred on the
z axis, and floats 1 mm above a background PLANE in z = 0 (textured from `lighting.background_folder`
or with one of `background.procedural`'s patterns; an HDRI, Blender's own `lighting.builtin_hdris` or
from `lighting.hdri_folder`, lights the world). After the cameras: the print's look (`paper`, from a
`paper` stream) and distractor solids on the floor (`clutter`, from a `clutter` stream; see
clutter.py). Loose tags are scattered with random
in-plane turns so that their printed squares, quiet zone included, never touch, and no marker appears
twice (nested OpenCV dictionaries and family aliases count as the same marker). Asset paths in the
recipes follow `recipe.ASSET_PATHS` (relative to the recipes.json's folder when the compiler writes one).

Per camera, besides the pose: read noise and ISO from the camera's stream (after the pose), and from
`derive_seed(scene_seed, "optics", j)`, a stream that exists only when the config varies them, shot
noise (`noise.photons_at_white`, divided by ISO / 100), tone mapping (`tone_mapping`: curve, gamma,
exposure in EV), output levels (`dynamic_range`), motion (`dynamics`) and depth of field
(`depth_of_field`, focused on the subject centre's depth). A config without them compiles the bytes it
always did.

Camera poses are drawn by rejection sampling: distance, elevation and roll hold by construction;
whether every subject corner lies inside the image (at least `eval_margin_px` from the edge), each
object's pixel area (its outline, through the lens) and pixels per module are judged by
`render_tag_shared.truth.observe_camera`, the function that writes the labels, so what is sampled
is what is labelled. `sampling_mode: distance` (or `angle`) replaces the random distance (elevation)
by an even sweep from min to max over every camera of the job, in scene-major order.

Angles of a camera pose, with s the subject centre, n the subject normal and c the camera centre:
- distance: |c - s| (metres);
- elevation: the angle of c - s above the subject plane, asin(n · (c - s) / |c - s|) (degrees);
- roll: the rotation of the camera about its line of sight to s, away from level, as if it looked
  straight at s (f = (s - c) / |s - c|). Level means the camera's x axis is parallel to the subject
  plane (x0 = f × n, normalised; image "up" leans towards n); when f is parallel to n (looking straight
  down) the subject's +y axis stands in: x0 = f × y. Positive roll turns x towards the camera's y
  (down) axis: x = cos(roll) x0 + sin(roll) (f × x0).
The camera is then turned by the smallest rotation that puts s at a random point of the image where
the subject still fits, so the subject does not always sit in the middle. To measure the roll of a
camera R: find the subject centre's direction d = R^T (s - c) in its frame, undo the smallest rotation
Q with Q d = +z (R0 = R Q^T), and read the roll of R0.
"""

from __future__ import annotations

import contextlib
import gc
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from render_tag_shared.config import GenConfig, parse_config, read_config_data
from render_tag_shared.errors import InputError, field_path
from render_tag_shared.recipe import (
    SCHEMA_VERSION,
    AnyObject,
    BoardObject,
    RecipeFile,
    RendererSettings,
    SceneRecipe,
    TagObject,
    require_unique_scene_ids,
)
from render_tag_shared.seeds import derive_seed, job_id
from render_tag_shared.truth import PreparedScene

from .clutter import ClutterSampler
from .context import CompileContext
from .errors import CompileError
from .jobspec import job_spec
from .materials import paper_look
from .optics import OpticsSampler
from .pose import PoseSampler
from .presets import compose_config
from .sampler import stream
from .shards import shard_range
from .subject import SubjectSampler
from .world import WorldSampler

__all__ = [
    "DEFAULT_JOB",
    "VALIDATION_ATTEMPTS",
    "SceneCompiler",
    "compile_config",
    "compile_default_job",
    "compile_scene",
    "load_job_config",
]

DEFAULT_JOB = Path(__file__).with_name("default_job.yaml")
"""The built-in job of `render-tag run` without a config (package data)."""

VALIDATION_ATTEMPTS = 8
"""Re-samplings of a scene whose recipe breaks a rule of the recipe validator."""

_CYCLES_SEED_LIMIT = 2**31
"""Blender's `cycles.seed` is a signed 32-bit property."""


class SceneCompiler:
    """One scene from its seed: the subject, then the world, then each camera (pose, then optics)."""

    def __init__(
        self,
        config: GenConfig,
        source: str = "config",
        base_dir: str | Path | None = None,
        recipe_dir: str | Path | None = None,
    ):
        self.context = CompileContext(config, source, base_dir, recipe_dir)
        self.subjects = SubjectSampler(config, source, self.context.origin)
        self.worlds = WorldSampler(self.context)
        self.poses = PoseSampler(self.context)
        self.optics = OpticsSampler(self.context)
        self.clutter = ClutterSampler(config.clutter, config.background)

    def scene(self, scene_index: int, *, validate: bool = True) -> SceneRecipe:
        """Scene `scene_index`; with `validate`, a recipe that breaks a rule is re-drawn from a retry seed."""
        if not 0 <= scene_index < self.context.config.dataset.num_scenes:
            raise ValueError(
                f"scene_index {scene_index} outside 0..{self.context.config.dataset.num_scenes - 1}"
            )
        base_seed = derive_seed(self.context.job_seed, "scene", scene_index)
        if not validate:
            return self._build(scene_index, base_seed, validate=False)
        failures: list[str] = []
        last: ValidationError | None = None
        for attempt in range(VALIDATION_ATTEMPTS):
            seed = base_seed if attempt == 0 else derive_seed(base_seed, "retry", attempt)
            try:
                return self._build(scene_index, seed, validate=True)
            except ValidationError as exc:
                last = exc
                first = exc.errors(include_url=False)[0]
                failures.append(f"{field_path(tuple(first['loc'])) or exc.title}: {first['msg']}")
        assert last is not None
        rule = Counter(failures).most_common(1)[0][0]
        raise CompileError(
            self.context.source,
            "scenario",
            f"scene {scene_index}: the recipe broke a rule of the recipe validator in all "
            f"{VALIDATION_ATTEMPTS} attempts; most often {rule}",
            scene_index=scene_index,
            rule=rule,
            details=failures,
        ) from last

    def _build(self, scene_index: int, seed: int, *, validate: bool) -> SceneRecipe:
        subject = self.subjects.draw(stream(seed, "subject"))
        world, background = self.worlds.draw(stream(seed, "world"), subject, seed)
        renderer = RendererSettings(
            mode=self.context.config.renderer.mode,
            samples=self.context.config.renderer.samples,
            marker_samples=self.context.config.renderer.marker_samples,
            denoise=self.context.config.renderer.denoise,
            noise_threshold=self.context.config.renderer.noise_threshold,
            max_bounces=self.context.config.renderer.max_bounces,
            supersample=self.context.config.renderer.supersample,
            filter_type=self.context.config.renderer.filter_type,
            light_tree=self.context.config.renderer.light_tree,
            filter_width_px=self.context.config.renderer.filter_width_px,
            device=self.context.config.renderer.device,
            seed=derive_seed(seed, "renderer") % _CYCLES_SEED_LIMIT,
            outputs=self.context.config.renderer.outputs,
        )
        # The pose check sees the subject only: the background lies below it and can never hide it.
        probe = PreparedScene(subject.objects, self.context.intrinsics.distortion_model)
        cameras = []
        for j in range(self.context.config.camera.samples_per_scene):
            camera_rng = stream(seed, "camera", j)  # the pose, then the sensor noise
            matrix = self.poses.draw(scene_index, j, camera_rng, subject, probe)
            optics = stream(seed, "optics", j) if self.optics.varies else None
            cameras.append(self.optics.camera(j, matrix, camera_rng, optics, subject, validate=validate))
        subject_objects: list[TagObject | BoardObject] = list(subject.objects)
        if self.context.config.paper.varies:  # the print's look: geometry and labels stay as they are
            look = paper_look(stream(seed, "paper"), self.context.config.paper)
            subject_objects = [obj.model_copy(update=look) for obj in subject_objects]
        objects: list[AnyObject] = [background, *subject_objects]
        if self.clutter.enabled:
            objects += self.clutter.draw(
                stream(seed, "clutter"), subject, cameras, 0.5 * background.size_m[0]
            )
        fields: dict[str, Any] = {
            "scene_id": scene_index,
            "random_seed": seed,
            "world": world,
            "renderer": renderer,
            "objects": objects,
            "cameras": cameras,
        }
        # Nested models were validated as they were built; this runs the scene-level rules only.
        return SceneRecipe.model_validate(fields) if validate else SceneRecipe.model_construct(**fields)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while scenes are compiled: a scene allocates thousands of small
    objects and no reference cycles, so the collector's passes only cost time (5-10 %)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def compile_scene(config: GenConfig, scene_index: int, *, validate: bool = True) -> SceneRecipe:
    """The recipe of scene `scene_index`: a function of the config and the index only."""
    return SceneCompiler(config).scene(scene_index, validate=validate)


def compile_config(
    config: GenConfig,
    *,
    shard: tuple[int, int] | None = None,
    validate: bool = True,
    source: str = "config",
    base_dir: str | Path | None = None,
    recipe_dir: str | Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> RecipeFile:
    """The recipes of a job (or of one shard of it), with the job id of the full job's spec.

    `shard=(i, n)` compiles the i-th of n contiguous blocks of scenes (0-based), so the shards' recipes
    concatenated in order are the whole job's. With `validate` every part of a recipe is validated once
    as it is built, then the scene's own rules run; a scene that breaks one is re-drawn from
    `derive_seed(scene_seed, "retry", attempt)` up to VALIDATION_ATTEMPTS times. Without it the
    camera matrices and scene-level rules go unchecked (the recipes are the same when nothing fails).
    `source` names the config in error messages; relative asset folders resolve against `base_dir` (the
    config file's folder). Asset paths in the recipes follow `recipe.ASSET_PATHS`: relative to
    `recipe_dir`, the folder the recipes will be written to, when it is given, else absolute.
    `progress` is called with the number of scenes done after each scene.
    The file carries the full job's spec (`job_spec`), so every shard carries the same one.
    Raises InputError (CompileError when a scene cannot be satisfied).
    """
    compiler = SceneCompiler(config, source, base_dir, recipe_dir)
    recipes = []
    with _gc_paused():
        for i in shard_range(config.dataset.num_scenes, shard):
            recipes.append(compiler.scene(i, validate=validate))
            if progress is not None:
                progress(len(recipes))
    spec = job_spec(config, config.presets, compiler.context.asset_files)
    recipe_file = RecipeFile.model_construct(
        schema_version=SCHEMA_VERSION, job_id=job_id(spec), job_spec=spec, recipes=recipes
    )
    if validate:
        # Every recipe was validated as it was built (validating the file would run the nested model
        # validators of every recipe again): the file's own rule is what is left.
        require_unique_scene_ids(recipes)
    return recipe_file


def load_job_config(config_path: str, presets: Sequence[str] = ()) -> GenConfig:
    """Reads a config file and composes the presets over it (in order) before validating."""
    data = read_config_data(config_path)
    if not isinstance(data, dict):
        raise InputError(config_path, "", "the config must be a mapping with `dataset` and `scenario`")
    return parse_config(compose_config(data, list(presets)), config_path)


def compile_default_job(path: Path = DEFAULT_JOB, presets: Sequence[str] = ()) -> RecipeFile:
    """The built-in job: each YAML document of default_job.yaml is a config (tags, a ChArUco board),
    compiled on its own; scene ids continue from one document to the next."""
    import yaml

    documents = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    recipes: list[SceneRecipe] = []
    ids: list[str | None] = []
    for number, document in enumerate(documents):
        config = parse_config(compose_config(document, list(presets)), f"{path} (document {number + 1})")
        compiled = compile_config(config, source=str(path), base_dir=path.parent)
        offset = len(recipes)
        recipes += [r.model_copy(update={"scene_id": offset + r.scene_id}) for r in compiled.recipes]
        ids.append(compiled.job_id)
    return RecipeFile(job_id=job_id({"default_job": ids}), recipes=recipes)
