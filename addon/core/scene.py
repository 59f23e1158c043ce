"""Scene building: a SceneRecipe becomes Blender objects, materials, lights and a world.

Tags and boards are single quads whose mesh is exactly the rectangle `object_extent_m` gives (the
occluder the ground truth assumes), textured with the marker or board image at whole pixels per
module and sampled nearest-neighbour ("Closest": no interpolation, and Cycles never mipmaps), so an
edge in the texture is an edge on the plane at the exact place the recipe's geometry puts it.
The texture rows run top (object +y) to bottom; UV (0, 0) is the object's (-w/2, -h/2).

Everything is built into one dedicated scene (`WORK_SCENE`) that render-tag owns, so whatever the
user has in their own scenes never appears in a render; each build replaces the previous one.
"""

from __future__ import annotations

import hashlib
import math
import os
from typing import Any, Literal, Protocol, cast

import bmesh
import bpy
import numpy as np
from mathutils import Matrix, Quaternion, Vector

from render_tag_shared.boards import board_image, board_px_per_bit
from render_tag_shared.errors import InputError
from render_tag_shared.families import get_family, marker_texture
from render_tag_shared.passes import MAX_MASK_ID, mask_id
from render_tag_shared.recipe import (
    BUILTIN_PREFIX,
    AnyObject,
    BoardObject,
    Light,
    OccluderObject,
    PlaneObject,
    PrimitiveObject,
    ProceduralTexture,
    SceneRecipe,
    TagObject,
    World,
    is_builtin_asset,
)
from render_tag_shared.truth import object_extent_m

from . import datablocks
from .camera import setup_camera
from .renderer import configure_renderer
from .settings import write_object_settings, write_scene_settings

WORK_SCENE = "RenderTag"
"""The scene render-tag builds recipes into (created on first use)."""

CAMERA_NAME = "RT_Camera"
TAG_MODULE_PX = 8
"""Texture pixels per marker module: every module edge lands on a texel edge, so any size is exact."""


def work_scene(activate: bool = True) -> bpy.types.Scene:
    """The dedicated render-tag scene; made the window's scene when a window exists (the N-panel)."""
    scene = bpy.data.scenes.get(WORK_SCENE)
    if scene is None:
        scene = bpy.data.scenes.new(WORK_SCENE)
        datablocks.mark(scene)
    if activate:
        window = getattr(bpy.context, "window", None)
        if window is not None and window.scene != scene:
            window.scene = scene
    return scene


def clear_scene(scene: bpy.types.Scene) -> None:
    """Remove every object of the scene, then render-tag's datablocks nothing uses any more."""
    for obj in list(scene.objects):
        data = obj.data
        bpy.data.objects.remove(obj, do_unlink=True)
        if data is not None and data.users == 0 and datablocks.owned(data):
            _remove_data(data)
    for child in list(scene.collection.children):
        if datablocks.owned(child):
            bpy.data.collections.remove(child)


def _remove_data(data: bpy.types.ID) -> None:
    if isinstance(data, bpy.types.Mesh):
        bpy.data.meshes.remove(data)
    elif isinstance(data, bpy.types.Light):
        bpy.data.lights.remove(data)
    elif isinstance(data, bpy.types.Camera):
        bpy.data.cameras.remove(data)


# --------------------------------------------------------------------------- meshes and materials


class _ValueSocket(Protocol):
    default_value: Any


def set_input(node: bpy.types.Node, name: str, value: object) -> None:
    """Set a node input's value: value sockets (float, colour, vector) have `default_value`, the
    `NodeSocket` base class the stubs give `inputs[...]` does not."""
    socket = cast(_ValueSocket, node.inputs[name])
    socket.default_value = value


def input_value(node: bpy.types.Node, name: str) -> Any:
    """A node input's value (see `set_input`)."""
    return cast(_ValueSocket, node.inputs[name]).default_value


