"""The stock linux zip installs and enables in a real Blender 4.3 binary (Python 3.13).

Why on the binary: the `bpy` 4.2 module runs Python 3.11, so it cannot notice a zip whose compiled
wheels (pydantic_core, pyzmq) exist only for 3.11; Debian 13's Blender 4.3.2 runs Python 3.13.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from ..builders import zip_asking_for_blender, zip_without_python
from .blender_binary import BLENDER, RENDER_TAG, enabled_report, install_zip, profile_env


def test_stock_zip_installs_and_enables_on_blender_43(stock_zip: Path, fresh_profile: Path) -> None:
    """Blender's own `extension install-file --enable` accepts the zip, and a new Blender has it on."""
    done = install_zip(stock_zip, fresh_profile)
    assert done.returncode == 0, f"Blender 4.3 refused {stock_zip.name}:\n{done.stdout[-3000:]}"
    report = enabled_report(fresh_profile)
    assert report["blender"].startswith("4.3"), report
    assert report["python"].startswith("3.13"), report
    assert report["loaded"] and report["default"], report
    assert report["has_ops"], report
    # The compiled packages come from the extension's bundled wheels, not from the system.
    extensions = str(fresh_profile / "extensions")
    for package in ("pydantic_core", "zmq", "render_tag_shared"):
        assert report[package].startswith(extensions), (package, report[package])


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda src, dst: zip_asking_for_blender(src, dst, "9.0.0"),
            "did not install render_tag-0.1.0-linux_x64.zip: render_tag: This Blender version (4.3.2) "
            "doesn't meet the minimum supported version (9.0.0)",
        ),
        (
            lambda src, dst: zip_without_python(src, dst, "3.13"),
            "installed render_tag-0.1.0-linux_x64.zip but did not enable it: Extension "
            "bl_ext.user_default.render_tag is incompatible (This Python version (3.13) isn't compatible "
            "with (3.11))",
        ),
    ],
    ids=["blender-too-old", "no-wheels-for-python-3.13"],
)
def test_refused_zip_shows_blenders_reason(
    edit: Callable[[Path, Path], Path], expected: str, stock_zip: Path, fresh_profile: Path, tmp_path: Path
) -> None:
    """`render-tag addon install --blender` on a zip the binary refuses: exit 1 with Blender's reason.

    Why: `blender --command extension install-file` exits 0 when it refuses a zip at install time.
    """
    refused = edit(stock_zip, tmp_path / stock_zip.name)
    done = subprocess.run(
        [str(RENDER_TAG), "addon", "install", str(refused), "--blender", str(BLENDER)],
        env=profile_env(fresh_profile),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    first = done.stderr.strip().splitlines()[0]
    assert first == f"render-tag addon install: {BLENDER} {expected}", done.stderr
