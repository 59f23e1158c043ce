"""`renderer.marker_samples`: the markers rendered again alone, at more samples, and laid over the frame.

Real `bpy`, 320x240, Cycles. The claim of `render_marker_region` is exact, so it is checked pixel for
pixel on the linear render: where a marker covers a pixel whole, the pixel is the one a render of the
whole frame at `marker_samples` gives (the other objects, holdouts there, still shade and light it);
where a box hides the marker, where a marker covers a pixel in part, and anywhere away from the
markers, it is the frame's own render.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from render_tag_shared.passes import mask_id
from render_tag_shared.recipe import BoardObject, SceneRecipe, TagObject
from render_tag_shared.regions import marker_region

from ..blender_helpers import addon_session, tag_recipe

pytestmark = pytest.mark.slow
_ = addon_session  # the fixture, imported for pytest


def _recipe(samples: int, marker_samples: int | None) -> SceneRecipe:
    recipe = tag_recipe("none", scene_id=60, samples=samples, seed=3)
    box = {
        "type": "OCCLUDER",
        "name": "box",
        "size_m": [0.03, 0.09, 0.02],
        "pose": {"position": [-0.1, 0.055, 0.05]},
    }
    renderer = {
        **recipe["renderer"],
        "marker_samples": marker_samples,
        "filter_type": "box",
        "filter_width_px": 1.0,
    }
    return SceneRecipe.model_validate({**recipe, "objects": [*recipe["objects"], box], "renderer": renderer})


def _interior(ids: np.ndarray, value: int) -> np.ndarray:
    """Pixels of object `value` whose 5 x 5 neighbourhood is all that object: no edge reaches them."""
    inside = ids == value
    out = inside.copy()
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            out &= np.roll(np.roll(inside, dy, axis=0), dx, axis=1)
    return out


def test_marker_pixels_are_a_render_at_marker_samples_and_the_rest_the_frames(addon_session: Any) -> None:
    from addon.core import passes, renderer
    from addon.core import scene as scenes
    from addon.core.renderer import REGION_PAD_PX

    recipe = _recipe(2, 16)
    assert recipe.renderer.region_samples == 16
    scene = addon_session.build_scene(recipe)
    frame = renderer.render_linear(scene)
    region = marker_region(recipe, 0)
    holdouts = scenes.objects_other_than(scene, recipe, (TagObject, BoardObject))
    assert sorted(o.name for o in holdouts) == ["box", "ground"]
    laid = renderer.render_marker_region(scene, frame, region, 16, holdouts)
    assert not any(o.is_holdout for o in scene.objects) and scene.cycles.samples == 2
    assert not scene.render.use_border and not scene.render.film_transparent
    ids = np.rint(passes.render_data_pass(scene, "ids")[:, :, 0]).astype(int)

    scene = addon_session.build_scene(_recipe(16, None))
    full = renderer.render_linear(scene)

    tags = [i for i, o in enumerate(recipe.objects) if o.type == "TAG"]
    covered = np.zeros_like(region.mask)
    for index in tags:
        covered |= _interior(ids, mask_id(index))
    assert covered.sum() > 2000 and region.mask[covered].all()
    assert np.array_equal(laid[covered], full[covered])  # bit for bit: the holdouts change no light
    assert not np.array_equal(frame[covered], full[covered])

    box = len(recipe.objects) - 1
    hidden = _interior(ids, mask_id(box)) & region.mask  # the box in front of tag0's paper
    assert hidden.sum() > 50
    assert np.array_equal(laid[hidden], frame[hidden])

    # every pixel is the frame's or the full render's, bit for bit: a marker's partly covered pixels
    # (its paper's outline, the box's silhouette over it) keep the frame's, never a mix of the two
    either = np.all(laid == frame, axis=2) | np.all(laid == full, axis=2)
    assert either.all(), np.argwhere(~either)[:5]
    outline = region.mask & ~covered & ~np.all(laid == full, axis=2)
    assert outline.sum() > 100  # the outlines are there, and the frame's

    near = region.mask.copy()
    for _ in range(REGION_PAD_PX + 2):
        near = np.roll(near, 1, 0) | np.roll(near, -1, 0) | np.roll(near, 1, 1) | np.roll(near, -1, 1) | near
    assert (~near).sum() > 10000
    assert np.array_equal(laid[~near], frame[~near])
