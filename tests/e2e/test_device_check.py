"""`render` of recipes that say `renderer.device: gpu` on a machine without a GPU: exit 2 before any
worker starts, naming the file and the field, with nothing written. The host asks the real add-on's
worker (the `bpy` module) what Cycles reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from render_tag.batch.launcher import BpyModuleLauncher
from render_tag.cli.render import main_render
from render_tag_shared.recipe import SceneRecipe

from .test_pool import tiny_recipe, write_recipes


def _with_device(recipe: SceneRecipe, device: str) -> SceneRecipe:
    return recipe.model_copy(update={"renderer": recipe.renderer.model_copy(update={"device": device})})


def test_the_host_asks_a_worker_for_its_devices() -> None:
    devices, backends = BpyModuleLauncher().compute_devices()
    assert "CUDA" in backends and "NONE" not in backends
    assert all(d.backend in backends for d in devices)


def test_gpu_without_a_gpu_is_exit_2_before_any_worker_renders(tmp_path: Path, capsys: Any) -> None:
    devices, _ = BpyModuleLauncher().compute_devices()
    recipes = [
        _with_device(tiny_recipe(0), "cpu"),
        _with_device(tiny_recipe(1), "gpu"),
        _with_device(tiny_recipe(2), "gpu"),
    ]
    path = write_recipes(tmp_path / "recipes.json", recipes)
    out = tmp_path / "out"
    code = main_render(path, out, workers=1, progress=False)
    if devices:  # a machine with a GPU renders them
        assert code == 0
        return
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"{path}: renderer.device: gpu requested but Blender reports no GPU device" in err
    assert "scene_id 1 and 1 more" in err and "use cpu or auto" in err
    assert not out.exists(), "bad input writes nothing"
