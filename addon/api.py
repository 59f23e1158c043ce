"""The function API of the add-on: what the operators and the headless worker call.

Pure translation between recipes and the adapter (`adapter/` is where bpy is driven). Every call takes
and returns recipe models (or their dict form, validated here), so the N-panel, `bpy.ops.render_tag.*`
and a worker process rendering thousands of recipes run the same code.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bpy
import numpy as np
from mathutils import Quaternion, Vector

from render_tag_shared import imaging
from render_tag_shared.boards import BoardDefinition
from render_tag_shared.files import write_json_atomic
from render_tag_shared.recipe import (
    BoardObject,
    CameraIntrinsics,
    PlaneObject,
    SceneRecipe,
    TagObject,
    load_recipe_file,
)
from render_tag_shared.truth import image_labels

from . import adapter
from .adapter import camera as cam_adapter
from .adapter import datablocks
from .adapter import scene as scene_adapter

__all__ = [
    "RenderResult",
    "add_board",
    "add_tag",
    "build_scene",
    "export_scene_recipe",
    "purge_orphans",
    "refresh_object",
    "render_recipe",
    "render_recipe_file",
    "set_camera_intrinsics",
]


@dataclass(frozen=True)
class RenderResult:
    """One rendered camera: its files and where the time went (seconds)."""

    image_id: str
    image_path: Path
    labels_path: Path
    timings: dict[str, float] = field(default_factory=dict)


def _recipe(recipe: SceneRecipe | dict[str, Any]) -> SceneRecipe:
    return recipe if isinstance(recipe, SceneRecipe) else SceneRecipe.model_validate(recipe)


# --------------------------------------------------------------------------- build and render


def build_scene(recipe: SceneRecipe | dict[str, Any], camera_index: int = 0) -> bpy.types.Scene:
    """Build `recipe` into render-tag's scene, seen from camera `camera_index`; returns the scene."""
    return scene_adapter.build_scene(_recipe(recipe), camera_index)


def render_recipe(
    recipe: SceneRecipe | dict[str, Any],
    out_dir: str | Path,
    camera_indices: Iterable[int] | None = None,
) -> list[RenderResult]:
    """Render cameras of a recipe to `out_dir/images/<image_id>.png` and `out_dir/labels/<image_id>.json`.

    The scene is built once; each camera is rendered linear, post-processed in numpy
    (`render_tag_shared.imaging`) and written atomically with its ground truth.
    """
    recipe = _recipe(recipe)
    out = Path(bpy.path.abspath(str(out_dir)))
    indices = list(range(len(recipe.cameras))) if camera_indices is None else list(camera_indices)
    for index in indices:
        if not 0 <= index < len(recipe.cameras):
            raise IndexError(f"camera index {index} is outside the recipe's {len(recipe.cameras)} cameras")
    results: list[RenderResult] = []
    if not indices:
        return results
    t0 = time.perf_counter()
    # the work scene is not made the window's scene: a preview render leaves the user where they are
    scene = scene_adapter.build_scene(recipe, indices[0], scene_adapter.work_scene(activate=False))
    build_time = time.perf_counter() - t0
    for n, index in enumerate(indices):
        t1 = time.perf_counter()
        if n > 0:
            scene_adapter.select_camera(scene, recipe, index)
        t2 = time.perf_counter()
        linear = adapter.render_linear(scene)
        t3 = time.perf_counter()
        camera = recipe.cameras[index]
        pixels = imaging.postprocess(linear, camera)
        t4 = time.perf_counter()
        image_id = recipe.image_id(index)
        image_path = imaging.write_png_atomic(out / "images" / f"{image_id}.png", pixels)
        labels = image_labels(recipe, index, render_environment=adapter.render_environment(scene))
        labels_path = write_json_atomic(
            out / "labels" / f"{image_id}.json", labels.model_dump(mode="json"), indent=None
        )
        t5 = time.perf_counter()
        build = build_time + (t2 - t1) if n == 0 else t2 - t1
        results.append(
            RenderResult(
                image_id=image_id,
                image_path=image_path,
                labels_path=labels_path,
                timings={"build": build, "render": t3 - t2, "post": t4 - t3, "write": t5 - t4},
            )
        )
    return results


