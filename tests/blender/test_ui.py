"""The add-on's operators, N-panel and overlay in a window-less Blender (the real `bpy` module).

What a window-less Blender cannot do: draw. `gpu` refuses to work in background mode, so
`overlay._draw` (the gpu/blf calls) never runs here, and panels cannot get a real `UILayout`. The
tests therefore check everything up to those calls: each operator runs headless; each panel's
`draw` runs against a recording layout that checks every property and operator it names against
Blender's RNA; and the overlay's points are compared with Blender's own projection of the 3D corners.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from ..blender_helpers import import_addon

OPERATORS = (
    "build_recipe",
    "step_scene",
    "step_camera",
    "render_recipe",
    "export_recipe",
    "add_tag",
    "add_board",
    "set_camera_intrinsics",
    "preview_render",
    "toggle_overlay",
    "toggle_marker_textures",
)


@pytest.fixture(scope="module")
def addon() -> Iterator[Any]:
    """The whole add-on registered (properties, operators, panels, preferences) in the bpy module."""
    import bpy

    package = import_addon()
    bpy.ops.wm.read_factory_settings(use_empty=False)
    package.register()
    try:
        yield package
    finally:
        package.ui.overlay.disable()
        package.unregister()


@pytest.fixture
def scene(addon: Any) -> Any:
    """The factory start-up scene (cube, light, camera), reset for every test."""
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=False)
    addon.ui.overlay.disable()
    return bpy.context.scene


def _camera_k(scene: Any) -> tuple[list[list[float]], tuple[int, int]]:
    from addon.core import camera as cam_adapter

    return cam_adapter.k_from_blender(scene.camera.data, scene.render)


def _small_workbench(recipe_file: Path, scenes: int = 1, cameras: int = 1) -> Path:
    """A cheap render: the exported recipe at 64x48 with Workbench, repeated over scenes and cameras."""
    data = json.loads(recipe_file.read_text())
    recipe = data["recipes"][0]
    recipe["renderer"] = {"mode": "workbench", "samples": 1}
    camera = recipe["cameras"][0]
    camera["intrinsics"] = {"k_matrix": [[60.0, 0, 31.5], [0, 60.0, 23.5], [0, 0, 1]], "resolution": [64, 48]}
    recipe["cameras"] = [{**camera, "name": f"cam{i}"} for i in range(cameras)]
    data["recipes"] = [{**recipe, "scene_id": 10 + i} for i in range(scenes)]
    out = recipe_file.with_name("small.json")
    out.write_text(json.dumps(data))
    return out


# --------------------------------------------------------------------------- registration


def test_registers_operators_panels_and_preferences(addon: Any) -> None:
    import bpy

    for name in OPERATORS:
        assert getattr(bpy.ops.render_tag, name).get_rna_type().identifier == f"RENDER_TAG_OT_{name}"
    for cls in addon.ui.panel.CLASSES:
        assert getattr(bpy.types, cls.bl_idname).is_registered
        assert (cls.bl_space_type, cls.bl_region_type, cls.bl_category) == ("VIEW_3D", "UI", "Render Tag")
        if cls is not addon.ui.panel.VIEW3D_PT_render_tag:
            assert cls.bl_parent_id == "VIEW3D_PT_render_tag"
    assert addon.RenderTagPreferences.bl_idname == addon.__name__
    assert addon.RenderTagPreferences.is_registered


def test_unregister_removes_everything_and_registers_again(addon: Any) -> None:
    import bpy

    addon.unregister()
    try:
        assert not hasattr(bpy.types.Scene, "render_tag") and not hasattr(bpy.types.Object, "render_tag")
        assert not hasattr(bpy.types, "VIEW3D_PT_render_tag")
        with pytest.raises(KeyError):
            bpy.ops.render_tag.add_tag.get_rna_type()
    finally:
        addon.register()
    assert bpy.ops.render_tag.add_tag.get_rna_type()


# --------------------------------------------------------------------------- operators, headless


def test_authoring_operators_and_export(scene: Any, tmp_path: Path) -> None:
    import bpy

    from render_tag_shared.recipe_io import load_recipe_file

    assert bpy.ops.render_tag.add_tag(family="tag36h11", tag_id=3, size_mm=80.0) == {"FINISHED"}
    tag = bpy.context.view_layer.objects.active
    assert (tag.render_tag.kind, tag.render_tag.family, tag.render_tag.tag_id) == ("TAG", "tag36h11", 3)
    bpy.ops.render_tag.add_board(
        board_type="aprilgrid", rows=3, cols=4, marker_size_mm=40.0, dictionary="tag25h9"
    )
    board = bpy.context.view_layer.objects.active
    assert (board.render_tag.kind, board.render_tag.board_type) == ("BOARD", "aprilgrid")
    board.location = (0.5, 0.0, 0.0)

    bpy.ops.render_tag.set_camera_intrinsics(fx=500.0, fy=540.0, cx=300.25, cy=250.75, width=640, height=480)
    k, resolution = _camera_k(scene)
    assert resolution == (640, 480)
    assert np.allclose(k, [[500.0, 0, 300.25], [0, 540.0, 250.75], [0, 0, 1]], atol=1e-3)
    bpy.ops.render_tag.set_camera_intrinsics(fx=520.0)  # the rest stays as the camera has it
    k, _ = _camera_k(scene)
    assert np.allclose(k, [[520.0, 0, 300.25], [0, 540.0, 250.75], [0, 0, 1]], atol=1e-3)

    out = tmp_path / "authored.json"
    assert bpy.ops.render_tag.export_recipe(filepath=str(out), scene_id=5, random_seed=9) == {"FINISHED"}
    recipe = load_recipe_file(out).recipes[0]
    assert (recipe.scene_id, recipe.random_seed) == (5, 9)
    by_type = {o.type: o for o in recipe.objects}
    assert (by_type["TAG"].tag_family, by_type["TAG"].tag_id, by_type["TAG"].size_mm) == ("tag36h11", 3, 80.0)
    assert by_type["BOARD"].board.board_type == "aprilgrid" and by_type["BOARD"].pose.position[0] == 0.5
    assert recipe.cameras[0].intrinsics.k_matrix[0] == [520.0, 0.0, 300.25]


def test_invalid_input_is_reported_with_the_field(scene: Any, tmp_path: Path) -> None:
    import bpy

    with pytest.raises(RuntimeError, match=r"add_board: .*marker_size_mm.*smaller than square_size_mm"):
        bpy.ops.render_tag.add_board(board_type="charuco", square_size_mm=20.0, marker_size_mm=30.0)
    with pytest.raises(RuntimeError, match="set_camera_intrinsics: camera: no camera object Nowhere"):
        bpy.ops.render_tag.set_camera_intrinsics(camera="Nowhere")
    out = tmp_path / "r.json"
    bpy.ops.render_tag.add_tag()
    bpy.ops.render_tag.export_recipe(filepath=str(out))
    data = json.loads(out.read_text())
    data["recipes"][0]["cameras"][0]["intrinsics"]["resolution"] = [640, -1]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    field = r"recipes\[0\]\.cameras\[0\]\.intrinsics\.resolution"
    for call in (
        lambda: bpy.ops.render_tag.build_recipe(filepath=str(bad)),
        lambda: bpy.ops.render_tag.render_recipe(filepath=str(bad), output_dir=str(tmp_path / "never")),
    ):
        with pytest.raises(RuntimeError, match=f"{bad}: {field}"):
            call()
    assert not (tmp_path / "never").exists()
    with pytest.raises(RuntimeError, match="output_dir"):
        bpy.ops.render_tag.render_recipe(filepath=str(out))
    with pytest.raises(RuntimeError, match="scene index 3 is outside its 1 scenes"):
        bpy.ops.render_tag.build_recipe(filepath=str(out), scene_index=3)


def test_recipe_file_stepping_and_rendering(scene: Any, tmp_path: Path) -> None:
    import bpy

    bpy.ops.render_tag.add_tag(family="DICT_4X4_50", tag_id=1)
    exported = tmp_path / "one.json"
    bpy.ops.render_tag.export_recipe(filepath=str(exported))
    recipes = _small_workbench(exported, scenes=2, cameras=2)

    assert bpy.ops.render_tag.build_recipe(filepath=str(recipes), scene_index=0, camera_index=1) == {
        "FINISHED"
    }
    settings = bpy.context.scene.render_tag
    assert (settings.recipe_path, settings.scene_index, settings.camera_index) == (str(recipes), 0, 1)
    steps = [
        (bpy.ops.render_tag.step_camera, 1, (0, 0)),  # wraps round the recipe's two cameras
        (bpy.ops.render_tag.step_scene, 1, (1, 0)),
        (bpy.ops.render_tag.step_camera, -1, (1, 1)),
        (bpy.ops.render_tag.step_scene, 1, (0, 0)),
    ]
    for step, delta, expected in steps:
        assert step(delta=delta) == {"FINISHED"}
        settings = bpy.context.scene.render_tag
        assert (settings.scene_index, settings.camera_index) == expected
    built = bpy.data.scenes["RenderTag"]
    assert [o.render_tag.tag_id for o in built.objects if o.render_tag.kind == "TAG"] == [1]

    # The DESIGN.md batch expression, in-process: recipes[1:2] with both cameras.
    out = tmp_path / "out"
    bpy.ops.render_tag.render_recipe(filepath=str(recipes), output_dir=str(out), start=1, stop=2)
    assert sorted(p.name for p in (out / "images").iterdir()) == [
        "scene000011_cam00.png",
        "scene000011_cam01.png",
    ]
    assert sorted(p.name for p in (out / "labels").iterdir()) == [
        "scene000011_cam00.json",
        "scene000011_cam01.json",
    ]


def test_preview_render_and_overlay_toggle(addon: Any, scene: Any, tmp_path: Path) -> None:
    import bpy

    bpy.ops.render_tag.add_tag(family="tag36h11", tag_id=0)
    bpy.ops.render_tag.set_camera_intrinsics(fx=60.0, fy=60.0, cx=31.5, cy=23.5, width=64, height=48)
    scene.render_tag.renderer_mode = "workbench"
    assert bpy.ops.render_tag.preview_render(samples=1) == {"FINISHED"}
    image = bpy.data.images[addon.ui.operators.PREVIEW_IMAGE]
    assert tuple(image.size) == (64, 48)
    assert bpy.context.scene == scene or bpy.context.window is None

    assert bpy.ops.render_tag.toggle_overlay() == {"FINISHED"} and addon.ui.overlay.is_enabled()
    truth = addon.ui.overlay._state["truth"]
    assert truth is not None and truth.scene_name == scene.name
    assert bpy.ops.render_tag.toggle_overlay() == {"FINISHED"} and not addon.ui.overlay.is_enabled()


# --------------------------------------------------------------------------- overlay


def test_camera_to_region_maps_the_frame(addon: Any) -> None:
    overlay = addon.ui.overlay
    width, height = 640, 480
    frame = np.array([[100.0, 400.0], [740.0, 400.0], [740.0, -80.0], [100.0, -80.0]])  # TL TR BR BL
    pixels = np.array(
        [[-0.5, -0.5], [width - 0.5, -0.5], [width - 0.5, height - 0.5], [319.5, 239.5], [0.0, 0.0]]
    )
    region = overlay.camera_to_region(pixels, (width, height), frame)
    assert np.allclose(region[:3], frame[:3])
    assert np.allclose(region[3], frame.mean(axis=0))  # the image centre is the frame's centre
    assert np.allclose(region[4], [100.5, 399.5])  # centre of the top-left pixel: half a pixel in, y up

    # Seen in perspective the frame is a general quadrilateral: corners still land exactly, and
    # points on one image line stay on one line (a homography, not a bilinear blend).
    quad = np.array([[120.0, 410.0], [700.0, 380.0], [650.0, 60.0], [90.0, 20.0]])
    line = np.array([[x, 0.3 * x + 40.0] for x in (-0.5, 100.0, 250.0, 639.5)])
    mapped = overlay.camera_to_region(line, (width, height), quad)
    d = mapped[1:] - mapped[0]
    assert np.allclose(d[:, 0] * d[-1, 1] - d[:, 1] * d[-1, 0], 0.0, atol=1e-6)
    corners = np.array([[-0.5, -0.5], [639.5, -0.5], [639.5, 479.5], [-0.5, 479.5]])
    assert np.allclose(overlay.camera_to_region(corners, (width, height), quad), quad)


def _through_camera(scene: Any, width: int, height: int) -> tuple[Any, Any]:
    """A region and region data looking exactly through the scene camera (its frame fills the region)."""
    import bpy

    camera = scene.camera
    depsgraph = bpy.context.evaluated_depsgraph_get()
    projection = camera.calc_matrix_camera(
        depsgraph, x=width, y=height, scale_x=scene.render.pixel_aspect_x, scale_y=scene.render.pixel_aspect_y
    )
    region = SimpleNamespace(width=width, height=height)
    return region, SimpleNamespace(perspective_matrix=projection @ camera.matrix_world.inverted())


def _authored_scene_with_tags(scene: Any) -> list[Any]:
    import bpy
    from mathutils import Euler

    tags = []
    poses = (((0.0, 0.0, 0.0), (0.3, 0.2, 0.0)), ((0.9, 1.0, 0.05), (0.0, -0.4, 0.6)))
    for i, (location, rotation) in enumerate(poses):
        bpy.ops.render_tag.add_tag(family="tag36h11", tag_id=i, size_mm=300.0)
        tag = bpy.context.view_layer.objects.active
        tag.location = location
        tag.rotation_euler = Euler(rotation)
        tags.append(tag)
    scene.objects["Cube"].hide_render = True
    scene.objects["Cube"].location = (0, 0, -5)
    scene.camera.location = scene.camera.location / 3.0  # the same view direction, closer: bigger tags
    bpy.ops.render_tag.set_camera_intrinsics(fx=500.0, fy=540.0, cx=300.25, cy=250.75, width=640, height=480)
    scene.view_layers[0].update()
    return tags


def test_overlay_corners_sit_where_blender_projects_them(addon: Any, scene: Any) -> None:
    """Ground truth (render_tag_shared on the exported recipe) mapped through the camera frame lands on
    Blender's own projection of each 3D corner, with fx != fy and an off-centre principal point."""
    from bpy_extras import view3d_utils
    from mathutils import Vector

    overlay = addon.ui.overlay
    tags = _authored_scene_with_tags(scene)
    truth = overlay.refresh(scene)
    assert truth.note == "" and truth.resolution == (640, 480)
    assert sorted(r.tag_id for r in truth.records) == [0, 1]

    region, rv3d = _through_camera(scene, 640, 480)
    frame = overlay.frame_corners_region(scene, scene.camera, region, rv3d)
    assert np.allclose(frame, [[0, 480], [640, 480], [640, 0], [0, 0]], atol=1e-3)

    for record in truth.records:
        tag = next(t for t in tags if t.render_tag.tag_id == record.tag_id)
        half = tag.render_tag.size_mm / 2000.0
        local = [
            (-half, half, 0.0),
            (half, half, 0.0),
            (half, -half, 0.0),
            (-half, -half, 0.0),
        ]  # TL TR BR BL
        expected = [
            view3d_utils.location_3d_to_region_2d(region, rv3d, tag.matrix_world @ Vector(p)) for p in local
        ]
        assert all(v == 2 for v in record.corners_visibility)
        drawn = overlay.camera_to_region(np.array(record.corners), truth.resolution, frame)
        assert np.allclose(drawn, [tuple(e) for e in expected], atol=2e-3), (record.tag_id, drawn, expected)

    geometry = overlay.region_geometry(scene, region, rv3d)
    assert len(geometry.lines) == 8 and len(geometry.marks) == 8
    assert sorted(text for text, _ in geometry.labels) == ["tag36h11 0", "tag36h11 1"]
    first = [color for color, _ in geometry.marks].count(overlay.FIRST_CORNER_COLOR)
    assert first == 2  # each marker's own top-left corner is marked apart


