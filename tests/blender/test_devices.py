"""`renderer.device` on the real `bpy` module: what Cycles reports here, and the two paths these
machines (no GPU) take: `gpu` refused before anything renders, `auto` on the CPU with a warning and
a `render_environment` that says so. A machine with a GPU takes the other branch of each test and
checks that instead (nothing is skipped)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from render_tag_shared.devices import GpuUnavailableError, choose_device
from render_tag_shared.recipe import SceneRecipe

from ..blender_helpers import addon_session, tag_recipe

_ = addon_session  # the fixture, imported for pytest


def _recipe(device: str) -> SceneRecipe:
    recipe = SceneRecipe.model_validate(tag_recipe(samples=1))
    return recipe.model_copy(update={"renderer": recipe.renderer.model_copy(update={"device": device})})


def _renderer() -> Any:
    import importlib

    return importlib.import_module("addon.core.renderer")


def test_cycles_reports_its_backends_and_devices(addon_session: Any) -> None:
    devices, backends = _renderer().cycles_devices()
    assert backends and "NONE" not in backends and "CUDA" in backends  # every Linux build has CUDA
    assert all(d.backend in backends for d in devices)
    assert addon_session.compute_devices() == {
        "backends": backends,
        "devices": [[d.backend, d.name, d.id] for d in devices],
    }


def test_gpu_without_a_gpu_is_refused_before_rendering(addon_session: Any, tmp_path: Path) -> None:
    devices, backends = _renderer().cycles_devices()
    if devices:  # a machine with a GPU renders on it
        (result,) = addon_session.render_recipe(_recipe("gpu"), tmp_path)
        environment = json.loads(Path(result.labels_path).read_text())["render_environment"]
        assert (
            environment["device"] == "GPU"
            and environment["gpu_backend"] == choose_device("gpu", devices).backend
        )
        return
    with pytest.raises(GpuUnavailableError) as info:
        addon_session.render_recipe(_recipe("gpu"), tmp_path)
    assert info.value.field == "renderer.device" and "no GPU device" in str(info.value)
    assert all(b in str(info.value) for b in backends)
    assert not any(tmp_path.iterdir()), "nothing is written when the device is refused"


def test_auto_falls_back_to_the_cpu_with_a_warning_and_says_so_in_the_labels(
    addon_session: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    devices, _ = _renderer().cycles_devices()
    (result,) = addon_session.render_recipe(_recipe("auto"), tmp_path)
    environment = json.loads(Path(result.labels_path).read_text())["render_environment"]
    assert environment["device_requested"] == "auto"
    if devices:
        assert environment["device"] == "GPU" and "device_fallback" not in environment
        return
    assert environment["device"] == "CPU" and "no GPU device" in environment["device_fallback"]
    assert "warning: renderer.device auto" in capfd.readouterr().err


def test_cpu_is_recorded_as_asked(addon_session: Any, tmp_path: Path) -> None:
    (result,) = addon_session.render_recipe(_recipe("cpu"), tmp_path)
    environment = json.loads(Path(result.labels_path).read_text())["render_environment"]
    assert (environment["device_requested"], environment["device"]) == ("cpu", "CPU")
    assert "device_fallback" not in environment and "gpu_backend" not in environment
