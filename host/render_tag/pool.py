"""N persistent Blender workers over ZeroMQ: start once, render many, restart when something goes wrong.

The host binds two loopback sockets on ports the OS picks (so two jobs on one machine never collide): a
ROUTER that sends each request to one chosen worker and receives its reply, and a PULL that collects
heartbeats. Everything runs in the caller's thread in one poll loop, so there are no locks: the loop
dispatches jobs to idle workers, reads replies and heartbeats, and checks every worker for a crash, a
render past its timeout, a lost heartbeat, a failed start-up, a memory ceiling and a render count.

A job that fails (error reply, crash, timeout) is retried on another worker; after `retries` retries it
is reported as failed with its last error, and the rest of the job goes on.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq
from pydantic import ValidationError

from render_tag_shared.messages import (
    PROTOCOL_VERSION,
    Heartbeat,
    Hello,
    RenderReply,
    RenderRequest,
    Shutdown,
    Timings,
    WorkerError,
    decode_worker_message,
    encode,
)
from render_tag_shared.recipe import SceneRecipe

from .launcher import Launcher, WorkerProcess, WorkerSettings

__all__ = ["Job", "JobOutcome", "PoolError", "PoolSettings", "WorkerPool"]

LOOPBACK = "tcp://127.0.0.1"
MAX_STARTUP_STRIKES = 5
"""A slot whose worker fails to start this many times in a row (after others started) is retired."""


class PoolError(RuntimeError):
    """The pool cannot go on: no worker ever started (the message says why the last one failed)."""


@dataclass
class PoolSettings:
    """Limits of the pool; the defaults suit Cycles scenes of a few seconds each."""

    workers: int = 1
    threads_per_worker: int = 0
    timeout_s: float = 600.0
    startup_timeout_s: float = 120.0
    max_renders_per_worker: int = 500
    memory_limit_mb: float | None = None
    retries: int = 2
    heartbeat_s: float = 1.0
    heartbeat_timeout_s: float = 60.0
    shutdown_grace_s: float = 10.0
    telemetry_every_s: float = 5.0
    log_dir: Path | None = None


@dataclass
class Job:
    """One recipe to render; `index` is its place in the manifest."""

    index: int
    recipe: SceneRecipe
    out_dir: Path
    attempts: int = 0
    failed_on: set[int] = field(default_factory=set)
    last_error: tuple[str, str] | None = None


@dataclass
class JobOutcome:
    """The final word on a job: done, or failed after its retries."""

    job: Job
    status: str
    worker_id: str | None
    attempts: int
    timings: Timings | None = None
    image_ids: list[str] = field(default_factory=list)
    error_type: str | None = None
    error_message: str | None = None


@dataclass(eq=False)
class _Slot:
    """One place in the pool; its worker process is replaced on every restart (new generation)."""

    index: int
    generation: int = 0
    process: WorkerProcess | None = None
    identity: bytes = b""
    state: str = "down"  # down | starting | idle | busy | stopping | retired
    started_at: float = 0.0
    state_since: float = 0.0
    last_beat: float = 0.0
    job: Job | None = None
    renders: int = 0
    rss_mb: float = 0.0
    cpu_percent: float = 0.0
    recycle_reason: str | None = None
    last_telemetry: float = 0.0
    hello: Hello | None = None
    error: WorkerError | None = None
    startup_strikes: int = 0

    @property
    def worker_id(self) -> str:
        return self.identity.decode() if self.identity else f"w{self.index}"


class WorkerPool:
    """Runs jobs on persistent workers; use as a context manager so workers never outlive it."""

    def __init__(
        self,
        launcher: Launcher,
        settings: PoolSettings,
        telemetry: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.launcher = launcher
        self.settings = settings
        self._telemetry = telemetry
        self.context = zmq.Context()
        self.router = self.context.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.router.setsockopt(zmq.LINGER, 0)
        port = self.router.bind_to_random_port(LOOPBACK)
        self.request_endpoint = f"{LOOPBACK}:{port}"
        self.beats = self.context.socket(zmq.PULL)
        self.beats.setsockopt(zmq.LINGER, 0)
        port = self.beats.bind_to_random_port(LOOPBACK)
        self.heartbeat_endpoint = f"{LOOPBACK}:{port}"
        self.slots = [_Slot(index=i) for i in range(max(1, settings.workers))]
        self.by_identity: dict[bytes, _Slot] = {}
        self.ready_once = False
        self.startup_failures = 0
        self.restarts: dict[str, int] = {}
        self.versions: dict[str, str] = {}
        self.closed = False

    # -- lifecycle -----------------------------------------------------------------------------------

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        for slot in self.slots:
            if slot.state == "down":
                self._start(slot, "start")

    def close(self) -> None:
        """Stops every worker: a Shutdown to the idle ones, SIGKILL to the rest and to stragglers."""
        if self.closed:
            return
        self.closed = True
        waiting = []
        for slot in self.slots:
            if slot.process is None:
                continue
            if (
                slot.state == "idle"
                and slot.process.poll() is None
                and self._send(slot, Shutdown(reason="done"))
            ):
                waiting.append(slot)
            else:
                slot.process.kill()
        deadline = time.monotonic() + self.settings.shutdown_grace_s
        for slot in waiting:
            assert slot.process is not None
            if slot.process.wait(max(0.0, deadline - time.monotonic())) is None:
                slot.process.kill()
        for slot in self.slots:
            if slot.process is not None:
                self._emit("worker_stopped", slot, exit_code=slot.process.poll(), renders=slot.renders)
                slot.process = None
                slot.state = "down"
        self.router.close(0)
        self.beats.close(0)
        self.context.term()

    # -- the loop ------------------------------------------------------------------------------------

    def run(
        self,
        jobs: Sequence[Job],
        on_start: Callable[[Job, str], None] | None = None,
        on_finish: Callable[[JobOutcome], None] | None = None,
    ) -> None:
        """Renders every job; returns when each is done or failed. KeyboardInterrupt passes through
        (the caller closes the pool); jobs in flight then simply stay unfinished."""
        pending: deque[Job] = deque(jobs)
        in_flight = 0
        self.start()
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        poller.register(self.beats, zmq.POLLIN)

        def finish(outcome: JobOutcome) -> None:
            if on_finish is not None:
                on_finish(outcome)

        def attempt_failed(slot: _Slot, worker_id: str, job: Job, error_type: str, message: str) -> None:
            job.failed_on.add(slot.index)
            job.last_error = (error_type, message)
            self._emit(
                "job_attempt_failed",
                slot,
                worker=worker_id,
                job_index=job.index,
                attempt=job.attempts,
                error_type=error_type,
                error_message=message[:500],
            )
            if job.attempts <= self.settings.retries:
                pending.appendleft(job)
            else:
                finish(
                    JobOutcome(
                        job,
                        "failed",
                        worker_id,
                        job.attempts,
                        error_type=error_type,
                        error_message=message,
                    )
                )

        while pending or in_flight:
            # 1. hand out work
            for slot in self.slots:
                if slot.state != "idle" or not pending:
                    continue
                if slot.recycle_reason is not None:
                    self._recycle(slot)
                    continue
                job = self._pick(pending, slot)
                if job is None:
                    continue
                job.attempts += 1
                request = RenderRequest(
                    job_index=job.index, attempt=job.attempts, recipe=job.recipe, out_dir=str(job.out_dir)
                )
                if not self._send(slot, request):
                    job.attempts -= 1
                    pending.appendleft(job)
                    self._restart(slot, "unreachable")
                    continue
                slot.job, slot.state, slot.state_since = job, "busy", time.monotonic()
                in_flight += 1
                if on_start is not None:
                    on_start(job, slot.worker_id)

            # 2. messages
            events = dict(poller.poll(200))
            if self.router in events:
                while True:
                    try:
                        identity, data = self.router.recv_multipart(zmq.NOBLOCK)[-2:]
                    except zmq.Again:
                        break
                    sender = self.by_identity.get(identity)
                    message = self._decode(data, sender)
                    if sender is None or message is None:
                        continue
                    slot = sender
                    if isinstance(message, Hello):
                        self._on_hello(slot, message)
                    elif isinstance(message, WorkerError):
                        slot.error = message
                        self._emit(
                            "worker_error",
                            slot,
                            error_type=message.error_type,
                            error_message=message.error_message[:2000],
                        )
                    elif isinstance(message, RenderReply) and slot.job is not None:
                        job = slot.job
                        if message.job_index != job.index or message.attempt != job.attempts:
                            continue
                        slot.job, slot.state, slot.state_since = None, "idle", time.monotonic()
                        slot.renders += 1
                        in_flight -= 1
                        if message.rss_mb is not None:
                            slot.rss_mb = message.rss_mb
                        if message.status == "ok":
                            finish(
                                JobOutcome(
                                    job,
                                    "done",
                                    slot.worker_id,
                                    job.attempts,
                                    timings=message.timings,
                                    image_ids=message.image_ids,
                                )
                            )
                        else:
                            error_type = message.error_type or "Error"
                            text = message.error_message or ""
                            attempt_failed(slot, slot.worker_id, job, error_type, text)
                        self._check_recycle(slot)
            if self.beats in events:
                while True:
                    try:
                        data = self.beats.recv(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    beat = self._decode(data, None)
                    if isinstance(beat, Heartbeat):
                        self._on_heartbeat(beat)

            # 3. health
            now = time.monotonic()
            for slot in self.slots:
                process = slot.process
                if process is None:
                    continue
                code = process.poll()
                reason: str | None = None
                if code is not None:
                    if slot.state == "stopping":
                        self._emit(
                            "worker_stopped",
                            slot,
                            exit_code=code,
                            renders=slot.renders,
                            reason=slot.recycle_reason,
                        )
                        self._start(slot, slot.recycle_reason or "recycle")
                        continue
                    reason = "crash" if slot.state != "starting" else "startup_failed"
                elif slot.state == "starting" and now - slot.started_at > self.settings.startup_timeout_s:
                    reason = "startup_timeout"
                elif slot.state == "busy" and now - slot.state_since > self.settings.timeout_s:
                    reason = "render_timeout"
                elif (
                    slot.state in ("idle", "busy")
                    and now - slot.last_beat > self.settings.heartbeat_timeout_s
                ):
                    reason = "heartbeat_lost"
                elif slot.state == "stopping" and now - slot.state_since > self.settings.shutdown_grace_s:
                    reason = "stop_timeout"
                if reason is None:
                    continue
                job, worker_id = slot.job, slot.worker_id
                detail = f"exit code {code}" if code is not None else f"after {now - slot.state_since:.1f} s"
                if reason in ("startup_failed", "startup_timeout"):
                    self.startup_failures += 1
                    slot.startup_strikes += 1
                if slot.startup_strikes >= MAX_STARTUP_STRIKES and self.ready_once:
                    self._retire(slot, reason, code)
                else:
                    self._restart(slot, reason, exit_code=code)
                if job is not None:
                    in_flight -= 1
                    error_type = {"crash": "WorkerCrashed", "render_timeout": "RenderTimeout"}.get(
                        reason, "WorkerLost"
                    )
                    text = f"worker {worker_id} {reason.replace('_', ' ')} ({detail})"
                    attempt_failed(slot, worker_id, job, error_type, text)
            self._check_startup()

    # -- helpers -------------------------------------------------------------------------------------

    def _pick(self, pending: deque[Job], slot: _Slot) -> Job | None:
        """The first job this slot may take: a retry goes to a worker it has not failed on yet."""
        everyone = {s.index for s in self.slots if s.state != "retired"}
        for job in pending:
            if slot.index not in job.failed_on or everyone <= job.failed_on:
                pending.remove(job)
                return job
        return None

    def _start(self, slot: _Slot, reason: str) -> None:
        slot.generation += 1
        slot.identity = f"w{slot.index}.{slot.generation}".encode()
        log = self.settings.log_dir / f"worker-{slot.index}.log" if self.settings.log_dir else None
        settings = WorkerSettings(
            worker_id=slot.identity.decode(),
            request_endpoint=self.request_endpoint,
            heartbeat_endpoint=self.heartbeat_endpoint,
            threads=self.settings.threads_per_worker,
            heartbeat_s=self.settings.heartbeat_s,
            log_path=log,
        )
        slot.process = self.launcher.start(settings)
        self.by_identity[slot.identity] = slot
        now = time.monotonic()
        slot.state, slot.started_at, slot.state_since, slot.last_beat = "starting", now, now, now
        slot.renders, slot.rss_mb, slot.recycle_reason, slot.job, slot.hello = 0, 0.0, None, None, None
        self._emit("worker_started", slot, pid=slot.process.pid, reason=reason, launcher=self.launcher.kind)

    def _restart(self, slot: _Slot, reason: str, exit_code: int | None = None) -> None:
        """Kills the worker's process group and starts a fresh worker in its place."""
        process = slot.process
        if process is not None:
            process.kill()
            exit_code = process.poll() if exit_code is None else exit_code
        self.restarts[reason] = self.restarts.get(reason, 0) + 1
        self._emit(
            "worker_restart",
            slot,
            reason=reason,
            exit_code=exit_code,
            renders=slot.renders,
            rss_mb=slot.rss_mb,
            job_index=slot.job.index if slot.job else None,
            error=slot.error.error_message[:2000] if slot.error else None,
        )
        self.by_identity.pop(slot.identity, None)
        self._start(slot, reason)

    def _retire(self, slot: _Slot, reason: str, exit_code: int | None) -> None:
        """A slot whose worker keeps failing to start is given up; the others carry on."""
        if slot.process is not None:
            slot.process.kill()
        self._emit(
            "worker_retired",
            slot,
            reason=reason,
            exit_code=exit_code,
            strikes=slot.startup_strikes,
            error=slot.error.error_message[:2000] if slot.error else None,
        )
        self.by_identity.pop(slot.identity, None)
        slot.process, slot.state, slot.job = None, "retired", None
        if all(s.state == "retired" for s in self.slots):
            raise PoolError(f"every worker failed to start {MAX_STARTUP_STRIKES} times in a row ({reason})")

    def _recycle(self, slot: _Slot) -> None:
        """A planned restart: ask the idle worker to exit, start the next one when it has."""
        reason = slot.recycle_reason or "recycle"
        self.restarts[reason] = self.restarts.get(reason, 0) + 1
        self._emit("worker_recycle", slot, reason=reason, renders=slot.renders, rss_mb=slot.rss_mb)
        if self._send(slot, Shutdown(reason=reason)):
            slot.state, slot.state_since = "stopping", time.monotonic()
        else:
            self._restart(slot, reason)

    def _check_recycle(self, slot: _Slot) -> None:
        """Plans a restart after this render. A fresh worker always renders at least once, so a ceiling
        below Blender's own footprint costs a restart per scene, never a restart loop."""
        limit = self.settings.memory_limit_mb
        if limit is not None and slot.rss_mb > limit and slot.renders > 0:
            slot.recycle_reason = "memory_limit"
        elif slot.renders >= self.settings.max_renders_per_worker:
            slot.recycle_reason = "max_renders"

    def _check_startup(self) -> None:
        if self.ready_once:
            return
        limit = max(3, 2 * len(self.slots))
        if self.startup_failures >= limit:
            why = next((s.error for s in self.slots if s.error is not None), None)
            detail = (
                f"{why.error_type}: {why.error_message}" if why else "no reply before the start-up timeout"
            )
            logs = f"; see {self.settings.log_dir}" if self.settings.log_dir else ""
            raise PoolError(
                f"no worker started ({self.startup_failures} attempts with {self.launcher.describe()}): "
                f"{detail}{logs}"
            )

    def _on_hello(self, slot: _Slot, hello: Hello) -> None:
        if hello.protocol != PROTOCOL_VERSION:
            slot.error = WorkerError(
                worker_id=hello.worker_id,
                pid=hello.pid,
                error_type="ProtocolMismatch",
                error_message=f"worker speaks protocol {hello.protocol}, host {PROTOCOL_VERSION}",
            )
            self.startup_failures += 1
            self._restart(slot, "protocol_mismatch")
            return
        slot.hello, slot.state, slot.state_since = hello, "idle", time.monotonic()
        slot.startup_strikes = 0
        slot.last_beat = time.monotonic()
        self.ready_once = True
        self.startup_failures = 0
        self.versions = {"blender": hello.blender_version, "addon": hello.addon_version}
        self._emit(
            "worker_ready",
            slot,
            pid=hello.pid,
            startup_s=hello.startup_s,
            threads=hello.threads,
            blender_version=hello.blender_version,
            addon_version=hello.addon_version,
        )

    def _on_heartbeat(self, beat: Heartbeat) -> None:
        slot = self.by_identity.get(beat.worker_id.encode())
        if slot is None:
            return
        slot.last_beat = time.monotonic()
        slot.rss_mb, slot.cpu_percent = beat.rss_mb, beat.cpu_percent
        limit = self.settings.memory_limit_mb
        if limit is not None and beat.rss_mb > limit and slot.renders > 0 and slot.recycle_reason is None:
            slot.recycle_reason = "memory_limit"
        if slot.last_beat - slot.last_telemetry >= self.settings.telemetry_every_s:
            slot.last_telemetry = slot.last_beat
            self._emit(
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

    def _send(self, slot: _Slot, message: RenderRequest | Shutdown) -> bool:
        try:
            self.router.send_multipart([slot.identity, encode(message)], zmq.NOBLOCK)
        except zmq.ZMQError:  # not connected (EHOSTUNREACH) or gone: the caller restarts the worker
            return False
        return True

    def _decode(self, data: bytes, slot: _Slot | None) -> Any:
        try:
            return decode_worker_message(data)
        except (ValidationError, ValueError) as exc:
            with contextlib.suppress(Exception):
                self._emit("bad_message", slot, error=str(exc)[:500])
            return None

    def _emit(self, event: str, slot: _Slot | None, **fields: Any) -> None:
        if self._telemetry is None:
            return
        record: dict[str, Any] = {"t": round(time.time(), 3), "event": event}
        if slot is not None:
            record["worker"] = slot.worker_id
            record["slot"] = slot.index
        record.update(fields)
        self._telemetry(record)
