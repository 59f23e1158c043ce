"""Reading a Blender scene back into recipe dicts: the inverse of `scene.build_scene`.

Each object's stored recipe entry (`datablocks.STORED`) is kept while the Blender data still agrees
with it to float32 precision, else the entry is derived from the Blender data (and the N-panel's
`render_tag` settings), so export → build → export gives the same recipe.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import bpy
import numpy as np

from render_tag_shared.blender_camera import render_view
from render_tag_shared.recipe import CameraIntrinsics

from . import datablocks
from .authoring import target_scene
from .camera import k_from_blender, opencv_matrix
from .scene import input_value
from .settings import nice_float, read_object_settings, read_scene_settings

_REL_TOL = 2e-6
_ABS_TOL = 2e-6


def _close(a: Any, b: Any, key: str = "") -> bool:
    """JSON values equal up to Blender's float32 storage (quaternions up to sign)."""
    if key == "rotation_quaternion" and isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return _close(list(a), list(b)) or _close([-x for x in a], list(b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(float(a), float(b), rel_tol=_REL_TOL, abs_tol=_ABS_TOL)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], k) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_close(x, y, key) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _resolve(derived: dict[str, Any], stored: dict[str, Any] | None) -> dict[str, Any]:
    """The stored recipe entry when the Blender data still says the same, else the derived one."""
    if stored is None:
        return derived
    comparable = {k: stored[k] for k in derived if k in stored}
    if comparable.keys() == derived.keys() and _close(derived, comparable):
        return {**derived, **comparable}
    return derived


def _nice_list(values: Iterable[float]) -> list[float]:
    return [nice_float(v) for v in values]


def _pose(obj: bpy.types.Object) -> dict[str, Any]:
    loc, rot, _ = obj.matrix_world.decompose()
    q = np.array(_nice_list([rot.w, rot.x, rot.y, rot.z]), dtype=np.float64)
    q /= np.linalg.norm(q)
    if q[0] < 0:
        q = -q
    return {"position": _nice_list(loc[:]), "rotation_quaternion": [float(v) for v in q]}


def _sort_key(obj: bpy.types.Object) -> tuple[int, str]:
    return (int(datablocks.custom_prop(obj, "render_tag_index", 1 << 30)), obj.name)


def _export_object(obj: bpy.types.Object) -> dict[str, Any] | None:
    stored = datablocks.load_json(obj)
    fields = read_object_settings(obj)
    if fields is None:
        if stored is None or stored.get("type") not in ("TAG", "BOARD", "PLANE", "OCCLUDER", "PRIMITIVE"):
            return None
        fields = {k: v for k, v in stored.items() if k not in ("name", "pose", "keypoints_3d")}
    derived = {"name": obj.get("render_tag_name", obj.name), "pose": _pose(obj), **fields}
    if derived["type"] == "BOARD" and stored is not None and "board" in stored:
        # unset optional fields the panel cannot show (explicit marker ids) come from the recipe
        board = dict(derived["board"])
        if stored["board"].get("marker_ids") is not None:
            board["marker_ids"] = stored["board"]["marker_ids"]
        derived["board"] = board
    entry = _resolve(derived, stored)
    entry.pop("keypoints_3d", None)
    return entry


def _export_light(obj: bpy.types.Object) -> dict[str, Any]:
    data = datablocks.lamp(obj.data, obj.name)
    derived: dict[str, Any] = {
        "type": data.type,
        "pose": _pose(obj),
        "energy": nice_float(data.energy),
        "color": _nice_list(data.color[:]),
    }
    stored = datablocks.load_json(obj) or {}
    if isinstance(data, bpy.types.PointLight | bpy.types.SpotLight):
        derived["radius_m"] = nice_float(data.shadow_soft_size)
    if isinstance(data, bpy.types.AreaLight):
        derived["radius_m"] = nice_float(data.size)
    if isinstance(data, bpy.types.SunLight):
        derived["angle_rad"] = nice_float(data.angle)
    if isinstance(data, bpy.types.SpotLight):
        derived["spot_size_rad"] = nice_float(data.spot_size)
    return _resolve(derived, stored)


def _current_view(obj: bpy.types.Object, scene: bpy.types.Scene) -> dict[str, Any]:
    data = datablocks.camera_data(obj)
    if data.type == "PANO":
        return {
            "projection": "equidistant"
            if data.panorama_type == "FISHEYE_EQUIDISTANT"
            else data.panorama_type,
            "resolution": [scene.render.resolution_x, scene.render.resolution_y],
            "fov": nice_float(data.fisheye_fov),
        }
    k, res = k_from_blender(data, scene.render)
    k = [_nice_list(row) for row in k]
    return {"projection": "perspective", "k": k, "resolution": list(res)}


def _expected_view(intr: CameraIntrinsics) -> dict[str, Any]:
    projection, k, res, fov = render_view(intr)
    if projection == "equidistant":
        return {"projection": projection, "resolution": list(res), "fov": fov}
    return {"projection": projection, "k": [list(r) for r in k], "resolution": list(res)}


