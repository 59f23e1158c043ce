"""Where the truth lives in a render (`render_tag_shared.regions`), judged by OpenCV.

The outlines of the tags' and boards' rectangles are cv2.projectPoints of their corners (the render's
own camera: the target pinhole, or the overscan for a distorted lens); the mask is the pixels whose
centre cv2.pointPolygonTest puts inside, grown by GROW_PX.
"""

from __future__ import annotations

import cv2
import numpy as np

from render_tag_shared.geometry import invert_rigid
from render_tag_shared.recipe import RendererSettings, SceneRecipe
from render_tag_shared.regions import GROW_PX, marker_outlines, marker_region, polygon_mask
from render_tag_shared.truth import OUTLINE_SAMPLES_PER_EDGE, object_extent_m

from ..builders import camera, charuco_scene, orbit, tag_scene


def _corners_cv2(recipe: SceneRecipe, k: np.ndarray, index: int = 0) -> list[np.ndarray]:
    out = []
    world_to_camera = invert_rigid(recipe.cameras[index].matrix)
    for obj in recipe.objects:
        w, h = (side / 2 for side in object_extent_m(obj))
        local = np.array([[-w, h, 0, 1], [w, h, 0, 1], [w, -h, 0, 1], [-w, -h, 0, 1]])
        cam = (local @ (world_to_camera @ obj.pose.matrix()).T)[:, :3]
        uv, _ = cv2.projectPoints(np.ascontiguousarray(cam), np.zeros(3), np.zeros(3), k, None)
        out.append(uv.reshape(-1, 2))
    return out


def test_outlines_are_opencv_projections_of_each_rectangle() -> None:
    for recipe in (tag_scene(3), charuco_scene(4, n_cameras=3)):
        for index, cam in enumerate(recipe.cameras):
            outlines = marker_outlines(recipe, index)
            expected = _corners_cv2(recipe, cam.intrinsics.k, index)
            assert len(outlines) == len(expected) == len(recipe.objects)
            for got, want in zip(outlines, expected, strict=True):
                np.testing.assert_allclose(got, want, atol=1e-9)


def test_a_distorted_lens_is_outlined_in_the_overscan_render() -> None:
    """Blender renders the overscan pinhole of a Brown-Conrady camera: the outline is in its pixels."""
    recipe = tag_scene(5, n_cameras=1)
    cam = camera("bc", orbit(0.9, 40.0, 60.0), distortion=("brown_conrady", [-0.2, 0.05, 0.001, 0.0, 0.0]))
    recipe = recipe.model_copy(update={"cameras": [cam]})
    overscan = cam.intrinsics.overscan
    assert overscan is not None and overscan.resolution != cam.intrinsics.resolution
    for got, want in zip(
        marker_outlines(recipe, 0), _corners_cv2(recipe, np.asarray(overscan.k_matrix)), strict=True
    ):
        np.testing.assert_allclose(got, want, atol=1e-9)
    region = marker_region(recipe, 0)
    assert region.mask.shape == (overscan.resolution[1], overscan.resolution[0])


def test_the_mask_is_opencvs_inside_test_at_pixel_centres_grown() -> None:
    width, height = 90, 70
    quad = np.array([[10.3, 12.7], [71.9, 8.2], [80.4, 55.1], [6.6, 61.5]])
    mask = polygon_mask([quad], width, height)
    contour = quad.astype(np.float32).reshape(-1, 1, 2)
    ys, xs = np.mgrid[0:height, 0:width]
    inside = np.array(
        [
            cv2.pointPolygonTest(contour, (float(x), float(y)), True)
            for x, y in zip(xs.ravel(), ys.ravel(), strict=True)
        ]
    ).reshape(height, width)
    clear = np.abs(inside) > 1e-3  # centres on an edge may go either way
    assert clear.all() or clear.mean() > 0.99
    np.testing.assert_array_equal(mask[clear], inside[clear] > 0)
    grown = polygon_mask([quad], width, height, grow_px=1)
    np.testing.assert_array_equal(
        grown, cv2.dilate(mask.astype(np.uint8), np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], np.uint8)) > 0
    )
    assert GROW_PX >= 1


