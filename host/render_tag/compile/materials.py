"""Looks of a scene that leave its geometry alone: procedural patterns, printed paper, light colour.

Each draw takes the generator of its own labelled stream, so a config that does not ask for them
compiles the bytes it always did.
"""

from __future__ import annotations

import colorsys
import math

import numpy as np

from render_tag_shared.config import BackgroundSection, PaperSection
from render_tag_shared.recipe import ProceduralKind, ProceduralTexture

from .sampler import uniform

__all__ = ["kelvin_to_rgb", "paper_look", "procedural_texture", "solid_look"]

_DISTORTED: tuple[ProceduralKind, ...] = ("noise", "wave", "magic")
"""Patterns whose node has a Distortion input."""


def _colour(rng: np.random.Generator, hue: float, section: BackgroundSection) -> tuple[float, float, float]:
    saturation = uniform(rng, *section.saturation)
    value = uniform(rng, *section.brightness)
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, saturation, value)
    return (r, g, b)


def procedural_texture(
    rng: np.random.Generator, kind: ProceduralKind, section: BackgroundSection
) -> ProceduralTexture:
    """One pattern: two colours of nearby hues (random saturation and brightness), scale, turn, detail.
    (`section.rotation_deg` turns the whole floor, image or pattern, through its pose.)"""
    hue = rng.random()
    color_a = _colour(rng, hue, section)
    color_b = _colour(rng, hue + uniform(rng, -0.2, 0.2), section)
    scale = uniform(rng, *section.scale)
    rotation = uniform(rng, 0.0, 2.0 * math.pi)
    detail = uniform(rng, 0.0, 3.0)  # each level is one more noise octave per shading point
    distortion = uniform(rng, 0.0, 3.0) if kind in _DISTORTED else 0.0
    return ProceduralTexture(
        kind=kind,
        color_a=color_a,
        color_b=color_b,
        scale=scale,
        rotation_rad=rotation,
        detail=detail,
        distortion=distortion,
    )


def solid_look(
    rng: np.random.Generator, section: BackgroundSection
) -> tuple[tuple[float, float, float], ProceduralTexture | None]:
    """A distractor's colour, and half the time one of the background's patterns (when it has any)."""
    color = colorsys.hsv_to_rgb(rng.random(), uniform(rng, 0.0, 0.8), uniform(rng, 0.1, 0.9))
    procedural = None
    if section.procedural and rng.random() < 0.5:
        kind = section.procedural[int(rng.integers(len(section.procedural)))]
        procedural = procedural_texture(rng, kind, section)
    return (color[0], color[1], color[2]), procedural


def paper_look(rng: np.random.Generator, section: PaperSection) -> dict[str, object]:
    """Fields of a printed target: paper colour (a grey, tinted warm or cool), ink level, roughness.

    PaperSection's own rule keeps the darkest paper and the lightest ink far enough apart."""
    brightness = uniform(rng, *section.paper_brightness)
    tint = uniform(rng, -section.paper_tint, section.paper_tint)
    paper = tuple(min(1.0, max(0.0, brightness * (1.0 + f * tint))) for f in (1.0, 0.0, -1.0))
    ink = uniform(rng, *section.ink_level)
    return {
        "paper_color": paper,
        "ink_color": (ink, ink, ink),
        "roughness": uniform(rng, *section.roughness),
    }


def kelvin_to_rgb(kelvin: float) -> tuple[float, float, float]:
    """The colour of a black body at `kelvin` as linear RGB with its largest channel 1 (Tanner
    Helland's fit of the CIE 1964 data, 1000-40000 K, decoded from sRGB to linear). 6500 K is about white."""
    t = kelvin / 100.0
    if t <= 66.0:
        r = 255.0
        g = 99.4708025861 * math.log(t) - 161.1195681661
        b = 0.0 if t <= 19.0 else 138.5177312231 * math.log(t - 10.0) - 305.0447927307
    else:
        r = 329.698727446 * (t - 60.0) ** -0.1332047592
        g = 288.1221695283 * (t - 60.0) ** -0.0755148492
        b = 255.0
    srgb = [min(255.0, max(0.0, c)) / 255.0 for c in (r, g, b)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in srgb]
    top = max(linear)
    red, green, blue = (c / top for c in linear)
    return (red, green, blue)
