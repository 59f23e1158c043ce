"""A realistic scene (built-in HDRI, procedural floor, distractors, SUN and coloured lights, printed
paper, AgX or sRGB, a sensor's dynamic range) rendered by Cycles: OpenCV still finds every tag at the
ground truth. Real `bpy`; 320x240, 16 samples: a few seconds a render."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import bpy
import numpy as np
import pytest
import yaml

from render_tag.compile import DEFAULT_JOB, compile_config
from render_tag_shared.config import parse_config
from render_tag_shared.recipe import PlaneObject, PrimitiveObject, SceneRecipe, TagObject
from render_tag_shared.records import ImageLabels

from ..blender_helpers import addon_session, to_gray
from ..opencv_helpers import detect_tags

pytestmark = pytest.mark.slow
_ = addon_session  # the fixture, imported for pytest


def realistic_recipes() -> list[SceneRecipe]:
    """The default job's tag document (its realism included) at 320x240, tags large enough to detect."""
    document = copy.deepcopy(next(d for d in yaml.safe_load_all(DEFAULT_JOB.read_text()) if d))
    document["dataset"] = {"name": "realism", "num_scenes": 2, "seed": 4}
    document["scenario"]["subject"]["tags_per_scene"] = [2, 3]
    document["camera"].update(
        resolution=[320, 240],
        intrinsics={"fx": 300.0, "fy": 300.0, "cx": 159.5, "cy": 119.5},
        min_distance=0.4,
        max_distance=0.8,
        ppm_min=4.0,
    )
    document.setdefault("renderer", {})["samples"] = 16
    return compile_config(parse_config(document, "realism")).recipes


@pytest.fixture(scope="module")
def rendered(addon_session: Any, tmp_path_factory: pytest.TempPathFactory) -> list[tuple[SceneRecipe, Path]]:
    out = tmp_path_factory.mktemp("realism")
    results = []
    for recipe in realistic_recipes():
        assert recipe.world.hdri is not None and recipe.world.hdri.path.startswith("builtin:")
        assert any(isinstance(o, PrimitiveObject) for o in recipe.objects)
        (result,) = addon_session.render_recipe(recipe, out)
        results.append((recipe, result.image_path))
    return results


def test_the_realistic_scene_is_built_from_blender_s_own_assets(addon_session: Any) -> None:
    recipe = realistic_recipes()[0]
    scene = addon_session.build_scene(recipe)
    env = next(n for n in scene.world.node_tree.nodes if n.type == "TEX_ENVIRONMENT")
    folder = bpy.utils.system_resource("DATAFILES", path="studiolights/world")
    assert os.path.dirname(bpy.path.abspath(env.image.filepath)) == os.path.normpath(folder)
    assert os.path.basename(env.image.filepath) == recipe.world.hdri.path.removeprefix("builtin:")
    floor = next(o for o in recipe.objects if isinstance(o, PlaneObject))
    floor_nodes = {n.bl_idname for n in scene.objects[floor.name].data.materials[0].node_tree.nodes}
    if floor.procedural is not None:
        assert any(name.startswith("ShaderNodeTex") and name != "ShaderNodeTexCoord" for name in floor_nodes)
    distractors = [o for o in recipe.objects if isinstance(o, PrimitiveObject)]
    for prim in distractors:
        built = scene.objects[prim.name]
        size = np.ptp(np.array([v.co[:] for v in built.data.vertices]), axis=0)
        assert size == pytest.approx(prim.size_m, abs=1e-5)  # the solid fills its box
    lights = [o for o in scene.objects if o.type == "LIGHT"]
    built_colours = np.array([light.data.color[:] for light in lights])
    assert built_colours == pytest.approx(np.array([lt.color for lt in recipe.world.lights]), abs=1e-6)
    # the built scene exports back to the same objects (distractors included)
    exported = addon_session.export_scene_recipe(scene)
    assert [o.name for o in exported.objects] == [o.name for o in recipe.objects]


