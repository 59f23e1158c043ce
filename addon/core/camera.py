"""The Blender camera of a recipe camera: pose, projection, depth of field and motion on bpy data.

The numbers (lens, sensor fit, shift and pixel aspect from K, and K back from any Blender camera)
are `render_tag_shared.blender_camera`, where they are derived and tested without Blender; this
module copies them onto Blender data. `tests/test_addon_scene.py` checks the result against
`bpy_extras.object_utils.world_to_camera_view` and `render_tag_shared.lens.project_points`.

Blender's camera looks down its local -z with +y up; the recipe's `cam_to_world` uses OpenCV's axes:
`matrix_world = cam_to_world @ BLENDER_TO_OPENCV_CAMERA`.
"""

from __future__ import annotations

import bpy
import numpy as np
from mathutils import Matrix

from render_tag_shared.blender_camera import (
    SENSOR_WIDTH_MM,
    BlenderCameraParams,
    k_from_camera_params,
    pinhole_settings,
    render_view,
)
from render_tag_shared.geometry import BLENDER_TO_OPENCV_CAMERA
from render_tag_shared.recipe import CameraRecipe

from .datablocks import OWNED, camera_data, need, owned


def k_from_blender(
    camera_data: bpy.types.Camera, render: bpy.types.RenderSettings
) -> tuple[list[list[float]], tuple[int, int]]:
    """K and resolution of a perspective Blender camera, any sensor fit (the inverse of `apply_view`)."""
    return k_from_camera_params(
        BlenderCameraParams(
            lens=camera_data.lens,
            sensor_width=camera_data.sensor_width,
            sensor_height=camera_data.sensor_height,
            sensor_fit=camera_data.sensor_fit,
            shift_x=camera_data.shift_x,
            shift_y=camera_data.shift_y,
            resolution_x=render.resolution_x,
            resolution_y=render.resolution_y,
            resolution_percentage=render.resolution_percentage,
            pixel_aspect_x=render.pixel_aspect_x,
            pixel_aspect_y=render.pixel_aspect_y,
        )
    )


def apply_view(
    camera_data: bpy.types.Camera,
    scene: bpy.types.Scene,
    projection: str,
    k_matrix: list[list[float]],
    resolution: tuple[int, int],
    fov_rad: float | None,
) -> None:
    """Set the camera data and the scene's resolution and pixel aspect for one projection."""
    render = scene.render
    render.resolution_percentage = 100
    render.use_border = False
    camera_data.sensor_fit = "HORIZONTAL"
    camera_data.sensor_width = SENSOR_WIDTH_MM
    camera_data.sensor_height = SENSOR_WIDTH_MM * resolution[1] / resolution[0]
    if projection == "equidistant":
        if fov_rad is None:
            raise ValueError("an equidistant overscan needs fov_rad")
        camera_data.type = "PANO"
        camera_data.panorama_type = "FISHEYE_EQUIDISTANT"
        camera_data.fisheye_fov = float(fov_rad)
        camera_data.shift_x = camera_data.shift_y = 0.0
        render.resolution_x, render.resolution_y = int(resolution[0]), int(resolution[1])
        render.pixel_aspect_x = render.pixel_aspect_y = 1.0
        return
    s = pinhole_settings(k_matrix, resolution)
    camera_data.type = "PERSP"
    camera_data.lens_unit = "MILLIMETERS"
    camera_data.lens = s.lens
    camera_data.shift_x = s.shift_x
    camera_data.shift_y = s.shift_y
    render.resolution_x, render.resolution_y = s.width, s.height
    render.pixel_aspect_x = s.pixel_aspect_x
    render.pixel_aspect_y = s.pixel_aspect_y


def blender_matrix(cam_to_world: np.ndarray | list[list[float]]) -> Matrix:
    """Blender's matrix_world of a camera whose OpenCV camera-to-world matrix is given."""
    m = np.asarray(cam_to_world, dtype=np.float64) @ BLENDER_TO_OPENCV_CAMERA
    return Matrix(m.tolist())


def opencv_matrix(obj: bpy.types.Object) -> np.ndarray:
    """OpenCV camera-to-world of a Blender camera object (scale removed)."""
    loc, rot, _ = obj.matrix_world.decompose()
    m = np.eye(4)
    m[:3, :3] = np.array(rot.to_matrix(), dtype=np.float64)
    m[:3, 3] = np.array(loc, dtype=np.float64)
    return m @ BLENDER_TO_OPENCV_CAMERA