def test_overlay_maps_through_the_frame_from_any_viewpoint(addon: Any, scene: Any) -> None:
    """From a user viewpoint (not the camera) a pixel lands where its point on the frame plane does."""
    from bpy_extras import view3d_utils
    from mathutils import Matrix

    overlay = addon.ui.overlay
    _authored_scene_with_tags(scene)
    truth = overlay.refresh(scene)
    projection = Matrix.Identity(4)
    projection[3][2], projection[3][3] = -1.0, 0.0  # a plain perspective divide
    view = Matrix.LocRotScale((0.3, -0.2, -12.0), Matrix.Rotation(0.9, 4, "X").to_quaternion(), None)
    region = SimpleNamespace(width=800, height=600)
    rv3d = SimpleNamespace(perspective_matrix=projection @ view)
    frame = overlay.frame_corners_region(scene, scene.camera, region, rv3d)
    assert frame is not None
    tl, tr, br, bl = overlay.frame_corners_world(scene, scene.camera)
    assert (tl + br - tr - bl).length < 1e-5  # a planar rectangle: bilinear == affine on it
    for record in truth.records:
        for u, v in record.corners:
            s, t = (u + 0.5) / 640, (v + 0.5) / 480
            on_frame = tl + s * (tr - tl) + t * (bl - tl)
            expected = view3d_utils.location_3d_to_region_2d(region, rv3d, on_frame)
            drawn = overlay.camera_to_region(np.array([[u, v]]), truth.resolution, frame)[0]
            assert np.allclose(drawn, tuple(expected), atol=1e-3)


