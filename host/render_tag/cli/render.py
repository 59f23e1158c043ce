"""`render-tag render` and `render-tag run`: options in, the pipeline's results printed, an exit code out."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from render_tag_shared.recipe import RecipeFile
from render_tag_shared.recipe_io import load_recipe_file

from ..batch.launcher import make_launcher
from ..batch.options import RenderOptions
from ..batch.plan import dump_plan, load_plan
from ..batch.render import render_chunk
from ..batch.shards import resolve_chunk
from ..io import write_text_atomic
from ..pipeline import PipelineResult, plan_job, render_and_merge, run
from .exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, guarded
from .hold import holding
from .say import done, quoted, starting

__all__ = ["main_plan", "main_render", "main_render_chunk", "main_run", "render_recipes"]


def render_recipes(
    recipe_file: RecipeFile, out: str | Path, options: RenderOptions, source: str = "recipes"
) -> int:
    """Renders and merges (pipeline.render_and_merge), prints what happened; the exit code (InputError
    raises, for the caller to map). OUT is held for the whole render (one writer per folder)."""
    with holding(out, f"render-tag render {source}"):
        return _report(render_and_merge(recipe_file, out, options, source, starting), Path(out))


def main_render(recipes_path: str | Path, out: str | Path, **options: Any) -> int:
    """`render-tag render RECIPES -o OUT [--workers N] [--resume | --force] [--shard I/N] [--blender PATH]`.

    `options` are RenderOptions' fields. Renders, then merges OUT when at least one scene is done.
    Returns the exit code: 0 all done, 1 some scenes failed, 2 bad input (nothing written), 130
    interrupted.
    """

    def render() -> int:
        settings = RenderOptions(**options)
        return render_recipes(
            load_recipe_file(recipes_path), out, settings, source=str(Path(recipes_path).resolve())
        )

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
        with holding(out, f"render-tag run {config_path or ''}".rstrip()):
            return _report(
                run(config_path, out, settings, list(presets or []), strict_ppm, starting), Path(out)
            )

    return guarded(run_all)


def main_plan(
    source: str | Path, output: str | Path, chunk_size: int, presets: list[str], blender: str | None = None
) -> int:
    """`render-tag plan CONFIG|RECIPES -o plan.json [--chunk-size N]`: writes the plan, prints its hash."""

    def plan() -> int:
        made = plan_job(source, list(presets), make_launcher(blender), chunk_size)
        write_text_atomic(output, dump_plan(made))
        print(
            f"plan {made.plan_hash} -> {output}: {made.num_jobs} scenes in {made.num_chunks} chunks of "
            f"{made.chunk_size}; add-on {made.addon_version}, Blender {made.blender_version}"
        )
        done(
            [output],
            None,
            [
                f"render-tag render-chunk {quoted(output)} --chunk K -o OUT_K  (K = 0 .. "
                f"{made.num_chunks - 1}), then render-tag merge OUT_0 OUT_1 ... -o OUT"
            ],
        )
        return EXIT_OK

    return guarded(plan)


def main_render_chunk(plan_path: str | Path, chunk: str | None, out: str | Path, **options: Any) -> int:
    """`render-tag render-chunk plan.json [--chunk K] -o OUT`: the plan hash first (exit 2 when it does not
    match), then chunk K (default: $JOB_COMPLETION_INDEX, $SLURM_ARRAY_TASK_ID ...) into OUT, with
    OUT/chunk.json listing every file written and its SHA-256. Exit codes as for render."""

    def render() -> int:
        plan = load_plan(plan_path)
        index = resolve_chunk(chunk, plan.num_chunks)
        settings = RenderOptions(**options)
        with holding(out, f"render-tag render-chunk {plan_path} --chunk {index}"):
            rendered = render_chunk(plan, index, out, settings, source=str(plan_path))
        summary = rendered.run.summary
        for line in summary.failures[:20]:
            print(f"render-tag: failed: {line}", file=sys.stderr)
        if rendered.run.pool_error is not None:
            print(f"render-tag: error: {rendered.run.pool_error}", file=sys.stderr)
        print(summary.line())
        result = rendered.result
        print(
            f"chunk {result.chunk} of {result.num_chunks} (plan {result.plan_hash[:12]}): {result.status}, "
            f"{len(result.files)} files -> {Path(out) / 'chunk.json'}"
        )
        done(
            [Path(out) / "images", Path(out) / "labels", Path(out) / "chunk.json"],
            None,
            ["render-tag merge OUT_0 OUT_1 ... -o OUT  (every chunk's folder, once all are rendered)"],
        )
        if summary.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_OK if result.status == "complete" else EXIT_FAILED

    return guarded(render)


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
    if summary.skipped and not (summary.done or summary.failed or summary.pending or summary.interrupted):
        print(f"nothing to render: all {summary.skipped} scenes in {out} were complete and are skipped")
    if summary.interrupted:
        print(f"render-tag: interrupted; finish with --resume ({out})", file=sys.stderr)
        return EXIT_INTERRUPTED
    code = EXIT_OK if rendered.manifest.status == "complete" else EXIT_FAILED
    if result.merge_error is not None:
        print(f"render-tag: merge: {result.merge_error}", file=sys.stderr)
        code = EXIT_FAILED
    if result.merge is not None:
        print(result.merge.summary())
        if result.merge.refused:
            code = EXIT_FAILED
    if result.audit is not None:
        print(result.audit.summary())
        if not result.audit.passed:
            code = EXIT_FAILED
    if result.qa_error is not None:
        print(f"render-tag: {result.qa_error}", file=sys.stderr)
        code = EXIT_FAILED
    _closing(result, out)
    return code


def _closing(result: PipelineResult, out: Path) -> None:
    """What was written where, and the next command: audit and verify after a render, verify after a run."""
    wrote: list[str | Path] = []
    if result.render.summary.images:
        wrote += [out / "images", out / "labels"]
    if result.merge is not None:
        wrote += [out / name for name in ("rich_truth.json", "coco_labels.json", "ground_truth.csv")]
    if result.audit is not None:
        wrote += [out / "audit.json", out / "audit"]
    if result.preview is not None:
        wrote.append(result.preview)
    steps = []
    if result.merge is None:
        if result.render.summary.interrupted or result.render.manifest.status != "complete":
            steps.append("the same command with --resume (failed scenes are named in manifest.json)")
    elif result.audit is None:
        steps += [f"render-tag audit {quoted(out)}", f"render-tag verify {quoted(out)}"]
    else:
        steps.append(f"render-tag verify {quoted(out)}  (OpenCV's detectors against the truth)")
        if result.report is not None:
            steps.append(f"open {result.report}")
    done(wrote, result.report, steps)
