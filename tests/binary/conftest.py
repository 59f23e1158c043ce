"""The real-binary tier (Debian 13's Blender 4.3.2 in a chroot): opt-in, loud when asked for.

`make test` stays the `bpy`-module tier: tests/conftest.py collects this folder only when
RENDER_TAG_BINARY_TIER=1 (set by `make test-blender`). When the tier is asked for, a missing chroot,
wrapper or zip fails the tests; it never skips them.

Every test uses the stock linux zip from `render-tag addon build` (it carries the Python 3.13 wheels
this Blender needs), never a hand-made one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .blender_binary import BLENDER, CHROOT_RUN, RENDER_TAG, STAMP_NAME, chroot_dir, install_zip


@pytest.fixture(scope="session")
def blender_chroot() -> Path:
    """The cached chroot; its absence is a failure of the tier, never a skip."""
    root = chroot_dir()
    if not (root / STAMP_NAME).is_file():
        pytest.fail(f"no Blender chroot at {root}: `make test-blender` builds it (tools/blender_chroot.sh)")
    for tool in (CHROOT_RUN, BLENDER):
        if not os.access(tool, os.X_OK):
            pytest.fail(f"{tool} is not executable")
    if os.geteuid() != 0:
        pytest.fail("the binary tier needs root (mount namespaces and chroot)")
    return root


@pytest.fixture(scope="session")
def stock_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stock linux zip, exactly as a user builds it: `render-tag addon build` (its linux_x64 zip)."""
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run([str(RENDER_TAG), "addon", "build", "-o", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    zips = sorted(out.glob("render_tag-*-linux_x64.zip"))
    assert len(zips) == 1, f"expected one linux zip in {out}: {sorted(p.name for p in out.iterdir())}"
    return zips[0]


@pytest.fixture(scope="session")
def installed_profile(
    blender_chroot: Path, stock_zip: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A Blender profile (under /tmp, visible in the chroot) with the extension installed and enabled."""
    profile = tmp_path_factory.mktemp("blender-profile")
    done = install_zip(stock_zip, profile)
    if done.returncode != 0:
        pytest.fail(f"Blender 4.3 refused {stock_zip.name} (exit {done.returncode}):\n{done.stdout[-3000:]}")
    return profile


@pytest.fixture
def fresh_profile(blender_chroot: Path, tmp_path: Path) -> Iterator[Path]:
    """An empty Blender profile for one test."""
    profile = tmp_path / "blender-profile"
    profile.mkdir()
    yield profile
    shutil.rmtree(profile, ignore_errors=True)
