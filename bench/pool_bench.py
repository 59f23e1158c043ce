"""Benchmarks of the worker pool, measured side by side in one run (`make bench`; not a test).

1. The pool against one Blender process per scene, same recipes (320x240).
2. The pipeline's wall time per image against the bare Blender render call of the same scenes (640x480);
   `--rounds N` repeats it (`make bench BENCH_ARGS="--rounds 3"` repeats dask_bench.py's rounds too).
3. One worker (all threads) against two workers (half the threads each).
4. A worker's memory after 20 and after 300 scenes (tiny scenes; `--quick`: after 20 and 60).

Each line prints a ratio and the numbers behind it. Workers use the `bpy` module of this interpreter
(or `--blender PATH`); the add-on comes from the repository (or $RENDER_TAG_ADDON_DIR).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from render_tag.addon_source import addon_dir as default_addon_dir
from render_tag.batch.launcher import LAUNCH_PROGRAM, make_launcher
from render_tag.batch.options import WorkerLimits
from render_tag.batch.pool import Job, JobOutcome, WorkerPool
from render_tag.cli.render import main_render
from render_tag.compile import DEFAULT_JOB, compile_config
from render_tag_shared.config import parse_config
from render_tag_shared.recipe import RecipeFile, SceneRecipe
from render_tag_shared.recipe_io import dump_recipe_file

SCENE_SCRIPT = """
import importlib.util, json, sys, time
from pathlib import Path
folder, recipe_path, out = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
spec = importlib.util.spec_from_file_location(
    "render_tag_addon", folder / "__init__.py", submodule_search_locations=[str(folder)])
module = importlib.util.module_from_spec(spec); sys.modules["render_tag_addon"] = module
spec.loader.exec_module(module)
getattr(module, "register", lambda: None)()
from render_tag_addon import api
from render_tag_shared.recipe import SceneRecipe
api.render_recipe(SceneRecipe.model_validate_json(Path(recipe_path).read_text()), Path(out))
sys.stdout.flush(); import os; os._exit(0)  # as a worker does: the bpy module may crash in its teardown
"""
"""One process per scene: import bpy and the add-on, render one recipe, exit (what the pool avoids)."""

BARE_SCRIPT = """
import importlib.util, json, sys, time
from pathlib import Path
import bpy
folder, recipes_path = Path(sys.argv[1]), sys.argv[2]
spec = importlib.util.spec_from_file_location(
    "render_tag_addon", folder / "__init__.py", submodule_search_locations=[str(folder)])
module = importlib.util.module_from_spec(spec); sys.modules["render_tag_addon"] = module
spec.loader.exec_module(module)
getattr(module, "register", lambda: None)()
from render_tag_addon import api
from render_tag_shared.recipe import RecipeFile
times = []
for recipe in RecipeFile.model_validate_json(Path(recipes_path).read_text()).recipes:
    scene = api.build_scene(recipe, 0)
    from render_tag_addon.core import renderer
    renderer.configure_renderer(scene, recipe.renderer)
    scene.render.filepath = "/dev/null"
    t = time.perf_counter()
    bpy.ops.render.render(write_still=False, scene=scene.name)
    times.append(time.perf_counter() - t)
