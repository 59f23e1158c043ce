"""Worker launchers: a Blender binary (`blender -b`) or the `bpy` module (`python -c`).

Both run the same constant program (LAUNCH_PROGRAM) with an argument list, never a shell: it loads the
add-on (the installed extension, or the add-on folder by path) and runs its worker (`addon/worker.py`,
the ZeroMQ serve loop). Everything variable travels as JSON in the environment variable
RENDER_TAG_WORKER: a path with quotes, spaces or newlines is data there, never code. Each worker gets a
process group of its own (a new session), so the terminal's Ctrl-C reaches only the host, which stops
workers itself, and killing the group takes down anything the worker started.

The run's secret travels in an environment variable of its own (messages.KEY_ENV): never on the
command line, which every user of the machine can read in /proc, nor in the settings JSON or a log.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from render_tag_shared.devices import ComputeDevice
from render_tag_shared.errors import InputError
from render_tag_shared.messages import KEY_ENV, PROTOCOL_VERSION

from ..addon_source import ADDON_DIR_ENV, addon_version
from ..addon_source import addon_dir as addon_dir_default

__all__ = [
    "BlenderBinaryLauncher",
    "BpyModuleLauncher",
    "Launcher",
    "WorkerProcess",
    "WorkerSettings",
    "find_blender",
    "make_launcher",
]

ENV_VAR = "RENDER_TAG_WORKER"
EXTENSION_MODULE = "bl_ext.user_default.render_tag"
ADDON_PACKAGE = "render_tag_addon"
"""The name the add-on folder is imported under when loaded by path (never a bare `addon`)."""
EXIT_STARTUP_FAILED = 4
DEVICES_LINE = "render_tag devices: "
"""What a worker started with `mode: devices` prints before its JSON device list (addon/worker.py)."""
STARTUP_FAILED = "render_tag worker: startup failed: "
"""The line a worker prints (to its log) when the add-on cannot be loaded; the pool shows it."""

LAUNCH_PROGRAM = f"""\
import importlib, importlib.util, json, os, sys
config = json.loads(os.environ[{ENV_VAR!r}])


def enable(name):
    # addon_utils only prints why an extension failed to enable: collect the error to report it
    errors = []
    try:
        import addon_utils
        addon_utils.enable(name, default_set=False, persistent=False, handle_error=errors.append)
    except Exception as exc:
        errors.append(exc)
    if not errors and name not in sys.modules:
        errors.append(ImportError(f"addon_utils.enable({{name!r}}) reported no error but did not import it"))
    return f"{{type(errors[0]).__name__}}: {{errors[0]}}" if errors else None


def load(config):
    name, folder = config["addon_module"], config["addon_dir"]
    if name:
        why = enable(name)
        if why is None:
            return sys.modules[name]
        if not folder:
            raise ImportError(f"cannot enable the extension {{name}}: {{why}}")
        print(f"render_tag worker: {{name}} not enabled ({{why}}); loading {{folder}}", file=sys.stderr)
    spec = importlib.util.spec_from_file_location(
        {ADDON_PACKAGE!r}, os.path.join(folder, "__init__.py"), submodule_search_locations=[folder]
    )
    package = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = package
    spec.loader.exec_module(package)
    package.register()
    return package


try:
    import bpy  # first: with the bpy module, Blender's own modules (addon_utils) import only after it
    worker = importlib.import_module(load(config).__name__ + ".worker")
    from render_tag_shared.messages import PROTOCOL_VERSION as protocol
    if protocol != config["protocol"]:  # an older installed extension: say so now, not by silence
        raise ImportError(
            f"the add-on speaks worker protocol {{protocol}}, the host {{config['protocol']}}: "
            "install the add-on of this render-tag version"
        )
except BaseException as exc:
    import traceback
    traceback.print_exc()
    said = " ".join(str(exc).split())  # one line: the pool reads it back from the log
    print({STARTUP_FAILED!r} + f"{{type(exc).__name__}}: {{said}}", file=sys.stderr, flush=True)
    sys.exit({EXIT_STARTUP_FAILED})
