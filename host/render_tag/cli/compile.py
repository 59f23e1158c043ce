"""`render-tag compile`: a config to recipes.json, with a progress display for long compiles."""

from __future__ import annotations

import sys
from pathlib import Path

from render_tag_shared.recipe_io import dump_recipe_file

from ..batch.telemetry import Progress
from ..compile import check_module_size, compile_config, load_job_config, parse_shard, shard_range
from ..dataset.folder import check_output_file
from ..io import write_text_atomic
from .exits import EXIT_OK
from .say import done, quoted

__all__ = ["PROGRESS_MIN_SCENES", "main_compile"]

PROGRESS_MIN_SCENES = 2000
"""Compiles smaller than this finish in a few seconds and show no progress."""


def main_compile(
    config_path: str, output: str, presets: list[str], shard: str | None, strict_ppm: bool = False
) -> int:
    """Writes the recipes atomically; InputError propagates and nothing is written. Cameras that see
    markers below 3.5 px per module are warned about (refused with `strict_ppm`)."""
    check_output_file(output)
    shard_pair = parse_shard(shard)
    config = load_job_config(config_path, presets)
    count = len(shard_range(config.dataset.num_scenes, shard_pair))
    progress = (
        Progress(count, label="compile", unit="scenes", rate_unit="scenes/s")
        if count >= PROGRESS_MIN_SCENES
        else None
    )

    def report(done: int) -> None:
        if progress is not None:
            progress.update(done - progress.done)

    recipes = compile_config(
        config,
        shard=shard_pair,
        source=config_path,
        base_dir=Path(config_path).parent,
        recipe_dir=Path(output).parent,
        progress=report if progress is not None else None,
    )
    if progress is not None:
        progress.close()
    for line in check_module_size(recipes, config_path, strict=strict_ppm):
        print(f"render-tag: warning: {line}", file=sys.stderr)
    write_text_atomic(output, dump_recipe_file(recipes))
    scenes = len(recipes.recipes)
    images = sum(len(recipe.cameras) for recipe in recipes.recipes)
    done(
        [f"{output} ({scenes} scenes, {images} images)"], None, [f"render-tag render {quoted(output)} -o OUT"]
    )
    return EXIT_OK