def test_the_region_bounds_its_mask_and_off_frame_markers_give_an_empty_one() -> None:
    recipe = tag_scene(6, n_cameras=1)
    region = marker_region(recipe, 0)
    rows, cols = np.nonzero(region.mask)
    assert (region.x0, region.y0, region.x1, region.y1) == (cols.min(), rows.min(), cols.max(), rows.max())
    assert 0.0 < region.fraction < 0.5 and not region.empty
    away = recipe.model_copy(
        update={"cameras": [camera("away", np.array([0.0, 0.0, 1.0]), np.array([0.0, 5.0, 6.0]))]}
    )
    assert marker_region(away, 0).empty


def test_a_rectangle_reaching_behind_the_camera_gets_the_whole_frame() -> None:
    recipe = tag_scene(7, n_cameras=1)
    inside = recipe.model_copy(
        update={"cameras": [camera("low", np.array([0.0, 0.0, 0.001]), np.array([0.0, 1.0, 0.0]))]}
    )
    w, h = inside.cameras[0].intrinsics.resolution
    region = marker_region(inside, 0)
    assert region.mask.all() and (region.x0, region.y0, region.x1, region.y1) == (0, 0, w - 1, h - 1)


def test_region_samples_only_for_cycles_above_the_frames_samples() -> None:
    """marker_samples not above samples, or Workbench and EEVEE: one render, as before the field."""
    assert RendererSettings(samples=2, marker_samples=16).region_samples == 16
    assert RendererSettings(samples=16, marker_samples=16).region_samples is None
    assert RendererSettings(samples=16, marker_samples=8).region_samples is None
    assert RendererSettings(mode="workbench", samples=2, marker_samples=16).region_samples is None
    assert RendererSettings(mode="eevee", samples=2, marker_samples=16).region_samples is None


def test_a_recipe_without_marker_samples_dumps_and_hashes_as_before() -> None:
    plain = RendererSettings(samples=8)
    assert "marker_samples" not in plain.model_dump(mode="json")
    assert RendererSettings(samples=2, marker_samples=16).model_dump(mode="json")["marker_samples"] == 16


def test_a_fisheye_is_outlined_along_its_curved_edges_in_blenders_equidistant_render() -> None:
    """Kannala-Brandt renders as Blender's equidistant fisheye: edges sampled, as cv2.fisheye images them."""
    recipe = tag_scene(8, n_cameras=1)
    cam = camera("kb", orbit(0.7, 40.0, 60.0), distortion=("kannala_brandt", [0.04, -0.01, 0.003, -0.0004]))
    recipe = recipe.model_copy(update={"cameras": [cam]})
    overscan = cam.intrinsics.overscan
    assert overscan is not None and overscan.projection == "equidistant"
    k = np.asarray(overscan.k_matrix)
    world_to_camera = invert_rigid(cam.matrix)
    for obj, outline in zip(recipe.objects, marker_outlines(recipe, 0), strict=True):
        w, h = (side / 2 for side in object_extent_m(obj))
        corners = np.array([[-w, h, 0, 1], [w, h, 0, 1], [w, -h, 0, 1], [-w, -h, 0, 1]])
        cam_points = (corners @ (world_to_camera @ obj.pose.matrix()).T)[:, :3].reshape(-1, 1, 3)
        uv, _ = cv2.fisheye.projectPoints(
            np.ascontiguousarray(cam_points), np.zeros(3), np.zeros(3), k, np.zeros(4)
        )
        assert len(outline) == 4 * OUTLINE_SAMPLES_PER_EDGE
        np.testing.assert_allclose(outline[::OUTLINE_SAMPLES_PER_EDGE], uv.reshape(-1, 2), atol=1e-6)
