"""`render` and `run` around the pool: --force, failed scenes, the merge at the end, option checks.

The workers are real (the `bpy` module in child processes, ZeroMQ, the manifest, the add-on's own
worker.py) but load a stand-in add-on whose `api.render_recipe` writes the recipe's true labels and a
grey PNG instead of rendering, and fails on demand after its first camera: the whole flow in a few
seconds. The real add-on behind the same worker is what test_pool.py renders with.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest

from render_tag.addon_source import addon_dir
from render_tag.batch.launcher import BpyModuleLauncher
from render_tag.batch.options import RenderOptions
from render_tag.cli import main as cli_main
from render_tag.cli.render import main_render, render_recipes
from render_tag_shared.errors import InputError
from render_tag_shared.recipe import RecipeFile, SceneRecipe

from .test_pool import manifest, telemetry, tiny_recipe, wait_gone, worker_pids, write_recipes

FAIL_SEED = 666
"""A recipe with this random_seed fails after writing its first camera's image and labels."""

STAND_IN_API = (
    f"FAIL_SEED = {FAIL_SEED}\n"
    + """
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from render_tag_shared.truth import image_labels


@dataclass(frozen=True)
class RenderResult:
    image_id: str
    image_path: Path
    labels_path: Path
    timings: dict = field(default_factory=dict)


def purge_orphans():
    return 0


def render_recipe(recipe, out_dir, camera_indices=None):
    import cv2

    out_dir = Path(out_dir)
    results = []
    for index in camera_indices if camera_indices is not None else range(len(recipe.cameras)):
        if index > 0 and recipe.random_seed == FAIL_SEED:
            raise RuntimeError(f"stand-in failure in camera {index} of scene {recipe.scene_id}")
        started = time.monotonic()
        labels = image_labels(recipe, index, render_environment={"blender": "stand-in"})
        width, height = recipe.cameras[index].intrinsics.resolution
        (out_dir / "images").mkdir(parents=True, exist_ok=True)
        (out_dir / "labels").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(out_dir / labels.file_name), np.full((height, width), 128, np.uint8))
        labels_path = out_dir / "labels" / f"{labels.image_id}.json"
        labels_path.write_text(labels.model_dump_json())
        elapsed = time.monotonic() - started
        timings = {"build": 0.0, "render": elapsed, "post": 0.0, "write": 0.0}
        results.append(RenderResult(labels.image_id, out_dir / labels.file_name, labels_path, timings))
    return results
"""
)


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory: pytest.TempPathFactory) -> BpyModuleLauncher:
    folder = tmp_path_factory.mktemp("stand_in_addon")
    (folder / "__init__.py").write_text('"""A stand-in add-on."""\n\n\ndef register():\n    pass\n')
    (folder / "api.py").write_text(textwrap.dedent(STAND_IN_API))
    shutil.copy2(addon_dir() / "worker.py", folder / "worker.py")  # the add-on's own worker
    return BpyModuleLauncher(addon_dir=folder)


def options(launcher: BpyModuleLauncher, **kwargs: Any) -> RenderOptions:
    return RenderOptions(workers=1, progress=False, launcher=launcher, **kwargs)


def failing(scene_id: int, cameras: int = 2) -> SceneRecipe:
    return tiny_recipe(scene_id, cameras=cameras).model_copy(update={"random_seed": FAIL_SEED})