def render_recipe_file(
    path: str | Path, out_dir: str | Path, start: int = 0, stop: int | None = None
) -> list[RenderResult]:
    """Render recipes[start:stop] of a recipe file (every camera of each)."""
    recipes = load_recipe_file(bpy.path.abspath(str(path))).recipes
    results: list[RenderResult] = []
    for recipe in recipes[start:stop]:
        results.extend(render_recipe(recipe, out_dir))
    return results


def purge_orphans() -> int:
    """Remove every datablock without users (Blender's recursive purge); returns how many went."""
    datablocks.remove_owned_orphans()
    return datablocks.purge_orphans()


# --------------------------------------------------------------------------- authoring


def _target_scene(scene: bpy.types.Scene | None) -> bpy.types.Scene:
    return scene if scene is not None else bpy.context.scene


def _place(obj: bpy.types.Object, location: Sequence[float], rotation_quaternion: Sequence[float]) -> None:
    scene_adapter.set_pose(obj, Vector(location), Quaternion(rotation_quaternion))


def _replace_geometry(obj: bpy.types.Object, entry: dict[str, Any]) -> None:
    """Give `obj` the mesh and material of a recipe object (its transform is kept)."""
    model: TagObject | BoardObject | PlaneObject
    kind = entry["type"]
    if kind == "TAG":
        model = TagObject.model_validate(entry)
    elif kind == "BOARD":
        model = BoardObject.model_validate(entry)
    else:
        model = PlaneObject.model_validate(entry)
    old = obj.data
    obj.data = scene_adapter.object_mesh(model)
    if old is not None and old.users == 0 and datablocks.owned(old):
        for material in list(old.materials):
            old.materials.pop()
            if material is not None and material.users == 0 and datablocks.owned(material):
                bpy.data.materials.remove(material)
        bpy.data.meshes.remove(old)


def refresh_object(obj: bpy.types.Object) -> None:
    """Rebuild an authored object's mesh and texture from `obj.render_tag` (the N-panel's live edit)."""
    from .properties import read_object_settings

    entry = read_object_settings(obj)
    if entry is None:
        return
    entry["name"] = obj.get("render_tag_name", obj.name)
    _replace_geometry(obj, entry)


def _new_authored(
    scene: bpy.types.Scene | None,
    entry: dict[str, Any],
    location: Sequence[float],
    rotation_quaternion: Sequence[float],
) -> bpy.types.Object:
    from .properties import write_object_settings

    target = _target_scene(scene)
    mesh = bpy.data.meshes.new(entry["name"])
    datablocks.mark(mesh)
    obj = bpy.data.objects.new(entry["name"], mesh)
    datablocks.mark(obj)
    target.collection.objects.link(obj)
    _replace_geometry(obj, entry)
    write_object_settings(obj, entry)
    _place(obj, location, rotation_quaternion)
    return obj


def _unique_name(prefix: str) -> str:
    n = 0
    while f"{prefix}{n}" in bpy.data.objects:
        n += 1
    return f"{prefix}{n}"


def add_tag(
    family: str = "tag36h11",
    tag_id: int = 0,
    size_mm: float = 100.0,
    *,
    name: str | None = None,
    location: Sequence[float] = (0.0, 0.0, 0.0),
    rotation_quaternion: Sequence[float] = (1.0, 0.0, 0.0, 0.0),
    border_bits: int = 1,
    margin_modules: float = 1.0,
    roughness: float = 0.9,
    scene: bpy.types.Scene | None = None,
) -> bpy.types.Object:
    """Add an authored tag (a textured plane with `Object.render_tag` settings) to a scene."""
    entry = TagObject(
        name=name or _unique_name("tag"),
        tag_family=family,
        tag_id=tag_id,
        size_mm=size_mm,
        border_bits=border_bits,
        margin_modules=margin_modules,
        roughness=roughness,
    ).model_dump(mode="json")
    return _new_authored(scene, entry, location, rotation_quaternion)


