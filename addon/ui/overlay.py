"""Viewport overlay: the ground truth of the active camera, drawn over the 3D view.

The points come from the code that writes the labels (`api.export_scene_recipe` of the scene, then
`render_tag_shared.truth.camera_ground_truth`), mapped from camera pixels into the region through
the camera's frame. So a corner drawn beside its marker is a labelling error, never a drawing one.

Only `draw_callback` and `_draw` need a window (the `gpu` module refuses to draw in background
mode); everything they compute is in plain functions that tests call directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import bpy
import numpy as np
from bpy_extras import view3d_utils
from mathutils import Vector

if TYPE_CHECKING:
    import gpu

from render_tag_shared.recipe import SceneRecipe

from .. import api
from ..core import camera as cam_adapter
from ..core.datablocks import camera_data
from ..core.export import active_camera_index

# Built-in shader names that exist in Blender 4.2 and 5.0 alike ('2D_*' ones are gone in 5.0).
LINE_SHADER = "POLYLINE_UNIFORM_COLOR"
FILL_SHADER = "UNIFORM_COLOR"

TAG_COLOR = (0.1, 1.0, 0.3, 1.0)
BOARD_COLOR = (0.2, 0.7, 1.0, 1.0)
FIRST_CORNER_COLOR = (1.0, 0.2, 0.2, 1.0)
"""Corner 0 (the marker's own top-left) stands out, so a rotated corner order shows at a glance."""
PARTIAL_COLOR = (1.0, 0.8, 0.1, 1.0)
"""Visibility 1: labelled but outside the image or inside the eval margin."""
TEXT_COLOR = (1.0, 1.0, 1.0, 1.0)
MARK_HALF_SIZE_PX = 3.0


def homography_unit_square(quad: np.ndarray) -> np.ndarray:
    """The 3x3 homography taking (0,0), (1,0), (1,1), (0,1) to the four points of `quad` in order.

    The camera frame is a planar rectangle; seen from any viewpoint it projects to a quadrilateral,
    and a homography maps image fractions onto it exactly (an affine map would only in camera view).
    """
    quad = np.asarray(quad, dtype=float)
    src = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    rows, rhs = [], []
    for (x, y), (u, v) in zip(src, quad, strict=True):
        rows.append([x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y])
        rows.append([0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y])
        rhs += [u, v]
    h = np.linalg.solve(np.array(rows), np.array(rhs))
    return np.append(h, 1.0).reshape(3, 3)


def camera_to_region(
    points_px: np.ndarray, resolution: tuple[int, int], frame_region: np.ndarray
) -> np.ndarray:
    """Maps OpenCV pixel coordinates of the camera image into region pixels (origin bottom-left, y up).

    `frame_region` holds the region positions of the image's outer corners TL, TR, BR, BL. OpenCV puts
    the centre of the top-left pixel at (0, 0), so the image's outer edge is at -0.5 and W - 0.5.
    """
    points = np.asarray(points_px, dtype=float).reshape(-1, 2)
    width, height = resolution
    fractions = np.column_stack(
        [(points[:, 0] + 0.5) / width, (points[:, 1] + 0.5) / height, np.ones(len(points))]
    )
    mapped = fractions @ homography_unit_square(frame_region).T
    return mapped[:, :2] / mapped[:, 2:3]


def frame_corners_world(scene: bpy.types.Scene, camera: bpy.types.Object) -> list:
    """The camera frame's corners TL, TR, BR, BL in world space (shift, sensor fit, aspect applied)."""
    # view_frame returns four Vectors (the stubs say None)
    frame: tuple[Vector, Vector, Vector, Vector] = camera_data(camera).view_frame(scene=scene)  # type: ignore[assignment]
    top_right, bottom_right, bottom_left, top_left = frame
    return [camera.matrix_world @ corner for corner in (top_left, top_right, bottom_right, bottom_left)]


def frame_corners_region(scene, camera, region, rv3d) -> np.ndarray | None:
    """The camera frame in region pixels, or None when a corner is behind the viewer."""
    corners = []
    for corner in frame_corners_world(scene, camera):
        point = view3d_utils.location_3d_to_region_2d(region, rv3d, corner)
        if point is None:
            return None
        corners.append((point.x, point.y))
    return np.array(corners)


@dataclass
class OverlayGeometry:
    """What one redraw puts on screen, in region pixels: coloured line segments, marks and labels."""

    lines: list[tuple[tuple[float, float, float, float], list[tuple[float, float]]]] = field(
        default_factory=list
    )
    marks: list[tuple[tuple[float, float, float, float], tuple[float, float]]] = field(default_factory=list)
    labels: list[tuple[str, tuple[float, float]]] = field(default_factory=list)
    message: str = ""


def viewport_recipe(
    recipe: SceneRecipe, index: int, scene: bpy.types.Scene, camera_obj: bpy.types.Object
) -> tuple[SceneRecipe | None, str]:
    """The recipe as the viewport shows camera `index`: Blender's camera is linear, so a distorted camera
    is drawn with the pinhole K Blender actually has (its overscan after a build, its target after
    set_camera_intrinsics); a fisheye (panoramic) camera is not drawn."""
    intrinsics = recipe.cameras[index].intrinsics
    if camera_data(camera_obj).type != "PERSP":
        return None, "overlay: a fisheye (panoramic) camera is not drawn; see the preview render"
    if intrinsics.distortion_model == "none":
        return recipe, ""
    k, resolution = cam_adapter.k_from_blender(camera_data(camera_obj), scene.render)
    linear = intrinsics.model_copy(
        update={
            "k_matrix": k,
            "resolution": resolution,
            "distortion_model": "none",
            "distortion_coeffs": [],
            "overscan": None,
        }
    )
    cameras = list(recipe.cameras)
    cameras[index] = cameras[index].model_copy(update={"intrinsics": linear})
    return recipe.model_copy(update={"cameras": cameras}), "overlay: the linear view of a distorted camera"


def overlay_geometry(records, resolution: tuple[int, int], frame_region: np.ndarray) -> OverlayGeometry:
    """Lines between labelled corners, a mark on each, the id at the centre: all in region pixels."""
    geometry = OverlayGeometry()
    for record in records:
        color = TAG_COLOR if record.record_type == "TAG" else BOARD_COLOR
        corners = np.asarray(record.corners, dtype=float)
        visibility = list(record.corners_visibility)
        region_corners = camera_to_region(corners, resolution, frame_region)
        for i in range(4):
            j = (i + 1) % 4
            if visibility[i] and visibility[j]:
                geometry.lines.append((color, [tuple(region_corners[i]), tuple(region_corners[j])]))
        for i, (point, vis) in enumerate(zip(region_corners, visibility, strict=True)):
            if vis:
                mark_color = FIRST_CORNER_COLOR if i == 0 else (color if vis == 2 else PARTIAL_COLOR)
                geometry.marks.append((mark_color, (float(point[0]), float(point[1]))))
        if record.keypoints is not None and record.keypoints_visibility is not None:
            keypoints = camera_to_region(np.asarray(record.keypoints, dtype=float), resolution, frame_region)
            for point, vis in zip(keypoints, record.keypoints_visibility, strict=True):
                if vis:
                    geometry.marks.append(
                        (color if vis == 2 else PARTIAL_COLOR, (float(point[0]), float(point[1])))
                    )
        labelled = region_corners[np.asarray(visibility) > 0]
        if len(labelled):
            centre = labelled.mean(axis=0)
            if record.record_type == "MARKER":  # a board's marker: its id (the board names the family)
                text = f"{record.tag_id}"
            elif record.tag_id is not None:
                text = f"{record.tag_family} {record.tag_id}"
            else:
                text = record.object_name
            geometry.labels.append((text, (float(centre[0]), float(centre[1]))))
    return geometry


# -- State: the handler, and the ground truth cached until the scene changes -------------------------
#
# The draw callback only reads `_state["truth"]`: exporting the scene touches the depsgraph, which is
# not allowed while drawing. A depsgraph change marks the truth dirty and schedules a timer that
# recomputes it in the main loop (`refresh`, which tests call directly: timers never run headless).


@dataclass
class OverlayTruth:
    """The ground truth of one scene's active camera, as the viewport shows that camera."""

    scene_name: str
    camera_name: str
    resolution: tuple[int, int] = (1, 1)
    records: list = field(default_factory=list)
    note: str = ""


_state: dict[str, Any] = {
    "handle": None,
    "truth": None,
    "dirty": True,
    "scheduled": False,
    "refreshing": False,
}


def refresh(scene: bpy.types.Scene) -> OverlayTruth:
    """Recomputes the overlay's ground truth from the scene (export + camera_ground_truth) and caches it."""
    from render_tag_shared.truth import camera_ground_truth

    camera = scene.camera
    truth = OverlayTruth(scene.name, camera.name if camera is not None else "")
    _state["refreshing"] = True
    try:
        if camera is None:
            raise ValueError("overlay: the scene has no active camera")
        recipe = api.export_scene_recipe(scene)
        index = active_camera_index(scene, len(recipe.cameras))
        shown, truth.note = viewport_recipe(recipe, index, scene, camera)
        if shown is not None:
            truth.records = camera_ground_truth(shown, index)
            truth.resolution = shown.cameras[index].intrinsics.resolution
    except Exception as exc:  # the overlay says what is wrong; it never breaks drawing
        truth.note = f"overlay: {exc}" if not str(exc).startswith("overlay") else str(exc)
        truth.records = []
    finally:
        _state["refreshing"] = False
    _state.update(truth=truth, dirty=False)
    _redraw_views()
    return truth


@bpy.app.handlers.persistent  # kept across file loads, like the draw handler itself
def mark_dirty(*_args: object) -> None:
    """The scene changed: recompute the truth soon (a depsgraph handler; operators call it too)."""
    if _state["refreshing"]:
        return  # our own export's depsgraph evaluation
    _state["dirty"] = True
    if is_enabled() and not _state["scheduled"] and not bpy.app.background:
        _state["scheduled"] = True
        bpy.app.timers.register(_refresh_timer, first_interval=0.1)


def _refresh_timer() -> None:
    _state["scheduled"] = False
    scene = bpy.context.scene
    if is_enabled() and scene is not None:
        refresh(scene)


def region_geometry(scene, region, rv3d) -> OverlayGeometry:
    """Everything one redraw of `region` shows, from the cached truth (no GPU call, no data change)."""
    truth: OverlayTruth | None = _state["truth"]
    camera = scene.camera
    if (
        truth is None
        or truth.scene_name != scene.name
        or truth.camera_name != (camera.name if camera else "")
    ):
        mark_dirty()
        return OverlayGeometry()
    if camera is None or not truth.records:
        return OverlayGeometry(message=truth.note)
    frame = frame_corners_region(scene, camera, region, rv3d)
    if frame is None:
        return OverlayGeometry(message=truth.note)
    geometry = overlay_geometry(truth.records, truth.resolution, frame)
    geometry.message = truth.note
    return geometry


def _builtin_shader(name: str) -> gpu.types.GPUShader:
    """A built-in shader (the stubs declare `from_builtin` as returning None)."""
    import gpu

    return cast("gpu.types.GPUShader", gpu.shader.from_builtin(name))


def _draw(geometry: OverlayGeometry, width: int, height: int) -> None:
    """Draws with the `gpu` and `blf` modules (needs a window: not callable in background mode)."""
    import blf
    import gpu
    from gpu_extras.batch import batch_for_shader

    gpu.state.blend_set("ALPHA")
    line_shader = _builtin_shader(LINE_SHADER)
    line_shader.uniform_float("viewportSize", (width, height))
    line_shader.uniform_float("lineWidth", 2.0)
    for color, (a, b) in geometry.lines:
        batch = batch_for_shader(line_shader, "LINES", {"pos": [(a[0], a[1], 0.0), (b[0], b[1], 0.0)]})
        line_shader.uniform_float("color", color)
        batch.draw(line_shader)
    fill_shader = _builtin_shader(FILL_SHADER)
    s = MARK_HALF_SIZE_PX
    for color, (x, y) in geometry.marks:
        quad = [(x - s, y - s, 0.0), (x + s, y - s, 0.0), (x + s, y + s, 0.0), (x - s, y + s, 0.0)]
        batch = batch_for_shader(fill_shader, "TRIS", {"pos": quad}, indices=((0, 1, 2), (0, 2, 3)))
        fill_shader.uniform_float("color", color)
        batch.draw(fill_shader)
    font = 0
    blf.size(font, 12)
    blf.color(font, *TEXT_COLOR)
    for text, (x, y) in geometry.labels:
        blf.position(font, x + 4, y + 4, 0)
        blf.draw(font, text)
    if geometry.message:
        blf.position(font, 12, 12, 0)
        blf.draw(font, geometry.message)
    gpu.state.blend_set("NONE")


def draw_callback() -> None:
    """The POST_PIXEL handler: one call per redraw of each 3D view region."""
    context = bpy.context
    if context.region is None or context.region_data is None or context.scene is None:
        return
    geometry = region_geometry(context.scene, context.region, context.region_data)
    _draw(geometry, context.region.width, context.region.height)


def is_enabled() -> bool:
    return _state["handle"] is not None


def enable() -> None:
    """Adds the draw handler and watches the depsgraph so the cached truth follows edits."""
    if is_enabled():
        return
    _state["handle"] = bpy.types.SpaceView3D.draw_handler_add(draw_callback, (), "WINDOW", "POST_PIXEL")
    for handlers in _handler_lists():
        if mark_dirty not in handlers:
            handlers.append(mark_dirty)
    mark_dirty()
    _redraw_views()


def disable() -> None:
    if not is_enabled():
        return
    bpy.types.SpaceView3D.draw_handler_remove(_state["handle"], "WINDOW")
    _state.update(handle=None, truth=None, dirty=True, scheduled=False)
    if bpy.app.timers.is_registered(_refresh_timer):  # Blender holds nothing of ours once disabled
        bpy.app.timers.unregister(_refresh_timer)
    for handlers in _handler_lists():
        while mark_dirty in handlers:
            handlers.remove(mark_dirty)
    _redraw_views()


def _handler_lists() -> tuple[list, ...]:
    """The app handlers after which the cached truth may be stale."""
    handlers = bpy.app.handlers
    return (handlers.depsgraph_update_post, handlers.frame_change_post, handlers.load_post)


def _redraw_views() -> None:
    window_manager = getattr(bpy.context, "window_manager", None)
    for window in window_manager.windows if window_manager is not None else ():
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()


def register() -> None:
    """Nothing to add until the user turns the overlay on."""


def unregister() -> None:
    disable()