def test_force_replaces_a_corrupt_manifest_and_every_stale_file(
    tmp_path: Path, stand_in: BpyModuleLauncher
) -> None:
    out = tmp_path / "out"
    recipes = RecipeFile(job_id="flow", recipes=[tiny_recipe(0), tiny_recipe(1, cameras=2)])
    out.mkdir()
    (out / "manifest.json").write_text('{"version": 1, "plan_ha')  # torn
    stale = ["rich_truth.json", "coco_labels.json", "ground_truth.csv", "provenance.json"]
    stale += ["audit.json", "verify.json", "preview.png"]
    for name in stale:
        (out / name).write_text("stale")
    (out / "audit").mkdir()
    (out / "audit" / "distance.png").write_text("stale")
    (out / "images").mkdir()
    (out / "images" / "scene000042_cam00.png").write_text("an image of an older render")

    # Without --force the corrupt manifest is bad input; with it, the manifest is replaced.
    with pytest.raises(InputError, match="--force"):
        render_recipes(recipes, out, options(stand_in, resume=True))
    assert render_recipes(recipes, out, options(stand_in, force=True)) == 0

    doc = manifest(out)
    assert doc["status"] == "complete" and [j["status"] for j in doc["jobs"]] == ["done", "done"]
    for name in ("audit.json", "verify.json", "preview.png", "audit"):
        assert not (out / name).exists(), name
    assert not (out / "images" / "scene000042_cam00.png").exists()
    # The render merged at its end: the dataset files describe this render.
    coco = json.loads((out / "coco_labels.json").read_text())
    assert [im["image_key"] for im in coco["images"]] == [
        "scene000000_cam00",
        "scene000001_cam00",
        "scene000001_cam01",
    ]
    truth = json.loads((out / "rich_truth.json").read_text())
    assert truth["evaluation_context"]["num_images"] == 3
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["images"]["scene000001_cam01"]["render_environment"] == {"blender": "stand-in"}
    assert (out / "ground_truth.csv").read_text() != "stale"
    # Workers leave through Python's normal exit (exit code 0), and none outlives the render.
    assert [e["exit_code"] for e in telemetry(out) if e["event"] == "worker_stopped"] == [0]
    assert wait_gone(worker_pids(out)) == []


def test_a_failed_scene_leaves_none_of_its_cameras(
    tmp_path: Path, stand_in: BpyModuleLauncher, capsys: Any
) -> None:
    out = tmp_path / "out"
    recipes = RecipeFile(job_id="flow", recipes=[tiny_recipe(0), failing(1, cameras=3), tiny_recipe(2)])
    assert render_recipes(recipes, out, options(stand_in, retries=0)) == 1
    doc = manifest(out)
    jobs = {j["scene_id"]: j for j in doc["jobs"]}
    assert jobs[1]["status"] == "failed" and "stand-in failure" in jobs[1]["error_message"]
    assert jobs[0]["status"] == jobs[2]["status"] == "done"
    # Camera 0 of scene 1 was written before camera 1 failed: it is gone with the rest of the scene.
    assert sorted(p.stem for p in (out / "images").glob("*.png")) == [
        "scene000000_cam00",
        "scene000002_cam00",
    ]
    assert sorted(p.stem for p in (out / "labels").glob("*.json")) == [
        "scene000000_cam00",
        "scene000002_cam00",
    ]
    coco = json.loads((out / "coco_labels.json").read_text())
    assert {im["scene_id"] for im in coco["images"]} == {0, 2}
    assert "scene 1" in capsys.readouterr().err


def test_nothing_done_means_no_merge(tmp_path: Path, stand_in: BpyModuleLauncher) -> None:
    out = tmp_path / "out"
    recipes = RecipeFile(job_id="flow", recipes=[failing(0)])
    assert render_recipes(recipes, out, options(stand_in, retries=0)) == 1
    assert manifest(out)["jobs"][0]["status"] == "failed"
    assert not (out / "coco_labels.json").exists()
    assert not list((out / "images").glob("*.png"))


def test_run_merges_once_then_audits(tmp_path: Path, stand_in: BpyModuleLauncher, monkeypatch: Any) -> None:
    import render_tag.batch.render
    import render_tag.dataset.merge
    from render_tag.cli.render import main_run

    config = tmp_path / "job.yaml"
    config.write_text(
        textwrap.dedent(
            """\
            dataset: {name: flow, num_scenes: 2, seed: 7}
            scenario:
              subject: {type: TAGS, tag_families: [tag36h11], size_mm: 100, tags_per_scene: [1, 2]}
            camera:
              resolution: [320, 240]
              intrinsics: {fov: 60}
              samples_per_scene: 1
              min_distance: 0.6
              max_distance: 1.2
            renderer: {mode: cycles, samples: 2}
            """
        )
    )
    merges: list[Path] = []
    real_merge = render_tag.dataset.merge.merge_dataset

    def counting_merge(*args: Any, **kwargs: Any) -> Any:
        merges.append(Path(args[0]))
        return real_merge(*args, **kwargs)

    monkeypatch.setattr(render_tag.dataset.merge, "merge_dataset", counting_merge)
    monkeypatch.setattr(render_tag.batch.render, "make_launcher", lambda blender=None: stand_in)
    out = tmp_path / "out"
    assert main_run(config, out, workers=1, progress=False) == 0
    assert merges == [out]
    audit = json.loads((out / "audit.json").read_text())
    assert audit["passed"] and audit["counts"]["images"] == 2 and audit["counts"]["missing_images"] == 0
    assert (out / "preview.png").is_file()