def add_board(
    definition: BoardDefinition | dict[str, Any],
    *,
    name: str | None = None,
    location: Sequence[float] = (0.0, 0.0, 0.0),
    rotation_quaternion: Sequence[float] = (1.0, 0.0, 0.0, 0.0),
    margin_mm: float = 0.0,
    roughness: float = 0.9,
    scene: bpy.types.Scene | None = None,
) -> bpy.types.Object:
    """Add an authored ChArUco board or AprilGrid to a scene."""
    defn = (
        definition if isinstance(definition, BoardDefinition) else BoardDefinition.model_validate(definition)
    )
    entry = BoardObject(
        name=name or _unique_name("board"), board=defn, margin_mm=margin_mm, roughness=roughness
    ).model_dump(mode="json")
    return _new_authored(scene, entry, location, rotation_quaternion)


def set_camera_intrinsics(
    camera_object: bpy.types.Object,
    intrinsics: CameraIntrinsics | dict[str, Any],
    scene: bpy.types.Scene | None = None,
) -> None:
    """Make a Blender camera (and its scene's resolution) project exactly as K does.

    The camera previews the undistorted target; the lens model and eval margin go to
    `scene.render_tag` and the exact intrinsics onto the camera, so an export gives them back.
    """
    intr = (
        intrinsics
        if isinstance(intrinsics, CameraIntrinsics)
        else CameraIntrinsics.model_validate(intrinsics)
    )
    if camera_object.type != "CAMERA":
        raise ValueError(f"{camera_object.name} is not a camera")
    target = _target_scene(scene)
    cam_adapter.apply_view(camera_object.data, target, "perspective", intr.k_matrix, intr.resolution, None)
    stored = datablocks.load_json(camera_object) or {}
    stored["intrinsics"] = intr.model_dump(mode="json")
    datablocks.store_json(camera_object, stored)
    settings = getattr(target, "render_tag", None)
    if settings is not None:
        settings.distortion_model = intr.distortion_model
        settings.distortion_coeffs = list(intr.distortion_coeffs) + [0.0] * (5 - len(intr.distortion_coeffs))
        settings.eval_margin_px = intr.eval_margin_px


# --------------------------------------------------------------------------- export

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


def _nice(value: float) -> float:
    """A float read from Blender's float32 storage, as the decimal a user typed (7 significant digits)."""
    return float(f"{float(value):.7g}")


def _nice_list(values: Iterable[float]) -> list[float]:
    return [_nice(v) for v in values]


def _pose(obj: bpy.types.Object) -> dict[str, Any]:
    loc, rot, _ = obj.matrix_world.decompose()
    q = np.array(_nice_list([rot.w, rot.x, rot.y, rot.z]), dtype=np.float64)
    q /= np.linalg.norm(q)
    if q[0] < 0:
        q = -q
    return {"position": _nice_list(loc), "rotation_quaternion": [float(v) for v in q]}


def _sort_key(obj: bpy.types.Object) -> tuple[int, str]:
    return (int(obj.get("render_tag_index", 1 << 30)), obj.name)


def _export_object(obj: bpy.types.Object) -> dict[str, Any] | None:
    from .properties import read_object_settings

    stored = datablocks.load_json(obj)
    fields = read_object_settings(obj)
    if fields is None:
        if stored is None or stored.get("type") not in ("TAG", "BOARD", "PLANE"):
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
    data = obj.data
    derived: dict[str, Any] = {
        "type": data.type,
        "pose": _pose(obj),
        "energy": _nice(data.energy),
        "color": _nice_list(data.color),
    }
    stored = datablocks.load_json(obj) or {}
    if data.type in ("POINT", "SPOT"):
        derived["radius_m"] = _nice(data.shadow_soft_size)
    if data.type == "AREA":
        derived["radius_m"] = _nice(data.size)
    if data.type == "SUN":
        derived["angle_rad"] = _nice(data.angle)
    if data.type == "SPOT":
        derived["spot_size_rad"] = _nice(data.spot_size)
    return _resolve(derived, stored)