print(json.dumps(times))
sys.stdout.flush(); import os; os._exit(0)
"""
"""The bare Blender render call: the same scenes built once, `bpy.ops.render.render` timed alone."""


def job_recipes(count: int, resolution: tuple[int, int], samples: int, cameras: int = 1) -> list[SceneRecipe]:
    """`count` scenes of the default job (tags, then ChArUco boards) at another size and sample count,
    each seen by `cameras` cameras: one Cycles render per image (no second render of the markers), so a
    bench that times the pipeline against a bare render call compares like with like."""
    import yaml

    documents = [d for d in yaml.safe_load_all(DEFAULT_JOB.read_text(encoding="utf-8")) if d]
    shares = [count - count // 3, count // 3]
    recipes: list[SceneRecipe] = []
    w, h = resolution
    for document, share in zip(documents, shares, strict=False):
        if share == 0:
            continue
        document = json.loads(json.dumps(document))
        document["dataset"]["num_scenes"] = share
        camera = document["camera"]
        scale = w / camera["resolution"][0]
        camera["resolution"] = [w, h]
        camera["samples_per_scene"] = cameras
        intr = camera["intrinsics"]
        intr.update(fx=intr["fx"] * scale, fy=intr["fy"] * scale, cx=(w - 1) / 2, cy=(h - 1) / 2)
        # The same poses at another size: a bound in pixels per module scales with the image (the
        # ChArUco scenes ask for 3.5 px at 640x480, which no pose meets at 320x240).
        for bound in ("ppm_min", "ppm_max"):
            if camera.get(bound) is not None:
                camera[bound] = camera[bound] * scale
        document.setdefault("renderer", {}).update(samples=samples, marker_samples=None)
        compiled = compile_config(parse_config(document, "bench"))
        offset = len(recipes)
        recipes += [r.model_copy(update={"scene_id": offset + r.scene_id}) for r in compiled.recipes]
    return recipes


def write(path: Path, recipes: list[SceneRecipe]) -> Path:
    path.write_text(dump_recipe_file(RecipeFile(job_id="bench", recipes=recipes)), encoding="utf-8")
    return path


def timed_render(recipes_path: Path, out: Path, **options: Any) -> float:
    """Wall time of `render-tag render` with `options` (workers=N or dask=ADDRESS; worker start-up
    included: it is part of the cost)."""
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        code = main_render(recipes_path, out, progress=False, memory_limit_mb=None, **options)
    if code != 0:
        raise SystemExit(f"render failed ({code}); see {out}/manifest.json")
    return time.perf_counter() - start


def run_blender_script(script: str, *args: str, what: str) -> str:
    """Run `script` in a fresh Python with `bpy`, the add-on folder its first argument; its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", script, str(default_addon_dir()), *args], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"{what} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def process_per_scene(recipes: list[SceneRecipe], folder: Path, out: Path) -> float:
    start = time.perf_counter()
    for recipe in recipes:
        path = folder / f"recipe{recipe.scene_id}.json"
        path.write_text(recipe.model_dump_json(), encoding="utf-8")
        run_blender_script(SCENE_SCRIPT, str(path), str(out), what="process per scene")
    return time.perf_counter() - start


def bare_render_times(recipes_path: Path) -> list[float]:
    stdout = run_blender_script(BARE_SCRIPT, str(recipes_path), what="bare render")
    return list(json.loads(stdout.strip().splitlines()[-1]))


