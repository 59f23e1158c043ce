"""The 3D viewports' Solid shading: show a marker's texture instead of a plain grey plane.

Blender's Solid view colours an object by its material's viewport colour (`color_type = 'MATERIAL'`,
the default), which for a marker is a flat grey: the pattern only appears with the Texture colour or
in Material Preview. So when the add-on adds a marker or builds a recipe's scene, every 3D viewport
still on that default switches to Texture, once per viewport: a viewport the user set to another
colour is left alone, and one the user switches back after that stays as they set it (the screen, an
ID saved with the file, remembers which of its areas were switched). The N-panel's toggle
(`render_tag.toggle_marker_textures`) switches the current screen either way. Without a screen
(a headless worker) nothing happens.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Final

import bpy

DEFAULT_COLOR_TYPE: Final = "MATERIAL"
"""Blender's factory Solid colour: what the add-on may change without overriding a user's choice."""
TEXTURE: Final = "TEXTURE"

SWITCHED = "render_tag_solid_switched"
"""Screen custom property: indices of the areas whose Solid colour the add-on has switched (never again)."""


def _areas(
    screens: Iterable[bpy.types.Screen],
) -> Iterator[tuple[bpy.types.Screen, int, bpy.types.SpaceView3D]]:
    """(screen, area index, its 3D viewport space) for every VIEW_3D area of these screens."""
    for screen in screens:
        for index, area in enumerate(screen.areas):
            if area.type != "VIEW_3D":
                continue
            for space in area.spaces:
                if isinstance(space, bpy.types.SpaceView3D):
                    yield screen, index, space


def view3d_spaces(screens: Iterable[bpy.types.Screen]) -> Iterator[bpy.types.SpaceView3D]:
    """Every 3D viewport space of these screens (the active space of each VIEW_3D area)."""
    for _, _, space in _areas(screens):
        yield space


def _switched(screen: bpy.types.Screen) -> set[int]:
    stored: Iterable[int] = screen.get(SWITCHED) or ()
    return {int(i) for i in stored}


def _remember(screen: bpy.types.Screen, index: int) -> None:
    screen[SWITCHED] = sorted(_switched(screen) | {index})


def all_screens() -> list[bpy.types.Screen]:
    """Every screen of the file (each workspace has one): switching workspace shows textures too."""
    return list(bpy.data.screens)


def show_marker_textures(screens: Iterable[bpy.types.Screen] | None = None) -> int:
    """Switch 3D viewports still on Blender's default Solid colour to Texture; returns how many.

    A viewport is switched at most once, so a user who switches back is not overridden.
    """
    changed = 0
    for screen, index, space in list(_areas(all_screens() if screens is None else screens)):
        if index in _switched(screen) or space.shading.color_type != DEFAULT_COLOR_TYPE:
            continue
        space.shading.color_type = TEXTURE
        _remember(screen, index)
        changed += 1
    return changed


def marker_textures_shown(screen: bpy.types.Screen | None) -> bool:
    """True when every 3D viewport of `screen` shows textures in Solid view (False without one)."""
    spaces = list(view3d_spaces([screen])) if screen is not None else []
    return bool(spaces) and all(space.shading.color_type == TEXTURE for space in spaces)


def set_marker_textures(screen: bpy.types.Screen | None, show: bool) -> int:
    """Set the Solid colour of `screen`'s 3D viewports to Texture (show) or Material; returns how many."""
    areas = list(_areas([screen])) if screen is not None else []
    for owner, index, space in areas:
        space.shading.color_type = TEXTURE if show else DEFAULT_COLOR_TYPE
        _remember(owner, index)  # the user decided: no automatic switch afterwards
    return len(areas)