worker.main(config)
"""
"""The same constant program for both launchers: it finds the add-on, whose worker does the rest."""


def find_blender(explicit: str | None = None) -> str | None:
    """A Blender binary from `--blender PATH`, $BLENDER or PATH; None when there is none.

    An explicit path that is not an executable is bad input (exit 2), not a silent fallback.
    """
    for source, candidate in (("--blender", explicit), ("$BLENDER", os.environ.get("BLENDER"))):
        if not candidate:
            continue
        resolved = shutil.which(candidate) or (candidate if os.access(candidate, os.X_OK) else None)
        if resolved is None or not os.path.isfile(resolved):
            raise InputError(source, "", f"{candidate!r} is not an executable Blender binary")
        return resolved
    return shutil.which("blender")


@dataclass
class WorkerSettings:
    """What one worker process is told at start (sent as JSON, see LAUNCH_PROGRAM)."""

    worker_id: str
    request_endpoint: str
    heartbeat_endpoint: str
    threads: int = 0
    heartbeat_s: float = 1.0
    log_path: Path | None = None
    identity: str = field(default="", repr=False)
    """The worker's ZeroMQ routing id (random: see transport.new_identity); its name when empty."""
    key: bytes = field(default=b"", repr=False)
    """The run's secret that seals every message (see messages.seal); never in `payload`."""

    def payload(self, launcher: Launcher) -> dict[str, Any]:
        return {
            "worker_id": self.worker_id,
            "identity": self.identity or self.worker_id,
            "protocol": PROTOCOL_VERSION,
            "request_endpoint": self.request_endpoint,
            "heartbeat_endpoint": self.heartbeat_endpoint,
            "threads": self.threads,
            "heartbeat_s": self.heartbeat_s,
            "host_pid": os.getpid(),
            "addon_dir": str(launcher.addon_dir) if launcher.addon_dir is not None else None,
            "addon_module": launcher.addon_module,
        }


_LIVE: weakref.WeakSet[WorkerProcess] = weakref.WeakSet()