def ensure_nodes(datablock: bpy.types.Material | bpy.types.World) -> None:
    """Node-based shading: `use_nodes` before 5.0; deprecated from 5.0, where node trees always exist."""
    if bpy.app.version < (5, 0, 0) or getattr(datablock, "node_tree", None) is None:
        datablock.use_nodes = True


def quad_mesh(
    name: str, width: float, height: float, uv_rect: tuple[float, float, float, float]
) -> bpy.types.Mesh:
    """A single-face rectangle centred on the origin in z = 0, normal +z, with UVs over `uv_rect`."""
    hw, hh = width / 2.0, height / 2.0
    mesh = bpy.data.meshes.new(name)
    datablocks.mark(mesh)
    verts = [(-hw, -hh, 0.0), (hw, -hh, 0.0), (hw, hh, 0.0), (-hw, hh, 0.0)]
    mesh.from_pydata(verts, [], [(0, 1, 2, 3)])
    u0, v0, u1, v1 = uv_rect
    uv_layer = mesh.uv_layers.new(name="UVMap")
    for loop, (u, v) in zip(mesh.loops, [(u0, v0), (u1, v0), (u1, v1), (u0, v1)], strict=True):
        uv_layer.data[loop.index].uv = (u, v)
    mesh.update()
    return mesh


def textured_material(
    name: str,
    image: bpy.types.Image | None,
    roughness: float,
    color: tuple[float, float, float] = (1.0, 1.0, 1.0),
    repeat: float = 1.0,
    interpolation: Literal["Closest", "Linear"] = "Closest",
) -> bpy.types.Material:
    """Principled BSDF with an optional image as base colour (Closest, no repeat for markers)."""
    mat = bpy.data.materials.new(name)
    datablocks.mark(mat)
    ensure_nodes(mat)
    tree = datablocks.need(mat.node_tree, "material node tree")
    nodes, links = tree.nodes, tree.links
    bsdf = nodes.get("Principled BSDF")
    if bsdf is None:
        bsdf = nodes.new("ShaderNodeBsdfPrincipled")
        links.new(bsdf.outputs[0], nodes["Material Output"].inputs["Surface"])
    set_input(bsdf, "Roughness", roughness)
    set_input(bsdf, "Base Color", (*color, 1.0))
    if image is not None:
        tex = nodes.new("ShaderNodeTexImage")
        texture = cast(bpy.types.ShaderNodeTexImage, tex)
        texture.image = image
        texture.interpolation = interpolation
        texture.extension = "REPEAT" if repeat != 1.0 else "EXTEND"
        if repeat != 1.0:
            coord = nodes.new("ShaderNodeTexCoord")
            mapping = nodes.new("ShaderNodeMapping")
            set_input(mapping, "Scale", (repeat, repeat, 1.0))
            links.new(coord.outputs["UV"], mapping.inputs["Vector"])
            links.new(mapping.outputs["Vector"], tex.inputs["Vector"])
        links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    return mat


def ramp_colors(
    tree: bpy.types.NodeTree,
    factor: bpy.types.NodeSocket,
    low: tuple[float, float, float],
    high: tuple[float, float, float],
) -> bpy.types.NodeSocket:
    """A colour ramp from `low` (at 0) to `high` (at 1) driven by `factor`; its colour output.

    A ColorRamp rather than a Mix node: it exists unchanged from 2.8 to 5.x. At 0 and 1 exactly it gives
    the two colours exactly, so a marker texture of 0s and 1s prints ink and paper, edges unmoved."""
    node = tree.nodes.new("ShaderNodeValToRGB")
    ramp = cast(bpy.types.ShaderNodeValToRGB, node).color_ramp
    datablocks.need(ramp, "colour ramp").interpolation = "LINEAR"
    elements = datablocks.need(ramp, "colour ramp").elements
    elements[0].position, elements[0].color = 0.0, (*low, 1.0)
    elements[1].position, elements[1].color = 1.0, (*high, 1.0)
    tree.links.new(factor, node.inputs["Fac"])
    return node.outputs["Color"]