def test_overlay_reports_instead_of_failing(addon: Any, scene: Any) -> None:
    import bpy

    overlay = addon.ui.overlay
    scene.camera = None
    assert "no active camera" in overlay.refresh(scene).note
    assert overlay.region_geometry(scene, None, None).lines == []
    bpy.ops.wm.read_factory_settings(use_empty=False)
    scene = bpy.context.scene
    bpy.ops.render_tag.set_camera_intrinsics(
        distortion_model="brown_conrady", distortion_coeffs=(-0.2, 0.05, 0, 0, 0)
    )
    assert "linear view of a distorted camera" in overlay.refresh(scene).note


def test_draw_handler_is_added_and_removed(addon: Any, scene: Any) -> None:
    import bpy

    overlay = addon.ui.overlay
    overlay.enable()
    try:
        assert overlay.is_enabled()
        assert overlay.mark_dirty in bpy.app.handlers.depsgraph_update_post
        overlay.enable()  # idempotent: still one handler
        assert bpy.app.handlers.depsgraph_update_post[:].count(overlay.mark_dirty) == 1
        overlay.draw_callback()  # no region in background mode: returns before any gpu call
    finally:
        overlay.disable()
    assert not overlay.is_enabled()
    assert overlay.mark_dirty not in bpy.app.handlers.depsgraph_update_post
    overlay.disable()  # a second disable is harmless


