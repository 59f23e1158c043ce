"""The renderer presets keep the truth: `render-tag verify`'s measurement on small renders of each.

Real `bpy`, 320x240 (tags: six tags at varied poses; a ChArUco board), judged by the code of
`render-tag verify` (OpenCV's detectors, the ChArUco detector's own offset removed). The figures at
640x480 and what each preset costs are in the README ("Render cost and accuracy", `make bench`);
here only accuracy is checked, never time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from render_tag.compile.presets import RENDER_PRESETS
from render_tag.qa.verify import verify_dataset
from render_tag_shared.recipe import SceneRecipe

from ..blender_helpers import addon_session, charuco_recipe, tag_recipe

pytestmark = pytest.mark.slow
_ = addon_session  # the fixture, imported for pytest


def _with_renderer(recipe: dict[str, Any], renderer: dict[str, Any]) -> SceneRecipe:
    return SceneRecipe.model_validate({**recipe, "renderer": {**recipe["renderer"], **renderer}})


def _render_and_verify(api: Any, out: Path, renderer: dict[str, Any]) -> dict[str, Any]:
    for recipe in (
        tag_recipe("none", scene_id=31),
        tag_recipe("none", scene_id=32, seed=5),
        charuco_recipe(),
    ):
        api.render_recipe(_with_renderer(recipe, renderer), out)
    return verify_dataset(out, plot=False).families


LIMITS = {"fast": (0.05, 0.25, 0.1), "balanced": (0.1, 0.25, 0.12)}
"""Per preset at 320x240 (tags of 5 px per module): |mean offset| of tag corners, tag-centre median and
ChArUco corner median, px. Small tags make every error larger than at 640x480 (README); the mean offset
of 12 tags carries their centres' noise, so only the noise-free fast preset is held to 0.05 px."""


@pytest.mark.parametrize("preset", sorted(LIMITS))
def test_the_preset_keeps_tags_and_charuco_on_the_truth(
    addon_session: Any, tmp_path: Path, preset: str
) -> None:
    families = _render_and_verify(addon_session, tmp_path, RENDER_PRESETS[preset])
    tags, board = families["DICT_4X4_50"], families["charuco:DICT_4X4_50"]
    offset, centre, charuco = LIMITS[preset]
    corners, centres, squares = tags["corner_error"], tags["centre_error"], board["corner_error"]
    print(f"{preset}: tag corners {corners} centres {centres} charuco {squares}")
    assert tags["detected"] == tags["expected"] == 12
    assert abs(corners["mean_dx"]) <= offset and abs(corners["mean_dy"]) <= offset, corners
    assert centres["median"] <= centre, centres
    assert board["detected"] >= 0.9 * board["expected"]
    assert squares["median"] <= charuco, squares
    assert abs(squares["mean_dx"]) <= 0.05 and abs(squares["mean_dy"]) <= 0.05, squares


def test_workbench_without_supersampling_carries_its_offset(addon_session: Any, tmp_path: Path) -> None:
    """Why the fast preset supersamples: Workbench's own 32-sample anti-aliasing shifts the corners."""
    families = _render_and_verify(addon_session, tmp_path, {"mode": "workbench", "supersample": 1})
    corners = families["DICT_4X4_50"]["corner_error"]
    assert max(abs(corners["mean_dx"]), abs(corners["mean_dy"])) > 0.06, corners


def test_a_supersampled_render_is_reduced_about_exact_pixel_centres(addon_session: Any) -> None:
    """High-res pixel u_s lies at (u_s + 0.5) / s - 0.5 (OpenCV's centres): each block averages to its k."""
    from addon.core.renderer import reduce_supersampled

    for factor in (2, 3, 4):
        h, w = 5, 7
        us = np.arange(w * factor, dtype=np.float32)
        vs = np.arange(h * factor, dtype=np.float32)
        hi = np.stack(np.broadcast_arrays(us[None, :], vs[:, None], 0 * us[None, :], 1 + 0 * vs[:, None]), -1)
        low = reduce_supersampled(np.ascontiguousarray(hi), factor)
        assert low.shape == (h, w, 4)
        np.testing.assert_allclose(
            (low[..., 0] + 0.5) / factor - 0.5, np.arange(w)[None, :] + 0 * low[..., 0]
        )
        np.testing.assert_allclose(
            (low[..., 1] + 0.5) / factor - 0.5, np.arange(h)[:, None] + 0 * low[..., 1]
        )


