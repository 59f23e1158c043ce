"""The render options: one model, one set of defaults, validated once (bad values are bad input, exit 2).

`WorkerLimits` is what the pool needs to keep workers healthy; `RenderOptions` adds what a render of a
recipe file into OUT needs. The CLI, `render_recipes` and the pool all take these models, never their
fields restated as keywords.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from render_tag_shared.errors import InputError

from .launcher import Launcher

__all__ = ["RenderOptions", "WorkerLimits", "parse_dask_address"]

_CLI_NAMES = {
    "workers": "--workers",
    "shard": "--shard",
    "blender": "--blender",
    "dask": "--dask",
    "chunk_size": "--chunk-size",
}
"""Options the command line sets, named as the user typed them in errors."""


def parse_dask_address(text: str) -> tuple[str, int | None]:
    """`local` → ("local", None), `local:N` → ("local", N), `tcp://HOST:PORT` → (it, None); ValueError
    otherwise."""
    text = text.strip()
    if text == "local":
        return "local", None
    if text.startswith("local:"):
        count = text.removeprefix("local:")
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"local:N needs N >= 1 workers, got {text!r}")
        return "local", int(count)
    if text.startswith("tcp://"):
        host, _, port = text.removeprefix("tcp://").rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"expected tcp://HOST:PORT, got {text!r}")
        return text, None
    raise ValueError(f"expected local, local:N or tcp://HOST:PORT, got {text!r}")


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
            message = str(first["msg"]).removeprefix("Value error, ")
            raise InputError(_CLI_NAMES.get(name, name), "", f"{message}{given}") from None


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

    @field_validator("dask")
    @classmethod
    def _dask(cls, value: str | None) -> str | None:
        """Checked before anything is written: the address, and that the `dask` extra is installed."""
        if value is None:
            return None
        try:
            parse_dask_address(value)
        except ValueError as exc:
            raise ValueError(str(exc).rpartition(", got")[0]) from None
        if importlib.util.find_spec("distributed") is None:
            raise ValueError("needs Dask distributed: pip install 'render-tag[dask]'")
        return value.strip()

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)
        if self.resume and self.force:
            raise InputError("--resume", "", "--resume and --force contradict each other: pick one")
