"""Worker health: each slot of the pool, its state, and the checks that restart, recycle or retire it.

A slot is one place in the pool; its worker process is replaced on every restart (a new generation,
a new identity). The supervisor starts workers, hears their hellos and heartbeats, and finds a crash,
a render past its timeout, a lost heartbeat, a failed start-up, a memory ceiling and a render count.
It never touches jobs: the pool hands them out and retries them.

Heartbeats come from a thread of the worker's own, so they say the process is alive, not that its
render makes progress: a render is bounded by `timeout_s` from the moment it was handed out, whatever
the heartbeats say, and a stuck render thread holds its job no longer than that.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from render_tag_shared.messages import PROTOCOL_VERSION, Heartbeat, Hello, Shutdown, WorkerError

from .launcher import STARTUP_FAILED, Launcher, WorkerProcess, WorkerSettings
from .options import WorkerLimits
from .transport import Transport, new_identity

__all__ = ["MAX_STARTUP_STRIKES", "PoolError", "Slot", "Supervisor", "WorkerState"]

MAX_STARTUP_STRIKES = 5
"""A slot whose worker fails to start this many times in a row (after others started) is retired."""


class PoolError(RuntimeError):
    """The pool cannot go on: no worker ever started (the message says why the last one failed)."""


class WorkerState(StrEnum):
    """Where a slot's worker is in its life."""

    DOWN = "down"  # no process
    STARTING = "starting"  # launched, no hello yet
    IDLE = "idle"  # ready for a job
    BUSY = "busy"  # rendering a job
    STOPPING = "stopping"  # asked to exit (recycle); the next worker starts when it has
    RETIRED = "retired"  # failed to start too often: given up


@dataclass(eq=False)
class Slot:
    """One place in the pool and its current worker."""

    index: int
    generation: int = 0
    process: WorkerProcess | None = None
    identity: bytes = field(default=b"", repr=False)  # the ZeroMQ routing id: random, never logged
    state: WorkerState = WorkerState.DOWN
    started_at: float = 0.0
    state_since: float = 0.0
    last_beat: float = 0.0
    job_index: int | None = None
    renders: int = 0
    rss_mb: float = 0.0
    cpu_percent: float = 0.0
    recycle_reason: str | None = None
    last_telemetry: float = 0.0
    hello: Hello | None = None
    error: WorkerError | None = None
    startup_strikes: int = 0
    log_path: Path | None = None

    @property
    def worker_id(self) -> str:
        """The worker's name in messages, telemetry and the manifest (the identity is its secret)."""
        return f"w{self.index}.{self.generation}" if self.generation else f"w{self.index}"

    def enter(self, state: WorkerState) -> None:
        self.state, self.state_since = state, time.monotonic()


