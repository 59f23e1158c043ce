"""`renderer.device: gpu` is checked against the machine before any worker renders (exit 2 if no GPU).

The add-on checks again when it configures Cycles (`addon/core/renderer.py`), so a recipe rendered any
other way (the N-panel, `blender -b --python-expr`) is refused too; checking here first keeps a run from
starting workers and failing every scene one by one when the answer is already known.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from render_tag_shared.devices import GpuUnavailableError, choose_device
from render_tag_shared.recipe import SceneRecipe

from .launcher import Launcher

__all__ = ["require_devices"]

log = logging.getLogger(__name__)


def gpu_scenes(recipes: Sequence[SceneRecipe]) -> list[int]:
    """Indices of the recipes that must render on a GPU (Cycles with `device: gpu`)."""
    return [i for i, r in enumerate(recipes) if r.renderer.mode == "cycles" and r.renderer.device == "gpu"]


def require_devices(recipes: Sequence[SceneRecipe], launcher: Launcher, source: str) -> None:
    """GpuUnavailableError (an InputError: exit 2) naming the first scene that asks for a GPU this
    machine's Blender does not report. Asks Blender (a second or two) only when some recipe says `gpu`."""
    wanting = gpu_scenes(recipes)
    if not wanting:
        return
    try:
        devices, backends = launcher.compute_devices()
    except RuntimeError as exc:  # the workers will not start either; the pool reports that better
        log.warning("could not ask Blender for its GPUs (%s); each worker checks before it renders", exc)
        return
    try:
        choose_device("gpu", devices, backends)
    except GpuUnavailableError as exc:
        first = recipes[wanting[0]].scene_id
        more = f" and {len(wanting) - 1} more" if len(wanting) > 1 else ""
        reason = f"{exc.reason}, for scene_id {first}{more}"
        raise GpuUnavailableError(reason, source=source, field="renderer.device") from None