_PATTERN_NODES = {
    "noise": ("ShaderNodeTexNoise", "Fac"),
    "voronoi": ("ShaderNodeTexVoronoi", "Distance"),
    "wave": ("ShaderNodeTexWave", "Fac"),
    "brick": ("ShaderNodeTexBrick", "Fac"),
    "checker": ("ShaderNodeTexChecker", "Fac"),
    "magic": ("ShaderNodeTexMagic", "Fac"),
    "gradient": ("ShaderNodeTexGradient", "Fac"),
}
"""Blender's texture node and the output used as the blend factor of each procedural kind."""


def procedural_color(tree: bpy.types.NodeTree, texture: ProceduralTexture) -> bpy.types.NodeSocket:
    """The colour socket of a procedural pattern on object coordinates (metres), turned and scaled."""
    nodes, links = tree.nodes, tree.links
    coord = nodes.new("ShaderNodeTexCoord")
    mapping = nodes.new("ShaderNodeMapping")
    set_input(mapping, "Rotation", (0.0, 0.0, texture.rotation_rad))
    set_input(mapping, "Scale", (texture.scale, texture.scale, texture.scale))
    links.new(coord.outputs["Object"], mapping.inputs["Vector"])
    kind, output = _PATTERN_NODES[texture.kind]
    tex = nodes.new(kind)
    if texture.kind == "gradient":  # around the object's origin: a linear ramp would clamp to flat
        cast(bpy.types.ShaderNodeTexGradient, tex).gradient_type = "RADIAL"
    if texture.kind == "brick":  # the mortar is the pattern's second colour
        set_input(tex, "Mortar Size", 0.05)
    if "Scale" in tex.inputs:
        set_input(tex, "Scale", 1.0)
    if texture.kind in ("noise", "wave"):  # fractal Voronoi (4.0+) would cost an octave per level too
        set_input(tex, "Detail", texture.detail)
    if "Distortion" in tex.inputs:
        set_input(tex, "Distortion", texture.distortion)
    links.new(mapping.outputs["Vector"], tex.inputs["Vector"])
    return ramp_colors(tree, tex.outputs[output], texture.color_a, texture.color_b)


def principled_material(name: str, roughness: float, metallic: float = 0.0) -> bpy.types.Material:
    """An owned material with a Principled BSDF (its node tree's `Principled BSDF`)."""
    mat = bpy.data.materials.new(name)
    datablocks.mark(mat)
    ensure_nodes(mat)
    tree = datablocks.need(mat.node_tree, "material node tree")
    bsdf = tree.nodes.get("Principled BSDF")
    if bsdf is None:
        bsdf = tree.nodes.new("ShaderNodeBsdfPrincipled")
        tree.links.new(bsdf.outputs[0], tree.nodes["Material Output"].inputs["Surface"])
    set_input(bsdf, "Roughness", roughness)
    set_input(bsdf, "Metallic", metallic)
    return mat


def printed_material(name: str, image: bpy.types.Image, entry: TagObject | BoardObject) -> bpy.types.Material:
    """A marker or board texture printed in `ink_color` on `paper_color` (white on black: the texture
    itself, as before), sampled Closest so every module edge stays where the geometry puts it."""
    mat = textured_material(name, image, entry.roughness)
    if entry.paper_color == (1.0, 1.0, 1.0) and entry.ink_color == (0.0, 0.0, 0.0):
        return mat
    tree = datablocks.need(mat.node_tree, "material node tree")
    tex = next(n for n in tree.nodes if n.type == "TEX_IMAGE")
    color = ramp_colors(tree, tex.outputs["Color"], entry.ink_color, entry.paper_color)
    tree.links.new(color, tree.nodes["Principled BSDF"].inputs["Base Color"])
    return mat


def _new_object(scene: bpy.types.Scene, name: str, data: bpy.types.ID | None) -> bpy.types.Object:
    obj = bpy.data.objects.new(name, data)
    datablocks.mark(obj)
    scene.collection.objects.link(obj)
    return obj


