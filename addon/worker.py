"""The worker that runs inside Blender: serves render requests from the host's pool over ZeroMQ.

The host's launcher (render_tag.batch.launcher.LAUNCH_PROGRAM) loads this add-on, as the installed
extension or from its folder, and calls `main` with the settings it passed as JSON in the environment
(so no path is ever formatted into code). pyzmq and `render_tag_shared` come from Blender's Python or
from the extension's bundled wheels.

Two channels: requests and replies on a DEALER socket (the host's ROUTER picks the worker for each job),
and heartbeats on a PUSH socket from a thread of their own, so the host hears from a worker while
Blender renders (Cycles releases the GIL). The heartbeat thread also watches the host: when the host
process is gone the worker exits at once instead of rendering for nobody.

Every message both ways is sealed with the run's secret (render_tag_shared.messages.seal), which the
host hands over in the environment (KEY_ENV, removed from os.environ once read); the DEALER's routing
id is the random identity the host chose. A message from the host socket without the MAC is ignored.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import bpy
import zmq

from render_tag_shared.errors import OutOfMemory, is_retryable
from render_tag_shared.messages import (
    KEY_BYTES,
    KEY_ENV,
    Heartbeat,
    Hello,
    RenderReply,
    RenderRequest,
    Shutdown,
    Timings,
    WorkerError,
    WorkerState,
    open_host_message,
    seal,
)
from render_tag_shared.versions import addon_version

from . import api

EXIT_HOST_GONE = 3
EXIT_STARTUP_FAILED = 4
STARTUP_FAILED = "render_tag worker: startup failed: "
"""The log line the host's launcher reads back when a worker cannot start (launcher.STARTUP_FAILED)."""


def read_key() -> bytes | None:
    """The run's secret from the environment (removed from os.environ: nothing this worker starts gets
    it); None when it is missing or malformed."""
    try:
        key = bytes.fromhex(os.environ.pop(KEY_ENV, ""))
    except ValueError:
        return None
    return key if len(key) == KEY_BYTES else None


DEVICES_LINE = "render_tag devices: "
"""Prefix of the one line a worker started in `devices` mode prints (render_tag.batch.launcher reads it)."""


def read_rss_mb() -> tuple[float, float]:
    """Resident and peak resident memory in MB from /proc (ru_maxrss elsewhere: peak only)."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            fields = dict(line.split(":", 1) for line in handle if ":" in line)
        rss = float(fields["VmRSS"].split()[0]) / 1024.0
        peak = float(fields.get("VmHWM", fields["VmRSS"]).split()[0]) / 1024.0
        return rss, peak
    except (OSError, KeyError, ValueError):
        import resource

        peak_kb = float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        peak = peak_kb / (1024.0 * 1024.0) if sys.platform == "darwin" else peak_kb / 1024.0
        return peak, peak


def _set_parent_death_signal() -> None:
    """Linux: the kernel kills this worker when the host dies, even by SIGKILL (best effort)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        pass


class Telemetry:
    """What the heartbeat thread reports; written by the main thread, read by the heartbeat thread."""

    def __init__(self) -> None:
        self.state: WorkerState = "starting"
        self.job_index: int | None = None
        self.renders_done = 0
        self.lock = threading.Lock()

    def set(self, state: WorkerState, job_index: int | None = None) -> None:
        with self.lock:
            self.state = state
            self.job_index = job_index

    def snapshot(self) -> tuple[WorkerState, int | None, int]:
        with self.lock:
            return self.state, self.job_index, self.renders_done


def heartbeat_loop(
    context: Any, config: dict[str, Any], key: bytes, telemetry: Telemetry, stop: threading.Event
) -> None:
    """Sends a Heartbeat every `heartbeat_s`; exits the process when the host has gone away."""
    socket = context.socket(zmq.PUSH)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.SNDHWM, 10)
    socket.connect(config["heartbeat_endpoint"])
    interval = float(config.get("heartbeat_s", 1.0))
    host_pid = int(config["host_pid"])
    last_wall, last_cpu = time.monotonic(), _cpu_seconds()
    try:
        while not stop.is_set():
            if os.getppid() != host_pid:
                os._exit(EXIT_HOST_GONE)  # the host died: never outlive it (no cleanup can help now)
            now, cpu = time.monotonic(), _cpu_seconds()
            percent = 100.0 * (cpu - last_cpu) / max(now - last_wall, 1e-6)
            last_wall, last_cpu = now, cpu
            rss, peak = read_rss_mb()
            state, job_index, done = telemetry.snapshot()
            beat = Heartbeat(
                worker_id=config["worker_id"],
                pid=os.getpid(),
                rss_mb=round(rss, 2),
                peak_rss_mb=round(peak, 2),
                cpu_percent=round(percent, 1),
                renders_done=done,
                state=state,
                job_index=job_index,
                sent_at=time.time(),
            )
            with contextlib.suppress(zmq.Again):
                socket.send(seal(beat, key), zmq.NOBLOCK)
            stop.wait(interval)
    finally:
        socket.close(0)


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def install_thread_budget(threads: int) -> Any:
    """Cycles' thread count for every render of this worker (0 keeps Blender's automatic count).

    A render_pre handler applies it to whatever scene the add-on renders, including a scene it creates
    after the worker started: the `bpy` module has no `-t` option. Returns the handler (None when there
    is none), which `serve` removes before the worker exits: Blender should hold nothing of ours then.
    """
    if threads <= 0:
        return None

    def _apply(scene: Any, *_args: Any) -> None:
        scene.render.threads_mode = "FIXED"
        scene.render.threads = threads

    bpy.app.handlers.render_pre.append(_apply)
    for scene in bpy.data.scenes:
        _apply(scene)
    return _apply


