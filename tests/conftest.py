"""Suite-wide hooks.

pytest-blender stays opt-in (pyproject disables it): plain `pytest` always runs against the `bpy` module.
"""

from __future__ import annotations

import os
import sys

import pytest

_exit_status: dict[str, int | None] = {"status": None}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _exit_status["status"] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """The Blender 4.2 `bpy` module segfaults in its own interpreter teardown once a class with a
    property `update=` callback has been registered (even after unregistering): exit with pytest's
    status before that teardown runs, so a green run is not reported as a crash (exit 139)."""
    if "bpy" in sys.modules and _exit_status["status"] is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_exit_status["status"])
