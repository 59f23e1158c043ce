"""Render cost against ground-truth accuracy, every variant on the same scenes in one run (`make bench`).

Each variant (a renderer preset, a sample count, or one Cycles lever changed alone) renders the same
scenes: tags (tag36h11, 3-4 per scene) and a ChArUco board, the DESIGN example's camera (640x480,
fx 600). The renders are interleaved (scene 1 with every variant, then scene 2 ...) inside one
Blender worker process, so the machine's load falls on every variant alike, and the cost is the
worker's CPU time per image (`time.process_time` around `api.render_recipe`: every Cycles and OIDN
thread, the scene build and the post-processing), not wall time. Accuracy is `render-tag verify`'s own
measurement (`render_tag.qa.verify.verify_dataset`): tag-centre error median and the corners' mean
offset, ChArUco corner error median and mean offset after the detector's own offset.

Prints one line per variant (CPU s/image, the ratio to the old default, the errors) and, with
matplotlib, draws the accuracy-cost curve to `--plot` (a PNG). `--levers` adds the one-lever-at-a-time
study behind the presets; `--smoke` is the test suite's size (tiny images, few scenes).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from pool_bench import job_recipes, run_blender_script

from render_tag.compile.presets import RENDER_PRESETS
from render_tag.qa.verify import verify_dataset
from render_tag_shared.recipe import SceneRecipe

OLD_DEFAULT: dict[str, Any] = {"mode": "cycles", "samples": 16, "marker_samples": None, "denoise": False,
                               "noise_threshold": None, "max_bounces": 4, "supersample": 1,
                               "light_tree": None, "filter_type": "blackman_harris",
                               "filter_width_px": 1.5}  # fmt: skip
"""The renderer of the default job before the presets (16 samples, 4 bounces, Blackman-Harris 1.5 px)."""

BOX = {"filter_type": "box", "filter_width_px": 1.0}

WORKER_SCRIPT = """
import importlib.util, json, sys, time
from pathlib import Path
folder, tasks_path = Path(sys.argv[1]), Path(sys.argv[2])
spec = importlib.util.spec_from_file_location(
    "render_tag_addon", folder / "__init__.py", submodule_search_locations=[str(folder)])
module = importlib.util.module_from_spec(spec); sys.modules["render_tag_addon"] = module
spec.loader.exec_module(module)
getattr(module, "register", lambda: None)()
from render_tag_addon import api
from render_tag_addon.core import scene as scene_module
from render_tag_shared.recipe import SceneRecipe
configure = scene_module.configure_renderer
cycles_overrides, originals = {}, {}
def configured(scene, settings):
    engine = configure(scene, settings)
    for key in list(originals):  # the work scene persists: undo the previous task's levers first
        owner, name = key.split(".", 1)
        setattr(scene.cycles if owner == "cycles" else scene.render, name, originals.pop(key))
    for key, value in cycles_overrides.items():
        owner, name = key.split(".", 1)
        holder = scene.cycles if owner == "cycles" else scene.render
        originals[key] = getattr(holder, name)
        setattr(holder, name, value)
    return engine
scene_module.configure_renderer = configured
for task in json.loads(tasks_path.read_text()):
    cycles_overrides.clear(); cycles_overrides.update(task.get("overrides", {}))
    recipe = SceneRecipe.model_validate(task["recipe"])
    start, wall = time.process_time(), time.perf_counter()
    results = api.render_recipe(recipe, task["out"])
    print(json.dumps({"variant": task["variant"], "images": len(results), "round": task.get("round", 0),
                      "cpu": time.process_time() - start, "wall": time.perf_counter() - wall,
                      "build": sum(r.timings["build"] for r in results)}), flush=True)