def _export_camera(obj: bpy.types.Object, scene: bpy.types.Scene, name: str) -> dict[str, Any]:
    stored = datablocks.load_json(obj) or {}
    lens = read_scene_settings(scene) or {}
    view = _current_view(obj, scene)
    intr: dict[str, Any] | None = None
    if "intrinsics" in stored:
        s_intr = CameraIntrinsics.model_validate(stored["intrinsics"])
        same_lens = all(
            _close(lens[k], stored["intrinsics"][k])
            for k in ("distortion_model", "distortion_coeffs", "eval_margin_px")
            if k in lens
        )
        if same_lens and _close(view, _expected_view(s_intr)):
            intr = stored["intrinsics"]
    if intr is None:
        if view["projection"] != "perspective":
            raise ValueError(
                f"camera {obj.name}: a {view['projection']} camera cannot be exported; "
                "set its intrinsics with set_camera_intrinsics"
            )
        intr = {
            "k_matrix": view["k"],
            "resolution": view["resolution"],
            "distortion_model": lens.get("distortion_model", "none"),
            "distortion_coeffs": lens.get("distortion_coeffs", []),
            "eval_margin_px": lens.get("eval_margin_px", 0.0),
        }
    cam_to_world = _rigid_nice(opencv_matrix(obj))
    if "cam_to_world" in stored and _close(cam_to_world, stored["cam_to_world"]):
        cam_to_world = stored["cam_to_world"]
    entry: dict[str, Any] = {
        key: stored[key]
        for key in ("sensor_noise", "dynamics", "tone_mapping", "dynamic_range")
        if stored.get(key) is not None
    }
    dof = datablocks.need(datablocks.camera_data(obj).dof, "depth of field settings")
    derived_dof = (
        {"focus_distance_m": nice_float(dof.focus_distance), "fstop": nice_float(dof.aperture_fstop)}
        if dof.use_dof
        else None
    )
    stored_dof = stored.get("depth_of_field")
    if derived_dof is not None and stored_dof is not None and _close(derived_dof, stored_dof):
        derived_dof = stored_dof
    entry.update(
        name=stored.get("name", name),
        cam_to_world=cam_to_world,
        intrinsics=intr,
        depth_of_field=derived_dof,
    )
    return entry


def scene_recipe(
    scene: bpy.types.Scene | None = None, scene_id: int | None = None, random_seed: int | None = None
) -> dict[str, Any]:
    """The recipe dict of a scene (validated by `api.export_scene_recipe`); see there."""
    scene = target_scene(scene)
    scene.view_layers[0].update()  # matrix_world of objects moved since the last evaluation
    stored_scene = datablocks.load_json(scene) or {}
    if scene.camera is None:
        raise ValueError(f"scene {scene.name!r} has no active camera to export")
    objects = []
    lights = []
    for obj in sorted(scene.objects, key=_sort_key):
        if obj.hide_render:
            continue
        if obj.type == "LIGHT":
            lights.append(_export_light(obj))
        elif obj.type == "MESH":
            entry = _export_object(obj)
            if entry is not None:
                objects.append(entry)
    world = dict(stored_scene.get("world") or _export_world(scene))
    world["lights"] = lights
    renderer = dict(stored_scene.get("renderer") or {})
    settings = read_scene_settings(scene)
    if settings is not None:
        derived = settings["renderer"]
        if not _close(derived, {k: renderer.get(k) for k in derived}):
            renderer.update(derived)
    cam_index = camera_index(scene.camera)
    camera = _export_camera(scene.camera, scene, f"cam{cam_index}")
    cameras = list(stored_scene.get("cameras") or [])
    if 0 <= cam_index < len(cameras):
        cameras[cam_index] = camera
    else:
        cameras = [camera]
    return {
        "scene_id": scene_id if scene_id is not None else stored_scene.get("scene_id", 0),
        "random_seed": random_seed if random_seed is not None else stored_scene.get("random_seed", 0),
        "world": world,
        "renderer": renderer,
        "objects": objects,
        "cameras": cameras,
    }


def _export_world(scene: bpy.types.Scene) -> dict[str, Any]:
    """Background colour and strength of an authored world's Background node, if it has one."""
    world = scene.world
    if world is None:
        return {}
    if world.node_tree is None or (bpy.app.version < (5, 0, 0) and not world.use_nodes):
        return {"background_color": [min(1.0, max(0.0, nice_float(c))) for c in world.color[:]]}
    node = next((n for n in world.node_tree.nodes if n.type == "BACKGROUND"), None)
    if node is None or node.inputs["Color"].is_linked:
        return {}
    color = [min(1.0, max(0.0, nice_float(c))) for c in input_value(node, "Color")[:3]]
    return {"background_color": color, "background_strength": nice_float(input_value(node, "Strength"))}


def _rigid_nice(matrix: np.ndarray) -> list[list[float]]:
    """A camera-to-world matrix with its float32 noise rounded away but still exactly orthonormal enough."""
    out = np.array(matrix, dtype=np.float64)
    out[:3, 3] = _nice_list(out[:3, 3])
    u, _, vt = np.linalg.svd(out[:3, :3])
    out[:3, :3] = u @ vt
    out[3] = (0.0, 0.0, 0.0, 1.0)
    return out.tolist()


def camera_index(camera: bpy.types.Object) -> int:
    """Which camera of its recipe a built camera object stands for (0 for a user's own camera)."""
    return int(datablocks.custom_prop(camera, "render_tag_index", 0))


def active_camera_index(scene: bpy.types.Scene, camera_count: int) -> int:
    """Which camera of the exported recipe the scene's active camera is (the rule `scene_recipe` uses)."""
    index = camera_index(scene.camera) if scene.camera is not None else 0
    return index if 0 <= index < camera_count else 0
