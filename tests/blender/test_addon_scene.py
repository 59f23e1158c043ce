"""Scene building on the real `bpy`: camera mapping, textures, datablock hygiene, export round trip.

No rendering here (fast): the camera is checked against Blender's own projection
(`bpy_extras.object_utils.world_to_camera_view`), which the render tests then confirm in pixels.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from render_tag_shared.boards import BoardDefinition
from render_tag_shared.geometry import invert_rigid
from render_tag_shared.lens import project_points
from render_tag_shared.recipe import SceneRecipe

from ..blender_helpers import addon_session, charuco_recipe, tag_recipe
from ..builders import look_at, pinhole, quat_from_axis_angle

_ = addon_session  # the fixture, imported for pytest

CAMERAS = [
    # fx, fy, cx, cy, width, height
    (300.0, 300.0, 159.5, 119.5, 320, 240),  # square pixels, centred
    (300.0, 340.0, 170.3, 101.2, 320, 240),  # fy > fx, off-centre
    (350.0, 290.0, 100.0, 200.0, 240, 320),  # fy < fx, portrait
    (512.5, 498.0, 50.0, 400.0, 640, 480),  # principal point far off-centre
    (1200.0, 1201.5, 960.7, 540.2, 1920, 1080),
    (800.0, 640.0, 300.0, 420.0, 480, 848),  # tall portrait, strong anisotropy
]


def _blender_pixels(scene: Any, cam_obj: Any, points_world: np.ndarray) -> np.ndarray:
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector

    w, h = scene.render.resolution_x, scene.render.resolution_y
    out = []
    for p in points_world:
        ndc = world_to_camera_view(scene, cam_obj, Vector(p.tolist()))
        # Blender: (0, 0) bottom-left corner of the image, (1, 1) top-right; OpenCV: pixel centres
        out.append([ndc.x * w - 0.5, (1.0 - ndc.y) * h - 0.5])
    return np.asarray(out)


@pytest.mark.parametrize("fx, fy, cx, cy, width, height", CAMERAS)
def test_blender_camera_projects_like_opencv(
    addon_session: Any, fx: float, fy: float, cx: float, cy: float, width: int, height: int
) -> None:
    import bpy

    scene = bpy.context.scene
    data = bpy.data.cameras.new("projection_test")
    cam = bpy.data.objects.new("projection_test", data)
    scene.collection.objects.link(cam)
    try:
        k = [[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]]
        addon_session.set_camera_intrinsics(cam, {"k_matrix": k, "resolution": [width, height]}, scene=scene)
        cam_to_world = np.asarray(look_at([0.3, -1.1, 0.8], [0.05, 0.1, 0.0]))
        from addon.core.camera import blender_matrix, k_from_blender

        cam.matrix_world = blender_matrix(cam_to_world)
        bpy.context.view_layer.update()
        rng = np.random.default_rng(int(fx))
        z = rng.uniform(0.5, 4.0, 40)
        uv_target = np.stack(
            [rng.uniform(-0.4, 1.4, 40) * width, rng.uniform(-0.4, 1.4, 40) * height], axis=1
        )
        points_cam = np.stack([(uv_target[:, 0] - cx) / fx * z, (uv_target[:, 1] - cy) / fy * z, z], axis=1)
        points_world = points_cam @ cam_to_world[:3, :3].T + cam_to_world[:3, 3]
        ours = project_points(points_cam, k)
        blender = _blender_pixels(scene, cam, points_world)
        err = np.abs(blender - ours).max()
        assert err < 2e-3, f"Blender and OpenCV disagree by {err:.2e} px"
        assert (scene.render.resolution_x, scene.render.resolution_y) == (width, height)
        k_back, res = k_from_blender(data, scene.render)
        assert res == (width, height)
        assert np.allclose(k_back, k, rtol=1e-6, atol=1e-4)
        # the recipe's world-to-camera agrees with Blender's camera matrix
        w2c = invert_rigid(cam_to_world)
        assert np.allclose(w2c @ np.append(points_world[0], 1.0), np.append(points_cam[0], 1.0), atol=1e-9)
    finally:
        bpy.data.objects.remove(cam)
        bpy.data.cameras.remove(data)


def _first_dark(row: np.ndarray) -> int:
    return int(np.argmax(row < 0.5))


def _uv_to_object(u: float, uv: tuple[float, float, float, float], width: float) -> float:
    return -width / 2.0 + (u - uv[0]) / (uv[2] - uv[0]) * width


@pytest.mark.parametrize("margin", [0.0, 1.0, 1.5, 2.25])
def test_tag_texture_edges_land_on_the_corners(addon_session: Any, margin: float) -> None:
    """The marker's black border starts exactly at -size/2 of the mesh, for fractional quiet zones too."""
    from addon.core import scene as scene_adapter
    from render_tag_shared.recipe import TagObject
    from render_tag_shared.truth import object_extent_m

    tag = TagObject(name="t", tag_family="tag36h11", tag_id=5, size_mm=123.0, margin_modules=margin)
    image = scene_adapter.tag_image(tag)
    w, h = image.size
    pixels = np.empty(w * h * 4, np.float32)
    image.pixels.foreach_get(pixels)
    gray = pixels.reshape(h, w, 4)[::-1, :, 0]  # row 0 on top
    uv = scene_adapter.tag_uv_rect(tag)
    extent, _ = object_extent_m(tag)
    row = gray[h // 2]
    u_left = _first_dark(row) / w
    u_right = (w - _first_dark(row[::-1])) / w
    assert _uv_to_object(u_left, uv, extent) == pytest.approx(-tag.side_m / 2, abs=1e-12)
    assert _uv_to_object(u_right, uv, extent) == pytest.approx(tag.side_m / 2, abs=1e-12)


def test_board_texture_covers_the_pattern(addon_session: Any) -> None:
    from addon.core import scene as scene_adapter
    from render_tag_shared.recipe import BoardObject

    board = BoardObject.model_validate(charuco_recipe()["objects"][0])
    image, uv = scene_adapter.board_texture(board)
    w, h = image.size
    pixels = np.empty(w * h * 4, np.float32)
    image.pixels.foreach_get(pixels)
    gray = pixels.reshape(h, w, 4)[::-1, :, 0]
    extent_w = board.board.width_m + 2 * board.margin_mm / 1000.0
    extent_h = board.board.height_m + 2 * board.margin_mm / 1000.0
    # ChArUco's top-left square is black: its outer corner is the pattern's top-left corner
    top_rows = np.flatnonzero(gray.min(axis=1) < 0.5)
    first_col = _first_dark(gray[top_rows[0] + 1])
    x = _uv_to_object(first_col / w, uv, extent_w)
    y = -_uv_to_object(top_rows[0] / h, (uv[1], uv[0], uv[3], uv[2]), extent_h)
    assert x == pytest.approx(-board.board.width_m / 2, abs=1e-12)
    assert y == pytest.approx(board.board.height_m / 2, abs=1e-12)


def test_fifty_builds_leave_no_orphans_and_no_growth(addon_session: Any) -> None:
    import bpy

    from addon.core import datablocks

    variants = [
        tag_recipe("none"),
        tag_recipe("brown_conrady", family="tag36h11"),
        tag_recipe("kannala_brandt", family="DICT_6X6_250"),
        charuco_recipe(),
        tag_recipe("none", family="tag25h9"),
    ]
    recipes = [SceneRecipe.model_validate({**v, "scene_id": i}) for i, v in enumerate(variants)]

    def counts() -> dict[str, int]:
        data = bpy.data
        return {
            "images": len(data.images),
            "meshes": len(data.meshes),
            "materials": len(data.materials),
            "textures": len(data.textures),
            "objects": len(data.objects),
            "lights": len(data.lights),
            "cameras": len(data.cameras),
            "worlds": len(data.worlds),
        }

    snapshots = []
    for n in range(50):
        addon_session.build_scene(recipes[n % len(recipes)], 0)
        orphans = datablocks.orphan_counts()
        assert not any(orphans.values()), f"build {n} left orphans {orphans}"
        snapshots.append(counts())
    # after one full cycle the counts repeat exactly: nothing accumulates
    for n in range(len(recipes), 50):
        assert snapshots[n] == snapshots[n - len(recipes)], f"datablocks grew at build {n}"
    scene = bpy.data.scenes["RenderTag"]
    assert len(scene.objects) == len(recipes[49 % len(recipes)].objects) + 2  # + sun + camera
    addon_session.purge_orphans()
    assert counts() == snapshots[-1]


def test_export_build_export_round_trips(addon_session: Any) -> None:
    import bpy

    scene = bpy.data.scenes.new("authoring")
    addon_session.add_tag(
        "tag36h11",
        40,
        120.0,
        name="left",
        location=(-0.2, 0.05, 0.0),
        rotation_quaternion=quat_from_axis_angle((1, 0.2, 0), 0.3),
        scene=scene,
    )
    addon_session.add_tag(
        "DICT_4X4_50", 9, 55.5, name="right", location=(0.21, -0.03, 0.02), margin_modules=1.5, scene=scene
    )
    board = BoardDefinition(
        board_type="aprilgrid", rows=3, cols=4, marker_size_mm=40.0, spacing_ratio=0.3, dictionary="tag36h11"
    )
    addon_session.add_board(board, name="grid", location=(0.0, 0.3, -0.01), margin_mm=7.5, scene=scene)
    light_data = bpy.data.lights.new("key", "AREA")
    light = bpy.data.objects.new("key", light_data)
    scene.collection.objects.link(light)
    light.location = (0.3, -0.4, 1.5)
    light_data.energy = 150.0
    light_data.size = 0.3
    cam_data = bpy.data.cameras.new("cam")
    cam = bpy.data.objects.new("cam", cam_data)
    scene.collection.objects.link(cam)
    scene.camera = cam
    from addon.core.camera import blender_matrix

    cam.matrix_world = blender_matrix(look_at([0.1, -0.8, 1.1], [0.0, 0.05, 0.0]))
    addon_session.set_camera_intrinsics(
        cam,
        pinhole(
            610.0,
            590.0,
            330.25,
            228.5,
            (640, 480),
            distortion_model="brown_conrady",
            distortion_coeffs=[-0.1, 0.02, 0.0, 0.001, 0.0],
            eval_margin_px=4.0,
        ),
        scene=scene,
    )
    # an edit in the panel rebuilds the mesh at once
    tag = scene.objects["left"]
    before = tag.dimensions.x
    tag.render_tag.size_mm = 100.0
    assert tag.dimensions.x == pytest.approx(before * 100.0 / 120.0, rel=1e-5)

    first = addon_session.export_scene_recipe(scene, scene_id=5, random_seed=11)
    names = [o.name for o in first.objects]
    assert names == ["grid", "left", "right"]
    assert first.objects[1].size_mm == 100.0 and first.objects[2].margin_modules == 1.5
    assert first.objects[0].pose.position == (0.0, 0.3, -0.01)
    assert first.cameras[0].intrinsics.k_matrix == [
        [610.0, 0.0, 330.25],
        [0.0, 590.0, 228.5],
        [0.0, 0.0, 1.0],
    ]
    assert first.cameras[0].intrinsics.eval_margin_px == 4.0
    assert first.world.lights[0].type == "AREA" and first.world.lights[0].energy == 150.0
    built = addon_session.build_scene(first, 0)
    assert built.name == "RenderTag"
    second = addon_session.export_scene_recipe(built)
    assert second.model_dump(mode="json") == first.model_dump(mode="json")
    # and once more, through a second build
    third = addon_session.export_scene_recipe(addon_session.build_scene(second, 0))
    assert third == first
    # moving an object in the built scene is an edit the export must see
    # (object names are unique per file, so the built copy may be "left.001": the recipe name is kept)
    (left,) = [o for o in built.objects if o.get("render_tag_name") == "left"]
    left.location.x += 0.05
    moved = addon_session.export_scene_recipe(built)
    assert moved.objects[1].pose.position[0] == pytest.approx(
        first.objects[1].pose.position[0] + 0.05, abs=1e-6
    )
    for obj in list(scene.objects):
        bpy.data.objects.remove(obj)
    bpy.data.scenes.remove(scene)
    addon_session.purge_orphans()


def test_host_recipe_builds_and_exports_unchanged(addon_session: Any) -> None:
    """A compiled recipe (float64 poses, three cameras, noise settings) survives build → export exactly."""
    recipe = SceneRecipe.model_validate(tag_recipe("kannala_brandt"))
    cams = [recipe.cameras[0].model_dump(mode="json") for _ in range(3)]
    for i, cam in enumerate(cams):
        cam["name"] = f"cam{i}"
        cam["cam_to_world"] = look_at([0.03 * i, -0.12, 0.42 + 0.01 * i], [0.0, 0.0, 0.0])
        cam["sensor_noise"] = {"seed": 3 + i, "layers": [{"type": "gaussian", "sigma": 0.01}]}
    renderer = {"samples": 2, "marker_samples": 16}  # the balanced preset's: the N-panel shows both
    recipe = SceneRecipe.model_validate(
        {**recipe.model_dump(mode="json"), "cameras": cams, "renderer": renderer}
    )
    for index in range(3):
        scene = addon_session.build_scene(recipe, index)
        assert (scene.render_tag.samples, scene.render_tag.marker_samples) == (2, 16)
        exported = addon_session.export_scene_recipe(scene)
        assert exported == recipe
    scene.render_tag.marker_samples = 0  # an artist turns the markers' render off in the N-panel
    assert addon_session.export_scene_recipe(scene).renderer.marker_samples is None


def test_camera_depth_of_field_and_motion(addon_session: Any) -> None:
    import bpy

    recipe = tag_recipe("none")
    recipe["cameras"][0]["depth_of_field"] = {"focus_distance_m": 0.61, "fstop": 2.8}
    recipe["cameras"][0]["dynamics"] = {
        "velocity_mps": [0.0, 0.5, 0.0],
        "angular_velocity_radps": [0.0, 0.0, 2.0],
        "shutter_s": 0.01,
        "rolling_shutter_s": 0.03,
    }
    model = SceneRecipe.model_validate(recipe)
    scene = addon_session.build_scene(model, 0)
    cam = scene.camera
    assert cam.data.dof.use_dof and cam.data.dof.focus_distance == pytest.approx(0.61)
    assert cam.data.dof.aperture_fstop == pytest.approx(2.8)
    assert scene.render.use_motion_blur and scene.render.motion_blur_shutter == pytest.approx(0.04)
    assert scene.cycles.rolling_shutter_type == "TOP"
    assert scene.cycles.rolling_shutter_duration == pytest.approx(0.75)
    # mid-exposure is the recipe's pose; the ends are half the exposure away
    from addon.core.camera import MOTION_FRAME, opencv_matrix

    scene.frame_set(MOTION_FRAME)
    assert np.allclose(opencv_matrix(cam), model.cameras[0].matrix, atol=1e-5)
    scene.frame_set(MOTION_FRAME, subframe=0.02)
    assert np.asarray(cam.matrix_world.translation)[1] == pytest.approx(
        model.cameras[0].matrix[1, 3] + 0.01, abs=1e-5
    )
    scene.frame_set(MOTION_FRAME)
    assert addon_session.export_scene_recipe(scene) == model
    static = addon_session.build_scene(SceneRecipe.model_validate(tag_recipe("none")), 0)
    assert not static.render.use_motion_blur and not static.camera.data.dof.use_dof
    assert static.camera.animation_data is None or static.camera.animation_data.action is None
    from addon.core.datablocks import orphan_counts

    assert not any(orphan_counts().values()), f"orphans after a moving camera: {orphan_counts()}"
    assert len(bpy.data.actions) == 0


def test_renderer_settings(addon_session: Any) -> None:
    import bpy

    from addon.core.renderer import EEVEE_IDS, configure_renderer
    from render_tag_shared.recipe import RendererSettings

    scene = bpy.data.scenes.new("renderer_test")
    try:
        engine = configure_renderer(
            scene, RendererSettings(samples=7, noise_threshold=0.05, seed=42, denoise=True, device="cpu")
        )
        assert engine == "CYCLES" and scene.cycles.samples == 7 and scene.cycles.seed == 42
        assert scene.cycles.use_adaptive_sampling and scene.cycles.adaptive_threshold == pytest.approx(0.05)
        assert scene.cycles.use_denoising and scene.cycles.device == "CPU"
        assert scene.view_settings.view_transform == "Raw" and scene.view_settings.look == "None"
        assert configure_renderer(scene, RendererSettings(mode="workbench")) == "BLENDER_WORKBENCH"
        assert scene.display.shading.color_type == "TEXTURE"
        assert configure_renderer(scene, RendererSettings(mode="eevee")) in EEVEE_IDS
        # gpu without a GPU is refused, auto falls back: tests/blender/test_devices.py
    finally:
        bpy.data.scenes.remove(scene)


def test_properties_register_on_blender_types(addon_session: Any) -> None:
    import bpy

    properties = importlib.import_module("addon.props")
    assert properties.registered()
    obj = bpy.data.objects.new("props_test", None)
    scene = bpy.data.scenes.new("props_test")
    try:
        assert obj.render_tag.kind == "NONE" and obj.render_tag.family == "tag36h11"
        assert scene.render_tag.distortion_model == "none" and scene.render_tag.renderer_mode == "cycles"
    finally:
        bpy.data.objects.remove(obj)
        bpy.data.scenes.remove(scene)


def test_image_files_are_loaded_once_and_reused(addon_session: Any, tmp_path: Any) -> None:
    """HDRI, background and plane textures: one datablock per file across builds, freed when unused."""
    import bpy

    from addon.core.datablocks import orphan_counts
    from render_tag_shared.imaging import write_png_atomic

    ramp = np.tile(np.linspace(0, 255, 64).astype(np.uint8), (32, 1))
    sky = write_png_atomic(tmp_path / "sky.png", np.stack([ramp] * 3, axis=-1))
    wall = write_png_atomic(tmp_path / "wall.png", ramp.T.copy())
    recipe = tag_recipe("none")
    recipe["world"].update(hdri={"path": str(sky), "strength": 0.7, "rotation_z_rad": 0.5})
    recipe["world"]["background_texture"] = str(wall)
    recipe["objects"][-1].update(texture=str(wall), texture_repeat=3.0)
    model = SceneRecipe.model_validate(recipe)

    def file_images() -> list[Any]:
        return [
            i for i in bpy.data.images if i.filepath and Path(bpy.path.abspath(i.filepath)).parent == tmp_path
        ]

    scene = addon_session.build_scene(model, 0)
    first = {i.name: i.as_pointer() for i in file_images()}
    assert len(first) == 2, f"one datablock per file, got {list(first)}"
    nodes = {n.bl_idname for n in scene.world.node_tree.nodes}
    assert {"ShaderNodeTexEnvironment", "ShaderNodeLightPath", "ShaderNodeTexImage"} <= nodes
    addon_session.build_scene(model, 0)
    assert {i.name: i.as_pointer() for i in file_images()} == first, "images must be reused, not reloaded"
    assert addon_session.export_scene_recipe(scene) == model
    addon_session.build_scene(SceneRecipe.model_validate(tag_recipe("none")), 0)
    assert file_images() == [] and not any(orphan_counts().values())


def test_a_recipe_inherits_no_render_setting_from_the_scene_before(addon_session: Any) -> None:
    """The worker's scene outlives each recipe: what one recipe (or a user) set must not leak into the
    next (found by the render-cost work: bounce limits only ever went down, clamps and pattern stayed)."""
    first = tag_recipe("none", scene_id=50)
    first["renderer"]["max_bounces"] = 0
    scene = addon_session.build_scene(first)
    scene.cycles.sample_clamp_direct = 1.0
    scene.cycles.sampling_pattern = "TABULATED_SOBOL"
    scene = addon_session.build_scene(tag_recipe("none", scene_id=51))
    cycles = scene.cycles
    assert (cycles.max_bounces, cycles.diffuse_bounces, cycles.glossy_bounces) == (4, 4, 4)
    assert (cycles.sample_clamp_direct, cycles.sample_clamp_indirect) == (0.0, 10.0)
    assert cycles.sampling_pattern == "AUTOMATIC"