def test_tags_are_found_at_the_ground_truth_in_a_realistic_scene(
    rendered: list[tuple[SceneRecipe, Path]],
) -> None:
    centre_errors: list[float] = []
    offsets: list[np.ndarray] = []
    for recipe, image_path in rendered:
        gray = to_gray(image_path)
        assert gray.std() > 10.0, "a textured, lit picture, not a flat grey"
        labels = ImageLabels.model_validate(
            json.loads((image_path.parent.parent / "labels" / f"{image_path.stem}.json").read_text())
        )
        visible = [r for r in labels.records if all(v == 2 for v in r.corners_visibility)]
        assert len(visible) == sum(isinstance(o, TagObject) for o in recipe.objects)
        for record in visible:
            found = detect_tags(gray, record.tag_family)
            assert record.tag_id in found, f"{image_path.name}: {record.tag_family} {record.tag_id} not found"
            detected, truth = found[record.tag_id], np.asarray(record.corners)
            centre_errors.append(float(np.linalg.norm(detected.mean(axis=0) - truth.mean(axis=0))))
            offsets.append((detected - truth).mean(axis=0))
    assert len(centre_errors) >= 4
    assert float(np.median(centre_errors)) < 0.2, centre_errors
    assert np.all(np.abs(np.mean(offsets, axis=0)) < 0.15), offsets


def test_a_scene_built_again_renders_the_same_linear_pixels(addon_session: Any) -> None:
    """The same recipe gives the same pixels after any rebuild: distractors are flat shaded, since
    Blender's smooth normals changed their last bits from one build to the next (2-3 % of the linear
    values of a frame differed between every two builds, and now and then a level of the PNG)."""
    from addon.core.renderer import render_linear

    recipe = realistic_recipes()[0]
    tag = next(o for o in recipe.objects if isinstance(o, TagObject))
    spheres = [  # curved solids in the middle of the frame, beside the tag
        PrimitiveObject(name=f"ball{i}", shape=shape, size_m=(0.12, 0.12, 0.12), roughness=0.3,
                        pose={"position": [tag.pose.position[0] + dx, tag.pose.position[1], 0.06]})
        for i, (shape, dx) in enumerate((("SPHERE", 0.12), ("CYLINDER", -0.12)))
    ]  # fmt: skip
    recipe = recipe.model_copy(
        update={
            "objects": [*recipe.objects, *spheres],
            "renderer": recipe.renderer.model_copy(update={"samples": 4}),
        }
    )
    renders = [render_linear(addon_session.build_scene(recipe)) for _ in range(3)]
    for other in renders[1:]:
        assert np.array_equal(renders[0], other), np.count_nonzero(renders[0] != other)


def _cyclic(polygon: Any) -> tuple[int, ...]:
    """A face's vertices from its lowest index on, keeping the winding."""
    vertices = list(polygon.vertices)
    start = vertices.index(min(vertices))
    return tuple(vertices[start:] + vertices[:start])


@pytest.mark.parametrize("shape", ["CUBE", "SPHERE", "CYLINDER", "CONE"])
def test_a_distractor_is_the_solid_bmesh_makes_flat_shaded(addon_session: Any, shape: str) -> None:
    """The cached unit solid gives the vertices, faces and face order of bmesh's own, scaled exactly."""
    import bmesh

    from addon.core.scene import add_bmesh_solid, primitive_mesh

    size = (0.13, 0.071, 0.29)
    prim = PrimitiveObject(name=f"solid_{shape.lower()}", shape=shape, size_m=size)
    built = primitive_mesh(prim)
    bm = bmesh.new()
    add_bmesh_solid(bm, shape)
    bmesh.ops.scale(bm, vec=size, verts=list(bm.verts))
    reference = bpy.data.meshes.new("reference_solid")
    bm.to_mesh(reference)
    bm.free()
    try:
        co_a, co_b = (np.empty(3 * len(m.vertices), np.float32) for m in (built, reference))
        built.vertices.foreach_get("co", co_a)
        reference.vertices.foreach_get("co", co_b)
        assert np.array_equal(co_a, co_b)
        # bmesh itself orders a sphere's faces differently from one call to the next: compare them as sets
        assert sorted(map(_cyclic, built.polygons)) == sorted(map(_cyclic, reference.polygons))
        assert not any(p.use_smooth for p in built.polygons)
        assert len(built.edges) == len(reference.edges)
        again = primitive_mesh(prim)  # the cache gives one face order within a worker
        assert [tuple(p.vertices) for p in again.polygons] == [tuple(p.vertices) for p in built.polygons]
        bpy.data.meshes.remove(again)
    finally:
        bpy.data.meshes.remove(reference)
        bpy.data.meshes.remove(built)
