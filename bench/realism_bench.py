"""Render time per image of the realistic scene against the plain one, side by side (`make bench`).

The default job's tag scenes are compiled twice from the same seeds, at the same resolution and
samples: plain (its lights on a grey floor), and with the built-in realism (`--preset realistic`: a
Blender HDRI, a procedural floor, distractors, SUN and coloured lights). Both are rendered in this
process with the `bpy` module, alternating scene by scene so that the machine's load hits both alike;
the line printed is the ratio of the median render times (target: at most 1.5).
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from render_tag.addon_source import addon_dir
from render_tag.compile import DEFAULT_JOB, compile_config
from render_tag.compile.presets import compose_config
from render_tag_shared.config import parse_config
from render_tag_shared.recipe import SceneRecipe

TARGET_RATIO = 1.5


def _api() -> Any:
    """The add-on's function API, loaded from the repository into this interpreter's `bpy`."""
    folder = Path(addon_dir())
    spec = importlib.util.spec_from_file_location(
        "render_tag_addon", folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["render_tag_addon"] = module
    spec.loader.exec_module(module)
    from render_tag_addon import api  # type: ignore[import-not-found]

    return api


def scenes(realistic: bool, count: int, resolution: tuple[int, int], samples: int) -> list[SceneRecipe]:
    """The default job's first document (loose tags), with or without the realistic preset."""
    document = next(d for d in yaml.safe_load_all(DEFAULT_JOB.read_text(encoding="utf-8")) if d)
    document = copy.deepcopy(document)
    for section in ("background", "clutter", "paper", "tone_mapping", "dynamic_range"):
        document.pop(section, None)  # the plain scene: what the default job rendered before
    lighting = document.setdefault("lighting", {})
    for key in list(lighting):
        if key not in ("intensity_min", "intensity_max", "lights_per_scene"):
            lighting.pop(key)
    width, height = resolution
    scale = width / 640.0
    document["camera"]["resolution"] = [width, height]
    document["camera"]["intrinsics"] = {
        "fx": 600.0 * scale,
        "fy": 600.0 * scale,
        "cx": (width - 1) / 2.0,
        "cy": (height - 1) / 2.0,
    }
    for bound in ("ppm_min", "ppm_max"):  # pixels per module scale with the image, as the poses do
        if document["camera"].get(bound) is not None:
            document["camera"][bound] *= scale
    document.setdefault("renderer", {})["samples"] = samples
    document["dataset"]["num_scenes"] = count
    config = parse_config(compose_config(document, ["realistic"] if realistic else []), "bench")
    return compile_config(config).recipes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenes", type=int, default=4)
    parser.add_argument("--resolution", type=int, nargs=2, default=(640, 480))
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument(
        "--smoke", action="store_true", help="the test suite's size: 2 scenes, 160x120, 2 samples"
    )
    args = parser.parse_args()
    if args.smoke:
        args.scenes, args.resolution, args.samples = 2, (160, 120), 2
    api = _api()
    plain = scenes(False, args.scenes, tuple(args.resolution), args.samples)
    real = scenes(True, args.scenes, tuple(args.resolution), args.samples)
    times: dict[str, list[float]] = {"plain": [], "realistic": []}
    with tempfile.TemporaryDirectory(prefix="realism_bench_") as tmp:
        api.render_recipe(plain[0], Path(tmp) / "warm")  # kernels and caches: not measured
        for p, r in zip(plain, real, strict=True):
            for name, recipe in (("plain", p), ("realistic", r)):
                start = time.perf_counter()
                api.render_recipe(recipe, Path(tmp) / name)
                times[name].append(time.perf_counter() - start)
    plain_s, real_s = statistics.median(times["plain"]), statistics.median(times["realistic"])
    ratio = real_s / plain_s
    verdict = "within" if ratio <= TARGET_RATIO else "ABOVE"
    print(
        f"realism: {ratio:.2f}x the plain scene's time per image ({verdict} the {TARGET_RATIO}x target): "
        f"realistic {real_s:.2f} s, plain {plain_s:.2f} s (median of {args.scenes} each, "
        f"{args.resolution[0]}x{args.resolution[1]}, {args.samples} samples, build + render + write)"
    )


if __name__ == "__main__":
    main()