def _sum_timings(results: Sequence[api.RenderResult]) -> Timings:
    """The stages of a scene: the sums over its cameras."""
    total = {"build": 0.0, "render": 0.0, "post": 0.0, "write": 0.0}
    for result in results:
        for key in total:
            total[key] += float(result.timings.get(key, 0.0))
    return Timings(**total)


def serve(config: dict[str, Any]) -> int:
    """The worker's life: load, say hello, render until told to stop or the host is gone."""
    started = time.monotonic()
    _set_parent_death_signal()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the host decides when a worker stops
    worker_id = str(config["worker_id"])
    key = read_key()
    if key is None:  # no socket can be trusted without it: say why in the log, as a failed load does
        said = f"{STARTUP_FAILED}KeyError: no valid ${KEY_ENV} (the run's secret)"
        print(said, file=sys.stderr, flush=True)
        return EXIT_STARTUP_FAILED
    context = zmq.Context()
    telemetry = Telemetry()
    stop = threading.Event()
    beats = threading.Thread(
        target=heartbeat_loop, args=(context, config, key, telemetry, stop), name="heartbeat", daemon=True
    )
    beats.start()
    socket = context.socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 2000)
    socket.setsockopt(zmq.ROUTING_ID, str(config.get("identity") or worker_id).encode())
    socket.connect(config["request_endpoint"])

    try:
        thread_budget = install_thread_budget(int(config.get("threads", 0)))
    except BaseException as exc:  # report why, then exit: the pool counts failed start-ups
        error = WorkerError(
            worker_id=worker_id,
            pid=os.getpid(),
            error_type=type(exc).__name__,
            error_message=str(exc),
            traceback=traceback.format_exc(),
        )
        socket.send(seal(error, key))
        stop.set()
        beats.join(timeout=2.0)
        socket.close(2000)
        context.term()  # waits until the error has left: the host shows it to the user
        return EXIT_STARTUP_FAILED

    hello = Hello(
        worker_id=worker_id,
        pid=os.getpid(),
        blender_version=bpy.app.version_string,
        addon_version=addon_version(Path(__file__).resolve().parent),
        python_version=sys.version.split()[0],
        threads=int(config.get("threads", 0)),
        startup_s=round(time.monotonic() - started, 3),
    )
    socket.send(seal(hello, key))
    telemetry.set("idle")
    poller = zmq.Poller()
    poller.register(socket, zmq.POLLIN)
    try:
        while True:
            if not poller.poll(1000):
                continue
            try:
                message = open_host_message(socket.recv(), key)
            except ValueError as exc:  # not from our host (or not a message): ignored, never decoded
                print(f"render_tag worker: message ignored: {str(exc)[:200]}", file=sys.stderr, flush=True)
                continue
            if isinstance(message, Shutdown):
                break
            assert isinstance(message, RenderRequest)
            telemetry.set("rendering", message.job_index)
            try:
                results = api.render_recipe(
                    message.recipe, Path(message.out_dir), camera_indices=message.camera_indices
                )
                reply = RenderReply(
                    worker_id=worker_id,
                    job_index=message.job_index,
                    attempt=message.attempt,
                    status="ok",
                    image_ids=[r.image_id for r in results],
                    timings=_sum_timings(results),
                )
            except Exception as exc:  # one bad recipe must not take the worker down; bad input says so
                reply = RenderReply(
                    worker_id=worker_id,
                    job_index=message.job_index,
                    attempt=message.attempt,
                    status="error",
                    error_type=OutOfMemory.__name__ if isinstance(exc, MemoryError) else type(exc).__name__,
                    error_message=str(exc) or repr(exc),
                    traceback=traceback.format_exc(),
                    retryable=is_retryable(exc),
                )
            with contextlib.suppress(Exception):  # a failed purge costs memory, not the worker
                api.purge_orphans()  # about 0.5 MB a scene leaks otherwise
            with telemetry.lock:
                telemetry.renders_done += 1
            reply.rss_mb = round(read_rss_mb()[0], 2)
            telemetry.set("idle")
            socket.send(seal(reply, key))
    finally:
        telemetry.set("stopping")
        if thread_budget is not None and thread_budget in bpy.app.handlers.render_pre:
            bpy.app.handlers.render_pre.remove(thread_budget)
        stop.set()
        beats.join(timeout=2.0)
        socket.close(1000)
        context.term()
    return 0


def main(config: dict[str, Any]) -> None:
    """Entry point of the launcher's program, with the settings it was given.

    The worker ends like any Python program: a normal return (exit code 0) or `sys.exit(code)`, so the
    interpreter's teardown runs (the add-on unregisters itself at exit, see addon/__init__.py) and
    the exit code is the worker's own.
    """
    if config.get("mode") == "devices":  # the host's question before rendering: no sockets needed
        print(DEVICES_LINE + json.dumps(api.compute_devices()), flush=True)
        return
    code = serve(config)
    if code:
        sys.exit(code)
