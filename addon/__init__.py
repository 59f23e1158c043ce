"""Render Tag: synthetic fiducial-marker datasets with ground truth that OpenCV agrees with.

A Blender extension (manifest: blender_manifest.toml; no bl_info). Its dependencies arrive as wheels
bundled in the zip, so everything is imported by plain absolute name (`render_tag_shared`, `pydantic`)
or relatively (this package): no `sys.path` edits. The package name is whatever Blender installs it as
(`bl_ext.<repo>.render_tag`), so preferences and the cache folder are keyed by `__package__`.
"""

# No `from __future__ import annotations`: Blender reads the property annotations as objects.
import atexit
import importlib.machinery
import os
import tempfile
from pathlib import Path

import bpy
from bpy.props import IntProperty, StringProperty

from . import operators, overlay, panel, properties


class RenderTagPreferences(bpy.types.AddonPreferences):
    """Per-user settings of the add-on (Edit ▸ Preferences ▸ Add-ons ▸ Render Tag)."""

    bl_idname = __package__

    cache_dir: StringProperty(  # type: ignore[valid-type]
        name="Cache folder",
        description="Where preview renders go; empty: the extension's own user folder",
        subtype="DIR_PATH",
        default="",
    )
    preview_samples: IntProperty(  # type: ignore[valid-type]
        name="Preview samples",
        description="Cycles samples of a preview render (0: the recipe's own)",
        min=0,
        default=16,
    )

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "cache_dir")
        layout.prop(self, "preview_samples")
        layout.label(text=f"Default cache: {default_cache_dir()}")


def preferences() -> RenderTagPreferences | None:
    """This add-on's preferences, or None when it runs without being enabled as an add-on (tests)."""
    addon = bpy.context.preferences.addons.get(__package__)
    return addon.preferences if addon is not None else None


def default_cache_dir() -> Path:
    """The extension's user folder (kept across upgrades); a temp folder when not run as an extension."""
    try:
        return Path(bpy.utils.extension_path_user(__package__, path="cache", create=True))
    except ValueError:  # imported as a plain package, not installed as an extension
        path = Path(tempfile.gettempdir()) / "render_tag_cache"
        path.mkdir(parents=True, exist_ok=True)
        return path


def cache_dir() -> Path:
    """Where the add-on writes what it can recreate (preview renders)."""
    prefs = preferences()
    if prefs is not None and prefs.cache_dir:
        path = Path(bpy.path.abspath(prefs.cache_dir))
        os.makedirs(path, exist_ok=True)
        return path
    return default_cache_dir()


_MODULES = (properties, operators, panel, overlay)
_registered = False


def register() -> None:
    global _registered
    if _registered:
        return
    bpy.utils.register_class(RenderTagPreferences)
    for module in _MODULES:
        module.register()
    _registered = True
    if _is_bpy_module():
        atexit.register(_unregister_at_exit)


def unregister() -> None:
    """Removes everything `register` added; a second call does nothing (see `_unregister_at_exit`)."""
    global _registered
    if not _registered:
        return
    atexit.unregister(_unregister_at_exit)
    for module in reversed(_MODULES):
        module.unregister()
    bpy.utils.unregister_class(RenderTagPreferences)
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