def worker_memory(recipes: list[SceneRecipe], out: Path, marks: list[int]) -> dict[int, float]:
    """A single worker's resident memory (MB, as it reports after each scene) at the given counts."""
    seen: dict[int, float] = {}
    count = 0
    limits = WorkerLimits(max_renders_per_worker=10**6, memory_limit_mb=None)
    with WorkerPool(make_launcher(None), limits, workers=1, threads=2) as pool:

        def finished(outcome: JobOutcome) -> None:
            nonlocal count
            if outcome.status != "done":
                raise SystemExit(f"scene {outcome.job.recipe.scene_id} failed: {outcome.error_message}")
            count += 1
            if count in marks:
                seen[count] = pool.supervisor.slots[0].rss_mb

        pool.run([Job(index=i, recipe=r, out_dir=out) for i, r in enumerate(recipes)], on_finish=finished)
    return seen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer scenes (memory: 60 instead of 300)")
    parser.add_argument("--keep", action="store_true", help="keep the output folders")
    parser.add_argument(
        "--smoke", action="store_true", help="the test suite's size: completes, measures little"
    )
    parser.add_argument("--rounds", type=int, default=1, help="rounds of item 2, side by side (default 1)")
    args = parser.parse_args(argv)
    assert LAUNCH_PROGRAM  # the launcher in use is the product's own
    root = Path(tempfile.mkdtemp(prefix="render_tag_bench_"))
    results: dict[str, Any] = {"cores": len(os.sched_getaffinity(0))}
    n_small = 2 if args.smoke else 6 if args.quick else 12
    n_big = 2 if args.smoke else 4 if args.quick else 8
    n_memory = 8 if args.smoke else 60 if args.quick else 300
    first_mark = min(20, n_memory // 2)
    big_size, big_samples = ((160, 120), 2) if args.smoke else ((640, 480), 16)

    # 1. pool against a process per scene (320x240, 4 samples)
    small = job_recipes(n_small, (160, 120) if args.smoke else (320, 240), 4)
    small_path = write(root / "small.json", small)
    t_proc = process_per_scene(small, root, root / "per_scene")
    t_pool1 = timed_render(small_path, root / "pool1", workers=1)
    t_pool2 = timed_render(small_path, root / "pool2", workers=2)
    print(f"1. pool vs process per scene, {n_small} scenes 320x240 4 spp: "
          f"{t_proc / t_pool1:.2f}x faster with 1 worker ({t_proc:.1f} s vs {t_pool1:.1f} s), "
          f"{t_proc / t_pool2:.2f}x with 2 workers ({t_pool2:.1f} s)  [target >= 1.5x]")  # fmt: skip

    # 2. pipeline time per image against the bare render call (640x480, 16 samples)
    # (the load is printed: on a shared machine, compare rounds run at the same load)
    big = job_recipes(n_big, big_size, big_samples)
    big_path = write(root / "big.json", big)
    for index in range(args.rounds):
        load = os.getloadavg()[0]
        for name in ("big1", "big2"):
            shutil.rmtree(root / name, ignore_errors=True)
        bare = bare_render_times(big_path)
        bare_per_image = sum(bare) / len(bare)
        t_big1 = timed_render(big_path, root / "big1", workers=1)
        t_big2 = timed_render(big_path, root / "big2", workers=2)
        per1, per2 = t_big1 / len(big), t_big2 / len(big)
        print(f"2. pipeline vs bare render call, round {index + 1}/{args.rounds} (load {load:.1f}), "
              f"{n_big} images {big_size[0]}x{big_size[1]} {big_samples} spp: "
              f"bare {bare_per_image:.2f} s/image; "
              f"pipeline {per2:.2f} s/image with 2 workers ({100 * (per2 / bare_per_image - 1):+.0f} %), "
              f"{per1:.2f} s/image with 1 worker ({100 * (per1 / bare_per_image - 1):+.0f} %), "
              "worker start-up included  [target within 5 %]")  # fmt: skip

    # 3. one worker against two
    print(f"3. 1 vs 2 workers: 320x240 {t_pool1 / t_pool2:.2f}x ({t_pool1:.1f} s vs {t_pool2:.1f} s); "
          f"640x480 {t_big1 / t_big2:.2f}x ({t_big1:.1f} s vs {t_big2:.1f} s)")  # fmt: skip

    # 4. memory of one worker after 20 and after 300 scenes
    tiny = job_recipes(n_memory, (160, 120), 1)
    memory = worker_memory(tiny, root / "memory", [first_mark, n_memory])
    first, last = memory[first_mark], memory[n_memory]
    print(f"4. worker memory: {first:.0f} MB after {first_mark} scenes, {last:.0f} MB after {n_memory} "
          f"({100 * (last / first - 1):+.1f} %)  [target within 10 %]")  # fmt: skip

    results.update(
        process_per_scene_s=t_proc, pool_1_worker_s=t_pool1, pool_2_workers_s=t_pool2,
        bare_render_s_per_image=bare_per_image, pipeline_1_worker_s_per_image=per1,
        pipeline_2_workers_s_per_image=per2, rss_mb={str(k): v for k, v in memory.items()},
    )  # fmt: skip
    print(json.dumps(results))
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    else:
        print(f"outputs kept in {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