def test_workers_below_one_are_bad_input(tmp_path: Path, capsys: Any) -> None:
    path = write_recipes(tmp_path / "recipes.json", [tiny_recipe(0)])
    out = tmp_path / "out"
    for workers in (0, -3):
        assert main_render(path, out, workers=workers, progress=False) == 2
        assert "--workers" in capsys.readouterr().err
    assert main_render(path, out, workers=1, timeout_s=0, progress=False) == 2
    assert "timeout_s" in capsys.readouterr().err
    assert main_render(path, out, workers=1, retries=-1, progress=False) == 2
    assert not out.exists(), "bad input writes nothing"
    for argv in (
        ["render", str(path), "-o", str(out), "--workers", "0"],
        ["run", "-o", str(out), "--workers", "-1"],
        ["verify", str(out), "--max-mean-offset-px", "0"],
        ["verify", str(out), "--min-detection-rate", "1.5"],
        ["preview", str(out), "--scene", "-1"],
    ):
        with pytest.raises(SystemExit) as info:
            cli_main(argv)
        assert info.value.code == 2, argv
        err = capsys.readouterr().err
        assert argv[-2] in err, err
    assert not out.exists()


def test_render_and_compile_shards_name_the_same_scenes() -> None:
    from render_tag.batch.shards import resolve_shard, shard_slice
    from render_tag.compile import compile_config
    from render_tag_shared.config import parse_config

    config = parse_config(
        {
            "dataset": {"name": "s", "num_scenes": 7, "seed": 3},
            "scenario": {"subject": {"type": "TAGS", "tag_families": ["tag36h11"], "size_mm": 100}},
            "camera": {"resolution": [320, 240], "intrinsics": {"fov": 60}, "samples_per_scene": 1},
        },
        "test",
    )
    whole = compile_config(config)
    for count in (1, 2, 3, 7):
        rendered = []
        for index in range(count):
            shard = resolve_shard(f"{index}/{count}", {})
            compiled = compile_config(config, shard=shard)
            sliced = shard_slice(whole.recipes, shard)
            assert [r.scene_id for r in sliced] == [r.scene_id for r in compiled.recipes]
            rendered += sliced
        assert rendered == whole.recipes


def test_why_an_extension_did_not_enable_reaches_the_user(tmp_path: Path, capsys: Any) -> None:
    """addon_utils only prints why an extension failed; the worker keeps the error and the host shows it."""
    import sys

    from render_tag.batch.launcher import Launcher

    class ExtensionOnly(BpyModuleLauncher):
        def __init__(self) -> None:
            Launcher.__init__(self, addon_module="bl_ext.user_default.no_such_extension")
            self.python = sys.executable

    out = tmp_path / "out"
    recipes = RecipeFile(job_id="flow", recipes=[tiny_recipe(0)])
    assert render_recipes(recipes, out, options(ExtensionOnly(), startup_timeout_s=60)) == 1
    err = capsys.readouterr().err
    assert "no worker started" in err
    assert "cannot enable the extension bl_ext.user_default.no_such_extension" in err
    assert 'Add-on not loaded: "bl_ext.user_default.no_such_extension"' in err
    stopped = [e for e in telemetry(out) if e["event"] in ("worker_restart", "worker_retired")]
    assert stopped and all(e.get("exit_code") == 4 for e in stopped), stopped


def test_resume_and_force_together_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    from render_tag.cli.render import main_render, main_run

    out = tmp_path / "out"
    assert main_render(tmp_path / "missing.json", out, resume=True, force=True) == 2
    assert main_run(None, out, resume=True, force=True) == 2
    assert not out.exists()
