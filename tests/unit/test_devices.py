"""`renderer.device`: the pure choice of a Cycles device from what Blender reports (no GPU needed).

The add-on (at configure time) and the host (before workers start) both decide with `choose_device`;
tests/blender/test_devices.py checks the same rules against the real `bpy` module, which reports no GPU
on these machines.
"""

from __future__ import annotations

import itertools

import pytest

from render_tag_shared.config import GenConfig, parse_config
from render_tag_shared.devices import (
    BACKEND_PREFERENCE,
    ComputeDevice,
    GpuUnavailableError,
    choose_device,
    gpu_backends,
)
from render_tag_shared.errors import InputError
from render_tag_shared.recipe import SCHEMA_VERSION, RendererSettings

CPU = ComputeDevice("CPU", "AMD EPYC", "CPU")


def gpus(backend: str, count: int = 1) -> list[ComputeDevice]:
    return [ComputeDevice(backend, f"{backend} card {n}", f"{backend}_{n}") for n in range(count)]


def test_cpu_is_the_cpu_whatever_blender_reports() -> None:
    for devices in ([], [CPU], [CPU, *gpus("OPTIX"), *gpus("CUDA", 2)]):
        choice = choose_device("cpu", devices)
        assert (choice.device, choice.backend, choice.devices, choice.fallback) == ("CPU", None, (), None)
        assert choice.environment() == {"device_requested": "cpu", "device": "CPU"}


@pytest.mark.parametrize("devices", [[], [CPU], [CPU, ComputeDevice("NONE", "none")]])
def test_gpu_without_a_gpu_is_an_input_error_naming_the_field(devices: list[ComputeDevice]) -> None:
    with pytest.raises(GpuUnavailableError) as info:
        choose_device("gpu", devices, ["CUDA", "OPTIX", "HIP", "ONEAPI"])
    error = info.value
    assert isinstance(error, InputError) and error.field == "renderer.device"
    assert "no GPU device" in str(error) and "CUDA, OPTIX, HIP, ONEAPI" in str(error)
    assert "use cpu or auto" in str(error)


@pytest.mark.parametrize("devices", [[], [CPU]])
def test_auto_without_a_gpu_falls_back_to_the_cpu_and_says_why(devices: list[ComputeDevice]) -> None:
    choice = choose_device("auto", devices, ["CUDA", "HIP"])
    assert (choice.device, choice.backend) == ("CPU", None)
    assert (
        choice.fallback is not None and "no GPU device" in choice.fallback and "CUDA, HIP" in choice.fallback
    )
    env = choice.environment()
    assert env["device_requested"] == "auto" and env["device"] == "CPU"
    assert env["device_fallback"] == choice.fallback


@pytest.mark.parametrize("request_", ["gpu", "auto"])
@pytest.mark.parametrize("backend", [*BACKEND_PREFERENCE, "VULKAN"])
def test_a_single_backend_is_used_with_all_its_devices(request_: str, backend: str) -> None:
    cards = gpus(backend, 2)
    choice = choose_device(request_, [CPU, *cards])
    assert (choice.device, choice.backend, choice.devices, choice.fallback) == (
        "GPU",
        backend,
        tuple(cards),
        None,
    )
    env = choice.environment()
    assert env["gpu_backend"] == backend and env["gpu_devices"] == f"{backend} card 0, {backend} card 1"
    assert "device_fallback" not in env


def test_optix_over_cuda_for_the_same_cards() -> None:
    devices = [CPU, *gpus("CUDA", 2), *gpus("OPTIX", 2)]
    for order in itertools.permutations(devices):
        assert choose_device("gpu", order).backend == "OPTIX"


def test_more_devices_beat_a_better_api() -> None:
    """OptiX lists only the cards it supports: when CUDA sees more of them, CUDA renders on all."""
    assert choose_device("auto", [*gpus("OPTIX", 1), *gpus("CUDA", 2)]).backend == "CUDA"
    assert choose_device("auto", [*gpus("OPTIX", 1), *gpus("HIP", 3)]).backend == "HIP"


def test_backend_order_on_a_tie_is_fixed_and_unknown_backends_come_last() -> None:
    """Every pair of backends with one device each: the one earlier in BACKEND_PREFERENCE wins,
    whatever order Blender lists them in; an unknown backend loses to every known one."""
    known = list(BACKEND_PREFERENCE)
    for better, worse in itertools.combinations([*known, "VULKAN", "ZZZ"], 2):
        for order in ([*gpus(better), *gpus(worse)], [*gpus(worse), *gpus(better)]):
            assert choose_device("gpu", order).backend == better, (better, worse)


def test_cpu_entries_and_duplicates_are_not_gpus() -> None:
    card = gpus("HIP")[0]
    backends = gpu_backends([CPU, card, card, ComputeDevice("cpu", "x")])
    assert backends == {"HIP": (card,)}
    assert choose_device("gpu", [card, card]).devices == (card,)


def test_requests_are_case_insensitive_and_nothing_else_is_accepted() -> None:
    assert choose_device("GPU", gpus("CUDA")).requested == "gpu"
    assert choose_device("Auto", []).device == "CPU"
    for bad in ("", "cuda", "gpu0", "any"):
        with pytest.raises(ValueError, match="cpu, gpu, auto"):
            choose_device(bad, [])


# --------------------------------------------------------------------------- the contract


def test_recipe_device_defaults_to_auto_and_old_recipes_still_load() -> None:
    assert RendererSettings().device == "auto"
    assert tuple(map(int, SCHEMA_VERSION.split("."))) >= (1, 2, 0)  # 1.2.0 added cpu | gpu | auto
    assert RendererSettings.model_validate({"device": "CPU"}).device == "cpu"  # contract 1.1
    assert RendererSettings.model_validate({"device": "GPU"}).device == "gpu"  # now strict, not silent
    for value in ("cpu", "gpu", "auto"):
        assert RendererSettings.model_validate({"device": value}).device == value
    with pytest.raises(ValueError, match="device"):
        RendererSettings.model_validate({"device": "cuda"})


def _config(renderer: dict[str, object]) -> GenConfig:
    return parse_config(
        {
            "dataset": {"name": "d", "num_scenes": 1, "seed": 1},
            "scenario": {"subject": {"type": "TAGS", "tag_families": ["tag36h11"], "size_mm": 100}},
            "camera": {"resolution": [64, 48], "intrinsics": {"fov": 60}},
            "renderer": renderer,
        },
        "test.yaml",
    )


def test_config_device_reaches_every_recipe() -> None:
    from render_tag.compile import compile_config

    assert _config({}).renderer.device == "auto"
    for device in ("cpu", "gpu", "auto"):
        recipes = compile_config(_config({"device": device}), source="test.yaml").recipes
        assert recipes and {r.renderer.device for r in recipes} == {device}
    with pytest.raises(InputError) as info:
        _config({"device": "metal"})
    assert info.value.source == "test.yaml" and info.value.field == "renderer.device"