# --------------------------------------------------------------------------- panels


class _OperatorProps:
    """What `layout.operator()` returns: only the operator's own properties may be set."""

    def __init__(self, idname: str) -> None:
        import bpy

        group, name = idname.split(".")
        rna = getattr(getattr(bpy.ops, group), name).get_rna_type()
        object.__setattr__(self, "_names", {p.identifier for p in rna.properties})
        object.__setattr__(self, "_idname", idname)

    def __setattr__(self, key: str, value: Any) -> None:
        assert key in self._names, f"{self._idname} has no property {key!r}"


class RecordingLayout:
    """Stands in for a UILayout: records each call and checks every name against Blender's RNA."""

    def __init__(self, log: list[str] | None = None) -> None:
        self.log: list[str] = [] if log is None else log
        self.use_property_split = False

    def _child(self, *args: Any, **kwargs: Any) -> RecordingLayout:
        return RecordingLayout(self.log)

    row = column = box = split = _child

    def prop(self, data: Any, key: str, **kwargs: Any) -> None:
        assert key in data.bl_rna.properties, f"{data.bl_rna.identifier} has no property {key!r}"
        self.log.append(f"prop {key}")

    def operator(self, idname: str, **kwargs: Any) -> _OperatorProps:
        self.log.append(f"operator {idname}")
        return _OperatorProps(idname)

    def label(self, **kwargs: Any) -> None:
        self.log.append(f"label {kwargs.get('text', '')}")