def set_pose(obj: bpy.types.Object, position: Any, quaternion: Any) -> None:
    obj.rotation_mode = "QUATERNION"
    obj.location = Vector(position)
    obj.rotation_quaternion = Quaternion(quaternion)
    obj.scale = (1.0, 1.0, 1.0)


# --------------------------------------------------------------------------- tags and boards


def tag_image(tag: TagObject) -> bpy.types.Image:
    """The marker texture with a whole number of quiet-zone modules (reused across recipes)."""
    margin = math.ceil(tag.margin_modules)
    name = f"RT_tag_{tag.tag_family}_{tag.tag_id}_b{tag.border_bits}_m{margin}"
    if (image := bpy.data.images.get(name)) is not None and datablocks.owned(image):
        return image
    pixels = marker_texture(tag.tag_family, tag.tag_id, TAG_MODULE_PX, tag.border_bits, margin)
    return datablocks.image_from_array(name, pixels)


def tag_uv_rect(tag: TagObject) -> tuple[float, float, float, float]:
    """The part of the texture the tag's mesh shows: the quiet zone may be a fraction of a module."""
    n = get_family(tag.tag_family).marker_bits + 2 * tag.border_bits
    margin = math.ceil(tag.margin_modules)
    total = n + 2 * margin
    inset = (margin - tag.margin_modules) / total
    return (inset, inset, 1.0 - inset, 1.0 - inset)


def tag_mesh(tag: TagObject) -> bpy.types.Mesh:
    """The tag's quad (border plus quiet zone) with its marker material."""
    width, height = object_extent_m(tag)
    mesh = quad_mesh(f"RT_{tag.name}", width, height, tag_uv_rect(tag))
    mesh.materials.append(printed_material(f"RT_{tag.name}", tag_image(tag), tag))
    return mesh


def board_texture(board: BoardObject) -> tuple[bpy.types.Image, tuple[float, float, float, float]]:
    """The board image padded with whole white pixels for its margin, and the UV rectangle to show."""
    defn = board.board
    px_per_bit = board_px_per_bit(defn)
    pattern = board_image(defn, px_per_bit)
    px_per_mm = pattern.shape[1] / defn.width_mm
    pad = math.ceil(board.margin_mm * px_per_mm - 1e-9)
    key = defn.model_dump_json(exclude_defaults=False)
    name = f"RT_board_{hashlib.sha256(key.encode()).hexdigest()[:16]}_p{pad}"
    image = bpy.data.images.get(name)
    if image is None or not datablocks.owned(image) or image.get("render_tag_key") != key:
        padded = np.pad(pattern, pad, constant_values=255) if pad else pattern
        image = datablocks.image_from_array(name, padded)
        image["render_tag_key"] = key
    h, w = pattern.shape
    du = (pad - board.margin_mm * px_per_mm) / (w + 2 * pad)
    dv = (pad - board.margin_mm * pattern.shape[0] / defn.height_mm) / (h + 2 * pad)
    return image, (du, dv, 1.0 - du, 1.0 - dv)


def board_mesh(board: BoardObject) -> bpy.types.Mesh:
    """The board's quad (pattern plus margin) with its board material."""
    width, height = object_extent_m(board)
    image, uv = board_texture(board)
    mesh = quad_mesh(f"RT_{board.name}", width, height, uv)
    mesh.materials.append(printed_material(f"RT_{board.name}", image, board))
    return mesh


def plane_mesh(plane: PlaneObject) -> bpy.types.Mesh:
    """A background or distractor quad: flat colour, or an image tiled `texture_repeat` times."""
    width, height = plane.size_m
    image = (
        datablocks.image_from_file(plane.texture, field=f"objects[{plane.name}].texture")
        if plane.texture
        else None
    )
    mesh = quad_mesh(f"RT_{plane.name}", width, height, (0.0, 0.0, 1.0, 1.0))
    if plane.procedural is not None:
        mat = principled_material(f"RT_{plane.name}", plane.roughness)
        tree = datablocks.need(mat.node_tree, "material node tree")
        tree.links.new(
            procedural_color(tree, plane.procedural), tree.nodes["Principled BSDF"].inputs["Base Color"]
        )
    else:
        mat = textured_material(
            f"RT_{plane.name}",
            image,
            plane.roughness,
            plane.color,
            plane.texture_repeat,
            interpolation="Linear",
        )
    mesh.materials.append(mat)
    return mesh


