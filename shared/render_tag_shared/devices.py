"""Which device Cycles renders on: `renderer.device` (cpu | gpu | auto) against what Blender reports.

Pure: the add-on lists the devices Cycles sees (`addon/core/renderer.py`), the host asks a worker for
that list before rendering (`render_tag.batch.devices`), and both decide here, so a recipe is judged
the same way in both places and the rules are tested without a GPU.

Rules: `cpu` always renders on the CPU. `gpu` renders on every device of the best backend and is an
error when Blender reports none (never a silent CPU render). `auto` is `gpu` when a device exists and
the CPU otherwise, with the reason kept for the log and the label's `render_environment`.
The best backend has the most devices; on a tie the faster API of the same hardware wins (OptiX over
CUDA on NVIDIA cards), then a fixed order, so the choice never depends on the order Blender lists them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, cast

from .errors import InputError

DeviceRequest = Literal["cpu", "gpu", "auto"]
DEVICE_REQUESTS: tuple[DeviceRequest, ...] = ("cpu", "gpu", "auto")

BACKEND_PREFERENCE = ("OPTIX", "CUDA", "HIP", "METAL", "ONEAPI")
"""Cycles' compute backends (its `compute_device_type` ids), best first; unknown ones rank after these."""


@dataclass(frozen=True)
class ComputeDevice:
    """One device as Cycles' preferences list it: backend (`CUDA`, `OPTIX`, ... or `CPU`), name, id."""

    backend: str
    name: str
    id: str = ""


@dataclass(frozen=True)
class DeviceChoice:
    """What to render on: `CPU` or `GPU` (Cycles' `scene.cycles.device`), the backend and its devices."""

    requested: DeviceRequest
    device: Literal["CPU", "GPU"]
    backend: str | None = None
    devices: tuple[ComputeDevice, ...] = ()
    fallback: str | None = None
    """Why `auto` rendered on the CPU (None when it did not fall back)."""

    def environment(self) -> dict[str, str]:
        """The fields a label's `render_environment` records about the device."""
        env: dict[str, str] = {"device_requested": self.requested, "device": self.device}
        if self.backend is not None:
            env["gpu_backend"] = self.backend
            env["gpu_devices"] = ", ".join(d.name for d in self.devices)
        if self.fallback is not None:
            env["device_fallback"] = self.fallback
        return env


class GpuUnavailableError(InputError):
    """`renderer.device: gpu` and Blender reports no GPU: bad input for this machine (exit 2), not a
    failure a retry on another worker of the same machine could mend."""

    def __init__(self, reason: str, source: str = "recipe", field: str = "renderer.device") -> None:
        self.reason = reason
        super().__init__(source, field, f"gpu requested but {reason}; use cpu or auto")


def _rank(backend: str) -> tuple[int, str]:
    known = backend in BACKEND_PREFERENCE
    return (BACKEND_PREFERENCE.index(backend) if known else len(BACKEND_PREFERENCE), backend)


def gpu_backends(devices: Iterable[ComputeDevice]) -> dict[str, tuple[ComputeDevice, ...]]:
    """The GPU devices by backend, best backend first (CPU entries are dropped, duplicates kept once)."""
    by_backend: dict[str, list[ComputeDevice]] = {}
    for device in devices:
        if device.backend.upper() in ("CPU", "NONE", ""):
            continue
        entries = by_backend.setdefault(device.backend.upper(), [])
        if device not in entries:
            entries.append(device)
    order = sorted(by_backend, key=lambda b: (-len(by_backend[b]), *_rank(b)))
    return {backend: tuple(by_backend[backend]) for backend in order}


NO_GPU = "Blender reports no GPU device (Cycles backends tried: {})"


def no_gpu_message(backends_tried: Iterable[str] = BACKEND_PREFERENCE) -> str:
    tried = ", ".join(backends_tried) or "none"
    return NO_GPU.format(tried)


def choose_device(
    requested: str, devices: Iterable[ComputeDevice], backends_tried: Iterable[str] = BACKEND_PREFERENCE
) -> DeviceChoice:
    """The device a Cycles render of `renderer.device == requested` uses, given Blender's device list.

    GpuUnavailableError for `gpu` without a GPU; ValueError for a request that is not cpu/gpu/auto.
    """
    if requested.lower() not in DEVICE_REQUESTS:
        raise ValueError(f"renderer.device must be one of {', '.join(DEVICE_REQUESTS)}, got {requested!r}")
    request = cast(DeviceRequest, requested.lower())
    if request == "cpu":
        return DeviceChoice("cpu", "CPU")
    backends = gpu_backends(devices)
    if backends:
        backend, chosen = next(iter(backends.items()))
        return DeviceChoice(request, "GPU", backend, chosen)
    reason = no_gpu_message(list(backends_tried))
    if request == "gpu":
        raise GpuUnavailableError(reason)
    return DeviceChoice("auto", "CPU", fallback=reason)
