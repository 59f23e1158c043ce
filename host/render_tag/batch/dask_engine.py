"""Dask distributed as the engine of `render --dask local[:N] | tcp://HOST:PORT` (the `dask` extra).

The host writes the plan into OUT (OUT/plan.json: on a cluster OUT must be a folder every worker sees)
and submits one task per chunk. Each Dask worker keeps ONE persistent Blender worker (a WorkerPool of
one, held by a WorkerPlugin and closed on the plugin's teardown) across all the chunks it runs. A
task verifies the plan hash first, renders the chunk's scenes not yet complete on disk, and returns the
chunk's result with every file's hash. Retries are typed: a chunk that lost scenes to a crashed,
hung or lost Blender (TransientChunkError) is retried by Dask (`retries`), and so is a chunk whose Dask
worker died (the scheduler's `allowed-failures`); bad input (a plan that does not match its hash, other
versions) comes back as a value, so Dask never retries it, and the host raises it as the typed error.
The host keeps the manifest, the progress display and telemetry as `render` does, and checks at the
end that every chunk of the plan came back exactly once with its files as reported.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import distributed
from distributed.diagnostics.plugin import WorkerPlugin

from render_tag_shared.errors import InputError
from render_tag_shared.recipe import RecipeFile, recipe_hash

from ..dataset.completeness import hash_job_files
from ..io import write_text_atomic
from .chunks import ChunkResult, TransientChunkError, check_chunk_set, run_chunk
from .launcher import Launcher
from .options import RenderOptions, WorkerLimits, parse_dask_address
from .plan import (
    Plan,
    PlanEnvironmentMismatch,
    PlanError,
    PlanHashMismatch,
    build_plan,
    check_environment,
    dump_plan,
    load_plan,
)
from .pool import OUTPUT_MISSING, Job, JobOutcome, PoolError, WorkerPool
from .sizing import default_workers
from .telemetry import TELEMETRY, TelemetryLog

__all__ = [
    "DASK_CONFIG",
    "EVENT_TOPIC",
    "PLAN_FILE",
    "BlenderWorkerPlugin",
    "ChunkFailed",
    "ChunkRefused",
    "check_scheduler",
    "chunk_attempts",
    "chunk_task",
    "connect",
    "local_cluster",
    "parse_address",
    "render_on_dask",
    "submit_chunks",
]

PLAN_FILE = "plan.json"
EVENT_TOPIC = "render-tag-chunk"
"""Tasks log `started` and `finished` here (Worker.log_event): the host counts each chunk's attempts."""
MAX_AUTO_CHUNK = 25
DASK_CONFIG: dict[str, Any] = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.worker.memory.monitor-interval": "1s",
}
"""Dask settings of the clusters render-tag starts (`--dask local`), and the ones the README recommends
for a cluster of render workers. By default every Dask process wakes up to sample its task thread's
stack every 10 ms (the statistical profiler), to measure its event loop every 20 ms and to check its
memory every 100 ms: with 2 Blender workers on 2 cores that took 6-8 % of the machine from Blender
(measured: the same renders 5-10 % slower in Blender, 1-12 ms between chunks). A render-tag task spends
its time waiting for Blender, so there is nothing to profile; the checks stay, at 1 s."""


def parse_address(text: str) -> tuple[str, int | None]:
    """The --dask address (options.parse_dask_address), InputError naming --dask when it is not one."""
    try:
        return parse_dask_address(text)
    except ValueError as exc:
        raise InputError("--dask", "", str(exc)) from None


def check_scheduler(address: str, timeout_s: float = 5.0) -> None:
    """Before anything is written: a tcp:// scheduler must accept a connection (InputError naming --dask)."""
    kind, _ = parse_address(address)
    if kind == "local":
        return
    host, _, port = address.removeprefix("tcp://").rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise InputError("--dask", "", f"no Dask scheduler answers at {address}: {exc}") from None


@contextlib.contextmanager
def local_cluster(workers: int, silence_logs: int = logging.ERROR) -> Iterator[Any]:
    """A LocalCluster on loopback as `--dask local:N` starts it: N worker processes (with nannies) of
    one thread each, no dashboard, DASK_CONFIG in the scheduler, the nannies and the workers.

    The nannies run in this process and put their workers' variables (`nanny_environ`) into its
    environment before they spawn one: the environment is put back once they have started and on exit,
    so that nothing started here later (a local pool's Blender) inherits them."""
    saved = dict(os.environ)
    try:
        with (
            dask.config.set(DASK_CONFIG),
            distributed.LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                silence_logs=silence_logs,
            ) as cluster,
        ):
            _restore_environ(saved)
            yield cluster
    finally:
        _restore_environ(saved)


