"""The Blender camera of a recipe camera: K and resolution to lens, sensor fit, shift and pixel aspect.

Derivation (Blender's `BKE_camera_params_compute_viewplane` and Cycles' `blender_camera_viewplane`
agree on it). With `sensor_fit = 'HORIZONTAL'`, sensor width S (mm), focal length L (mm), image
W x H and pixel aspect (ax, ay), let ycor = ay / ax. The view plane at unit depth spans S / L across
the W columns and ycor * H * S / (L * W) across the H rows, so

    fx = L * W / S                      fy = fx / ycor = fx * ax / ay

Blender clamps both aspects to >= 1, so fy > fx takes ax = fy / fx, ay = 1 and fy < fx takes
ax = 1, ay = fx / fy. The shift moves the view plane by shift * W column widths (both axes, since
the fit is horizontal); the optical axis then crosses the image `W / 2 - shift_x * W` pixel edges
from the left and `H / 2 + shift_y * W / ycor` rows from the top. OpenCV counts from the centre of the
first pixel (half a pixel in), hence

    shift_x = -(cx + 0.5 - W / 2) / W   shift_y = (cy + 0.5 - H / 2) * ycor / W

`tests/test_addon_scene.py` checks this against `bpy_extras.object_utils.world_to_camera_view` and
`render_tag_shared.projection.project_points`, for fx != fy, off-centre principal points, portrait and
landscape; the render tests check it against what OpenCV's detectors find in Cycles' pixels.

Blender's camera looks down its local -z with +y up; the recipe's `cam_to_world` uses OpenCV's axes:
`matrix_world = cam_to_world @ BLENDER_TO_OPENCV_CAMERA`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import bpy
import numpy as np
from mathutils import Matrix

from render_tag_shared.geometry import BLENDER_TO_OPENCV_CAMERA
from render_tag_shared.recipe import CameraIntrinsics, CameraRecipe

from .datablocks import OWNED

SENSOR_WIDTH_MM = 36.0
"""Full-frame width: only the ratio lens / sensor matters for the projection; depth of field uses it."""


@dataclass(frozen=True)
class PinholeSettings:
    """What Blender needs for one pinhole K: everything is exact in float64 before Blender stores it."""

    lens: float
    shift_x: float
    shift_y: float
    pixel_aspect_x: float
    pixel_aspect_y: float
    width: int
    height: int


def pinhole_settings(
    k_matrix: np.ndarray | list[list[float]], resolution: tuple[int, int]
) -> PinholeSettings:
    """Lens, shift and pixel aspect that make Blender project exactly as K does (see the module doc)."""
    k = np.asarray(k_matrix, dtype=np.float64)
    fx, fy, cx, cy = float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2])
    w, h = int(resolution[0]), int(resolution[1])
    ax, ay = (fy / fx, 1.0) if fy >= fx else (1.0, fx / fy)
    ycor = ay / ax
    return PinholeSettings(
        lens=fx * SENSOR_WIDTH_MM / w,
        shift_x=-(cx + 0.5 - w / 2.0) / w,
        shift_y=(cy + 0.5 - h / 2.0) * ycor / w,
        pixel_aspect_x=ax,
        pixel_aspect_y=ay,
        width=w,
        height=h,
    )


def k_from_blender(
    camera_data: bpy.types.Camera, render: bpy.types.RenderSettings
) -> tuple[list[list[float]], tuple[int, int]]:
    """K and resolution of a perspective Blender camera, any sensor fit (the inverse of pinhole_settings)."""
    scale = render.resolution_percentage / 100.0
    w = max(1, int(render.resolution_x * scale))
    h = max(1, int(render.resolution_y * scale))
    ax, ay = float(render.pixel_aspect_x), float(render.pixel_aspect_y)
    ycor = ay / ax
    fit = camera_data.sensor_fit
    if fit == "AUTO":
        horizontal = ax * w >= ay * h
        sensor = camera_data.sensor_width
    else:
        horizontal = fit == "HORIZONTAL"
        sensor = camera_data.sensor_width if horizontal else camera_data.sensor_height
    viewfac = float(w) if horizontal else ycor * h
    fx = camera_data.lens * viewfac / sensor
    fy = fx / ycor
    cx = w / 2.0 - camera_data.shift_x * viewfac - 0.5
    cy = h / 2.0 + camera_data.shift_y * viewfac / ycor - 0.5
    return [[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], (w, h)


def render_view(intrinsics: CameraIntrinsics) -> tuple[str, list[list[float]], tuple[int, int], float | None]:
    """What Blender renders for a camera: (projection, K, resolution, fisheye_fov).

    The target pinhole itself without distortion; the overscan pinhole for Brown-Conrady; the
    equidistant fisheye for Kannala-Brandt. The image is warped to the target afterwards.
    """
    target = intrinsics.overscan
    if intrinsics.distortion_model == "none" or target is None:
        return "perspective", intrinsics.k_matrix, intrinsics.resolution, None
    return target.projection, target.k_matrix, target.resolution, target.fov_rad


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
    data = obj.data
    projection, k, resolution, fov = render_view(camera.intrinsics)
    apply_view(data, scene, projection, k, resolution, fov)
    data.clip_start = 0.01
    data.clip_end = 1000.0
    obj.rotation_mode = "QUATERNION"
    obj.matrix_world = blender_matrix(camera.matrix)
    dof = camera.depth_of_field
    data.dof.use_dof = dof is not None
    if dof is not None:
        data.dof.focus_object = None
        data.dof.focus_distance = dof.focus_distance_m
        data.dof.aperture_fstop = dof.fstop
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
        if action is not None and action.users == 0 and action.get(OWNED):
            bpy.data.actions.remove(action)
    dyn = camera.dynamics
    render = scene.render
    moving = (
        dyn is not None
        and dyn.shutter_s + dyn.rolling_shutter_s > 0
        and (any(dyn.velocity_mps) or any(dyn.angular_velocity_radps))
    )
    render.use_motion_blur = bool(moving)
    if not moving or dyn is None:
        scene.frame_set(MOTION_FRAME)
        scene.cycles.rolling_shutter_type = "NONE"
        return
    total = dyn.shutter_s + dyn.rolling_shutter_s
    render.fps = 1
    render.fps_base = 1.0
    render.motion_blur_shutter = total
    render.motion_blur_position = "CENTER"
    if dyn.rolling_shutter_s > 0:
        scene.cycles.rolling_shutter_type = "TOP"
        scene.cycles.rolling_shutter_duration = dyn.rolling_shutter_s / total
    else:
        scene.cycles.rolling_shutter_type = "NONE"
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


def fisheye_fov_ok(fov_rad: float) -> bool:
    """Blender's fisheye_fov range is [10 deg, 10 pi]."""
    return math.radians(10.0) <= fov_rad <= 10.0 * math.pi
