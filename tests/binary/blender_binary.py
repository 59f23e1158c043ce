"""Helpers of the real-binary tier: Debian 13's Blender 4.3.2 in the chroot of tools/blender_chroot.sh.

Everything runs through tools/blender-chroot-run (per-call private mounts, isolated user profile), so
a test needs nothing but the cached chroot. Plain subprocesses, not pytest-blender: these tests need
the host's venv (the `render-tag` CLI, the `bpy` 4.2 module as the reference) and drive X from
outside Blender, while pytest-blender would run the whole session inside Blender's own Python.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[2]
CHROOT_RUN = REPO / "tools" / "blender-chroot-run"
BLENDER = REPO / "tools" / "chroot-bin" / "blender"
BUILD_SCRIPT = REPO / "tools" / "blender_chroot.sh"
VENV_BIN = Path(sys.executable).parent
RENDER_TAG = VENV_BIN / "render-tag"
STAMP_NAME = ".render-tag-chroot-complete"
EXTENSION_MODULE = "bl_ext.user_default.render_tag"
ARTIFACTS = Path(os.environ.get("RENDER_TAG_ARTIFACTS", REPO / "test-artifacts")) / "blender-ui"

T = TypeVar("T")


def chroot_dir() -> Path:
    """Where tools/blender_chroot.sh puts (and the wrapper finds) the chroot."""
    done = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "--print-dir"], capture_output=True, text=True, check=True
    )
    return Path(done.stdout.strip())


def profile_env(profile: Path, **extra: str) -> dict[str, str]:
    """The environment for a wrapper call that keeps its Blender profile in `profile`."""
    env = {k: v for k, v in os.environ.items() if k not in ("BLENDER",)}
    env["RENDER_TAG_BLENDER_PROFILE"] = str(profile)
    env.update(extra)
    return env


def run_blender(
    args: list[str], profile: Path, *, timeout: float = 300, cwd: Path | None = None, **extra_env: str
) -> subprocess.CompletedProcess[str]:
    """Runs the chroot's `blender ARGS` to completion (stdout and stderr captured together)."""
    return subprocess.run(
        [str(BLENDER), *args],
        env=profile_env(profile, **extra_env),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )


def chroot_run(
    args: list[str], *, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Runs a tool of the chroot (xdotool, import ...) and fails loudly when it fails."""
    done = subprocess.run(
        [str(CHROOT_RUN), *args], env=env, capture_output=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{args!r} exited {done.returncode}: {done.stderr.decode(errors='replace')}")
    return done


def install_zip(zip_path: Path, profile: Path) -> subprocess.CompletedProcess[str]:
    """Blender's own command line: install the zip into user_default and enable it (saved prefs)."""
    return run_blender(
        ["--command", "extension", "install-file", "--repo", "user_default", "--enable", str(zip_path)],
        profile,
    )


def enabled_report(profile: Path) -> dict[str, Any]:
    """A fresh Blender (the profile's saved preferences) says whether the extension is enabled."""
    expr = (
        "import addon_utils, bpy, json, sys; "
        f"default, loaded = addon_utils.check({EXTENSION_MODULE!r}); "
        "import pydantic_core, zmq, render_tag_shared; "
        "print('RT_REPORT ' + json.dumps({'loaded': loaded, 'default': default, "
        "'python': sys.version.split()[0], 'blender': bpy.app.version_string, "
        "'has_ops': hasattr(bpy.ops.render_tag, 'add_tag'), "
        "'pydantic_core': pydantic_core.__file__, 'zmq': zmq.__file__, "
        "'render_tag_shared': render_tag_shared.__file__}))"
    )
    done = run_blender(["-b", "--python-exit-code", "1", "--python-expr", expr], profile, timeout=120)
    for line in done.stdout.splitlines():
        if line.startswith("RT_REPORT "):
            return dict(json.loads(line.removeprefix("RT_REPORT ")))
    raise AssertionError(f"no report from Blender (exit {done.returncode}):\n{done.stdout[-3000:]}")


def poll(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.25) -> T:
    """Polls `probe` until it returns something truthy; fails naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")
