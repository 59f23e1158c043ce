"""`render-tag render` and `render-tag run`: options in, the pipeline's results printed, an exit code out."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from render_tag_shared.recipe import RecipeFile
from render_tag_shared.recipe_io import load_recipe_file

from ..batch.options import RenderOptions
from ..pipeline import PipelineResult, render_and_merge, run
from .exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, guarded

__all__ = ["main_render", "main_run", "render_recipes"]


def render_recipes(
    recipe_file: RecipeFile, out: str | Path, options: RenderOptions, source: str = "recipes"
) -> int:
    """Renders and merges (pipeline.render_and_merge), prints what happened; the exit code (InputError
    raises, for the caller to map)."""
    return _report(render_and_merge(recipe_file, out, options, source), Path(out))


def main_render(recipes_path: str | Path, out: str | Path, **options: Any) -> int:
    """`render-tag render RECIPES -o OUT [--workers N] [--resume | --force] [--shard I/N] [--blender PATH]`.

    `options` are RenderOptions' fields. Renders, then merges OUT when at least one scene is done.
    Returns the exit code: 0 all done, 1 some scenes failed, 2 bad input (nothing written), 130
    interrupted.
    """

    def render() -> int:
        settings = RenderOptions(**options)
        return render_recipes(load_recipe_file(recipes_path), out, settings, source=str(recipes_path))

    return guarded(render)


def main_run(
    config_path: str | Path | None,
    out: str | Path,
    presets: list[str] | None = None,
    strict_ppm: bool = False,
    **options: Any,
) -> int:
    """`render-tag run [CONFIG] -o OUT`: compile (no CONFIG: the built-in default job), render, merge,
    audit, contact sheet. Exit code as for render; a failed audit also gives 1."""

    def run_all() -> int:
        settings = RenderOptions(**options)
        return _report(run(config_path, out, settings, list(presets or []), strict_ppm), Path(out))

    return guarded(run_all)


def _report(result: PipelineResult, out: Path) -> int:
    """Prints each step's outcome in the order the steps ran; the exit code of the whole."""
    for line in result.warnings:
        print(f"render-tag: warning: {line}", file=sys.stderr)
    rendered = result.render
    summary = rendered.summary
    if rendered.pool_error is not None:
        print(f"render-tag: error: {rendered.pool_error}", file=sys.stderr)
    for line in summary.failures[:20]:
        print(f"render-tag: failed: {line}", file=sys.stderr)
    print(summary.line())
    if summary.interrupted:
        print(f"render-tag: interrupted; finish with --resume ({out})", file=sys.stderr)
        return EXIT_INTERRUPTED
    code = EXIT_OK if rendered.manifest.status == "complete" else EXIT_FAILED
    if result.merge_error is not None:
        print(f"render-tag: merge: {result.merge_error}", file=sys.stderr)
        code = EXIT_FAILED
    if result.merge is not None:
        print(result.merge.summary())
    if result.audit is not None:
        print(result.audit.summary())
        if not result.audit.passed:
            code = EXIT_FAILED
    if result.preview is not None:
        print(result.preview)
    if result.qa_error is not None:
        print(f"render-tag: {result.qa_error}", file=sys.stderr)
        code = EXIT_FAILED
    return code