sys.stdout.flush(); import os; os._exit(0)
"""
"""One Blender worker rendering every task in order; `overrides` set Cycles levers the recipe lacks."""


def bench_scenes(smoke: bool, scenes: int = 6) -> list[SceneRecipe]:
    """Tag scenes (tag36h11, 3-4 tags) and ChArUco scenes of the default job, at the DESIGN camera."""
    size = (160, 120) if smoke else (640, 480)
    recipes = job_recipes(3 if smoke else scenes, size, 16)
    tags: list[SceneRecipe] = []
    for recipe in recipes:  # one family, as in the issue's measurement: one pooled centre median
        if any(o.type == "BOARD" for o in recipe.objects):
            tags.append(recipe)
            continue
        objects = [o.model_copy(update={"tag_family": "tag36h11"}) if o.type == "TAG" else o
                   for o in recipe.objects]  # fmt: skip
        tags.append(recipe.model_copy(update={"objects": objects}))
    return tags


def variants(levers: bool, smoke: bool) -> dict[str, dict[str, Any]]:
    """Name -> {"renderer": fields over the recipe's RendererSettings, "overrides": Cycles attributes}."""
    table: dict[str, dict[str, Any]] = {
        "old default (16 spp)": {"renderer": OLD_DEFAULT},
        **{f"preset {name}": {"renderer": dict(preset)} for name, preset in RENDER_PRESETS.items()},
    }
    if not smoke:
        table.update({f"cycles {n} spp": {"renderer": {**OLD_DEFAULT, "samples": n}} for n in (4, 8)})
        tree = {**OLD_DEFAULT, **BOX, "light_tree": True}
        table.update({f"cycles {n} spp, box 1 px, light tree": {"renderer": {**tree, "samples": n}}
                      for n in (4, 16)})  # fmt: skip
        table["8 spp, box, tree (balanced before 1.4)"] = {"renderer": {**tree, "samples": 8}}
        table.update({f"frame {n} spp, markers {m}, box, tree": {"renderer": {**tree, "samples": n,
                                                                              "marker_samples": m}}
                      for n, m in ((1, 16), (4, 16), (2, 8), (2, 32))})  # fmt: skip
    if levers:
        table.update({"workbench AA 32 (old fast)": {"renderer": {"mode": "workbench"}}})
        table.update({f"workbench x{s} supersample": {"renderer": {"mode": "workbench", "supersample": s}}
                      for s in (2, 3, 4)})  # fmt: skip
        tree4 = {**OLD_DEFAULT, "samples": 4, "light_tree": True}
        table.update(
            {
                "4 spp, light tree, BH 1.5": {"renderer": tree4},
                "8 spp, light tree, BH 1.5": {"renderer": {**tree4, "samples": 8}},
                "x2 supersample, 2 spp, box, tree": {"renderer": {**tree4, **BOX, "samples": 2,
                                                                  "supersample": 2}},
                "4 spp, light tree, Gaussian 1.5": {"renderer": {**tree4, "filter_type": "gaussian"}},
                "4 spp, light tree, BH 2.0": {"renderer": {**tree4, "filter_width_px": 2.0}},
                "x2 supersample, 1 spp, box, tree": {"renderer": {**tree4, **BOX, "samples": 1,
                                                                  "supersample": 2}},
                "x2 supersample, 1 spp, BH 1.5, tree": {"renderer": {**tree4, "samples": 1,
                                                                     "supersample": 2}},
            }
        )  # fmt: skip
        base = {**OLD_DEFAULT, "samples": 8}  # each lever alone over `cycles 8 spp`, where noise shows
        one = {"renderer": base}
        table.update(
            {
                "8 spp, max_bounces 0": {"renderer": {**base, "max_bounces": 0}},
                "8 spp, hard lights (r=0)": {**one, "lights": {"radius_m": 0.0}},
                "8 spp, clamp 1/1": {**one, "overrides": {"cycles.sample_clamp_direct": 1.0,
                                                         "cycles.sample_clamp_indirect": 1.0}},
                "8 spp, light tree": {**one, "overrides": {"cycles.use_light_tree": True}},
                "8 spp, Gaussian 1.5": {"renderer": {**base, "filter_type": "gaussian"}},
                "8 spp, BH 1.0": {"renderer": {**base, "filter_width_px": 1.0}},
                "8 spp, BH 2.5": {"renderer": {**base, "filter_width_px": 2.5}},
                "8 spp, box 1.5": {"renderer": {**base, "filter_type": "box"}},
                "8 spp, tabulated Sobol": {**one, "overrides": {
                    "cycles.sampling_pattern": "TABULATED_SOBOL"}},
                "8 spp, blue noise": {**one, "overrides": {"cycles.sampling_pattern": "BLUE_NOISE"}},
                "8 spp, scrambling 0.3": {**one, "overrides": {"cycles.scrambling_distance": 0.3}},
                "32 spp adaptive 0.05": {"renderer": {**base, "samples": 32, "noise_threshold": 0.05}},
                "4 spp + OIDN": {"renderer": {**base, "samples": 4, "denoise": True}},
                "4 spp box + OIDN": {"renderer": {**base, "samples": 4, "denoise": True, **BOX}},
            }
        )  # fmt: skip
    return table


CAMERAS = 4
"""Cameras of each scene in the comparison of one scene against separate scenes."""
CAMERA_ROUNDS = 3
"""Rounds of that comparison, the order of the ways alternating: the ratio is a few per cent, the noise
of one round on a shared machine about as much."""


def camera_tasks(
    smoke: bool, root: Path, renderer: dict[str, Any], rounds: int = CAMERA_ROUNDS
) -> list[dict[str, Any]]:
    """Scenes of CAMERAS cameras rendered whole (with and without persistent data) and as one-camera
    scenes, scene by scene, in `rounds` rounds whose order alternates."""
    size = (160, 120) if smoke else (640, 480)
    recipes = job_recipes(2 if smoke else 3, size, 16, cameras=CAMERAS)[:2]
    tasks = []
    for round_index in range(min(rounds, 1) if smoke else rounds):
        for recipe in recipes:
            recipe = recipe.model_copy(update={"renderer": recipe.renderer.model_copy(update=renderer)})
            ways: list[list[dict[str, Any]]] = []
            for persistent in (False, True):
                name = f"{CAMERAS} cameras in one scene" + (", persistent data" if persistent else "")
                ways.append([{"variant": name, "recipe": recipe.model_dump(mode="json"),
                              "out": str(root / ("one_persistent" if persistent else "one")),
                              "overrides": {"render.use_persistent_data": persistent}}])  # fmt: skip
            separate = []
            for index, camera in enumerate(recipe.cameras):
                single = recipe.model_copy(
                    update={"cameras": [camera], "scene_id": recipe.scene_id * 100 + index}
                )
                separate.append({"variant": f"{CAMERAS} cameras as {CAMERAS} scenes",
                                 "recipe": single.model_dump(mode="json"), "out": str(root / "separate"),
                                 "overrides": {"render.use_persistent_data": False}})  # fmt: skip
            ways.append(separate)
            for way in ways if round_index % 2 == 0 else ways[::-1]:
                tasks.extend({**task, "round": round_index} for task in way)
    return tasks


def same_images(a: Path, b: Path) -> bool:
    """Byte-identical PNGs in two output folders (persistent data must not change a pixel)."""
    names = sorted(p.name for p in (a / "images").glob("*.png"))
    return bool(names) and all(
        (a / "images" / n).read_bytes() == (b / "images" / n).read_bytes() for n in names
    )


def run_worker(tasks: list[dict[str, Any]], folder: Path) -> list[dict[str, Any]]:
    path = folder / "tasks.json"
    path.write_text(json.dumps(tasks), encoding="utf-8")
    stdout = run_blender_script(WORKER_SCRIPT, str(path), what="render worker")
    return [json.loads(line) for line in stdout.splitlines() if line.startswith('{"variant"')]


def accuracy(out: Path) -> dict[str, Any]:
    """verify's figures: tag centres and corners (tag36h11); ChArUco corners less the detector's offset."""
    report = verify_dataset(out, plot=False)
    tags = report.families.get("tag36h11", {})
    board = next((f for name, f in report.families.items() if name.startswith("charuco")), {})
    corners, squares = tags.get("corner_error", {}), board.get("corner_error", {})
    return {
        "tag_centre_median": tags.get("centre_error", {}).get("median"),
        "tag_offset": (corners.get("mean_dx"), corners.get("mean_dy")),
        "tag_detected": f"{tags.get('detected', 0)}/{tags.get('expected', 0)}",
        "charuco_median": squares.get("median"),
        "charuco_offset": (squares.get("mean_dx"), squares.get("mean_dy")),
        "charuco_detected": f"{board.get('detected', 0)}/{board.get('expected', 0)}",
    }


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="the test suite's size: 160x120, 3 scenes")
    parser.add_argument("--scenes", type=int, default=9, help="scenes (a third ChArUco boards)")
    parser.add_argument("--quick", action="store_true", help="3 scenes instead of --scenes")
    parser.add_argument("--levers", action="store_true", help="also each Cycles lever alone")
    parser.add_argument("--plot", type=Path, default=None, help="draw the curve to this PNG")
    parser.add_argument("--json", type=Path, default=None, help="write the figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the rendered datasets")
    parser.add_argument(
        "--camera-rounds", type=int, default=CAMERA_ROUNDS, help="rounds of the cameras test (0: none)"
    )
    parser.add_argument(
        "--only", default=None, help="only the variants whose name contains one of these (comma-separated)"
    )
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="render_tag_cost_"))
    scenes = bench_scenes(args.smoke, 3 if args.quick else args.scenes)
    table = variants(args.levers, args.smoke)
    if args.only:
        table = {
            k: v for k, v in table.items() if k.startswith("old") or any(w in k for w in args.only.split(","))
        }
    tasks = []
    for recipe in scenes:  # interleaved: each scene with every variant before the next scene
        for index, (name, spec) in enumerate(table.items()):
            renderer = recipe.renderer.model_copy(update=spec["renderer"])
            lights = [light.model_copy(update=spec.get("lights", {})) for light in recipe.world.lights]
            world = recipe.world.model_copy(update={"lights": lights})
            rendered = recipe.model_copy(update={"renderer": renderer, "world": world})
            out, overrides = str(root / f"v{index}"), spec.get("overrides", {})
            tasks.append({"variant": name, "recipe": rendered.model_dump(mode="json"), "out": out,
                          "overrides": overrides})  # fmt: skip
    multi = camera_tasks(args.smoke, root / "cameras", RENDER_PRESETS["balanced"], args.camera_rounds)
    timings = run_worker(tasks + multi, root)
    rows = []
    for index, name in enumerate(table):
        cost = [t for t in timings if t["variant"] == name]
        images = sum(t["images"] for t in cost)
        rows.append({"variant": name, "renderer": table[name]["renderer"],
                     "overrides": table[name].get("overrides", {}),
                     "cpu_s_per_image": sum(t["cpu"] for t in cost) / images,
                     "wall_s_per_image": sum(t["wall"] for t in cost) / images,
                     **accuracy(root / f"v{index}")})  # fmt: skip
    reference = rows[0]["cpu_s_per_image"]
    w, h = scenes[0].cameras[0].intrinsics.resolution
    print(f"render cost vs accuracy: {len(scenes)} scenes {w}x{h}, CPU s/image of one worker, interleaved")
    print(f"{'variant':36s} {'CPU s/img':>9s} {'x old':>6s} {'tag ctr med':>11s} {'tag offset (x, y)':>18s} "
          f"{'charuco med':>11s} {'charuco offset':>16s}")  # fmt: skip
    for row in rows:
        row["cost_ratio"] = row["cpu_s_per_image"] / reference
        tx, ty = row["tag_offset"]
        cx, cy = row["charuco_offset"]
        print(f"{row['variant']:36s} {row['cpu_s_per_image']:9.2f} {row['cost_ratio']:6.2f} "
              f"{_fmt(row['tag_centre_median']):>11s} {_fmt(tx, '+.3f'):>8s},{_fmt(ty, '+.3f'):>8s} "
              f"{_fmt(row['charuco_median']):>11s} {_fmt(cx, '+.3f'):>7s},{_fmt(cy, '+.3f'):>7s}"
              f"  [tags {row['tag_detected']}, charuco {row['charuco_detected']}]")  # fmt: skip
    per_image: dict[str, float] = {}
    build_ms: dict[str, float] = {}
    by_round: list[float] = []
    identical = None
    if multi:  # --camera-rounds 0 skips the comparison
        rounds: dict[str, dict[int, list[float]]] = {}
        for name in dict.fromkeys(t["variant"] for t in multi):
            cost = [t for t in timings if t["variant"] == name]
            images = sum(t["images"] for t in cost)
            per_image[name] = sum(t["cpu"] for t in cost) / images
            build_ms[name] = 1000.0 * sum(t["build"] for t in cost) / images
            for t in cost:
                rounds.setdefault(name, {}).setdefault(t["round"], []).append(t["cpu"])
        separate_name = f"{CAMERAS} cameras as {CAMERAS} scenes"
        one_name, kept_name = (
            f"{CAMERAS} cameras in one scene",
            f"{CAMERAS} cameras in one scene, persistent data",
        )
        by_round = [
            sum(rounds[separate_name][r]) / sum(rounds[one_name][r]) for r in sorted(rounds[one_name])
        ]
        separate, one, kept = per_image[separate_name], per_image[one_name], per_image[kept_name]
        identical = same_images(root / "cameras" / "one", root / "cameras" / "one_persistent")
        print(f"{CAMERAS} cameras of a scene (preset balanced), CPU s/image: as {CAMERAS} one-camera scenes "
              f"{separate:.2f}, one scene {one:.2f} (separate / one scene = {separate / one:.2f}x; rounds "
              f"{', '.join(f'{r:.2f}x' for r in by_round)}), one scene with persistent data {kept:.2f} "
              f"({separate / kept:.2f}x); scene build per image {build_ms[separate_name]:.0f} ms as separate "
              f"scenes, {build_ms[one_name]:.0f} ms in one scene; pixels identical with persistent data: "
              f"{identical}")  # fmt: skip
    if args.json:
        figures = {
            "curve": rows,
            "cameras_cpu_s_per_image": per_image,
            "cameras_rounds": by_round,
            "cameras_build_ms_per_image": build_ms,
            "persistent_identical": identical,
        }
        args.json.write_text(json.dumps(figures, indent=1), encoding="utf-8")
    if args.plot:
        print(f"curve: {plot_curve(rows, args.plot)}")
    if args.keep:
        print(f"outputs kept in {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 0


def plot_curve(rows: list[dict[str, Any]], path: Path) -> str:
    """Accuracy against CPU time per image (log x); text only when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: the table above is the curve"
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8), gridspec_kw={"width_ratios": [1, 1, 0.75]})
    third = rows[0]["cpu_s_per_image"] / 3.0  # rows[0] is the old default
    for ax, key, title in ((axes[0], "tag_centre_median", "tag-centre error median (px)"),
                           (axes[1], "charuco_median", "ChArUco corner error median (px)")):  # fmt: skip
        for number, row in enumerate(rows, start=1):
            if row[key] is None:
                continue
            preset = row["variant"].startswith(("preset", "old"))
            ax.scatter(row["cpu_s_per_image"], row[key], s=40 if preset else 18,
                       color="C3" if preset else "C0", zorder=3)  # fmt: skip
            ax.annotate(str(number), (row["cpu_s_per_image"], row[key]), fontsize=8,
                        xytext=(3, 3), textcoords="offset points")  # fmt: skip
        ax.axvline(third, color="0.4", linestyle="--", linewidth=1)
        ax.annotate("1/3 of the old default", (third, 1), xycoords=("data", "axes fraction"), fontsize=7,
                    rotation=90, ha="right", va="top")  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel("CPU seconds per image (one worker)")
        ax.set_ylabel(title)
        ax.grid(True, which="both", alpha=0.3)
    legend = "\n".join(f"{number:2d}  {row['variant']}" for number, row in enumerate(rows, start=1))
    axes[2].axis("off")
    axes[2].text(0.0, 1.0, legend, va="top", ha="left", fontsize=8, family="monospace")
    fig.suptitle("render cost against ground-truth accuracy (same scenes, interleaved)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


if __name__ == "__main__":
    sys.exit(main())