def _restore_environ(saved: dict[str, str]) -> None:
    for key in set(os.environ) - set(saved):
        del os.environ[key]
    os.environ.update(saved)


@contextlib.contextmanager
def connect(address: str, workers: int | None) -> Iterator[Any]:
    """A Client: of a LocalCluster on loopback (`local_cluster`), or of the scheduler at tcp://HOST:PORT.
    Closed (and the local cluster shut down) on exit."""
    kind, count = parse_address(address)
    if kind == "local":
        n = count or workers or default_workers(None)[0]
        with local_cluster(n) as cluster, distributed.Client(cluster) as client:
            yield client
        return
    try:
        client = distributed.Client(address, timeout=30)
    except (OSError, TimeoutError) as exc:
        raise InputError("--dask", "", f"cannot reach the Dask scheduler at {address}: {exc}") from None
    with client:
        yield client


def nanny_environ() -> frozenset[str]:
    """The variables a Dask nanny set in this worker's environment (`distributed.nanny.pre-spawn-environ`:
    malloc trimming, one BLAS/OpenMP thread), where they still have the nanny's values."""
    settings = dask.config.get("distributed.nanny.pre-spawn-environ", None) or {}
    return frozenset(
        key for key, value in settings.items() if value is not None and os.environ.get(key) == str(value)
    )


class BlenderWorkerPlugin(WorkerPlugin):
    """Gives each Dask worker one persistent Blender worker (a WorkerPool of one), started by the first
    chunk and closed on teardown (the plugin unregistered, the worker closing). The pool retries nothing:
    retries are Dask's."""

    def __init__(self, launcher: Launcher, limits: WorkerLimits, threads: dict[str, int]) -> None:
        self.launcher = launcher
        self.limits = limits.model_copy(update={"retries": 0})
        self.threads_by_worker = threads
        self.threads = 0
        self._pool: WorkerPool | None = None
        self._log_dir: Path | None = None
        self._telemetry: TelemetryLog | None = None
        self.lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"launcher": self.launcher, "limits": self.limits, "threads": self.threads_by_worker}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["launcher"], state["limits"], state["threads"])  # type: ignore[misc]

    def setup(self, worker: Any) -> None:
        self.versions = (self.launcher.addon_version(), self.launcher.blender_version())
        # Blender starts from the environment the local pool's would: not the one the nanny gave this
        # worker for its own numpy and malloc (MALLOC_TRIM_THRESHOLD_=65536 made Blender's post-processing
        # 5x slower: it returns every array's memory to the system and faults it in again).
        self.launcher.unset_env = nanny_environ()
        # A worker that joined after the run started: Blender's own default (all cores).
        self.threads = self.threads_by_worker.get(worker.address, 0)

    def teardown(self, worker: Any) -> None:
        self.close()

    def pool(self, out_dir: Path) -> WorkerPool:
        """The persistent pool (logs and this Dask worker's telemetry in OUT/logs/dask-<host>-<pid>/),
        started on first use."""
        if self._pool is None or self._pool.closed:
            self._log_dir = out_dir / "logs" / f"dask-{os.uname().nodename}-{os.getpid()}"
            if self._telemetry is None:
                self._telemetry = TelemetryLog(self._log_dir / TELEMETRY)
            self._pool = WorkerPool(
                self.launcher,
                self.limits,
                workers=1,
                threads=self.threads,
                log_dir=self._log_dir,
                telemetry=self._telemetry,
            )
        return self._pool

    def telemetry(self, record: dict[str, Any]) -> None:
        """This Dask worker's telemetry (OUT/logs/dask-<host>-<pid>/telemetry.ndjson), once it has a pool."""
        if self._telemetry is not None:
            self._telemetry(record)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        if self._telemetry is not None:
            self._telemetry.close()
            self._telemetry = None


