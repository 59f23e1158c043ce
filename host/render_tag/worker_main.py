"""The worker that runs inside Blender: serves render requests from the host's pool over ZeroMQ.

It runs in Blender's interpreter (`blender -b --python-expr` or `python -c` with the `bpy` module), so it
imports only the standard library, `zmq`, `render_tag_shared` and the add-on, never the rest of the host
package: a Blender binary has none of it. The launcher loads this file by path and passes everything it
needs as JSON in the environment variable RENDER_TAG_WORKER, so no path is ever formatted into code.

Two channels: requests and replies on a DEALER socket (the host's ROUTER picks the worker for each job),
and heartbeats on a PUSH socket from a thread of their own, so the host hears from a worker while
Blender renders (Cycles releases the GIL). The heartbeat thread also watches the host: when the host
process is gone the worker exits at once instead of rendering for nobody.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from render_tag_shared.messages import WorkerState

ENV_VAR = "RENDER_TAG_WORKER"
ADDON_PACKAGE = "render_tag_addon"
"""The name the add-on is imported under when loaded by path (never a bare `addon`)."""

EXIT_HOST_GONE = 3
EXIT_STARTUP_FAILED = 4


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


def _enable_extension(module_name: str) -> BaseException | None:
    """Enables an installed extension (which also puts its bundled wheels on sys.path).

    Returns None when the extension is enabled, else the exception that stopped it: `addon_utils` only
    prints its errors, so they are collected here and go into the error the host shows.
    """
    errors: list[BaseException] = []
    try:
        import addon_utils  # Blender's own module

        addon_utils.enable(module_name, default_set=False, persistent=False, handle_error=errors.append)
    except Exception as exc:
        errors.append(exc)
    if errors:
        return errors[0]
    if module_name not in sys.modules:
        return ImportError(f"addon_utils.enable({module_name!r}) reported no error but did not import it")
    return None


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def load_addon(config: dict[str, Any]) -> ModuleType:
    """The add-on package: the installed extension by module name, else the add-on folder by path."""
    module_name = config.get("addon_module")
    if module_name:
        enable_error = _enable_extension(module_name)
        if enable_error is None:
            return importlib.import_module(module_name)
        if not config.get("addon_dir"):
            raise ImportError(
                f"cannot enable the extension {module_name}: {_describe(enable_error)}"
            ) from enable_error
        # The folder is the fallback (a development checkout): say why the extension was not used.
        print(
            f"render_tag worker: extension {module_name} not enabled ({_describe(enable_error)}); "
            f"loading the add-on from {config['addon_dir']}",
            file=sys.stderr,
        )
    if ADDON_PACKAGE in sys.modules:
        return sys.modules[ADDON_PACKAGE]
    folder = Path(config["addon_dir"])
    spec = importlib.util.spec_from_file_location(
        ADDON_PACKAGE, folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the add-on from {folder}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[ADDON_PACKAGE] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[ADDON_PACKAGE]
        raise
    register = getattr(module, "register", None)
    if callable(register):
        try:
            register()
        except ValueError as exc:  # already registered (a second load in one interpreter)
            if "already registered" not in str(exc):
                raise
    return module


def import_zmq(config: dict[str, Any]) -> ModuleType:
    """pyzmq: from this Python, or (stock Blender) from the extension's bundled wheels once enabled."""
    try:
        import zmq
    except ImportError as exc:
        module_name = config.get("addon_module")
        if not module_name:
            raise
        enable_error = _enable_extension(module_name)
        if enable_error is not None:
            raise ImportError(
                f"pyzmq is not importable ({exc}) and enabling {module_name}, which bundles it, failed: "
                f"{_describe(enable_error)}"
            ) from enable_error
        import zmq
    return zmq


def _addon_version(addon: ModuleType, config: dict[str, Any]) -> str:
    version = getattr(addon, "__version__", None)
    if version:
        return str(version)
    return str(config.get("addon_version") or "unknown")


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


def heartbeat_loop(context: Any, config: dict[str, Any], telemetry: Telemetry, stop: threading.Event) -> None:
    """Sends a Heartbeat every `heartbeat_s`; exits the process when the host has gone away."""
    import zmq

    from render_tag_shared.messages import Heartbeat, encode

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
                socket.send(encode(beat), zmq.NOBLOCK)
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
    import bpy

    def _apply(scene: Any, *_args: Any) -> None:
        scene.render.threads_mode = "FIXED"
        scene.render.threads = threads

    bpy.app.handlers.render_pre.append(_apply)
    for scene in bpy.data.scenes:
        _apply(scene)
    return _apply


def purge_orphans() -> None:
    """Datablocks left over from the last scene leak about 0.5 MB a scene unless purged."""
    import bpy

    purge: Any = bpy.data.orphans_purge  # the stubs lack its keyword arguments
    with contextlib.suppress(Exception):
        purge(do_local_ids=True, do_linked_ids=True, do_recursive=True)


