"""Render Tag: synthetic fiducial-marker datasets with ground truth that OpenCV agrees with.

A Blender extension (manifest: blender_manifest.toml; no bl_info). Its dependencies arrive as wheels
bundled in the zip, so everything is imported by plain absolute name (`render_tag_shared`, `pydantic`)
or relatively (this package): no `sys.path` edits. The package name is whatever Blender installs it as
(`bl_ext.<repo>.render_tag`), so preferences and the cache folder are keyed by `__package__`.

Layout, bottom up: `core/` drives bpy (recipes in, scenes and pixels out); `api.py` is the function
API the operators and the headless worker call; `props.py` and `prefs.py` declare Blender
properties; `ui/` holds the operators, the N-panel and the viewport overlay.
"""

import atexit
import importlib.machinery
from pathlib import Path

import bpy

from render_tag_shared.versions import addon_version

from . import prefs, props, ui
from .prefs import RenderTagPreferences, cache_dir, default_cache_dir, preferences

__all__ = ["RenderTagPreferences", "cache_dir", "default_cache_dir", "preferences", "register", "unregister"]

__version__ = addon_version(Path(__file__).resolve().parent)
"""blender_manifest.toml's version (beside this package in the zip, one folder up in a checkout)."""

_registered = False


def register() -> None:
    global _registered
    if _registered:
        return
    prefs.register()
    props.register()
    ui.register()
    _registered = True
    if _is_bpy_module():
        atexit.register(_unregister_at_exit)


def unregister() -> None:
    """Removes everything `register` added; a second call does nothing (see `_unregister_at_exit`)."""
    global _registered
    if not _registered:
        return
    atexit.unregister(_unregister_at_exit)
    ui.unregister()
    props.unregister()
    prefs.unregister()
    _registered = False


def _is_bpy_module() -> bool:
    """Whether Blender runs as the `bpy` module of a plain Python (not inside a Blender binary)."""
    return isinstance(getattr(bpy.__spec__, "loader", None), importlib.machinery.ExtensionFileLoader)


def _unregister_at_exit() -> None:
    """Python's `atexit`, `bpy` module only: unregister while Blender is still alive.

    The Blender 4.2 `bpy` module shuts Blender down only when the `bpy` module object is freed at
    the very end of the interpreter's teardown, and anything Blender still holds at that point
    (a registered class, a draw or app handler, a timer) keeps `bpy` alive through its module's
    globals: Blender's exit never runs and the process dies with SIGSEGV (exit 139) in C++
    destructors. An add-on enabled with `addon_utils` is disabled by Blender's own `atexit` hook;
    one registered by hand (`import render_tag; render_tag.register()`) is by this one, which runs
    first (atexit is last in, first out), so `unregister` must tolerate the second call. A Blender
    binary shuts itself down first and ends Python afterwards (unregistering then would be too late),
    so nothing is hooked there. Property callbacks need more than this: see callbacks.py.
    """
    try:
        unregister()
    except Exception as exc:  # exiting anyway: say what failed, never raise from atexit
        print(f"render_tag: unregister at exit: {exc!r}")