def occluder_mesh(box: OccluderObject) -> bpy.types.Mesh:
    """A closed box of `size_m`, centred on the origin, outward normals, flat colour."""
    hx, hy, hz = (v / 2.0 for v in box.size_m)
    verts = [(x, y, z) for z in (-hz, hz) for y in (-hy, hy) for x in (-hx, hx)]
    faces = [(0, 2, 3, 1), (4, 5, 7, 6), (0, 1, 5, 4), (2, 6, 7, 3), (0, 4, 6, 2), (1, 3, 7, 5)]
    mesh = bpy.data.meshes.new(f"RT_{box.name}")
    datablocks.mark(mesh)
    mesh.from_pydata(verts, [], faces)
    mesh.update()
    mesh.materials.append(textured_material(f"RT_{box.name}", None, box.roughness, box.color))
    return mesh


SEGMENTS = 64
"""Facets around a distractor's circumference. Its faces are flat shaded: Blender sums smooth normals
in parallel, in an order that changes from one build to the next, and with it the last bits of every
pixel the solid lights (measured: 2-3 % of a frame's linear values, up to 2e-4, now and then a level
of the PNG); 64 facets keep the silhouette and highlights round at the sizes distractors are seen."""


_UNIT_SOLIDS: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
"""Each distractor shape at unit size, as bmesh makes it: vertex coordinates (float32), every face
corner's vertex and each face's corner count. bmesh takes 27 ms for a 64-segment sphere, and orders its
faces differently from one call to the next; a mesh made from these arrays takes 2 ms, with the same
vertices and faces, in one order for the worker's life."""