def _current_view(obj: bpy.types.Object, scene: bpy.types.Scene) -> dict[str, Any]:
    data = obj.data
    if data.type == "PANO":
        return {
            "projection": "equidistant"
            if data.panorama_type == "FISHEYE_EQUIDISTANT"
            else data.panorama_type,
            "resolution": [scene.render.resolution_x, scene.render.resolution_y],
            "fov": _nice(data.fisheye_fov),
        }
    k, res = cam_adapter.k_from_blender(data, scene.render)
    k = [_nice_list(row) for row in k]
    return {"projection": "perspective", "k": k, "resolution": list(res)}


def _expected_view(intr: CameraIntrinsics) -> dict[str, Any]:
    projection, k, res, fov = cam_adapter.render_view(intr)
    if projection == "equidistant":
        return {"projection": projection, "resolution": list(res), "fov": fov}
    return {"projection": projection, "k": [list(r) for r in k], "resolution": list(res)}


def _export_camera(obj: bpy.types.Object, scene: bpy.types.Scene, name: str) -> dict[str, Any]:
    from .properties import read_scene_settings

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
    cam_to_world = _rigid_nice(cam_adapter.opencv_matrix(obj))
    if "cam_to_world" in stored and _close(cam_to_world, stored["cam_to_world"]):
        cam_to_world = stored["cam_to_world"]
    entry: dict[str, Any] = {
        key: stored[key]
        for key in ("sensor_noise", "dynamics", "tone_mapping", "dynamic_range")
        if stored.get(key) is not None
    }
    dof = obj.data.dof
    derived_dof = (
        {"focus_distance_m": _nice(dof.focus_distance), "fstop": _nice(dof.aperture_fstop)}
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


def export_scene_recipe(
    scene: bpy.types.Scene | None = None, scene_id: int | None = None, random_seed: int | None = None
) -> SceneRecipe:
    """The recipe of a scene: its tags, boards, planes, lights, world, renderer and active camera.

    The inverse of `build_scene`: each object's stored recipe entry is kept while the Blender data
    still agrees with it (to float32 precision), so export → build → export gives the same recipe.
    `scene_id` and `random_seed` default to the built recipe's (or 0).
    """
    from .properties import read_scene_settings

    scene = _target_scene(scene)
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
    cam_index = int(scene.camera.get("render_tag_index", 0))
    camera = _export_camera(scene.camera, scene, f"cam{cam_index}")
    cameras = list(stored_scene.get("cameras") or [])
    if 0 <= cam_index < len(cameras):
        cameras[cam_index] = camera
    else:
        cameras = [camera]
    return SceneRecipe.model_validate(
        {
            "scene_id": scene_id if scene_id is not None else stored_scene.get("scene_id", 0),
            "random_seed": random_seed if random_seed is not None else stored_scene.get("random_seed", 0),
            "world": world,
            "renderer": renderer,
            "objects": objects,
            "cameras": cameras,
        }
    )


def _export_world(scene: bpy.types.Scene) -> dict[str, Any]:
    """Background colour and strength of an authored world's Background node, if it has one."""
    world = scene.world
    if world is None:
        return {}
    if world.node_tree is None or (bpy.app.version < (5, 0, 0) and not world.use_nodes):
        return {"background_color": [min(1.0, max(0.0, _nice(c))) for c in world.color]}
    node = next((n for n in world.node_tree.nodes if n.type == "BACKGROUND"), None)
    if node is None or node.inputs["Color"].is_linked:
        return {}
    color = [min(1.0, max(0.0, _nice(c))) for c in node.inputs["Color"].default_value[:3]]
    return {"background_color": color, "background_strength": _nice(node.inputs["Strength"].default_value)}


def _rigid_nice(matrix: np.ndarray) -> list[list[float]]:
    """A camera-to-world matrix with its float32 noise rounded away but still exactly orthonormal enough."""
    out = np.array(matrix, dtype=np.float64)
    out[:3, 3] = _nice_list(out[:3, 3])
    u, _, vt = np.linalg.svd(out[:3, :3])
    out[:3, :3] = u @ vt
    out[3] = (0.0, 0.0, 0.0, 1.0)
    return out.tolist()