@dataclass
class ChunkRefused:
    """A chunk's bad input, returned as a value so that Dask does not retry it (`error()` rebuilds it)."""

    error_type: str
    source: str
    field: str
    message: str

    def error(self) -> InputError:
        kinds: dict[str, type[InputError]] = {
            "PlanHashMismatch": PlanHashMismatch,
            "PlanEnvironmentMismatch": PlanEnvironmentMismatch,
            "PlanError": PlanError,
        }
        return kinds.get(self.error_type, InputError)(self.source, self.field, self.message)


@dataclass
class ChunkFailed:
    """A chunk that failed in a way no retry cures (not bad input, not transient: a bug): returned as a
    value so that Dask does not retry it; its scenes are reported failed with this error."""

    error_type: str
    message: str


_PLANS: dict[tuple[str, int, int, str], Plan] = {}
"""Plans verified in this process, by (path, mtime, size, hash): a file that changes is verified again."""


def _verified_plan(path: str, plan_hash: str) -> Plan:
    try:
        stat = os.stat(path)
    except OSError as exc:
        raise InputError(path, "", f"cannot read the plan on this worker: {exc.strerror}") from None
    key = (path, stat.st_mtime_ns, stat.st_size, plan_hash)
    if key not in _PLANS:
        _PLANS.clear()
        _PLANS[key] = load_plan(path, expected_hash=plan_hash)
    return _PLANS[key]


def chunk_task(
    plugin_name: str, plan_path: str, plan_hash: str, chunk: int, out_dir: str, run_id: str
) -> ChunkResult | ChunkRefused | ChunkFailed:
    """One chunk on a Dask worker: the plan hash first, then the chunk on this worker's Blender. Only a
    TransientChunkError is raised (for Dask to retry); every other failure is returned."""
    worker = distributed.get_worker()
    worker.log_event(EVENT_TOPIC, {"run": run_id, "chunk": chunk, "event": "started", "pid": os.getpid()})
    try:
        plan = _verified_plan(plan_path, plan_hash)
        plugin = worker.plugins.get(plugin_name)
        if not isinstance(plugin, BlenderWorkerPlugin):
            raise TransientChunkError(f"worker {worker.address} has no {plugin_name} plugin (yet)")
        with plugin.lock:
            check_environment(plan, *plugin.versions, plan_path)
            try:
                pool = plugin.pool(Path(out_dir))
                result = run_chunk(plan, chunk, Path(out_dir), pool, worker.address, plugin.telemetry)
            except PoolError as exc:  # Blender did not start here: another attempt may
                plugin.close()
                raise TransientChunkError(str(exc)) from None
    except InputError as exc:
        worker.log_event(EVENT_TOPIC, {"run": run_id, "chunk": chunk, "event": "refused"})
        return ChunkRefused(type(exc).__name__, exc.source, exc.field, exc.message)
    except TransientChunkError:
        raise
    except Exception as exc:
        worker.log_event(EVENT_TOPIC, {"run": run_id, "chunk": chunk, "event": "failed"})
        return ChunkFailed(type(exc).__name__, str(exc))
    worker.log_event(EVENT_TOPIC, {"run": run_id, "chunk": chunk, "event": "finished"})
    return result


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _worker_facts() -> dict[str, Any]:
    """What the host needs to know of a Dask worker: its cores, and its settings of DASK_CONFIG's keys."""
    return {"cores": _cores(), "settings": {key: dask.config.get(key, None) for key in DASK_CONFIG}}


def worker_facts(client: Any) -> dict[str, dict[str, Any]]:
    """`_worker_facts` of every Dask worker, by address."""
    facts: dict[str, dict[str, Any]] = client.run(_worker_facts)
    return facts