def _draw(panel_cls: Any, context: Any) -> list[str]:
    if hasattr(panel_cls, "poll") and not panel_cls.poll(context):
        return []
    layout = RecordingLayout()
    panel_cls.draw(SimpleNamespace(layout=layout), context)
    return layout.log


def test_panels_draw_every_kind_of_object(addon: Any, scene: Any) -> None:
    import bpy

    panel = addon.ui.panel
    bpy.ops.render_tag.add_tag()
    tag = bpy.context.view_layer.objects.active
    bpy.ops.render_tag.add_board()
    board = bpy.context.view_layer.objects.active
    cube = scene.objects["Cube"]
    light = scene.objects["Light"]

    def context(active: Any) -> SimpleNamespace:
        return SimpleNamespace(scene=scene, active_object=active)

    seen = {}
    for name, active in (("tag", tag), ("board", board), ("cube", cube), ("light", light), ("none", None)):
        seen[name] = [entry for cls in panel.CLASSES for entry in _draw(cls, context(active))]
    assert "prop family" in seen["tag"] and "prop size_mm" in seen["tag"]
    assert "prop square_size_mm" in seen["board"] and "prop dictionary" in seen["board"]
    board.render_tag.board_type = "aprilgrid"
    assert "prop spacing_ratio" in [e for cls in panel.CLASSES for e in _draw(cls, context(board))]
    assert "prop kind" in seen["cube"] and "prop family" not in seen["cube"]
    assert "prop energy" in seen["light"] and "prop kind" not in seen["light"]
    for log in seen.values():
        for idname in (
            "render_tag.add_tag",
            "render_tag.build_recipe",
            "render_tag.step_scene",
            "render_tag.render_recipe",
            "render_tag.preview_render",
            "render_tag.toggle_overlay",
            "render_tag.export_recipe",
            "render_tag.set_camera_intrinsics",
        ):
            assert f"operator {idname}" in log
    scene.camera = None
    assert "label No scene camera" in _draw(panel.VIEW3D_PT_render_tag_camera, context(None))