def add_bmesh_solid(bm: bmesh.types.BMesh, shape: str) -> None:
    """bmesh's own unit solid of `shape` (CUBE, SPHERE, CYLINDER, CONE) into `bm`, filling [-0.5, 0.5]^3."""
    if shape == "CUBE":
        bmesh.ops.create_cube(bm, size=1.0)
    elif shape == "SPHERE":
        bmesh.ops.create_uvsphere(bm, u_segments=SEGMENTS, v_segments=SEGMENTS // 2, radius=0.5)
    else:
        top = 0.5 if shape == "CYLINDER" else 0.0
        bmesh.ops.create_cone(
            bm, cap_ends=True, cap_tris=False, segments=SEGMENTS, radius1=0.5, radius2=top, depth=1.0
        )


def unit_solid(shape: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The cached unit solid of `shape` (CUBE, SPHERE, CYLINDER, CONE), filling [-0.5, 0.5]^3."""
    cached = _UNIT_SOLIDS.get(shape)
    if cached is not None:
        return cached
    bm = bmesh.new()
    mesh = bpy.data.meshes.new("RT_unit_solid")
    try:
        add_bmesh_solid(bm, shape)
        bm.to_mesh(mesh)
        co = np.empty(3 * len(mesh.vertices), dtype=np.float32)
        mesh.vertices.foreach_get("co", co)
        corners = np.empty(len(mesh.loops), dtype=np.int32)
        mesh.loops.foreach_get("vertex_index", corners)
        totals = np.empty(len(mesh.polygons), dtype=np.int32)
        mesh.polygons.foreach_get("loop_total", totals)
    finally:
        bm.free()
        bpy.data.meshes.remove(mesh)
    cached = _UNIT_SOLIDS[shape] = (co.reshape(-1, 3), corners, totals)
    return cached


def primitive_mesh(prim: PrimitiveObject) -> bpy.types.Mesh:
    """A distractor solid filling `size_m` around its origin, flat shaded, with its material."""
    co, corners, totals = unit_solid(prim.shape)
    mesh = bpy.data.meshes.new(f"RT_{prim.name}")
    datablocks.mark(mesh)
    mesh.vertices.add(len(co))
    mesh.vertices.foreach_set("co", (co * np.asarray(prim.size_m, dtype=np.float32)).ravel())
    mesh.loops.add(len(corners))
    mesh.loops.foreach_set("vertex_index", corners)
    mesh.polygons.add(len(totals))
    mesh.polygons.foreach_set("loop_start", np.concatenate([[0], np.cumsum(totals)[:-1]]).astype(np.int32))
    mesh.polygons.foreach_set("loop_total", totals)
    mesh.polygons.foreach_set("use_smooth", np.zeros(len(totals), dtype=bool))
    mesh.update(calc_edges=True)
    mat = principled_material(f"RT_{prim.name}", prim.roughness, prim.metallic)
    tree = datablocks.need(mat.node_tree, "material node tree")
    bsdf = tree.nodes["Principled BSDF"]
    set_input(bsdf, "Base Color", (*prim.color, 1.0))
    if prim.procedural is not None:
        tree.links.new(procedural_color(tree, prim.procedural), bsdf.inputs["Base Color"])
    mesh.materials.append(mat)
    mesh.update()
    return mesh


def object_mesh(entry: AnyObject) -> bpy.types.Mesh:
    """The mesh (with material) of any recipe object."""
    if isinstance(entry, TagObject):
        return tag_mesh(entry)
    if isinstance(entry, BoardObject):
        return board_mesh(entry)
    if isinstance(entry, OccluderObject):
        return occluder_mesh(entry)
    if isinstance(entry, PrimitiveObject):
        return primitive_mesh(entry)
    return plane_mesh(entry)


def build_object(scene: bpy.types.Scene, entry: AnyObject) -> bpy.types.Object:
    """A recipe object in `scene`: its mesh and material, at its pose."""
    obj = _new_object(scene, entry.name, object_mesh(entry))
    set_pose(obj, entry.pose.position, entry.pose.rotation_quaternion)
    return obj


# --------------------------------------------------------------------------- lights and world


def build_light(scene: bpy.types.Scene, light: Light, index: int) -> bpy.types.Object:
    data = datablocks.lamp(bpy.data.lights.new(f"RT_light{index}", type=light.type), light.type)
    datablocks.mark(data)
    data.energy = light.energy
    data.color = light.color
    if isinstance(data, bpy.types.PointLight | bpy.types.SpotLight):
        data.shadow_soft_size = light.radius_m
    if isinstance(data, bpy.types.SpotLight):
        data.spot_size = light.spot_size_rad
    if isinstance(data, bpy.types.SunLight):
        data.angle = light.angle_rad
    if isinstance(data, bpy.types.AreaLight):
        data.shape = "SQUARE"
        data.size = max(light.radius_m, 1e-4)
    obj = _new_object(scene, f"RT_light{index}", data)
    set_pose(obj, light.pose.position, light.pose.rotation_quaternion)
    return obj


WORLD_SAMPLING = "NONE"
"""How Cycles samples an HDRI world: not as a light, its (clamped, `HDRI_CLAMP`) light arrives through
BSDF-sampled rays. Blender's default builds a 1024x512 importance map on every render: measured on a
320x240, 8-sample realistic scene on 2 loaded cores, 6.5 s a render with it, 2.6 s with a 256-texel
map, 2.4 s with none. Unclamped, the HDRIs' sun discs left fireflies with or without a map (the demo's
ChArUco corner median rose from 0.085 to 0.14 px); clamped at 50, pixels that stand out from their
neighbourhood were as few as without any HDRI, with or without a map."""


HDRI_CLAMP = 50.0
"""Largest radiance an HDRI lends the scene (before its strength). Blender's HDRIs hold sun discs of up
to 32,000 (their medians are 0.005 to 0.5): a diffuse bounce that meets such a pixel by chance is a
firefly, which Cycles' indirect clamp does not catch (it is direct light). The lamps and the SUN carry
the key light; the HDRI is fill and reflections, and keeps its look below the clamp."""


def hdri_file(path: str) -> str:
    """The file of a recipe's HDRI: `builtin:NAME` is found in this Blender's own studio lights
    (`datafiles/studiolights/world`, in every Blender and in the `bpy` wheel)."""
    if not is_builtin_asset(path):
        return path
    folder = bpy.utils.system_resource("DATAFILES", path="studiolights/world")  # type: ignore[attr-defined]  # in bpy since 2.8; not in the stubs
    file = os.path.join(folder, path[len(BUILTIN_PREFIX) :]) if folder else ""
    if not os.path.isfile(file):
        raise InputError(
            path, "world.hdri.path", f"this Blender ({bpy.app.version_string}) has no built-in HDRI {path!r}"
        )
    return file


def build_world(scene: bpy.types.Scene, world: World) -> bpy.types.World:
    """Background colour, an HDRI (lights the scene) and/or a background image seen only by camera rays."""
    name = "RT_world"
    old = bpy.data.worlds.get(name)
    if old is not None:
        old.name = name + ".old"
    w = bpy.data.worlds.new(name)
    datablocks.mark(w)
    ensure_nodes(w)
    tree = datablocks.need(w.node_tree, "world node tree")
    nodes, links = tree.nodes, tree.links
    nodes.clear()
    out = nodes.new("ShaderNodeOutputWorld")
    light_bg = nodes.new("ShaderNodeBackground")
    set_input(light_bg, "Color", (*world.background_color, 1.0))
    set_input(light_bg, "Strength", world.background_strength)
    if world.hdri is not None:
        env = nodes.new("ShaderNodeTexEnvironment")
        cast(bpy.types.ShaderNodeTexEnvironment, env).image = datablocks.image_from_file(
            hdri_file(world.hdri.path), field="world.hdri.path"
        )
        coord = nodes.new("ShaderNodeTexCoord")
        mapping = nodes.new("ShaderNodeMapping")
        set_input(mapping, "Rotation", (0.0, 0.0, world.hdri.rotation_z_rad))
        links.new(coord.outputs["Generated"], mapping.inputs["Vector"])
        links.new(mapping.outputs["Vector"], env.inputs["Vector"])
        clamp = nodes.new("ShaderNodeVectorMath")
        cast(bpy.types.ShaderNodeVectorMath, clamp).operation = "MINIMUM"
        cast(_ValueSocket, clamp.inputs[1]).default_value = (HDRI_CLAMP, HDRI_CLAMP, HDRI_CLAMP)
        links.new(env.outputs["Color"], clamp.inputs[0])
        links.new(clamp.outputs["Vector"], light_bg.inputs["Color"])
        set_input(light_bg, "Strength", world.hdri.strength)
        cycles_world = getattr(w, "cycles", None)  # registered by the Cycles add-on
        if cycles_world is not None:
            cycles_world.sampling_method = WORLD_SAMPLING
    shader = light_bg.outputs["Background"]
    if world.background_texture:
        tex = nodes.new("ShaderNodeTexImage")
        cast(bpy.types.ShaderNodeTexImage, tex).image = datablocks.image_from_file(
            world.background_texture, field="world.background_texture"
        )
        coord = nodes.new("ShaderNodeTexCoord")
        links.new(coord.outputs["Window"], tex.inputs["Vector"])
        cam_bg = nodes.new("ShaderNodeBackground")
        links.new(tex.outputs["Color"], cam_bg.inputs["Color"])
        path = nodes.new("ShaderNodeLightPath")
        mix = nodes.new("ShaderNodeMixShader")
        links.new(path.outputs["Is Camera Ray"], mix.inputs["Fac"])
        links.new(light_bg.outputs["Background"], mix.inputs[1])
        links.new(cam_bg.outputs["Background"], mix.inputs[2])
        shader = mix.outputs["Shader"]
    links.new(shader, out.inputs["Surface"])
    scene.world = w
    if old is not None and old.users == 0 and datablocks.owned(old):
        bpy.data.worlds.remove(old)
    return w


# --------------------------------------------------------------------------- the whole scene


def build_scene(
    recipe: SceneRecipe, camera_index: int = 0, scene: bpy.types.Scene | None = None
) -> bpy.types.Scene:
    """Replace the work scene's content with `recipe`, seen from camera `camera_index`.

    Images are reused by name across builds; render-tag datablocks left without users are removed.
    Each built object stores the JSON of its recipe entry (`datablocks.STORED`), so exporting the
    built scene gives back the recipe exactly.
    """
    if not 0 <= camera_index < len(recipe.cameras):
        raise IndexError(f"camera_index {camera_index} is outside the recipe's {len(recipe.cameras)} cameras")
    scene = scene if scene is not None else work_scene()
    clear_scene(scene)
    for index, obj in enumerate(recipe.objects):
        built = build_object(scene, obj)
        _record(built, obj.model_dump(mode="json"), index)
        built.pass_index = min(mask_id(index), MAX_MASK_ID)  # the instance id in masks/
    for index, light in enumerate(recipe.world.lights):
        _record(build_light(scene, light, index), light.model_dump(mode="json"), index)
    build_world(scene, recipe.world)
    cam_data = bpy.data.cameras.new(CAMERA_NAME)
    datablocks.mark(cam_data)
    cam_obj = _new_object(scene, CAMERA_NAME, cam_data)
    setup_camera(cam_obj, scene, recipe.cameras[camera_index])
    _record(cam_obj, recipe.cameras[camera_index].model_dump(mode="json"), camera_index)
    configure_renderer(scene, recipe.renderer)
    datablocks.store_json(
        scene,
        {
            "scene_id": recipe.scene_id,
            "random_seed": recipe.random_seed,
            "world": recipe.world.model_dump(mode="json"),
            "renderer": recipe.renderer.model_dump(mode="json"),
            "cameras": [c.model_dump(mode="json") for c in recipe.cameras],
        },
    )
    write_scene_settings(scene, recipe, camera_index)
    datablocks.remove_owned_orphans()
    scene.view_layers[0].update()
    return scene


def select_camera(scene: bpy.types.Scene, recipe: SceneRecipe, camera_index: int) -> bpy.types.Object:
    """Point the built scene's camera at another camera of the same recipe (objects stay)."""
    cam_obj = scene.objects.get(CAMERA_NAME) or next(o for o in scene.objects if o.type == "CAMERA")
    setup_camera(cam_obj, scene, recipe.cameras[camera_index])
    _record(cam_obj, recipe.cameras[camera_index].model_dump(mode="json"), camera_index)
    write_scene_settings(scene, recipe, camera_index)
    scene.view_layers[0].update()
    return cam_obj


def objects_other_than(
    scene: bpy.types.Scene, recipe: SceneRecipe, kinds: tuple[type, ...]
) -> list[bpy.types.Object]:
    """The built scene's objects made from the recipe's objects that are none of `kinds` (lights and the
    camera are not objects of the recipe's list)."""
    others = {index for index, obj in enumerate(recipe.objects) if not isinstance(obj, kinds)}
    found: list[bpy.types.Object] = []
    for obj in scene.objects:
        index = obj.get("render_tag_index")
        if obj.type not in ("LIGHT", "CAMERA") and isinstance(index, int) and index in others:
            found.append(obj)
    return found


def _record(obj: bpy.types.Object, entry: dict[str, Any], index: int) -> None:
    datablocks.store_json(obj, entry)
    obj["render_tag_index"] = index
    if "name" in entry:
        obj["render_tag_name"] = entry["name"]
    write_object_settings(obj, entry)


def add_matrix(obj: bpy.types.Object, matrix: Matrix) -> None:
    """Place an object by a 4x4 world matrix, rotation kept as a quaternion (no scale)."""
    loc, rot, _ = matrix.decompose()
    set_pose(obj, loc, rot)