@dataclass(eq=False)
class WorkerProcess:
    """A running worker: its own process group, killed with its children."""

    popen: subprocess.Popen[bytes]
    settings: WorkerSettings
    log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def poll(self) -> int | None:
        return self.popen.poll()

    def kill(self) -> None:
        """SIGKILL to the whole group (Blender may have helpers), then reap the process."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)
        self._close_log()

    def wait(self, timeout: float) -> int | None:
        """Waits for a clean exit; None when the worker is still running after `timeout` seconds."""
        try:
            code = self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        # The worker is gone; anything it left in its group goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self._close_log()
        return code

    def _close_log(self) -> None:
        if self.log is not None:
            with contextlib.suppress(OSError):
                self.log.close()
            self.log = None


def _kill_all_live() -> None:
    """At host exit no worker is left behind, whatever path the host took out."""
    for worker in list(_LIVE):
        if worker.poll() is None:
            worker.kill()


atexit.register(_kill_all_live)


class Launcher:
    """Starts workers; subclasses say which program runs the launch expression."""

    kind = "abstract"

    unset_env: frozenset[str] = frozenset()
    """Variables of this process's environment that workers do not inherit (a Dask worker's malloc and
    BLAS settings are its own, not Blender's: see dask_engine.BlenderWorkerPlugin)."""

    def __init__(self, addon_dir: Path | None = None, addon_module: str | None = None) -> None:
        self.addon_dir = addon_dir
        self.addon_module = addon_module
        if addon_dir is None and addon_module is None:
            raise InputError(f"${ADDON_DIR_ENV}", "", "no add-on folder and no installed extension to load")
        if addon_dir is not None and not (addon_dir / "__init__.py").is_file():
            raise InputError(str(addon_dir), "__init__.py", f"not an add-on package (set ${ADDON_DIR_ENV})")

    def command(self, settings: WorkerSettings) -> list[str]:
        raise NotImplementedError

    def blender_version(self) -> str:
        raise NotImplementedError

    def addon_version(self) -> str:
        """The add-on's version (what the plan hash records)."""
        return addon_version(self.addon_dir) if self.addon_dir is not None else addon_version()

    def describe(self) -> str:
        return self.kind

    def compute_devices(self, timeout_s: float = 180.0) -> tuple[list[ComputeDevice], list[str]]:
        """Asks a worker (one short run of the launch program) which devices Cycles sees here.

        RuntimeError, with the end of its output, when the worker cannot answer.
        """
        settings = WorkerSettings(worker_id="devices", request_endpoint="", heartbeat_endpoint="")
        env = self.environ()
        env[ENV_VAR] = json.dumps({**settings.payload(self), "mode": "devices"})
        try:
            done = subprocess.run(
                self.command(settings),
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=timeout_s,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeError(f"{self.describe()}: no device list: {exc}") from exc
        for line in done.stdout.splitlines():
            if line.startswith(DEVICES_LINE):
                report = json.loads(line[len(DEVICES_LINE) :])
                devices = [ComputeDevice(*entry) for entry in report["devices"]]
                return devices, [str(b) for b in report["backends"]]
        tail = " | ".join((done.stdout + done.stderr).strip().splitlines()[-5:])
        raise RuntimeError(f"{self.describe()}: no device list (exit {done.returncode}): {tail}")

    def environ(self) -> dict[str, str]:
        """This process's environment, less `unset_env`: what a worker starts from."""
        return {key: value for key, value in os.environ.items() if key not in self.unset_env}

    def start(self, settings: WorkerSettings) -> WorkerProcess:
        """Starts one worker in a new session, output appended to its log file (or discarded)."""
        env = self.environ()
        env[ENV_VAR] = json.dumps(settings.payload(self))
        env[KEY_ENV] = settings.key.hex()
        env.setdefault("PYTHONUNBUFFERED", "1")
        log: IO[bytes] | None = None
        if settings.log_path is not None:
            settings.log_path.parent.mkdir(parents=True, exist_ok=True)
            log = open(settings.log_path, "ab")  # noqa: SIM115  # owned by the WorkerProcess
        popen = subprocess.Popen(
            self.command(settings),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log if log is not None else subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
        worker = WorkerProcess(popen=popen, settings=settings, log=log)
        _LIVE.add(worker)
        return worker


class BpyModuleLauncher(Launcher):
    """`python -c EXPR` with the interpreter that has the `bpy` module (this one by default)."""

    kind = "bpy-module"

    def __init__(self, python: str | None = None, addon_dir: Path | None = None) -> None:
        super().__init__(addon_dir=addon_dir if addon_dir is not None else addon_dir_default())
        self.python = python or sys.executable

    def command(self, settings: WorkerSettings) -> list[str]:
        return [self.python, "-c", LAUNCH_PROGRAM]

    def blender_version(self) -> str:
        """From the wheel's metadata: importing bpy here would cost a second and 250 MB."""
        if self.python == sys.executable:
            try:
                return "bpy " + importlib.metadata.version("bpy")
            except importlib.metadata.PackageNotFoundError:
                pass
        probe = "import importlib.metadata as m; print(m.version('bpy'))"
        done = subprocess.run([self.python, "-c", probe], capture_output=True, text=True, timeout=60)
        return "bpy " + done.stdout.strip() if done.returncode == 0 else "bpy unknown"

    def describe(self) -> str:
        return f"bpy module ({self.python})"


class BlenderBinaryLauncher(Launcher):
    """`blender -b --factory-startup --python-expr EXPR`: the stock program, no user preferences.

    The add-on comes from its folder when there is one (a development install), else from the
    installed extension; in both cases it must find pyzmq and pydantic in Blender's Python.
    """

    kind = "blender"

    def __init__(self, blender: str, addon_dir: Path | None = None, addon_module: str | None = None) -> None:
        folder = addon_dir if addon_dir is not None else addon_dir_default()
        has_folder = (folder / "__init__.py").is_file()
        # The installed extension first (its wheels are where Blender's Python finds them), the folder
        # as the fallback the worker uses when the extension is not installed.
        super().__init__(
            addon_dir=folder if has_folder else None, addon_module=addon_module or EXTENSION_MODULE
        )
        self.blender = blender
        self._version: str | None = None

    def command(self, settings: WorkerSettings) -> list[str]:
        command = [self.blender, "-b", "--factory-startup", "--python-exit-code", "1"]
        if settings.threads > 0:
            command += ["-t", str(settings.threads)]
        return [*command, "--python-expr", LAUNCH_PROGRAM]

    def blender_version(self) -> str:
        if self._version is None:
            done = subprocess.run(
                [self.blender, "-b", "--factory-startup", "--version"],
                capture_output=True,
                text=True,
                timeout=120,
            )
            first = done.stdout.strip().splitlines()[0] if done.stdout.strip() else "unknown"
            self._version = first.removeprefix("Blender ").strip()
        return "blender " + self._version

    def describe(self) -> str:
        return f"Blender binary ({self.blender})"


def make_launcher(blender: str | None = None) -> Launcher:
    """A Blender binary when one is given or found, else the `bpy` module of this interpreter."""
    binary = find_blender(blender)
    if binary is not None:
        return BlenderBinaryLauncher(binary)
    if importlib.util.find_spec("bpy") is None:
        raise InputError(
            "--blender", "", "no Blender: pass --blender PATH, set $BLENDER, or install the bpy module"
        )
    return BpyModuleLauncher()
