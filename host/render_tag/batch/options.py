"""The render options: one model, one set of defaults, validated once (bad values are bad input, exit 2).

`WorkerLimits` is what the pool needs to keep workers healthy; `RenderOptions` adds what a render of a
recipe file into OUT needs. The CLI, `render_recipes` and the pool all take these models, never their
fields restated as keywords.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from render_tag_shared.errors import InputError

from .launcher import Launcher

__all__ = ["RenderOptions", "WorkerLimits"]

_CLI_NAMES = {
    "workers": "--workers",
    "shard": "--shard",
    "blender": "--blender",
    "dask": "--dask",
    "chunk_size": "--chunk-size",
}
"""Options the command line sets, named as the user typed them in errors."""


class WorkerLimits(BaseModel):
    """Limits of the pool; the defaults suit Cycles scenes of a few seconds each."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    timeout_s: float = Field(900.0, gt=0, description="a render longer than this is killed and retried")
    startup_timeout_s: float = Field(180.0, gt=0, description="a worker not ready by then is restarted")
    max_renders_per_worker: int = Field(500, ge=1, description="a worker is recycled after this many")
    memory_limit_mb: float | None = Field(4096.0, gt=0, description="a worker above it is recycled")
    retries: int = Field(2, ge=0, description="attempts after the first, each on another worker")
    heartbeat_s: float = Field(1.0, gt=0)
    heartbeat_timeout_s: float = Field(60.0, gt=0)
    shutdown_grace_s: float = Field(10.0, gt=0)
    telemetry_every_s: float = Field(5.0, gt=0)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            name = str(first["loc"][0]) if first["loc"] else ""
            given = f", got {first['input']!r}" if "input" in first else ""
            raise InputError(_CLI_NAMES.get(name, name), "", f"{first['msg']}{given}") from None


class RenderOptions(WorkerLimits):
    """Everything `render` and `run` take besides the recipes and OUT."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    workers: int | None = Field(None, ge=1, description="None: sized from the machine")
    resume: bool = False
    force: bool = False
    shard: str | None = None
    blender: str | None = None
    progress: bool = True
    merge: bool = True
    launcher: Launcher | None = Field(None, description="None: from `blender` (see make_launcher)")
    dask: str | None = Field(None, description="`local[:N]` or `tcp://HOST:PORT`: render on Dask distributed")
    chunk_size: int | None = Field(None, ge=1, description="scenes per Dask task; None: from the job's size")

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)
        if self.resume and self.force:
            raise InputError("--resume", "", "--resume and --force contradict each other: pick one")
