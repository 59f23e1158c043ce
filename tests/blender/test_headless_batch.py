"""DESIGN.md's headless batch with the `bpy` module: `python -c "import bpy; ...render_recipe(...)"` exits 0.

Blender 4.2's `bpy` module shuts Blender down only when the `bpy` module object is freed at the end
of the interpreter's teardown. Anything Blender still holds then (a property `update=` function, which
`bpy.props` keeps even after its class is unregistered; a class, handler or timer left registered)
keeps `bpy` alive through its module's globals; Blender's exit never runs and the process dies with
SIGSEGV (exit 139) in C++ destructors after a successful run. The add-on therefore hands Blender
`update=` trampolines whose globals hold nothing (addon/callbacks.py), and, in the `bpy` module,
unregisters itself at exit when the user did not (an `atexit` hook). These tests run each case in a
fresh interpreter, as a user would, and check the exit code as well as the output.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import types
from pathlib import Path

from ..blender_helpers import import_addon
from ..builders import REPO_ROOT, look_at, pinhole

_LOAD = f"import sys; sys.path.insert(0, {str(REPO_ROOT)!r}); import bpy; import addon; addon.register(); "
"""The add-on loaded by path and registered by hand (the extension's package is `addon/`)."""


def _small_recipe(path: Path) -> Path:
    """One tag in front of the camera, 64x48 Workbench: a render of a fraction of a second."""
    recipe = {
        "scene_id": 3,
        "random_seed": 0,
        "renderer": {"mode": "workbench", "samples": 1},
        "objects": [
            {
                "type": "TAG",
                "name": "tag",
                "tag_family": "tag36h11",
                "tag_id": 5,
                "size_mm": 100.0,
                "pose": {"position": [0.0, 0.0, 0.0]},
            }
        ],
        "cameras": [
            {
                "cam_to_world": look_at([0.0, -0.05, 0.4], [0.0, 0.0, 0.0]),
                "intrinsics": pinhole(60.0, 60.0, 31.5, 23.5, (64, 48)),
            }
        ],
    }
    path.write_text(json.dumps(recipe))
    return path


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_batch_expression_exits_0(tmp_path: Path) -> None:
    """The batch expression, the add-on left registered at exit: the image and its labels, exit 0."""
    recipe = _small_recipe(tmp_path / "recipe.json")
    out = tmp_path / "out"
    _python(
        _LOAD + f"bpy.ops.render_tag.render_recipe(filepath={str(recipe)!r}, output_dir={str(out)!r})",
        tmp_path,
    )
    assert [p.name for p in (out / "images").iterdir()] == ["scene000003_cam00.png"]
    labels = json.loads((out / "labels" / "scene000003_cam00.json").read_text())
    assert labels["records"][0]["tag_id"] == 5


def test_exit_after_editing_and_unregistering(tmp_path: Path) -> None:
    """The case that crashed even when tidy: update callbacks fired, overlay on, add-on unregistered."""
    code = _LOAD + (
        "bpy.ops.render_tag.add_tag(family='tag36h11', tag_id=7, size_mm=120.0); "
        "obj = bpy.context.active_object; before = obj.dimensions.x; "
        "obj.render_tag.tag_id = 9; obj.render_tag.size_mm = 80.0; "
        "bpy.ops.render_tag.toggle_overlay(); "
        "print('RATIO', round(obj.dimensions.x / before, 4)); "
        "addon.unregister(); print('UNREGISTERED', hasattr(bpy.types.Object, 'render_tag'))"
    )
    proc = _python(code, tmp_path)
    assert "RATIO 0.6667" in proc.stdout  # the update callback rebuilt the tag at the new size
    assert "UNREGISTERED False" in proc.stdout


def _from_blender(value: object) -> bool:
    """Whether a value is (or is an instance of) a class that Blender's `bpy` defines."""
    owner = value if isinstance(value, type) else type(value)
    return owner.__module__.split(".")[0].startswith("bpy")


def test_update_callbacks_keep_no_module_alive() -> None:
    """What Blender keeps of the property callbacks reaches no module, `bpy` least of all."""
    package = import_addon()
    callbacks = importlib.import_module("addon.callbacks")
    kept = vars(callbacks)
    assert not [name for name, value in kept.items() if isinstance(value, types.ModuleType)]
    assert not [name for name, value in kept.items() if _from_blender(value)], "a bpy object is kept"
    settings = package.props.RenderTagObjectSettings
    updates = {
        deferred.keywords["update"]
        for deferred in settings.__annotations__.values()
        if "update" in getattr(deferred, "keywords", {})
    }
    assert updates == {callbacks.refresh_object}