class Supervisor:
    """Starts, watches and stops the workers of every slot; `emit` writes their telemetry."""

    def __init__(
        self,
        launcher: Launcher,
        transport: Transport,
        limits: WorkerLimits,
        *,
        workers: int,
        threads: int,
        log_dir: Path | None,
        telemetry: Callable[[dict[str, Any]], None] | None,
    ) -> None:
        self.launcher = launcher
        self.transport = transport
        self.limits = limits
        self.threads = threads
        self.log_dir = log_dir
        self._telemetry = telemetry
        self.slots = [Slot(index=i) for i in range(max(1, workers))]
        self.by_identity: dict[bytes, Slot] = {}
        self.ready_once = False
        self.startup_failures = 0
        self.restarts: dict[str, int] = {}
        self.versions: dict[str, str] = {}

    # -- lifecycle -----------------------------------------------------------------------------------

    def start_all(self) -> None:
        for slot in self.slots:
            if slot.state is WorkerState.DOWN:
                self.start(slot, "start")

    def start(self, slot: Slot, reason: str) -> None:
        slot.generation += 1
        slot.identity = new_identity()
        slot.log_path = self.log_dir / f"worker-{slot.index}.log" if self.log_dir else None
        settings = WorkerSettings(
            worker_id=slot.worker_id,
            request_endpoint=self.transport.request_endpoint,
            heartbeat_endpoint=self.transport.heartbeat_endpoint,
            threads=self.threads,
            heartbeat_s=self.limits.heartbeat_s,
            log_path=slot.log_path,
            identity=slot.identity.decode(),
            key=self.transport.key,
        )
        slot.process = self.launcher.start(settings)
        self.by_identity[slot.identity] = slot
        now = time.monotonic()
        slot.state, slot.started_at, slot.state_since, slot.last_beat = WorkerState.STARTING, now, now, now
        slot.renders, slot.rss_mb, slot.recycle_reason, slot.job_index, slot.hello = 0, 0.0, None, None, None
        self.emit("worker_started", slot, pid=slot.process.pid, reason=reason, launcher=self.launcher.kind)

    def restart(self, slot: Slot, reason: str, exit_code: int | None = None) -> None:
        """Kills the worker's process group and starts a fresh worker in its place."""
        process = slot.process
        if process is not None:
            process.kill()
            exit_code = process.poll() if exit_code is None else exit_code
        self.restarts[reason] = self.restarts.get(reason, 0) + 1
        self.emit(
            "worker_restart",
            slot,
            reason=reason,
            exit_code=exit_code,
            renders=slot.renders,
            rss_mb=slot.rss_mb,
            job_index=slot.job_index,
            error=slot.error.error_message[:2000] if slot.error else None,
        )
        self.by_identity.pop(slot.identity, None)
        self.start(slot, reason)

    def retire(self, slot: Slot, reason: str, exit_code: int | None) -> None:
        """A slot whose worker keeps failing to start is given up; the others carry on."""
        if slot.process is not None:
            slot.process.kill()
        self.emit(
            "worker_retired",
            slot,
            reason=reason,
            exit_code=exit_code,
            strikes=slot.startup_strikes,
            error=slot.error.error_message[:2000] if slot.error else None,
        )
        self.by_identity.pop(slot.identity, None)
        slot.process, slot.state, slot.job_index = None, WorkerState.RETIRED, None
        if all(s.state is WorkerState.RETIRED for s in self.slots):
            raise PoolError(f"every worker failed to start {MAX_STARTUP_STRIKES} times in a row ({reason})")

    def recycle(self, slot: Slot) -> None:
        """A planned restart: ask the idle worker to exit, start the next one when it has."""
        reason = slot.recycle_reason or "recycle"
        self.restarts[reason] = self.restarts.get(reason, 0) + 1
        self.emit("worker_recycle", slot, reason=reason, renders=slot.renders, rss_mb=slot.rss_mb)
        if self.transport.send(slot.identity, Shutdown(reason=reason)):
            slot.enter(WorkerState.STOPPING)
        else:
            self.restart(slot, reason)

    def plan_recycle(self, slot: Slot) -> None:
        """Plans a restart after this render. A fresh worker always renders at least once, so a ceiling
        below Blender's own footprint costs a restart per scene, never a restart loop."""
        limit = self.limits.memory_limit_mb
        if limit is not None and slot.rss_mb > limit and slot.renders > 0:
            slot.recycle_reason = "memory_limit"
        elif slot.renders >= self.limits.max_renders_per_worker:
            slot.recycle_reason = "max_renders"

    def close(self) -> None:
        """Stops every worker: a Shutdown to the idle ones, SIGKILL to the rest and to stragglers."""
        waiting = []
        for slot in self.slots:
            if slot.process is None:
                continue
            if (
                slot.state is WorkerState.IDLE
                and slot.process.poll() is None
                and self.transport.send(slot.identity, Shutdown(reason="done"))
            ):
                waiting.append(slot)
            else:
                slot.process.kill()
        deadline = time.monotonic() + self.limits.shutdown_grace_s
        for slot in waiting:
            assert slot.process is not None
            if slot.process.wait(max(0.0, deadline - time.monotonic())) is None:
                slot.process.kill()
        for slot in self.slots:
            if slot.process is not None:
                self.emit("worker_stopped", slot, exit_code=slot.process.poll(), renders=slot.renders)
                slot.process = None
                slot.state = WorkerState.DOWN

    # -- what workers say ----------------------------------------------------------------------------

    def on_hello(self, slot: Slot, hello: Hello) -> None:
        if hello.protocol != PROTOCOL_VERSION:
            slot.error = WorkerError(
                worker_id=hello.worker_id,
                pid=hello.pid,
                error_type="ProtocolMismatch",
                error_message=f"worker speaks protocol {hello.protocol}, host {PROTOCOL_VERSION}",
            )
            self.startup_failures += 1
            self.restart(slot, "protocol_mismatch")
            return
        slot.hello = hello
        slot.enter(WorkerState.IDLE)
        slot.startup_strikes = 0
        slot.last_beat = time.monotonic()
        self.ready_once = True
        self.startup_failures = 0
        self.versions = {"blender": hello.blender_version, "addon": hello.addon_version}
        self.emit(
            "worker_ready",
            slot,
            pid=hello.pid,
            startup_s=hello.startup_s,
            threads=hello.threads,
            blender_version=hello.blender_version,
            addon_version=hello.addon_version,
        )

    def on_error(self, slot: Slot, error: WorkerError) -> None:
        slot.error = error
        self.emit("worker_error", slot, error_type=error.error_type, error_message=error.error_message[:2000])

    def on_heartbeat(self, beat: Heartbeat) -> None:
        slot = next((s for s in self.by_identity.values() if s.worker_id == beat.worker_id), None)
        if slot is None:
            return
        slot.last_beat = time.monotonic()
        slot.rss_mb, slot.cpu_percent = beat.rss_mb, beat.cpu_percent
        limit = self.limits.memory_limit_mb
        if limit is not None and beat.rss_mb > limit and slot.renders > 0 and slot.recycle_reason is None:
            slot.recycle_reason = "memory_limit"
        if slot.last_beat - slot.last_telemetry >= self.limits.telemetry_every_s:
            slot.last_telemetry = slot.last_beat
            self.emit(
                "heartbeat",
                slot,
                pid=beat.pid,
                rss_mb=beat.rss_mb,
                peak_rss_mb=beat.peak_rss_mb,
                cpu_percent=beat.cpu_percent,
                renders_done=beat.renders_done,
                state=beat.state,
                job_index=beat.job_index,
            )

    # -- health --------------------------------------------------------------------------------------

    def problem(self, slot: Slot, now: float) -> tuple[str, int | None] | None:
        """Why this slot's worker must be replaced now (reason, exit code), or None while it is well.

        A recycled worker that has exited is replaced here too (and None returned)."""
        process = slot.process
        if process is None:
            return None
        code = process.poll()
        limits = self.limits
        if code is not None:
            if slot.state is WorkerState.STOPPING:
                self.emit(
                    "worker_stopped", slot, exit_code=code, renders=slot.renders, reason=slot.recycle_reason
                )
                self.start(slot, slot.recycle_reason or "recycle")
                return None
            if slot.state is WorkerState.STARTING:
                self._read_startup_error(slot)
                return "startup_failed", code
            return "crash", code
        elapsed = now - slot.state_since
        if slot.state is WorkerState.STARTING and now - slot.started_at > limits.startup_timeout_s:
            return "startup_timeout", None
        if slot.state is WorkerState.BUSY and elapsed > limits.timeout_s:
            return "render_timeout", None
        if (
            slot.state in (WorkerState.IDLE, WorkerState.BUSY)
            and now - slot.last_beat > limits.heartbeat_timeout_s
        ):
            return "heartbeat_lost", None
        if slot.state is WorkerState.STOPPING and elapsed > limits.shutdown_grace_s:
            return "stop_timeout", None
        return None

    def replace(self, slot: Slot, reason: str, code: int | None) -> None:
        """Replaces an unwell worker (see `problem`), or retires a slot that keeps failing to start."""
        if reason in ("startup_failed", "startup_timeout"):
            self.startup_failures += 1
            slot.startup_strikes += 1
        if slot.startup_strikes >= MAX_STARTUP_STRIKES and self.ready_once:
            self.retire(slot, reason, code)
        else:
            self.restart(slot, reason, exit_code=code)

    def check_startup(self) -> None:
        """Gives up (PoolError) when workers keep failing to start and none ever did."""
        if self.ready_once:
            return
        limit = max(3, 2 * len(self.slots))
        if self.startup_failures >= limit:
            why = next((s.error for s in self.slots if s.error is not None), None)
            detail = (
                f"{why.error_type}: {why.error_message}" if why else "no reply before the start-up timeout"
            )
            logs = f"; see {self.log_dir}" if self.log_dir else ""
            raise PoolError(
                f"no worker started ({self.startup_failures} attempts with {self.launcher.describe()}): "
                f"{detail}{logs}"
            )

    def _read_startup_error(self, slot: Slot) -> None:
        """A worker that could not load the add-on says why in its log (it has no socket yet)."""
        if slot.error is not None or slot.log_path is None:
            return
        try:
            lines = slot.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return
        said = [line.removeprefix(STARTUP_FAILED) for line in lines if line.startswith(STARTUP_FAILED)]
        if said:
            error_type, _, message = said[-1].partition(": ")
            slot.error = WorkerError(
                worker_id=slot.worker_id,
                pid=slot.process.pid if slot.process else 0,
                error_type=error_type,
                error_message=message,
            )

    def emit(self, event: str, slot: Slot | None, **fields: Any) -> None:
        if self._telemetry is None:
            return
        record: dict[str, Any] = {"t": round(time.time(), 3), "event": event}
        if slot is not None:
            record["worker"] = slot.worker_id
            record["slot"] = slot.index
        record.update(fields)
        self._telemetry(record)