def setup_camera(obj: bpy.types.Object, scene: bpy.types.Scene, camera: CameraRecipe) -> None:
    """Pose, projection, depth of field and motion of one recipe camera on a Blender camera object."""
    data = camera_data(obj)
    projection, k, resolution, fov = render_view(camera.intrinsics)
    apply_view(data, scene, projection, k, resolution, fov)
    data.clip_start = 0.01
    data.clip_end = 1000.0
    obj.rotation_mode = "QUATERNION"
    obj.matrix_world = blender_matrix(camera.matrix)
    dof = camera.depth_of_field
    dof_settings = need(data.dof, "depth of field settings")
    dof_settings.use_dof = dof is not None
    if dof is not None:
        dof_settings.focus_object = None
        dof_settings.focus_distance = dof.focus_distance_m
        dof_settings.aperture_fstop = dof.fstop
    setup_motion(obj, scene, camera)
    scene.camera = obj


MOTION_FRAME = 10
"""The frame rendered when a camera moves: its keyframes sit half a shutter either side of it."""


def setup_motion(obj: bpy.types.Object, scene: bpy.types.Scene, camera: CameraRecipe) -> None:
    """Motion blur and rolling shutter from the camera's velocities (Cycles).

    The scene runs at 1 frame per second, so Blender's shutter (in frames) is the shutter time in
    seconds. The camera is keyframed at the start and end of the exposure with linear
    interpolation, from `cam_to_world` (the pose at mid-exposure) moved by the linear velocity
    (world frame, m/s) and turned by the angular velocity (camera frame, OpenCV axes, rad/s, as a
    gyroscope reads it). The ground truth is therefore the view at mid-exposure; for rolling
    shutter, of the middle row.
    """
    if obj.animation_data is not None:
        action = obj.animation_data.action
        obj.animation_data_clear()
        if action is not None and action.users == 0 and owned(action):
            bpy.data.actions.remove(action)
    dyn = camera.dynamics
    render = scene.render
    moving = (
        dyn is not None
        and dyn.shutter_s + dyn.rolling_shutter_s > 0
        and (any(dyn.velocity_mps) or any(dyn.angular_velocity_radps))
    )
    render.use_motion_blur = bool(moving)
    cycles = need(scene.cycles, "Cycles settings")
    if not moving or dyn is None:
        scene.frame_set(MOTION_FRAME)
        cycles.rolling_shutter_type = "NONE"
        return
    total = dyn.shutter_s + dyn.rolling_shutter_s
    render.fps = 1
    render.fps_base = 1.0
    render.motion_blur_shutter = total
    render.motion_blur_position = "CENTER"
    if dyn.rolling_shutter_s > 0:
        cycles.rolling_shutter_type = "TOP"
        cycles.rolling_shutter_duration = dyn.rolling_shutter_s / total
    else:
        cycles.rolling_shutter_type = "NONE"
    base = camera.matrix
    omega = np.asarray(dyn.angular_velocity_radps, dtype=np.float64)
    velocity = np.asarray(dyn.velocity_mps, dtype=np.float64)
    for dt in (-total / 2.0, total / 2.0):
        m = base.copy()
        angle = float(np.linalg.norm(omega)) * dt
        if angle != 0.0:
            axis = omega / np.linalg.norm(omega)
            m[:3, :3] = base[:3, :3] @ np.array(Matrix.Rotation(angle, 3, axis.tolist()), dtype=np.float64)
        m[:3, 3] = base[:3, 3] + velocity * dt
        obj.matrix_world = blender_matrix(m)
        frame = MOTION_FRAME + dt
        obj.keyframe_insert("location", frame=frame)
        obj.keyframe_insert("rotation_quaternion", frame=frame)
    if obj.animation_data and obj.animation_data.action:
        obj.animation_data.action[OWNED] = 1  # removed with render-tag's other orphans
        for curve in _fcurves(obj.animation_data.action):
            for point in curve.keyframe_points:
                point.interpolation = "LINEAR"
    scene.frame_set(MOTION_FRAME)
    obj.matrix_world = blender_matrix(base)


def _fcurves(action: bpy.types.Action) -> list[bpy.types.FCurve]:
    """An action's F-curves: `action.fcurves` in 4.x; layered actions (5.0) keep them in channelbags."""
    curves = getattr(action, "fcurves", None)
    if curves is not None:
        return list(curves)
    out = []
    for layer in getattr(action, "layers", []):
        for strip in layer.strips:
            for bag in getattr(strip, "channelbags", []):
                out.extend(bag.fcurves)
    return out