def test_a_later_camera_of_a_scene_gives_the_pixels_of_a_fresh_build(
    addon_session: Any, tmp_path: Path
) -> None:
    """The scene is built once for all its cameras (the cheaper way, `make bench`): a camera rendered after
    another camera of the scene (and after another scene) gives the bytes of the same camera alone."""
    recipe = tag_recipe("none", scene_id=40, samples=2)
    second = {
        **recipe["cameras"][0],
        "name": "cam1",
        "cam_to_world": np.asarray(recipe["cameras"][0]["cam_to_world"]).tolist(),
    }
    second["cam_to_world"][0][3] += 0.03
    model = SceneRecipe.model_validate({**recipe, "cameras": [recipe["cameras"][0], second]})
    addon_session.render_recipe(SceneRecipe.model_validate(charuco_recipe(samples=2)), tmp_path / "other")
    together = addon_session.render_recipe(model, tmp_path / "together")
    alone = addon_session.render_recipe(model, tmp_path / "alone", camera_indices=[1])
    assert Path(together[1].image_path).read_bytes() == Path(alone[0].image_path).read_bytes()
    assert Path(together[0].image_path).read_bytes() != Path(together[1].image_path).read_bytes()
    labels = json.loads(Path(together[1].labels_path).read_text())
    assert labels["render_environment"]["engine"] == "CYCLES"


def test_a_recipe_inherits_no_render_setting_from_the_scene_before(addon_session: Any) -> None:
    """The worker's scene outlives a recipe: what one recipe (or a user) set must not leak into the next."""
    first = _with_renderer(tag_recipe("none", scene_id=50), {"max_bounces": 0, "supersample": 2})
    scene = addon_session.build_scene(first)
    scene.cycles.sample_clamp_direct = 1.0
    scene.cycles.sampling_pattern = "TABULATED_SOBOL"
    scene = addon_session.build_scene(_with_renderer(tag_recipe("none", scene_id=51), {}))
    cycles = scene.cycles
    assert (cycles.max_bounces, cycles.diffuse_bounces, cycles.glossy_bounces) == (4, 4, 4)
    assert (cycles.sample_clamp_direct, cycles.sampling_pattern) == (0.0, "AUTOMATIC")
    assert scene["render_tag_supersample"] == 1 and scene.render.resolution_percentage == 100


@pytest.mark.parametrize("half", [False, True])
def test_the_numpy_exr_reader_gives_blenders_own_pixels(
    addon_session: Any, tmp_path: Path, half: bool
) -> None:
    """The renderer reads its EXR with numpy (render_tag_shared.exr): the same floats as Blender's loader,
    rows the right way up, for the float frames of Cycles and the half ones of a supersampled Workbench."""
    import bpy

    from addon.core.renderer import _linear_output, load_with_blender
    from render_tag_shared.exr import UnsupportedExr, read_exr

    recipe = _with_renderer(
        tag_recipe("none", scene_id=70, samples=2), {"mode": "workbench" if half else "cycles"}
    )
    scene = addon_session.build_scene(recipe)
    path = str(tmp_path / "frame.exr")
    _linear_output(scene, path, half=half)
    bpy.ops.render.render(write_still=True, scene=scene.name)
    ours, blenders = read_exr(path), load_with_blender(path)
    assert ours.shape == blenders.shape == (240, 320, 4) and ours.dtype == np.float32
    assert np.array_equal(ours, blenders)
    assert ours[:, :, :3].std() > 0.05  # a picture, not a constant
    compressed = tmp_path / "zip.exr"
    scene.render.image_settings.exr_codec = "ZIP"
    scene.render.filepath = str(compressed)
    bpy.ops.render.render(write_still=True, scene=scene.name)
    with pytest.raises(UnsupportedExr):
        read_exr(compressed)