def test_preferences_draw_and_cache_folder(addon: Any, tmp_path: Path) -> None:
    layout = RecordingLayout()
    prefs_rna = addon.RenderTagPreferences.bl_rna
    addon.RenderTagPreferences.draw(SimpleNamespace(layout=layout, bl_rna=prefs_rna), None)
    assert layout.log[:2] == ["prop cache_dir", "prop preview_samples"]
    # Imported as a plain package (not installed as an extension) the cache falls back to a temp folder;
    # installed, it is the extension's user folder (tests/test_extension.py checks that one).
    assert addon.preferences() is None
    assert addon.cache_dir().is_dir()


def test_operators_take_their_fields_from_the_properties() -> None:
    """One definition per field: the operator dialogs and the N-panel cannot drift apart."""
    import importlib

    from ..blender_helpers import import_addon

    import_addon()
    props = importlib.import_module("addon.props")
    operators = importlib.import_module("addon.ui.operators")

    def spec(deferred: object) -> tuple[object, dict[str, object]]:
        keywords = dict(getattr(deferred, "keywords", {}))
        keywords.pop("update", None)
        keywords.pop("attr", None)  # Blender adds the field name on registration
        return getattr(deferred, "function", None), keywords

    settings = props.RenderTagObjectSettings.__annotations__
    tag = operators.RENDER_TAG_OT_add_tag.__annotations__
    for key in ("family", "tag_id", "size_mm", "border_bits", "margin_modules"):
        assert spec(tag[key]) == spec(settings[key]), key
    assert tag["size_mm"].keywords["min"] == 1.0
    board = operators.RENDER_TAG_OT_add_board.__annotations__
    assert spec(board["margin_mm"]) == spec(settings["board_margin_mm"])
    scene = props.RenderTagSceneSettings.__annotations__
    camera = operators.RENDER_TAG_OT_set_camera_intrinsics.__annotations__
    for key in ("distortion_model", "distortion_coeffs", "eval_margin_px"):
        assert spec(camera[key]) == spec(scene[key]), key