def blender_threads(client: Any, facts: dict[str, dict[str, Any]] | None = None) -> dict[str, int]:
    """Cycles threads for each Dask worker's Blender: its machine's cores shared among the Dask workers on
    that machine (2 workers on 2 cores: 1 each, as the local pool's `--workers 2`)."""
    facts = facts if facts is not None else worker_facts(client)
    cores = {address: int(fact["cores"]) for address, fact in facts.items()}
    hosts = {address: info["host"] for address, info in client.scheduler_info()["workers"].items()}
    per_host: dict[str, int] = {}
    for address in cores:
        per_host[hosts.get(address, address)] = per_host.get(hosts.get(address, address), 0) + 1
    return {
        address: max(1, count // per_host[hosts.get(address, address)]) for address, count in cores.items()
    }


def _setting(value: Any) -> Any:
    """A Dask setting to compare: an interval in seconds ("1s" and "1000ms" are one), else as it is."""
    if isinstance(value, str):
        with contextlib.suppress(ValueError, TypeError, KeyError):
            return dask.utils.parse_timedelta(value)
    return value


def untuned_workers(facts: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The workers whose Dask settings differ from DASK_CONFIG (address -> those settings): Dask's
    defaults there cost Blender CPU time (see DASK_CONFIG); telemetry names them."""
    differ: dict[str, dict[str, Any]] = {}
    for address, fact in facts.items():
        settings = fact.get("settings", {})
        off = {
            key: settings.get(key)
            for key, value in DASK_CONFIG.items()
            if _setting(settings.get(key)) != _setting(value)
        }
        if off:
            differ[address] = off
    return differ


def auto_chunk_size(jobs: int, workers: int) -> int:
    """About 16 chunks per worker, at most MAX_AUTO_CHUNK scenes each: a task costs milliseconds against
    seconds a scene, and small chunks leave no worker idle at the end of the job while another finishes
    a long chunk (the local pool hands out single scenes)."""
    return max(1, min(MAX_AUTO_CHUNK, math.ceil(jobs / max(1, 16 * workers))))


def submit_chunks(
    client: Any,
    plan: Plan,
    plan_path: Path,
    out_dir: Path,
    plugin_name: str,
    retries: int,
    run_id: str,
    chunks: list[int] | None = None,
) -> dict[Any, int]:
    """One task per chunk (future → chunk index); Dask retries a task that raised (transient) `retries`
    times, and reschedules one whose worker died."""
    return {
        client.submit(
            chunk_task,
            plugin_name,
            str(plan_path.resolve()),
            plan.plan_hash,
            chunk,
            str(out_dir.resolve()),
            run_id,
            key=f"render-tag-chunk-{run_id}-{chunk}",
            retries=retries,
            pure=False,
        ): chunk
        for chunk in (chunks if chunks is not None else range(plan.num_chunks))
    }


def chunk_attempts(client: Any, run_id: str) -> dict[int, int]:
    """How often each chunk of this run started (more than once: Dask retried or rescheduled it)."""
    counts: dict[int, int] = {}
    for _, message in client.get_events(EVENT_TOPIC):
        if isinstance(message, dict) and message.get("run") == run_id and message.get("event") == "started":
            counts[int(message["chunk"])] = counts.get(int(message["chunk"]), 0) + 1
    return dict(sorted(counts.items()))


def render_on_dask(
    recipe_file: RecipeFile,
    shard: tuple[int, int],
    todo: list[Job],
    out_dir: Path,
    options: RenderOptions,
    launcher: Launcher,
    on_finish: Callable[[JobOutcome], None],
    telemetry: Callable[[dict[str, Any]], None],
) -> None:
    """Renders `todo` (jobs of `recipe_file`, this shard's slice) on Dask; each job's outcome goes to
    `on_finish` as the pool's would. Raises the chunk's typed InputError when a chunk refuses its
    plan, PoolError when the chunks do not assemble into the plan."""
    assert options.dask is not None
    with connect(options.dask, options.workers) as client:
        telemetry(
            {"t": round(time.time(), 3), "event": "dask_connected", "scheduler": client.scheduler.address}
        )
        client.wait_for_workers(1, timeout=options.startup_timeout_s)
        facts = worker_facts(client)
        threads = blender_threads(client, facts)
        workers = len(threads)
        chunk_size = options.chunk_size or auto_chunk_size(len(recipe_file.recipes), workers)
        plan = build_plan(
            recipe_file,
            addon_version=launcher.addon_version(),
            blender_version=launcher.blender_version(),
            shard=shard,
            chunk_size=chunk_size,
        )
        plan_path = out_dir / PLAN_FILE
        write_text_atomic(plan_path, dump_plan(plan))
        run_id = f"{plan.plan_hash[:12]}-{uuid.uuid4().hex[:8]}"
        plugin_name = f"render-tag-blender-{run_id}"
        limits = WorkerLimits(**options.model_dump(include=set(WorkerLimits.model_fields)))
        client.register_plugin(BlenderWorkerPlugin(launcher, limits, threads), name=plugin_name)
        telemetry(
            {
                "t": round(time.time(), 3),
                "event": "dask_started",
                "scheduler": client.scheduler.address,
                "dask_workers": workers,
                "plan_hash": plan.plan_hash,
                "chunks": plan.num_chunks,
                "chunk_size": chunk_size,
                "run": run_id,
                "untuned_workers": untuned_workers(facts),
            }
        )
        wanted = {job.index: job for job in todo}
        results: list[tuple[str, ChunkResult]] = []
        failed_chunks: list[int] = []
        try:
            futures = submit_chunks(client, plan, plan_path, out_dir, plugin_name, options.retries, run_id)
            for future in distributed.as_completed(futures):
                chunk = futures[future]
                try:
                    value = future.result()
                except Exception as exc:  # retries spent (TransientChunkError), or KilledWorker
                    value = ChunkFailed(type(exc).__name__, str(exc))
                if isinstance(value, ChunkRefused):
                    raise value.error()
                if isinstance(value, ChunkFailed):
                    failed_chunks.append(chunk)
                    _lost_chunk(plan, chunk, out_dir, wanted, value, on_finish)
                    telemetry(
                        {
                            "t": round(time.time(), 3),
                            "event": "chunk_failed",
                            "chunk": chunk,
                            "error_type": value.error_type,
                            "error_message": value.message[:500],
                        }
                    )
                    continue
                results.append((f"chunk {chunk} ({value.host}, pid {value.pid})", value))
                for job in value.jobs:
                    if job.job_index in wanted:
                        on_finish(_outcome(job, wanted[job.job_index], out_dir))
                telemetry(
                    {
                        "t": round(time.time(), 3),
                        "event": "chunk_done",
                        "chunk": chunk,
                        "host": value.host,
                        "pid": value.pid,
                        "elapsed_s": value.elapsed_s,
                    }
                )
        finally:
            attempts = chunk_attempts(client, run_id)
            telemetry(
                {
                    "t": round(time.time(), 3),
                    "event": "dask_finished",
                    "run": run_id,
                    "chunk_attempts": {str(k): v for k, v in attempts.items()},
                }
            )
            with contextlib.suppress(Exception):
                client.unregister_worker_plugin(plugin_name)
        if not failed_chunks:
            try:
                check_chunk_set(results, [out_dir] * len(results))
            except Exception as exc:
                raise PoolError(f"the chunks do not assemble into plan {plan.plan_hash[:12]}: {exc}") from exc
    telemetry({"t": round(time.time(), 3), "event": "dask_closed"})


def _outcome(job: Any, pending: Job, out_dir: Path) -> JobOutcome:
    """The host's word on a scene a chunk reported: a "done" counts only when its files are in OUT
    (checked and hashed here, as the local pool does), else the scene failed with OutputMissing."""
    pending.attempts = max(job.attempts, 1)
    status, error_type, error_message = job.status, job.error_type, job.error_message
    files: dict[str, str] = {}
    if status == "done":
        files, problems = hash_job_files(out_dir, job.image_ids, recipe_hash(pending.recipe))
        if problems:
            status, error_type, error_message = "failed", OUTPUT_MISSING, "; ".join(problems[:5])
    return JobOutcome(
        pending,
        status,
        job.worker,
        job.attempts,
        timings=job.timings,
        image_ids=job.image_ids,
        files=files,
        error_type=error_type,
        error_message=error_message,
    )


def _lost_chunk(
    plan: Plan,
    chunk: int,
    out_dir: Path,
    wanted: dict[int, Job],
    error: ChunkFailed,
    on_finish: Callable[[JobOutcome], None],
) -> None:
    """A chunk Dask gave up on: its scenes complete on disk are done, the others failed with its error."""
    for index in plan.chunk_range(chunk):
        job = wanted.get(index)
        if job is None:
            continue
        image_ids = [job.recipe.image_id(index) for index in range(len(job.recipe.cameras))]
        files, problems = hash_job_files(out_dir, image_ids, recipe_hash(job.recipe))
        if not problems:
            on_finish(JobOutcome(job, "done", None, job.attempts, files=files))
        else:
            on_finish(
                JobOutcome(
                    job,
                    "failed",
                    None,
                    job.attempts,
                    error_type=error.error_type,
                    error_message=error.message,
                )
            )
