"""Exact labels from the built scene: ray casts for occlusion, and the point-sampled data pass.

Occlusion (`hidden_test`): a label point is hidden when `Scene.ray_cast` from the camera centre
towards it hits any surface before it. Ray casts rather than the rendered index pass: they are exact
at the point itself (an index pass samples pixel centres, and a corner sits between pixels, on the
edge of its own object), they see every object whatever its shape (occluder boxes, distractors,
other markers, boards), and they cost microseconds per point.

Data pass (`render_data_pass`): every surface is given one emission material (view-layer material
override) whose colour is (Object Index, View Z Depth, 0) or the camera-space normal; one Cycles
sample with a 0.01 px pixel filter puts that ray through each pixel centre, with motion blur, depth
of field and the denoiser off and a transparent film, so the world reads 0. The scene's settings are
restored afterwards. `render_tag_shared.passes` turns the buffers into files and labels.
"""

from __future__ import annotations

from typing import Any

import bpy
import numpy as np
from mathutils import Vector

from render_tag_shared.truth import HiddenTest

from . import datablocks
from .renderer import render_linear
from .scene import ensure_nodes, set_input

__all__ = ["hidden_test", "render_data_pass"]

SELF_HIT_TOLERANCE_M = 5e-5
"""A hit closer than this to the point (plus 1e-6 of the distance) is the point's own surface: Blender
stores vertices in float32, so a ray meets the plane it ends on within a few micrometres of it."""


def hidden_test(scene: bpy.types.Scene) -> HiddenTest:
    """The scene's occlusion test for `render_tag_shared.truth` (built scene, current camera)."""
    depsgraph = datablocks.need(scene.view_layers[0].depsgraph, "the view layer's depsgraph")

    def hidden(points_world: np.ndarray, camera_centre: np.ndarray) -> np.ndarray:
        origin = Vector(np.asarray(camera_centre, dtype=float).tolist())
        out = np.zeros(len(points_world), dtype=bool)
        for k, point in enumerate(np.asarray(points_world, dtype=float)):
            ray = point - camera_centre
            distance = float(np.linalg.norm(ray))
            reach = distance - SELF_HIT_TOLERANCE_M - 1e-6 * distance
            if reach <= 0:
                continue
            direction = Vector((ray / distance).tolist())
            hit: Any = scene.ray_cast(  # (hit, location, normal, index, object, matrix); stubs say None
                depsgraph, origin, direction, distance=reach
            )
            out[k] = bool(hit[0])
        return out

    return hidden


def _pass_material(kind: str) -> bpy.types.Material:
    """Emission of (Object Index, View Z Depth, 0) for "ids", of the camera-space normal for "normals"."""
    name = f"RT_pass_{kind}"
    if (mat := bpy.data.materials.get(name)) is not None and datablocks.owned(mat):
        return mat
    mat = bpy.data.materials.new(name)
    datablocks.mark(mat)
    ensure_nodes(mat)
    tree = datablocks.need(mat.node_tree, "material node tree")
    nodes, links = tree.nodes, tree.links
    nodes.clear()
    out = nodes.new("ShaderNodeOutputMaterial")
    emission = nodes.new("ShaderNodeEmission")
    set_input(emission, "Strength", 1.0)
    if kind == "ids":
        info = nodes.new("ShaderNodeObjectInfo")
        camera = nodes.new("ShaderNodeCameraData")
        combine = nodes.new("ShaderNodeCombineXYZ")
        links.new(info.outputs["Object Index"], combine.inputs["X"])
        links.new(camera.outputs["View Z Depth"], combine.inputs["Y"])
        links.new(combine.outputs["Vector"], emission.inputs["Color"])
    else:
        geometry = nodes.new("ShaderNodeNewGeometry")
        transform = nodes.new("ShaderNodeVectorTransform")
        vt: Any = transform
        vt.vector_type, vt.convert_from, vt.convert_to = "NORMAL", "WORLD", "CAMERA"
        scale = nodes.new("ShaderNodeVectorMath")
        sm: Any = scale
        sm.operation = "MULTIPLY_ADD"  # (n + 1) / 2: emission colours stay non-negative
        links.new(geometry.outputs["Normal"], transform.inputs["Vector"])
        links.new(transform.outputs["Vector"], scale.inputs[0])
        scale.inputs[1].default_value = (0.5, 0.5, 0.5)  # type: ignore[attr-defined]
        scale.inputs[2].default_value = (0.5, 0.5, 0.5)  # type: ignore[attr-defined]
        links.new(scale.outputs["Vector"], emission.inputs["Color"])
    links.new(emission.outputs["Emission"], out.inputs["Surface"])
    cycles: Any = getattr(mat, "cycles", None)
    if cycles is not None and hasattr(cycles, "emission_sampling"):
        cycles.emission_sampling = "NONE"  # no object is a light source here
    return mat


def render_data_pass(scene: bpy.types.Scene, kind: str) -> np.ndarray:
    """(H, W, 4) float32 of the render view: "ids" gives R = object pass index, G = z depth (metres);
    "normals" gives RGB = (n + 1) / 2 in Cycles' camera axes (x right, y up, z forward); alpha 0
    where the ray meets nothing."""
    cycles = datablocks.need(scene.cycles, "Cycles settings")
    view_layer = scene.view_layers[0]
    camera = scene.camera
    dof = datablocks.camera_data(camera).dof if camera is not None else None
    settings: list[tuple[Any, str, Any]] = [
        (scene.render, "engine", "CYCLES"),
        (scene.render, "film_transparent", True),
        (scene.render, "use_motion_blur", False),
        (cycles, "samples", 1),
        (cycles, "use_adaptive_sampling", False),
        (cycles, "use_denoising", False),
        (cycles, "filter_width", 0.01),
        (cycles, "pixel_filter_type", "BOX"),
        (cycles, "max_bounces", 0),
        (cycles, "rolling_shutter_type", "NONE"),
        (view_layer, "material_override", _pass_material(kind)),
    ]
    if dof is not None:
        settings.append((dof, "use_dof", False))
    with datablocks.temporarily(settings):
        return render_linear(scene)