@pytest.mark.parametrize("operator", ["add_tag", "add_board"])
def test_adding_makes_the_new_object_active_and_the_only_one_selected(scene: Any, operator: str) -> None:
    """As Blender's own Add menu does, on every version (5.0+ needs a view-layer update first)."""
    import bpy

    cube = scene.objects["Cube"]
    bpy.context.view_layer.objects.active = cube
    cube.select_set(True)
    before = set(scene.objects)
    assert getattr(bpy.ops.render_tag, operator)() == {"FINISHED"}
    (new,) = set(scene.objects) - before
    assert new.render_tag.kind == ("TAG" if operator == "add_tag" else "BOARD")
    assert bpy.context.view_layer.objects.active == new
    assert list(bpy.context.view_layer.objects.selected) == [new]
    assert not cube.select_get()


LABEL_PX = 78
"""Width of the label column of a property-split row at Blender's default sidebar width, UI scale 1
(measured on the binary tier's screenshot: "Marker border", 74 px, fits; "Eval margin (px)", 86 px,
was cut to "Eval margin (…")."""
CHECKBOX_PX = 100
"""A checkbox's label sits in the value column, right of the box."""


class SplitLayout:
    """A recording layout that knows which labels Blender draws in the split label column."""

    def __init__(self, labels: list[tuple[str, int]], split: bool = False) -> None:
        self.labels = labels
        self.use_property_split = split

    def _child(self, *args: Any, **kwargs: Any) -> SplitLayout:
        return SplitLayout(self.labels, self.use_property_split)

    row = column = box = split = _child

    def prop(self, data: Any, key: str, text: str | None = None, **kwargs: Any) -> None:
        prop = data.bl_rna.properties[key]
        label = prop.name if text is None else text
        if self.use_property_split and label and not kwargs.get("expand"):
            self.labels.append((label, CHECKBOX_PX if prop.type == "BOOLEAN" else LABEL_PX))

    def operator(self, idname: str, **kwargs: Any) -> _OperatorProps:
        return _OperatorProps(idname)

    def label(self, **kwargs: Any) -> None:
        pass


