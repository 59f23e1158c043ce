"""Compiled scenes per second for the DESIGN.md example config, on one core.

The compiler aims at 1,000 scenes a second or more, so that compiling never shows next to rendering;
run `python bench/compile_bench.py [--scenes N] [--profile]` after touching its hot path. The second
line says how much of the time goes to the shared ground-truth function that judges every pose.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import time
from pathlib import Path
from typing import Any

import yaml

from render_tag.compile import compiler, pose
from render_tag_shared.config import GenConfig, parse_config
from render_tag_shared.recipe_io import dump_recipe_file

EXAMPLE_CONFIG = (Path(__file__).resolve().parents[1] / "tests" / "data" / "design_example.yaml").read_text()
"""The DESIGN.md example config, verbatim (the one the tests compile)."""


def _pin_to_one_core() -> None:
    """The figure is per core: pin the process so the number does not depend on the machine's load."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def _truth_share(config: GenConfig) -> float:
    """Fraction of compile time spent in `observe_prepared` (observe_camera, the shared pose judge)."""
    spent = [0.0]
    original = pose.observe_prepared

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.process_time()
        try:
            return original(*args, **kwargs)
        finally:
            spent[0] += time.process_time() - start

    pose.observe_prepared = timed
    try:
        start = time.process_time()
        compiler.compile_config(config)
        total = time.process_time() - start
    finally:
        pose.observe_prepared = original
    return spent[0] / total


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--scenes", type=int, default=1000, help="scenes to compile (default 1000)")
    parser.add_argument("--profile", action="store_true", help="print the top of a cProfile run")
    parser.add_argument("--smoke", action="store_true", help="the test suite's size: 50 scenes")
    args = parser.parse_args()
    _pin_to_one_core()
    data = yaml.safe_load(EXAMPLE_CONFIG)
    data["dataset"]["num_scenes"] = 50 if args.smoke else args.scenes
    config = parse_config(data, "DESIGN.md example")
    compiler.compile_config(
        parse_config({**data, "dataset": {**data["dataset"], "num_scenes": 20}}, "warm-up")
    )
    start = time.process_time()
    recipes = compiler.compile_config(config)
    compiled = max(time.process_time(), start + 1e-6)  # a smoke-sized run may take under a tick
    text = dump_recipe_file(recipes)
    dumped = time.process_time()
    cameras = sum(len(r.cameras) for r in recipes.recipes)
    scenes = config.dataset.num_scenes
    print(
        f"compiled {scenes} scenes ({cameras} cameras) in {compiled - start:.2f} s CPU on one core: "
        f"{scenes / (compiled - start):.0f} scenes/s; with the JSON dump "
        f"({len(text) / 1e6:.1f} MB): {scenes / (dumped - start):.0f} scenes/s"
    )
    print(f"share of the pose judge (observe_camera, as observe_prepared): {_truth_share(config):.0%}")
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(compiler.compile_config, config)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
