"""The add-on's preferences (Edit ▸ Preferences ▸ Add-ons ▸ Render Tag) and the cache folder they set.

Keyed by the package name Blender installs the add-on as (`bl_ext.<repo>.render_tag`; `addon` in the
tests), which is this module's parent package.
"""

# No `from __future__ import annotations`: Blender reads the property annotations as objects.
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import bpy
from bpy.props import IntProperty, StringProperty

PACKAGE = __package__ or "render_tag"
"""The add-on's module name, as Blender's preferences and extension folders know it."""


class RenderTagPreferences(bpy.types.AddonPreferences):
    """Per-user settings of the add-on (Edit ▸ Preferences ▸ Add-ons ▸ Render Tag)."""

    bl_idname = PACKAGE

    __annotations__ = {
        "cache_dir": StringProperty(
            name="Cache folder",
            description="Where preview renders go; empty: the extension's own user folder",
            subtype="DIR_PATH",
            default="",
        ),
        "preview_samples": IntProperty(
            name="Preview samples",
            description="Cycles samples of a preview render (0: the recipe's own)",
            min=0,
            default=16,
        ),
    }

    if TYPE_CHECKING:  # the values Blender stores for the fields above
        cache_dir: str
        preview_samples: int

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        if layout is None:
            return
        layout.prop(self, "cache_dir")
        layout.prop(self, "preview_samples")
        layout.label(text=f"Default cache: {default_cache_dir()}")


def preferences() -> RenderTagPreferences | None:
    """This add-on's preferences, or None when it runs without being enabled as an add-on (tests)."""
    user = bpy.context.preferences
    addon = user.addons.get(PACKAGE) if user is not None else None
    prefs = addon.preferences if addon is not None else None
    return prefs if isinstance(prefs, RenderTagPreferences) else None


def default_cache_dir() -> Path:
    """The extension's user folder (kept across upgrades); a temp folder when not run as an extension."""
    try:
        return Path(bpy.utils.extension_path_user(PACKAGE, path="cache", create=True))
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


def register() -> None:
    bpy.utils.register_class(RenderTagPreferences)


def unregister() -> None:
    bpy.utils.unregister_class(RenderTagPreferences)