def _sum_timings(results: Any) -> dict[str, float]:
    total = {"build": 0.0, "render": 0.0, "post": 0.0, "write": 0.0}
    for result in results or []:
        timings = result.get("timings") if isinstance(result, dict) else getattr(result, "timings", None)
        if isinstance(timings, dict):
            for key in total:
                total[key] += float(timings.get(key, 0.0) or 0.0)
        elif timings is not None:
            for key in total:
                total[key] += float(getattr(timings, key, 0.0) or 0.0)
    return total


def _image_id(result: Any) -> str:
    return str(result.get("image_id") if isinstance(result, dict) else result.image_id)


def serve(config: dict[str, Any]) -> int:
    """The worker's life: load, say hello, render until told to stop or the host is gone."""
    started = time.monotonic()
    _set_parent_death_signal()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the host decides when a worker stops
    zmq = import_zmq(config)

    from render_tag_shared.messages import (
        Hello,
        RenderReply,
        RenderRequest,
        Shutdown,
        Timings,
        WorkerError,
        decode_host_message,
        encode,
    )

    worker_id = str(config["worker_id"])
    context = zmq.Context()
    telemetry = Telemetry()
    stop = threading.Event()
    beats = threading.Thread(
        target=heartbeat_loop, args=(context, config, telemetry, stop), name="heartbeat", daemon=True
    )
    beats.start()
    socket = context.socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 2000)
    socket.setsockopt(zmq.ROUTING_ID, worker_id.encode())
    socket.connect(config["request_endpoint"])

    try:
        import bpy

        addon = load_addon(config)
        api = importlib.import_module(addon.__name__ + ".api")
        render_recipe = api.render_recipe
        thread_budget = install_thread_budget(int(config.get("threads", 0)))
    except BaseException as exc:  # report why, then exit: the pool counts failed start-ups
        error = WorkerError(
            worker_id=worker_id,
            pid=os.getpid(),
            error_type=type(exc).__name__,
            error_message=str(exc),
            traceback=traceback.format_exc(),
        )
        socket.send(encode(error))
        stop.set()
        beats.join(timeout=2.0)
        socket.close(2000)
        context.term()  # waits until the error has left: the host shows it to the user
        return EXIT_STARTUP_FAILED

    hello = Hello(
        worker_id=worker_id,
        pid=os.getpid(),
        blender_version=bpy.app.version_string,
        addon_version=_addon_version(addon, config),
        python_version=sys.version.split()[0],
        threads=int(config.get("threads", 0)),
        startup_s=round(time.monotonic() - started, 3),
    )
    socket.send(encode(hello))
    telemetry.set("idle")
    poller = zmq.Poller()
    poller.register(socket, zmq.POLLIN)
    try:
        while True:
            if not poller.poll(1000):
                continue
            message = decode_host_message(socket.recv())
            if isinstance(message, Shutdown):
                break
            assert isinstance(message, RenderRequest)
            telemetry.set("rendering", message.job_index)
            try:
                results = render_recipe(
                    message.recipe, Path(message.out_dir), camera_indices=message.camera_indices
                )
                reply = RenderReply(
                    worker_id=worker_id,
                    job_index=message.job_index,
                    attempt=message.attempt,
                    status="ok",
                    image_ids=[_image_id(r) for r in results],
                    timings=Timings(**_sum_timings(results)),
                )
            except Exception as exc:  # one bad recipe must not take the worker down
                reply = RenderReply(
                    worker_id=worker_id,
                    job_index=message.job_index,
                    attempt=message.attempt,
                    status="error",
                    error_type=type(exc).__name__,
                    error_message=str(exc) or repr(exc),
                    traceback=traceback.format_exc(),
                )
            purge = getattr(api, "purge_orphans", None)
            try:
                purge() if callable(purge) else purge_orphans()
            except Exception:  # a failed purge costs memory, not the worker
                purge_orphans()
            with telemetry.lock:
                telemetry.renders_done += 1
            reply.rss_mb = round(read_rss_mb()[0], 2)
            telemetry.set("idle")
            socket.send(encode(reply))
    finally:
        telemetry.set("stopping")
        if thread_budget is not None and thread_budget in bpy.app.handlers.render_pre:
            bpy.app.handlers.render_pre.remove(thread_budget)
        stop.set()
        beats.join(timeout=2.0)
        socket.close(1000)
        context.term()
    return 0


def main() -> None:
    """Entry point of the launch expression: the config comes from RENDER_TAG_WORKER.

    The worker ends like any Python program: a normal return (exit code 0) or `sys.exit(code)`, so the
    interpreter's teardown runs (the add-on unregisters itself at exit, see addon/__init__.py) and
    the exit code is the worker's own.
    """
    config = json.loads(os.environ[ENV_VAR])
    code = serve(config)
    if code:
        sys.exit(code)


if __name__ == "__main__":
    main()