def test_no_label_is_cut_off_at_the_default_sidebar_width(addon: Any, scene: Any) -> None:
    """Every split-row label of every panel, for each kind of object, fits its column (Blender's
    UI font at 11 px, as `blf` measures it); the binary tier's screenshots show the result."""
    import blf
    import bpy

    panel = addon.ui.panel
    bpy.ops.render_tag.add_tag()
    tag = bpy.context.view_layer.objects.active
    bpy.ops.render_tag.add_board()
    board = bpy.context.view_layer.objects.active
    plane = bpy.data.objects.new("plane", bpy.data.meshes.new("plane"))
    scene.collection.objects.link(plane)
    plane.render_tag.kind = "PLANE"
    scene.render_tag.distortion_model = "brown_conrady"
    scene.camera.data.dof.use_dof = True
    lights = []
    for kind in ("POINT", "SUN", "SPOT", "AREA"):
        light = bpy.data.objects.new(kind, bpy.data.lights.new(kind, kind))
        scene.collection.objects.link(light)
        lights.append(light)
    labels: list[tuple[str, int]] = []
    for active in (tag, board, plane, *lights):
        for cls in panel.CLASSES:
            context = SimpleNamespace(scene=scene, active_object=active, screen=None)
            if hasattr(cls, "poll") and not cls.poll(context):
                continue
            cls.draw(SimpleNamespace(layout=SplitLayout(labels)), context)
    board.render_tag.board_type = "aprilgrid"
    for cls in panel.CLASSES:
        cls.draw(
            SimpleNamespace(layout=SplitLayout(labels)), SimpleNamespace(scene=scene, active_object=board)
        )
    assert {"Eval margin", "Size (mm)", "Legacy pattern", "Spacing ratio", "Focus"} <= {t for t, _ in labels}
    blf.size(0, 11)
    too_wide = sorted(
        {f"{t!r}: {blf.dimensions(0, t)[0]:.0f} > {w} px" for t, w in labels if blf.dimensions(0, t)[0] > w}
    )
    assert not too_wide, "labels cut off at the default sidebar width:\n" + "\n".join(too_wide)


def _solid_colours(bpy: Any) -> dict[tuple[str, int], str]:
    return {
        (screen.name, index): area.spaces.active.shading.color_type
        for screen in bpy.data.screens
        for index, area in enumerate(screen.areas)
        if area.type == "VIEW_3D"
    }


def test_adding_a_marker_shows_textures_in_solid_view_once(scene: Any) -> None:
    """Views on Blender's default Material colour switch to Texture when a marker is added; a view the
    user set otherwise is left alone, and one switched back by the user stays switched back."""
    import bpy

    before = _solid_colours(bpy)
    assert len(before) >= 5 and "MATERIAL" in before.values()  # the factory file: a 3D view per workspace
    layout = bpy.data.screens["Layout"]
    (index,) = [i for i, a in enumerate(layout.areas) if a.type == "VIEW_3D"]
    modeling = bpy.data.screens["Modeling"]
    modeling_view = next(a for a in modeling.areas if a.type == "VIEW_3D").spaces.active
    modeling_view.shading.color_type = "OBJECT"  # the user's choice
    assert bpy.ops.render_tag.add_tag() == {"FINISHED"}
    after = _solid_colours(bpy)
    for key, colour in before.items():
        if key[0] == "Modeling":
            assert after[key] == "OBJECT"
        elif colour == "MATERIAL":
            assert after[key] == "TEXTURE", key
        else:
            assert after[key] == colour, key
    layout.areas[index].spaces.active.shading.color_type = "MATERIAL"  # the user switches back
    assert bpy.ops.render_tag.add_board() == {"FINISHED"}
    assert _solid_colours(bpy)[("Layout", index)] == "MATERIAL"


def test_the_panel_toggle_switches_the_current_screen(addon: Any, scene: Any) -> None:
    import bpy

    screen = bpy.context.screen
    assert screen is not None and screen.name == "Layout"
    assert not addon.api.marker_textures_shown(screen)
    assert bpy.ops.render_tag.toggle_marker_textures() == {"FINISHED"}
    assert addon.api.marker_textures_shown(screen)
    assert {c for (name, _), c in _solid_colours(bpy).items() if name == "Layout"} == {"TEXTURE"}
    assert bpy.ops.render_tag.toggle_marker_textures() == {"FINISHED"}
    assert {c for (name, _), c in _solid_colours(bpy).items() if name == "Layout"} == {"MATERIAL"}
    assert bpy.ops.render_tag.add_tag() == {"FINISHED"}  # the user chose: adding does not override it
    assert not addon.api.marker_textures_shown(screen)
    log = _draw(addon.ui.panel.VIEW3D_PT_render_tag, SimpleNamespace(scene=scene, screen=screen))
    assert "operator render_tag.toggle_marker_textures" in log
