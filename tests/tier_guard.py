"""A pytest plugin for the bpy version tiers (`make test-bpy53`): the tier runs what it says or fails.

Loaded with `-p tests.tier_guard`. With RENDER_TAG_TIER_BPY=X.Y (and RENDER_TAG_TIER_PYTHON=X.Y) the
session stops at once unless `bpy` imports and is that Blender under that Python, and it prints the
Blender, Python and OpenCV it runs. At the end any skipped test fails the run: a tier whose tests skip
has tested nothing (the suite has no legitimate skip; the Ctrl-C test of tests/e2e/test_pool.py was
made race-free instead).
"""

from __future__ import annotations

import os
import sys

import pytest

_skipped: list[str] = []


def pytest_sessionstart(session: pytest.Session) -> None:
    """Stops before collecting when the interpreter is not the tier's Blender and Python."""
    want_python = os.environ.get("RENDER_TAG_TIER_PYTHON")
    have_python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    if want_python and have_python != want_python:
        raise pytest.UsageError(
            f"tier: wants Python {want_python}, runs under {have_python} ({sys.executable})"
        )
    want_bpy = os.environ.get("RENDER_TAG_TIER_BPY")
    if want_bpy:
        try:
            import bpy
        except ImportError as exc:
            raise pytest.UsageError(
                f"tier: the bpy module does not import ({exc}): pip install 'bpy=={want_bpy}.*'"
            ) from exc
        have = f"{bpy.app.version[0]}.{bpy.app.version[1]}"
        if have != want_bpy:
            raise pytest.UsageError(
                f"tier: wants bpy {want_bpy}, imports {bpy.app.version_string} from {bpy.__file__}"
            )
        import cv2

        print(
            f"tier: Blender {bpy.app.version_string} (bpy module), Python {sys.version.split()[0]}, "
            f"OpenCV {cv2.__version__}"
        )


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Remembers every skipped test (an xfail is not a skip)."""
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _skipped.append(f"{report.nodeid}: {reason}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A run that skipped anything fails, even when every test that ran passed."""
    if _skipped and session.exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Names the skipped tests that failed the tier."""
    if _skipped:
        terminalreporter.section("tier: skipped tests fail this tier")
        for line in _skipped:
            terminalreporter.write_line(line)
