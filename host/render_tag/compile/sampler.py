"""Random draws of the compiler: a labelled stream per decision, and fast scalar draws from it.

Scene N draws from `derive_seed(job_seed, "scene", N)` and labelled sub-seeds of it, never from a
running generator, so a recipe depends on the config and its index alone.
"""

from __future__ import annotations

import math

import numpy as np

from render_tag_shared.seeds import derive_seed

from .frames import Vec

__all__ = ["random_direction", "stream", "uniform", "uniform_inside"]


def stream(seed: int, label: str, index: int = 0) -> np.random.Generator:
    """The generator of one labelled decision of a scene (subject, world, camera j, optics j)."""
    return np.random.Generator(np.random.PCG64(derive_seed(seed, label, index)))


def uniform(rng: np.random.Generator, low: float, high: float) -> float:
    """`rng.uniform(low, high)` for one number: numpy computes low + (high - low) * next_double, which is
    this, to the bit and from the same stream, without numpy's per-call overhead (a hot path)."""
    return low + (high - low) * rng.random()


def uniform_inside(rng: np.random.Generator, bounds: tuple[float, float], inset: float) -> float:
    """Uniform in [low + inset, high - inset], or the middle when the inset leaves nothing."""
    low, high = bounds[0] + inset, bounds[1] - inset
    if low >= high:
        return 0.5 * (bounds[0] + bounds[1])
    return uniform(rng, low, high)


def random_direction(rng: np.random.Generator) -> Vec:
    """A unit vector uniform on the sphere (z uniform in [-1, 1], azimuth uniform)."""
    z = uniform(rng, -1.0, 1.0)
    phi = uniform(rng, 0.0, 2.0 * math.pi)
    r = math.sqrt(max(0.0, 1.0 - z * z))
    return (r * math.cos(phi), r * math.sin(phi), z)
