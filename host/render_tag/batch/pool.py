"""N persistent Blender workers: start once, render many; a failed job is retried on another worker.

Everything runs in the caller's thread in one poll loop, so there are no locks: the loop hands jobs to
idle workers, reads replies and heartbeats (transport.py), and lets the supervisor check every worker
(supervisor.py). A job that fails transiently (crash, timeout, lost worker, an error reply the worker marks
retryable) is retried on another worker; after `retries` retries it is reported as failed with its
last error, and the rest of the job goes on. Bad input (a reply with `retryable: false`) fails at once.

A worker's "done" is checked, not believed: the job's images and label files must be regular files in
OUT, and their hashes go to the manifest. A worker that says done without them is defective (a lost
write, a broken disk path, a stale or foreign worker): it is restarted, and the job is retried once on
another worker; a second such reply is no longer the worker's fault but the job's or the folder's, so
the job fails (OutputMissing) rather than loop.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from render_tag_shared.errors import RenderTimeout, TransientError, WorkerCrashed, WorkerLost
from render_tag_shared.messages import Hello, RenderReply, RenderRequest, Timings, WorkerError
from render_tag_shared.recipe import SceneRecipe, recipe_hash

from ..dataset.completeness import hash_job_files
from .launcher import Launcher
from .options import WorkerLimits
from .supervisor import PoolError, Slot, Supervisor, WorkerState
from .transport import Transport

__all__ = ["Job", "JobOutcome", "PoolError", "WorkerPool"]

POLL_MS = 200
BAD_MESSAGES_LOGGED = 20
OUTPUT_MISSING = "OutputMissing"
"""The error of a job whose worker said done but whose files are not all in OUT."""
OUTPUT_MISSING_RETRIES = 1
"""Retries after such a reply (on another worker); the next one fails the job."""


@dataclass
class Job:
    """One recipe to render; `index` is its place in the manifest."""

    index: int
    recipe: SceneRecipe
    out_dir: Path
    attempts: int = 0
    failed_on: set[int] = field(default_factory=set)
    last_error: tuple[str, str] | None = None
    missing_outputs: int = 0


@dataclass
class JobOutcome:
    """The final word on a job: done, or failed after its retries."""

    job: Job
    status: Literal["done", "failed"]
    worker_id: str | None
    attempts: int
    timings: Timings | None = None
    image_ids: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    error_type: str | None = None
    error_message: str | None = None


_LOST_JOB_ERRORS: dict[str, type[TransientError]] = {"crash": WorkerCrashed, "render_timeout": RenderTimeout}
"""The error a job gets when its worker is replaced for this reason (WorkerLost otherwise): all
transient, so the job is retried."""


class WorkerPool:
    """Runs jobs on persistent workers; use as a context manager so workers never outlive it."""

    def __init__(
        self,
        launcher: Launcher,
        limits: WorkerLimits,
        *,
        workers: int = 1,
        threads: int = 0,
        log_dir: Path | None = None,
        telemetry: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.limits = limits
        self.transport = Transport(on_bad_message=self._bad_message)
        self.supervisor = Supervisor(
            launcher,
            self.transport,
            limits,
            workers=workers,
            threads=threads,
            log_dir=log_dir,
            telemetry=telemetry,
        )
        self.closed = False
        self._bad_messages = 0
        self._running: dict[int, Job] = {}  # slot index -> its job
        self._pending: deque[Job] = deque()
        self._on_finish: Callable[[JobOutcome], None] | None = None

    @property
    def restarts(self) -> dict[str, int]:
        return self.supervisor.restarts

    @property
    def versions(self) -> dict[str, str]:
        return self.supervisor.versions

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stops every worker and releases the sockets (a second call does nothing)."""
        if self.closed:
            return
        self.closed = True
        self.supervisor.close()
        self.transport.close()

    def run(
        self,
        jobs: Sequence[Job],
        on_start: Callable[[Job, str], None] | None = None,
        on_finish: Callable[[JobOutcome], None] | None = None,
    ) -> None:
        """Renders every job; returns when each is done or failed. KeyboardInterrupt passes through
        (the caller closes the pool); jobs in flight then simply stay unfinished."""
        self._pending = deque(jobs)
        self._on_finish = on_finish
        self.supervisor.start_all()
        while self._pending or self._running:
            self._dispatch(on_start)
            replies, beats = self.transport.poll(POLL_MS)
            for identity, message in replies:
                slot = self.supervisor.by_identity.get(identity)
                if slot is not None and message.worker_id == slot.worker_id:
                    self._on_message(slot, message)
            for beat in beats:
                self.supervisor.on_heartbeat(beat)
            self._check_health()
            self.supervisor.check_startup()

    # -- the steps of the loop -----------------------------------------------------------------------

    def _dispatch(self, on_start: Callable[[Job, str], None] | None) -> None:
        """Hands a pending job to every idle worker (recycling one that is due first)."""
        for slot in self.supervisor.slots:
            if slot.state is not WorkerState.IDLE or not self._pending:
                continue
            if slot.recycle_reason is not None:
                self.supervisor.recycle(slot)
                continue
            job = self._pick(slot)
            if job is None:
                continue
            job.attempts += 1
            request = RenderRequest(
                job_index=job.index, attempt=job.attempts, recipe=job.recipe, out_dir=str(job.out_dir)
            )
            if not self.transport.send(slot.identity, request):
                job.attempts -= 1
                self._pending.appendleft(job)
                self.supervisor.restart(slot, "unreachable")
                continue
            self._running[slot.index], slot.job_index = job, job.index
            slot.enter(WorkerState.BUSY)
            if on_start is not None:
                on_start(job, slot.worker_id)

    def _on_message(self, slot: Slot, message: object) -> None:
        if isinstance(message, Hello):
            self.supervisor.on_hello(slot, message)
        elif isinstance(message, WorkerError):
            self.supervisor.on_error(slot, message)
        elif isinstance(message, RenderReply):
            job = self._running.get(slot.index)
            if job is None or message.job_index != job.index or message.attempt != job.attempts:
                return  # a late reply to a job given up on
            self._release(slot)
            slot.enter(WorkerState.IDLE)
            slot.renders += 1
            if message.rss_mb is not None:
                slot.rss_mb = message.rss_mb
            if message.status == "ok":
                files, problems = self._outputs(job, message)
                if problems:
                    self._missing_outputs(slot, job, problems)
                    return
                self._finish(
                    JobOutcome(
                        job,
                        "done",
                        slot.worker_id,
                        job.attempts,
                        timings=message.timings,
                        image_ids=message.image_ids,
                        files=files,
                    )
                )
            else:
                error_type = message.error_type or "Error"
                self._attempt_failed(
                    slot, slot.worker_id, job, error_type, message.error_message or "", message.retryable
                )
            self.supervisor.plan_recycle(slot)

    def _check_health(self) -> None:
        now = time.monotonic()
        for slot in self.supervisor.slots:
            found = self.supervisor.problem(slot, now)
            if found is None:
                continue
            reason, code = found
            job, worker_id = self._running.get(slot.index), slot.worker_id
            detail = f"exit code {code}" if code is not None else f"after {now - slot.state_since:.1f} s"
            self.supervisor.replace(slot, reason, code)  # its telemetry still names the job
            self._release(slot)
            if job is not None:
                error_type = _LOST_JOB_ERRORS.get(reason, WorkerLost).__name__
                text = f"worker {worker_id} {reason.replace('_', ' ')} ({detail})"
                self._attempt_failed(slot, worker_id, job, error_type, text)

    # -- jobs ----------------------------------------------------------------------------------------

    def _pick(self, slot: Slot) -> Job | None:
        """The first job this slot may take: a retry goes to a worker it has not failed on yet."""
        everyone = {s.index for s in self.supervisor.slots if s.state is not WorkerState.RETIRED}
        for job in self._pending:
            if slot.index not in job.failed_on or everyone <= job.failed_on:
                self._pending.remove(job)
                return job
        return None

    def _outputs(self, job: Job, message: RenderReply) -> tuple[dict[str, str], list[str]]:
        """The hashes of the files a done job left, and what is missing or wrong among them."""
        expected = [job.recipe.image_id(i) for i in range(len(job.recipe.cameras))]
        files, problems = hash_job_files(job.out_dir, expected, recipe_hash(job.recipe))
        if sorted(message.image_ids) != sorted(expected):
            problems.insert(0, f"the reply names images {message.image_ids}, the recipe {expected}")
        return files, problems

    def _missing_outputs(self, slot: Slot, job: Job, problems: list[str]) -> None:
        """A "done" without its files: the worker is replaced, the job retried once elsewhere."""
        worker_id = slot.worker_id
        job.missing_outputs += 1
        text = f"worker {worker_id} said done, but: " + "; ".join(problems[:4])
        if len(problems) > 4:
            text += f"; and {len(problems) - 4} more"
        self.supervisor.restart(slot, "output_missing")
        retry = job.missing_outputs <= OUTPUT_MISSING_RETRIES
        self._attempt_failed(slot, worker_id, job, OUTPUT_MISSING, text, retryable=retry)

    def _release(self, slot: Slot) -> None:
        self._running.pop(slot.index, None)
        slot.job_index = None

    def _attempt_failed(
        self, slot: Slot, worker_id: str, job: Job, error_type: str, message: str, retryable: bool = True
    ) -> None:
        """Retries a transient failure (up to `retries` times); bad input fails the job at once."""
        job.failed_on.add(slot.index)
        job.last_error = (error_type, message)
        self.supervisor.emit(
            "job_attempt_failed",
            slot,
            worker=worker_id,
            job_index=job.index,
            attempt=job.attempts,
            error_type=error_type,
            error_message=message[:500],
            retryable=retryable,
        )
        if retryable and job.attempts <= self.limits.retries:
            self._pending.appendleft(job)
        else:
            outcome = JobOutcome(
                job, "failed", worker_id, job.attempts, error_type=error_type, error_message=message
            )
            self._finish(outcome)

    def _finish(self, outcome: JobOutcome) -> None:
        if self._on_finish is not None:
            self._on_finish(outcome)

    def _bad_message(self, identity: bytes | None, error: str) -> None:
        """Telemetry of a message dropped unread: the first ones, then every 1000th (a flood from
        another process must not fill the disk)."""
        self._bad_messages += 1
        if self._bad_messages <= BAD_MESSAGES_LOGGED or self._bad_messages % 1000 == 0:
            slot = self.supervisor.by_identity.get(identity) if identity is not None else None
            self.supervisor.emit("bad_message", slot, error=error, count=self._bad_messages)
