"""The JSON messages between the host's worker pool and a Blender worker.

Both ends validate every message with these models: a worker runs inside Blender's interpreter and the
host in its own, so the wire format is plain JSON (never pickle, which would let either side run code
in the other). This module is pure Python: the ZeroMQ transport lives in the host and the worker.

Every message on the wire is sealed: an HMAC-SHA256 under a secret of the run (new for each pool,
handed to its workers in the environment, never on a command line nor in a log) precedes the JSON.
The loopback sockets are open to any process of the machine; a message that does not carry the run's
MAC is dropped unread, so a process without the secret can neither pose as a worker (hello, reply,
heartbeat) nor as the host. The MAC also names the direction, so a message is never accepted back the
way it came.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from .recipe import SceneRecipe

PROTOCOL_VERSION = 2
"""Bumped when a message changes incompatibly; a worker of another version is refused at hello.
2: every message sealed with the run's MAC (`seal`)."""

KEY_ENV = "RENDER_TAG_WORKER_KEY"
"""The environment variable that hands a worker its run's secret (hex), read once and removed."""
KEY_BYTES = 32
MAC_BYTES = 32
_TO_WORKER = b"render-tag host->worker\0"
_TO_HOST = b"render-tag worker->host\0"

STAGES = ("build", "render", "post", "write")
"""The stages a render is timed in: scene build, Blender's render call, numpy post-processing, files."""

WorkerState = Literal["starting", "idle", "rendering", "stopping"]


class Message(BaseModel):
    """Messages refuse unknown fields, so a version skew shows up as an error, not as a silent default."""

    model_config = ConfigDict(extra="forbid")


class Timings(Message):
    """Seconds spent in each stage of one render request (all cameras of the recipe)."""

    build: float = 0.0
    render: float = 0.0
    post: float = 0.0
    write: float = 0.0

    @property
    def total(self) -> float:
        return self.build + self.render + self.post + self.write


# -- host to worker ----------------------------------------------------------------------------------


class RenderRequest(Message):
    """Render one recipe into `out_dir` (images/ and labels/ below it)."""

    kind: Literal["render"] = "render"
    job_index: int = Field(ge=0)
    attempt: int = Field(1, ge=1)
    recipe: SceneRecipe
    out_dir: str
    camera_indices: list[int] | None = None


class Shutdown(Message):
    """Finish nothing more and exit cleanly."""

    kind: Literal["shutdown"] = "shutdown"
    reason: str = ""


HostMessage = Annotated[RenderRequest | Shutdown, Field(discriminator="kind")]


# -- worker to host ----------------------------------------------------------------------------------


class Hello(Message):
    """Sent once the worker has loaded Blender and the add-on: it is ready for requests."""

    kind: Literal["hello"] = "hello"
    protocol: int = PROTOCOL_VERSION
    worker_id: str
    pid: int
    blender_version: str
    addon_version: str
    python_version: str
    threads: int = Field(0, ge=0, description="Cycles threads per render; 0 means Blender's automatic count")
    startup_s: float = 0.0


class RenderReply(Message):
    """The outcome of one RenderRequest. On error the type and message are the exception's."""

    kind: Literal["reply"] = "reply"
    worker_id: str
    job_index: int
    attempt: int = 1
    status: Literal["ok", "error"]
    image_ids: list[str] = Field(default_factory=list)
    timings: Timings = Timings()
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None
    retryable: bool = Field(
        True, description="False for bad input (errors.InputError, an invalid recipe): never retried"
    )
    rss_mb: float | None = None


class Heartbeat(Message):
    """Sent from the worker's own thread every second or so, also while Blender renders."""

    kind: Literal["heartbeat"] = "heartbeat"
    worker_id: str
    pid: int
    rss_mb: float
    peak_rss_mb: float = 0.0
    cpu_percent: float
    renders_done: int
    state: WorkerState
    job_index: int | None = None
    sent_at: float = 0.0


class WorkerError(Message):
    """A worker that cannot start (no add-on, wrong protocol) says why before it exits."""

    kind: Literal["worker_error"] = "worker_error"
    worker_id: str
    pid: int
    error_type: str
    error_message: str
    traceback: str | None = None


WorkerMessage = Annotated[Hello | RenderReply | Heartbeat | WorkerError, Field(discriminator="kind")]

_HOST_ADAPTER: TypeAdapter[RenderRequest | Shutdown] = TypeAdapter(HostMessage)
_WORKER_ADAPTER: TypeAdapter[Hello | RenderReply | Heartbeat | WorkerError] = TypeAdapter(WorkerMessage)


def encode(message: Message) -> bytes:
    """UTF-8 JSON of a message (NaN refused: a timing that is not a number is a bug)."""
    return json.dumps(message.model_dump(mode="json"), allow_nan=False, separators=(",", ":")).encode()


def decode_host_message(data: bytes) -> RenderRequest | Shutdown:
    """A message the host sent; raises pydantic's ValidationError or ValueError on anything else."""
    return _HOST_ADAPTER.validate_python(_loads(data))


def decode_worker_message(data: bytes) -> Hello | RenderReply | Heartbeat | WorkerError:
    """A message a worker sent; raises pydantic's ValidationError or ValueError on anything else."""
    return _WORKER_ADAPTER.validate_python(_loads(data))


class Unauthenticated(ValueError):
    """A message without the run's MAC: not from the run's host or workers, never decoded."""


def new_key() -> bytes:
    """A fresh 256-bit secret for one run."""
    return secrets.token_bytes(KEY_BYTES)


def seal(message: Message, key: bytes) -> bytes:
    """The MAC of (direction, JSON) followed by the JSON; the direction follows from the message type."""
    direction = _TO_WORKER if isinstance(message, RenderRequest | Shutdown) else _TO_HOST
    payload = encode(message)
    return _mac(key, direction, payload) + payload


def open_host_message(data: bytes, key: bytes) -> RenderRequest | Shutdown:
    """A sealed message from the run's host; Unauthenticated, ValidationError or ValueError otherwise."""
    return decode_host_message(_unseal(data, key, _TO_WORKER))


def open_worker_message(data: bytes, key: bytes) -> Hello | RenderReply | Heartbeat | WorkerError:
    """A sealed message from one of the run's workers; Unauthenticated, ValidationError or ValueError
    otherwise."""
    return decode_worker_message(_unseal(data, key, _TO_HOST))


def _mac(key: bytes, direction: bytes, payload: bytes) -> bytes:
    if len(key) != KEY_BYTES:
        raise ValueError(f"a run's key has {KEY_BYTES} bytes, got {len(key)}")
    return hmac.new(key, direction + payload, hashlib.sha256).digest()


def _unseal(data: bytes, key: bytes, direction: bytes) -> bytes:
    mac, payload = data[:MAC_BYTES], data[MAC_BYTES:]
    if len(data) <= MAC_BYTES or not hmac.compare_digest(mac, _mac(key, direction, payload)):
        raise Unauthenticated(f"a message of {len(data)} bytes without this run's MAC (dropped unread)")
    return payload


def _loads(data: bytes) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a JSON message: {exc}") from exc
