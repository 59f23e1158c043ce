"""The pipeline: compile → render → merge → audit → preview → report, as `render-tag run` chains them.

Each step is a domain function of its own package; this module only chains them and decides when a
step is pointless (no scene done: nothing to merge; nothing merged: nothing to audit). It returns
what each step produced, and the CLI prints it and turns it into an exit code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from render_tag_shared.errors import InputError
from render_tag_shared.recipe import RecipeFile
from render_tag_shared.recipe_io import load_recipe_file

from .batch.launcher import Launcher
from .batch.options import RenderOptions
from .batch.plan import DEFAULT_CHUNK_SIZE, Plan, build_plan
from .batch.render import RenderRun, render_recipes
from .compile import DEFAULT_JOB, check_module_size, compile_config, compile_default_job, load_job_config
from .dataset import merge
from .dataset.merge import MergeReport
from .qa.audit import AuditReport, audit_dataset
from .qa.preview import make_preview
from .qa.report import write_report

__all__ = ["PipelineResult", "compile_job", "is_recipe_file", "plan_job", "render_and_merge", "run"]


@dataclass
class PipelineResult:
    """What the steps produced; a step that did not run (or failed) leaves None and, when it failed,
    its error's text."""

    render: RenderRun
    merge: MergeReport | None = None
    merge_error: str | None = None
    audit: AuditReport | None = None
    warnings: list[str] = field(default_factory=list)
    preview: Path | None = None
    report: Path | None = None
    qa_error: str | None = None


def compile_job(config_path: str | Path | None, presets: list[str]) -> tuple[RecipeFile, str]:
    """(the recipes, where they came from): a config file compiled, or the built-in default job."""
    if config_path is None:
        return compile_default_job(presets=presets), str(DEFAULT_JOB)
    config = load_job_config(str(config_path), presets)
    recipes = compile_config(config, source=str(config_path), base_dir=Path(config_path).parent)
    return recipes, str(config_path)


def config_ranges(config_path: str | Path | None, presets: list[str]) -> dict[str, tuple[float, float]]:
    """The ranges a config asked for, for the audit's coverage gates: distance (m) and the angle of
    incidence at the subject's centre (90 - elevation, degrees). {} for the built-in job (several
    configs in one) and for a recipes file."""
    if config_path is None or is_recipe_file(config_path):
        return {}
    camera = load_job_config(str(config_path), presets).camera
    return {
        "distance_m": (camera.min_distance, camera.max_distance),
        "angle_of_incidence_deg": (90.0 - camera.max_elevation, 90.0 - camera.min_elevation),
    }


def is_recipe_file(path: str | Path) -> bool:
    """A recipes.json (a JSON object with `recipes` or one recipe, or a list), not a config."""
    import json

    try:
        data = json.loads(Path(path).read_bytes())
    except (OSError, ValueError, RecursionError):
        return False  # YAML, or unreadable: the config reader says why
    return isinstance(data, list) or (isinstance(data, dict) and ("recipes" in data or "scene_id" in data))


def plan_job(
    source: str | Path,
    presets: list[str],
    launcher: Launcher,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Plan:
    """`render-tag plan CONFIG|RECIPES`: the recipes (compiled from a config, or read), their hashes, the
    add-on and Blender versions of `launcher`, the renderer settings and the chunking, with the plan hash."""
    if is_recipe_file(source):
        recipe_file = load_recipe_file(source)
    else:
        recipe_file, _ = compile_job(source, presets)
    return build_plan(
        recipe_file,
        addon_version=launcher.addon_version(),
        blender_version=launcher.blender_version(),
        chunk_size=chunk_size,
    )


def render_and_merge(
    recipe_file: RecipeFile,
    out: str | Path,
    options: RenderOptions,
    source: str = "recipes",
    step: Callable[[str], None] | None = None,
) -> PipelineResult:
    """Renders, then merges OUT once when a scene is done and the render was not interrupted
    (unless `options.merge` is off)."""
    rendered = render_recipes(recipe_file, out, options, source)
    result = PipelineResult(render=rendered)
    if options.merge and not rendered.summary.interrupted and rendered.any_done:
        if step is not None:
            step("merging the labels into the dataset files")
        try:
            result.merge = merge.merge_dataset(Path(out))
        except InputError as exc:
            result.merge_error = str(exc)
    return result


def run(
    config_path: str | Path | None,
    out: str | Path,
    options: RenderOptions,
    presets: list[str],
    strict_ppm: bool = False,
    step: Callable[[str], None] | None = None,
) -> PipelineResult:
    """`run`: compile (no config: the default job), render and merge, then audit, draw the contact
    sheet of what was merged and write OUT/report.html. Markers below 3.5 px per module are warned
    about (`strict_ppm`: refused before anything renders). `step` hears each step's name as it starts
    after the render (the CLI shows them: those seconds are otherwise silent)."""
    say = step if step is not None else (lambda _: None)
    recipe_file, source = compile_job(config_path, presets)
    warnings = check_module_size(recipe_file, source, strict=strict_ppm)
    result = render_and_merge(recipe_file, out, options, source, say)
    result.warnings = warnings
    if result.merge is None or result.merge.refused:  # nothing (consistent) merged: no dataset to audit
        return result
    try:
        say("auditing")
        result.audit = audit_dataset(out, configured=config_ranges(config_path, presets))
        say("drawing the contact sheet and writing the report")
        result.preview = make_preview(out)
        result.report = write_report(out)
    except InputError as exc:
        result.qa_error = str(exc)
    return result
