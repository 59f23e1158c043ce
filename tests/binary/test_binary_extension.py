"""The stock linux zip installs and enables in a real Blender 4.3 binary (Python 3.13).

Why on the binary: the `bpy` 4.2 module runs Python 3.11, so it cannot notice a zip whose compiled
wheels (pydantic_core, pyzmq) exist only for 3.11; Debian 13's Blender 4.3.2 runs Python 3.13.
"""

from __future__ import annotations

from pathlib import Path

from .blender_binary import enabled_report, install_zip


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
