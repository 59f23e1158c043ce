"""The compiler: determinism, shards, presets, assets, layouts, and every camera-pose constraint.

Pose constraints are judged with independent math: numpy on `cam_to_world` for distance, elevation
and roll, and `cv2.projectPoints` for everything measured in the image. Each constraint is compiled
tight enough that a compiler ignoring it would produce cameras that break it.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml

from render_tag import addon_source
from render_tag import compile as compiler_module
from render_tag.addon_source import addon_version
from render_tag.cli.compile import main_compile
from render_tag.compile import (
    ATTEMPTS_PER_CAMERA,
    CompileError,
    camera_pose,
    compile_config,
    compile_scene,
    job_spec,
    parse_shard,
)
from render_tag.compile.presets import PRESETS, compose_config
from render_tag_shared.config import GenConfig, parse_config
from render_tag_shared.errors import InputError
from render_tag_shared.families import get_family
from render_tag_shared.recipe import BoardObject, PlaneObject, RecipeFile, SceneRecipe, TagObject
from render_tag_shared.recipe_io import (
    dump_recipe_file,
    load_recipe_file,
    parse_recipe_file,
    resolve_asset_paths,
)
from render_tag_shared.seeds import derive_seed, job_id
from render_tag_shared.versions import ADDON_VERSION

from ..builders import CHARUCO, DATA

EXAMPLE_YAML = (DATA / "design_example.yaml").read_text()
"""The DESIGN.md example config, verbatim."""

CHARUCO_SUBJECT = {"type": "BOARD", **CHARUCO}
APRILGRID_SUBJECT = {
    "type": "BOARD",
    "board_type": "aprilgrid",
    "rows": 6,
    "cols": 6,
    "marker_size_mm": 50,
    "spacing_ratio": 0.3,
    "dictionary": "tag36h11",
}


def example_data(**sections: dict[str, Any]) -> dict[str, Any]:
    """The DESIGN.md example as data, with `sections` merged one level deep."""
    data = yaml.safe_load(EXAMPLE_YAML)
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return data


def config_of(**sections: dict[str, Any]) -> GenConfig:
    return parse_config(example_data(**sections), "test")


# --------------------------------------------------------------------------- independent math


def quat_matrix(q: tuple[float, ...] | list[float]) -> np.ndarray:
    w, x, y, z = np.asarray(q, dtype=float) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def subject_objects(recipe: SceneRecipe) -> list[TagObject | BoardObject]:
    return [o for o in recipe.objects if isinstance(o, TagObject | BoardObject)]


def subject_centre_and_normal(recipe: SceneRecipe) -> tuple[np.ndarray, np.ndarray]:
    objects = subject_objects(recipe)
    centre = np.mean([o.pose.position for o in objects], axis=0)
    normal = quat_matrix(objects[0].pose.rotation_quaternion)[:, 2]
    return centre, normal


def object_corners_world(obj: TagObject | BoardObject) -> np.ndarray:
    if isinstance(obj, TagObject):
        hw = hh = obj.size_mm / 2000.0
    else:
        hw, hh = obj.board.width_mm / 2000.0, obj.board.height_mm / 2000.0
    local = np.array([[-hw, hh, 0], [hw, hh, 0], [hw, -hh, 0], [-hw, -hh, 0]], dtype=float)
    return local @ quat_matrix(obj.pose.rotation_quaternion).T + np.asarray(obj.pose.position)


def cv_project(recipe: SceneRecipe, camera_index: int, points_world: np.ndarray) -> np.ndarray:
    camera = recipe.cameras[camera_index]
    cam_to_world = np.asarray(camera.cam_to_world)
    rotation = cam_to_world[:3, :3].T
    tvec = -rotation @ cam_to_world[:3, 3]
    rvec, _ = cv2.Rodrigues(rotation)
    k = np.asarray(camera.intrinsics.k_matrix)
    assert camera.intrinsics.distortion_model in ("none", "brown_conrady")
    coeffs = np.zeros(5)
    coeffs[: len(camera.intrinsics.distortion_coeffs)] = camera.intrinsics.distortion_coeffs
    uv, _ = cv2.projectPoints(points_world.reshape(-1, 1, 3), rvec, tvec, k, coeffs)
    return uv.reshape(-1, 2)


def roll_of(cam_to_world: np.ndarray, centre: np.ndarray, normal: np.ndarray) -> float:
    """Roll by the compiler's definition: undo the turn that moved the subject centre off the optical
    axis (the smallest rotation, via cv2.Rodrigues), then measure x against level."""
    rotation, position = cam_to_world[:3, :3], cam_to_world[:3, 3]
    seen = rotation.T @ (centre - position)
    seen /= np.linalg.norm(seen)
    axis = np.cross(seen, [0.0, 0.0, 1.0])
    q = np.eye(3)
    if np.linalg.norm(axis) > 1e-15:
        angle = math.acos(float(np.clip(seen[2], -1.0, 1.0)))
        q, _ = cv2.Rodrigues(axis / np.linalg.norm(axis) * angle)
    np.testing.assert_allclose(q @ seen, [0.0, 0.0, 1.0], atol=1e-9)
    looking = rotation @ q.T
    x, forward = looking[:, 0], looking[:, 2]
    level = np.cross(forward, normal)
    if np.linalg.norm(level) < 1e-9:
        level = np.cross(forward, [0.0, 1.0, 0.0])
    x0 = level / np.linalg.norm(level)
    y0 = np.cross(forward, x0)
    return math.degrees(math.atan2(float(x @ y0), float(x @ x0)))


def pose_angles(recipe: SceneRecipe, camera_index: int) -> dict[str, float]:
    """Distance, elevation and roll of a camera, from the definitions in the compiler's docstring."""
    m = np.asarray(recipe.cameras[camera_index].cam_to_world)
    centre, normal = subject_centre_and_normal(recipe)
    offset = m[:3, 3] - centre
    distance = float(np.linalg.norm(offset))
    elevation = math.degrees(math.asin(float(normal @ offset) / distance))
    return {"distance": distance, "elevation": elevation, "roll": roll_of(m, centre, normal)}


def image_stats(recipe: SceneRecipe, camera_index: int) -> list[dict[str, Any]]:
    """Per subject object: projected corners, pixel area and pixels per module, by OpenCV."""
    out = []
    for obj in subject_objects(recipe):
        corners = cv_project(recipe, camera_index, object_corners_world(obj))
        rotation = quat_matrix(obj.pose.rotation_quaternion)
        if isinstance(obj, TagObject):
            family = get_family(obj.tag_family)
            module = obj.size_mm / 1000.0 / (family.marker_bits + 2 * obj.border_bits)
        else:
            family = get_family(obj.board.dictionary)
            border = obj.board.border_bits or (1 if obj.board.board_type == "charuco" else 2)
            module = obj.board.marker_size_mm / 1000.0 / (family.marker_bits + 2 * border)
        origin = np.asarray(obj.pose.position)
        patch = np.array([origin, origin + module * rotation[:, 0], origin + module * rotation[:, 1]])
        p = cv_project(recipe, camera_index, patch)
        a, b = p[1] - p[0], p[2] - p[0]
        out.append(
            {
                "corners": corners,
                "area": abs(cv2.contourArea(corners.astype(np.float32))),
                "ppm": math.sqrt(abs(a[0] * b[1] - a[1] * b[0])),
            }
        )
    return out


def all_cameras(recipes: RecipeFile) -> list[tuple[SceneRecipe, int]]:
    return [(r, j) for r in recipes.recipes for j in range(len(r.cameras))]


# --------------------------------------------------------------------------- the example and boards


def test_design_example_compiles_verbatim(tmp_path: Path) -> None:
    config_path = tmp_path / "demo.yaml"
    config_path.write_text(EXAMPLE_YAML)
    out = tmp_path / "recipes.json"
    assert main_compile(str(config_path), str(out), [], None) == 0
    recipes = load_recipe_file(out)
    assert len(recipes.recipes) == 8
    assert [r.scene_id for r in recipes.recipes] == list(range(8))
    assert all(len(r.cameras) == 2 for r in recipes.recipes)
    assert recipes.job_id and recipes.job_id.startswith("job-")
    for recipe in recipes.recipes:
        tags = [o for o in recipe.objects if isinstance(o, TagObject)]
        assert 1 <= len(tags) <= 4
        assert all(t.tag_family == "tag36h11" and t.size_mm == 100 for t in tags)
        assert sum(isinstance(o, PlaneObject) for o in recipe.objects) == 1
        assert recipe.random_seed == derive_seed(42, "scene", recipe.scene_id)
        assert 1 <= len(recipe.world.lights) <= 2
        assert all(100 <= light.energy <= 800 for light in recipe.world.lights)
        centre, _ = subject_centre_and_normal(recipe)
        for light in recipe.world.lights:  # Blender lights shine along local -z: at the subject
            towards = centre - np.asarray(light.pose.position)
            shine = -quat_matrix(light.pose.rotation_quaternion)[:, 2]
            assert float(shine @ towards) / np.linalg.norm(towards) > 0.999
        for camera in recipe.cameras:
            assert camera.tone_mapping.curve == "srgb"
            assert camera.dynamics is None
            assert camera.intrinsics.k_matrix == [[600, 0, 319.5], [0, 600, 239.5], [0, 0, 1]]
            assert camera.intrinsics.eval_margin_px == 5
    # the file round-trips to the same bytes
    assert dump_recipe_file(recipes) == out.read_text()


@pytest.mark.parametrize("subject", [CHARUCO_SUBJECT, APRILGRID_SUBJECT], ids=["charuco", "aprilgrid"])
def test_board_configs_compile(subject: dict[str, Any]) -> None:
    data = example_data(camera={"min_distance": 0.8, "max_distance": 2.5})
    data["scenario"]["subject"] = subject
    recipes = compile_config(parse_config(data, "test"))
    for recipe, j in all_cameras(recipes):
        (board,) = subject_objects(recipe)
        assert isinstance(board, BoardObject)
        assert board.board.board_type == subject["board_type"]
        corners = image_stats(recipe, j)[0]["corners"]
        assert (corners >= 5 - 0.5).all() and (corners[:, 0] <= 640 - 0.5 - 5).all()
        assert (corners[:, 1] <= 480 - 0.5 - 5).all()


# --------------------------------------------------------------------------- determinism and shards


def test_compiling_twice_gives_identical_bytes(tmp_path: Path) -> None:
    config_path = tmp_path / "demo.yaml"
    config_path.write_text(EXAMPLE_YAML)
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    main_compile(str(config_path), str(first), [], None)
    main_compile(str(config_path), str(second), [], None)
    assert first.read_bytes() == second.read_bytes()


def test_three_shards_concatenate_to_the_whole_job(tmp_path: Path) -> None:
    config_path = tmp_path / "demo.yaml"
    config_path.write_text(EXAMPLE_YAML)
    whole = tmp_path / "whole.json"
    main_compile(str(config_path), str(whole), [], None)
    parts = []
    for i in range(3):
        part = tmp_path / f"part{i}.json"
        main_compile(str(config_path), str(part), [], f"{i}/3")
        parts.append(load_recipe_file(part))
    assert {p.job_id for p in parts} == {load_recipe_file(whole).job_id}
    assert all(p.job_spec == load_recipe_file(whole).job_spec for p in parts)  # the full job's spec
    joined = RecipeFile(
        job_id=parts[0].job_id, job_spec=parts[0].job_spec, recipes=[r for p in parts for r in p.recipes]
    )
    assert dump_recipe_file(joined) == whole.read_text()
    assert [len(p.recipes) for p in parts] == [2, 3, 3]


def test_scene_depends_on_config_and_index_only() -> None:
    config = config_of()
    bigger = config_of(dataset={"num_scenes": 50})
    assert compile_scene(config, 5) == compile_config(config).recipes[5]
    # a longer job does not change its first scenes (random mode: no sweep over the job)
    assert compile_scene(bigger, 5).model_dump() == compile_scene(config, 5).model_dump()


@pytest.mark.parametrize("text", ["3/3", "1", "a/b", "-1/2", "0/0"])
def test_bad_shard_is_an_input_error(text: str) -> None:
    with pytest.raises(InputError, match="--shard"):
        parse_shard(text)


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("max_distance: 2.0", "max_distance: 0.1", "camera"),  # refused by the config model
        ("eval_margin_px: 5", "eval_margin_px: 5\n  ppm_min: 400", "camera.ppm_min"),  # by the compiler
    ],
)
def test_input_error_writes_nothing(tmp_path: Path, old: str, new: str, field: str) -> None:
    config_path = tmp_path / "bad.yaml"
    config_path.write_text(EXAMPLE_YAML.replace(old, new))
    out = tmp_path / "recipes.json"
    with pytest.raises(InputError) as info:
        main_compile(str(config_path), str(out), [], None)
    assert info.value.source == str(config_path)
    assert info.value.field.startswith(field)
    assert not out.exists() and list(tmp_path.iterdir()) == [config_path]


def test_sensor_noise_follows_the_noise_section_and_iso() -> None:
    config = config_of(
        camera={"iso_min": 200, "iso_max": 800},
        noise={"gaussian_sigma": [0.01, 0.01], "salt_pepper": 0.001},
    )
    for recipe, j in all_cameras(compile_config(config)):
        noise = recipe.cameras[j].sensor_noise
        assert noise is not None and noise.iso is not None and 200 <= noise.iso <= 800
        gaussian, salt_pepper = noise.layers
        assert gaussian.type == "gaussian" and gaussian.sigma == pytest.approx(0.01 * noise.iso / 100)
        assert salt_pepper.type == "salt_pepper" and salt_pepper.amount == 0.001
        assert 0 <= recipe.renderer.seed < 2**31  # Blender's cycles.seed is a 32-bit int
    # no noise section: no noise
    assert all(c.sensor_noise is None for r in compile_config(config_of()).recipes for c in r.cameras)


# --------------------------------------------------------------------------- pose constraints


def test_distance_range_holds() -> None:
    recipes = compile_config(
        config_of(dataset={"num_scenes": 12}, camera={"min_distance": 1.1, "max_distance": 1.3})
    )
    distances = [pose_angles(r, j)["distance"] for r, j in all_cameras(recipes)]
    assert min(distances) >= 1.1 - 1e-9 and max(distances) <= 1.3 + 1e-9
    assert max(distances) - min(distances) > 0.05  # drawn from the range, not pinned to one value


def test_elevation_range_holds() -> None:
    recipes = compile_config(
        config_of(dataset={"num_scenes": 12}, camera={"min_elevation": 40, "max_elevation": 50})
    )
    elevations = [pose_angles(r, j)["elevation"] for r, j in all_cameras(recipes)]
    assert min(elevations) >= 40 - 1e-6 and max(elevations) <= 50 + 1e-6


def test_roll_range_holds() -> None:
    recipes = compile_config(
        config_of(dataset={"num_scenes": 12}, camera={"min_roll": 20, "max_roll": 30, "max_elevation": 80})
    )
    rolls = [pose_angles(r, j)["roll"] for r, j in all_cameras(recipes)]
    assert min(rolls) >= 20 - 1e-6 and max(rolls) <= 30 + 1e-6


def test_camera_pose_definitions() -> None:
    """Distance, elevation, roll and the image point of hand-made poses (looking straight down too)."""
    centre, normal = np.array([0.1, -0.2, 0.001]), np.array([0.0, 0.0, 1.0])
    for elevation in (30.0, 89.0, 90.0):
        for roll in (-170.0, -45.0, 0.0, 60.0):
            for point in ((0.0, 0.0), (0.3, -0.2), (-0.45, 0.35)):
                m = camera_pose(tuple(centre), 1.5, elevation, 33.0, roll, point)
                np.testing.assert_allclose(m[:3, :3] @ m[:3, :3].T, np.eye(3), atol=1e-12)
                assert np.linalg.det(m[:3, :3]) == pytest.approx(1.0)
                offset = m[:3, 3] - centre
                assert np.linalg.norm(offset) == pytest.approx(1.5)
                assert math.degrees(math.asin(offset[2] / np.linalg.norm(offset))) == pytest.approx(elevation)
                assert roll_of(m, centre, normal) == pytest.approx(roll, abs=1e-7)
                rvec, _ = cv2.Rodrigues(m[:3, :3].T)
                tvec = -m[:3, :3].T @ m[:3, 3]
                uv, _ = cv2.projectPoints(centre.reshape(1, 1, 3), rvec, tvec, np.eye(3), np.zeros(5))
                np.testing.assert_allclose(uv.ravel(), point, atol=1e-9)
    # zero roll looking at the centre is level: image "up" (-y) leans towards the plane normal
    m = camera_pose((0.0, 0.0, 0.0), 1.0, 30.0, 0.0, 0.0)
    assert -m[2, 1] > 0 and abs(m[2, 0]) < 1e-12


def test_corners_stay_inside_the_image_with_the_eval_margin() -> None:
    margin = 60
    recipes = compile_config(
        config_of(
            dataset={"num_scenes": 12},
            scenario={
                "subject": {
                    "type": "TAGS",
                    "tag_families": ["tag36h11"],
                    "size_mm": 100,
                    "tags_per_scene": [3, 4],
                }
            },
            camera={"min_distance": 0.6, "max_distance": 1.0, "eval_margin_px": margin},
        )
    )
    for recipe, j in all_cameras(recipes):
        for stats in image_stats(recipe, j):
            corners = stats["corners"]
            assert (corners >= margin - 0.5 - 1e-6).all()
            assert (corners[:, 0] <= 640 - 0.5 - margin + 1e-6).all()
            assert (corners[:, 1] <= 480 - 0.5 - margin + 1e-6).all()


def test_corners_inside_under_brown_conrady_distortion() -> None:
    coeffs = [-0.25, 0.08, 0.001, -0.001, 0.0]
    recipes = compile_config(
        config_of(
            dataset={"num_scenes": 8},
            scenario={
                "subject": {
                    "type": "TAGS",
                    "tag_families": ["tag36h11"],
                    "size_mm": 100,
                    "tags_per_scene": [3, 4],
                }
            },
            camera={
                "intrinsics": {
                    "fx": 500,
                    "fy": 500,
                    "cx": 319.5,
                    "cy": 239.5,
                    "distortion_model": "brown_conrady",
                    "distortion_coeffs": coeffs,
                },
                "eval_margin_px": 30,
                "min_distance": 0.5,
                "max_distance": 0.9,
            },
        )
    )
    for recipe, j in all_cameras(recipes):
        assert recipe.cameras[j].intrinsics.overscan is not None
        for stats in image_stats(recipe, j):
            corners = stats["corners"]
            assert (corners >= 30 - 0.5 - 1e-6).all()
            assert (corners[:, 0] <= 640 - 30.5 + 1e-6).all() and (corners[:, 1] <= 480 - 30.5 + 1e-6).all()


def test_pixel_area_bounds_hold() -> None:
    low, high = 4000.0, 8000.0
    recipes = compile_config(
        config_of(dataset={"num_scenes": 10}, camera={"min_pixel_area": low, "max_pixel_area": high})
    )
    areas = [s["area"] for r, j in all_cameras(recipes) for s in image_stats(r, j)]
    assert min(areas) >= low * (1 - 1e-6) and max(areas) <= high * (1 + 1e-6)


def test_ppm_bounds_hold() -> None:
    low, high = 6.0, 8.0
    recipes = compile_config(config_of(dataset={"num_scenes": 10}, camera={"ppm_min": low, "ppm_max": high}))
    values = [s["ppm"] for r, j in all_cameras(recipes) for s in image_stats(r, j)]
    assert min(values) >= low * (1 - 1e-6) and max(values) <= high * (1 + 1e-6)


def test_distance_sweep_is_even_over_the_job() -> None:
    config = config_of(
        scenario={"sampling_mode": "distance"}, camera={"min_distance": 0.8, "max_distance": 2.0}
    )
    distances = [pose_angles(r, j)["distance"] for r, j in all_cameras(compile_config(config))]
    np.testing.assert_allclose(distances, np.linspace(0.8, 2.0, 16), atol=1e-9)


def test_angle_sweep_is_even_over_the_job() -> None:
    config = config_of(scenario={"sampling_mode": "angle"}, camera={"min_elevation": 30, "max_elevation": 90})
    elevations = [pose_angles(r, j)["elevation"] for r, j in all_cameras(compile_config(config))]
    np.testing.assert_allclose(elevations, np.linspace(30, 90, 16), atol=1e-6)


@pytest.mark.parametrize(
    ("camera", "field"),
    [
        ({"ppm_min": 500.0}, "camera.ppm_min"),
        ({"ppm_max": 0.5}, "camera.ppm_max"),
        ({"min_pixel_area": 5e6}, "camera.min_pixel_area"),
        ({"max_pixel_area": 1.0}, "camera.max_pixel_area"),
        ({"min_distance": 0.1, "max_distance": 0.12}, "camera.min_distance"),
    ],
)
def test_impossible_constraint_names_its_field(camera: dict[str, Any], field: str) -> None:
    config = config_of(dataset={"num_scenes": 1}, camera=camera)
    with pytest.raises(CompileError) as info:
        compile_config(config, source="job.yaml")
    assert info.value.field == field
    assert info.value.source == "job.yaml"
    assert info.value.scene_index == 0
    assert "scene 0" in str(info.value) and f"{ATTEMPTS_PER_CAMERA} attempts" in str(info.value)
    assert isinstance(info.value, InputError)


# --------------------------------------------------------------------------- subjects


def test_tags_never_repeat_ids_and_never_overlap() -> None:
    subject = {
        "type": "TAGS",
        "tag_families": ["tag16h5", "DICT_4X4_50"],
        "size_mm": 60,
        "tags_per_scene": [5, 8],
    }
    config = config_of(
        dataset={"num_scenes": 40},
        scenario={"subject": subject},
        camera={"min_distance": 1.5, "max_distance": 3.0},
    )
    # validate=False: the sampler itself must keep ids apart (the validator would only mask a repeat)
    compiler_recipes = [compile_scene(config, i, validate=False) for i in range(40)]
    counts = set()
    for recipe in compiler_recipes:
        tags = [o for o in recipe.objects if isinstance(o, TagObject)]
        counts.add(len(tags))
        keys = [(t.tag_family, t.tag_id) for t in tags]
        assert len(set(keys)) == len(keys)
        rects = []
        for tag in tags:
            module = tag.size_mm / 1000.0 / (get_family(tag.tag_family).marker_bits + 2 * tag.border_bits)
            side = tag.size_mm / 1000.0 + 2 * tag.margin_modules * module
            rotation = quat_matrix(tag.pose.rotation_quaternion)
            angle = math.degrees(math.atan2(rotation[1, 0], rotation[0, 0]))
            assert abs(rotation[2, 2] - 1.0) < 1e-9  # flat on the background
            rects.append(
                (
                    (tag.pose.position[0] * 1000, tag.pose.position[1] * 1000),
                    (side * 1000, side * 1000),
                    angle,
                )
            )
        for a in range(len(rects)):
            for b in range(a + 1, len(rects)):
                kind, _ = cv2.rotatedRectangleIntersection(rects[a], rects[b])
                assert kind == cv2.INTERSECT_NONE, (recipe.scene_id, a, b)
    assert counts >= {5, 8}


@pytest.mark.parametrize(
    ("families", "count"),
    [(["tag16h5"], 31), (["DICT_4X4_50", "DICT_4X4_100"], 101), (["tag36h11", "DICT_APRILTAG_36h11"], 588)],
)
def test_too_many_tags_for_the_families_is_an_input_error(families: list[str], count: int) -> None:
    subject = {"type": "TAGS", "tag_families": families, "size_mm": 60, "tags_per_scene": [1, count]}
    with pytest.raises(InputError) as info:
        compile_config(config_of(scenario={"subject": subject}))
    assert info.value.field == "scenario.subject.tags_per_scene"


def test_nested_dictionaries_never_repeat_a_marker() -> None:
    """DICT_4X4_50 is the start of DICT_4X4_100: id 3 of each is the same marker."""
    subject = {
        "type": "TAGS",
        "tag_families": ["DICT_4X4_50", "DICT_4X4_100"],
        "size_mm": 60,
        "tags_per_scene": [40, 40],
    }
    config = config_of(
        dataset={"num_scenes": 3},
        scenario={"subject": subject},
        camera={"min_distance": 4, "max_distance": 6},
    )
    for i in range(3):
        tags = [o for o in compile_scene(config, i, validate=False).objects if isinstance(o, TagObject)]
        patterns = [
            cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, t.tag_family)).bytesList[t.tag_id].tobytes()
            for t in tags
        ]
        assert len(set(patterns)) == len(patterns) == 40


def test_background_plane_lies_under_the_subject() -> None:
    for recipe in compile_config(config_of()).recipes:
        (plane,) = [o for o in recipe.objects if isinstance(o, PlaneObject)]
        for tag in subject_objects(recipe):
            assert tag.pose.position[2] > plane.pose.position[2]


def test_validation_failure_resamples_from_the_retry_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    from render_tag.compile.compiler import SceneCompiler
    from render_tag.compile.subject import SubjectSampler

    config = config_of(dataset={"num_scenes": 2})
    base = derive_seed(42, "scene", 1)
    original = SubjectSampler._tags
    broken_seeds: set[int] = {base}

    def tags_with_a_duplicate(self: Any, subject: Any, rng: Any) -> Any:
        result = original(self, subject, rng)
        if current_seed[0] in broken_seeds:  # the same id twice: SceneRecipe refuses it
            result.objects.append(result.objects[0].model_copy(update={"name": "dup"}))
        return result

    current_seed = [0]
    original_build = SceneCompiler._build

    def build(self: Any, scene_index: int, seed: int, *, validate: bool) -> Any:
        current_seed[0] = seed
        return original_build(self, scene_index, seed, validate=validate)

    monkeypatch.setattr(SubjectSampler, "_tags", tags_with_a_duplicate)
    monkeypatch.setattr(SceneCompiler, "_build", build)
    recipe = compile_scene(config, 1)
    assert recipe.random_seed == derive_seed(base, "retry", 1)
    # a rule that always breaks: an error naming the scene and the rule
    broken_seeds.update(derive_seed(base, "retry", k) for k in range(1, 20))
    with pytest.raises(CompileError) as info:
        compile_scene(config, 1)
    assert info.value.scene_index == 1
    assert "scene 1" in str(info.value) and "already used" in str(info.value)


# --------------------------------------------------------------------------- presets and the job id


def test_presets_compose_in_order_and_change_the_job_id(tmp_path: Path) -> None:
    data = yaml.safe_load(EXAMPLE_YAML)
    composed = compose_config(data, ["hd-camera", "charuco-5x7", "studio-lighting"])
    assert data == yaml.safe_load(EXAMPLE_YAML)  # the input is not modified
    config = parse_config(composed, "test")
    assert config.presets == ["hd-camera", "charuco-5x7", "studio-lighting"]
    assert config.camera.resolution == (1280, 720)
    assert config.camera.samples_per_scene == 2  # untouched fields survive
    assert config.scenario.subject.type == "BOARD"
    assert config.lighting.lights_per_scene == (2, 3)
    plain = compile_config(parse_config(data, "test"))
    with_presets = compile_config(config)
    assert plain.job_id != with_presets.job_id
    # order matters: the later preset wins
    later = parse_config(compose_config(data, ["hd-camera", "vga-camera"]), "test")
    assert later.camera.resolution == (640, 480)
    assert compile_config(later).job_id != plain.job_id  # same camera as the base, but recorded presets

    preset_file = tmp_path / "rig.yaml"
    preset_file.write_text("lighting: {intensity_min: 10, intensity_max: 20}\n")
    from_file = parse_config(compose_config(data, [str(preset_file)]), "test")
    assert from_file.lighting.intensity_max == 20 and from_file.presets == [str(preset_file)]

    config_path = tmp_path / "demo.yaml"
    config_path.write_text(EXAMPLE_YAML)
    out = tmp_path / "recipes.json"
    main_compile(str(config_path), str(out), ["fisheye"], None)
    recipe = load_recipe_file(out).recipes[0]
    assert recipe.cameras[0].intrinsics.distortion_model == "kannala_brandt"
    assert recipe.cameras[0].intrinsics.overscan is not None


def test_a_board_preset_replaces_a_board_of_another_kind() -> None:
    data = yaml.safe_load(EXAMPLE_YAML)
    data["scenario"]["subject"] = dict(APRILGRID_SUBJECT)
    config = parse_config(compose_config(data, ["charuco-5x7"]), "test")
    subject = config.scenario.subject
    assert subject.type == "BOARD" and subject.board_type == "charuco" and subject.spacing_ratio is None


def test_every_builtin_preset_compiles() -> None:
    data = yaml.safe_load(EXAMPLE_YAML)
    data["dataset"]["num_scenes"] = 2
    data["camera"]["max_distance"] = 3.0
    for name in PRESETS:
        recipes = compile_config(parse_config(compose_config(data, [name]), name))
        assert len(recipes.recipes) == 2, name


def test_render_presets_set_every_quality_field_and_balanced_is_the_default() -> None:
    """A render preset means the same over any config (it sets all of `RENDER_QUALITY`); `balanced` is what
    a config without a renderer section gets, and the default job renders with it."""
    from render_tag.compile import compile_default_job
    from render_tag.compile.presets import RENDER_PRESETS, RENDER_QUALITY

    assert set(RENDER_PRESETS) == {"fast", "balanced", "exact"}
    for name, renderer in RENDER_PRESETS.items():
        assert set(renderer) == set(RENDER_QUALITY), name
        assert PRESETS[name] == {"renderer": renderer}
    data = yaml.safe_load(EXAMPLE_YAML)
    data.pop("renderer")
    default = parse_config(data, "no renderer").renderer.model_dump(include=set(RENDER_QUALITY))
    assert default == RENDER_PRESETS["balanced"]
    fast = compile_config(parse_config(compose_config({**data, "renderer": {"samples": 64}}, ["fast"]), "t"))
    settings = fast.recipes[0].renderer
    fast_preset = RENDER_PRESETS["fast"]
    assert (settings.mode, settings.supersample, settings.samples) == (
        "workbench",
        fast_preset["supersample"],
        fast_preset["samples"],
    )  # the preset's samples, not the config's 64
    assert settings.supersample > 1
    job = compile_default_job()
    tags = [r for r in job.recipes if all(o.type != "BOARD" for o in r.objects)]
    boards = [r for r in job.recipes if any(o.type == "BOARD" for o in r.objects)]
    assert tags and boards
    # boards too: balanced's 16 samples at the markers keep saddle points within 0.1 px (README)
    assert all(
        r.renderer.model_dump(include=set(RENDER_QUALITY)) == RENDER_PRESETS["balanced"]
        for r in tags + boards
    )
    assert all(r.renderer.region_samples == 16 and r.renderer.samples == 2 for r in tags + boards)


def test_unknown_preset_is_an_input_error() -> None:
    with pytest.raises(InputError, match="hd-camera"):
        compose_config(yaml.safe_load(EXAMPLE_YAML), ["no-such-preset"])


def test_job_spec_records_what_makes_a_dataset_reproducible() -> None:
    config = config_of()
    spec = job_spec(config, ["hd-camera"], [])
    assert spec["presets"] == ["hd-camera"]
    assert spec["seeds"]["job"] == 42
    assert set(spec["versions"]) >= {"render_tag", "addon", "blender"}
    assert len(spec["config_sha256"]) == 64 and len(spec["assets_sha256"]) == 64
    json.dumps(spec)  # JSON-able


def test_recipe_file_records_its_job_spec(tmp_path: Path) -> None:
    config_path = tmp_path / "demo.yaml"
    config_path.write_text(EXAMPLE_YAML)
    out = tmp_path / "recipes.json"
    main_compile(str(config_path), str(out), ["hd-camera"], None)
    recipes = load_recipe_file(out)
    spec = recipes.job_spec
    assert spec is not None and recipes.job_id == job_id(spec)
    assert spec["presets"] == ["hd-camera"] and spec["seeds"]["job"] == 42 and spec["num_scenes"] == 8
    assert spec["versions"]["addon"] == ADDON_VERSION and spec["versions"]["render_tag"]
    assert len(spec["config_sha256"]) == 64 and len(spec["assets_sha256"]) == 64
    # the in-memory file says the same as the one on disk
    config = compiler_module.load_job_config(str(config_path), ["hd-camera"])
    assert compile_config(config).job_spec == spec


def test_addon_version_without_a_checkout(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A non-editable install has no blender_manifest.toml beside the package: the contract's version."""
    assert addon_version() == ADDON_VERSION  # from the checkout's manifest
    fake = tmp_path / "site-packages" / "render_tag" / "addon_source.py"
    monkeypatch.setattr(addon_source, "__file__", str(fake))
    assert addon_version() == ADDON_VERSION
    manifest = tmp_path / "blender_manifest.toml"
    manifest.write_text('version = "9.8.7"\n')
    assert addon_version() == "9.8.7"  # a checkout's manifest wins


# --------------------------------------------------------------------------- asset folders


_IMAGE_HEADERS = {
    ".hdr": b"#?RADIANCE\n",
    ".exr": b"\x76\x2f\x31\x01",
    ".png": b"\x89PNG\r\n\x1a\n",
    ".jpg": b"\xff\xd8\xff",
}
"""The first bytes of each format: the compiler checks asset headers (assets.asset_problem)."""


def _asset_config(tmp_path: Path) -> dict[str, Any]:
    hdris, textures = tmp_path / "hdri", tmp_path / "textures"
    hdris.mkdir()
    textures.mkdir()
    for name in ("sky_b.hdr", "room_a.exr", "hall_c.hdr"):
        (hdris / name).write_bytes(_IMAGE_HEADERS[Path(name).suffix] + name.encode())
    (hdris / "notes.txt").write_text("not an environment map")
    for name in ("wood.png", "brick.jpg"):
        (textures / name).write_bytes(_IMAGE_HEADERS[Path(name).suffix] + name.encode())
    data = example_data(dataset={"num_scenes": 12})
    data["lighting"] = {**data["lighting"], "hdri_folder": str(hdris), "background_folder": str(textures)}
    return data


def test_asset_folders_are_chosen_deterministically(tmp_path: Path) -> None:
    data = _asset_config(tmp_path)
    first = compile_config(parse_config(data, "test"))
    second = compile_config(parse_config(copy.deepcopy(data), "test"))
    assert dump_recipe_file(first) == dump_recipe_file(second)
    hdris = {r.world.hdri.path for r in first.recipes if r.world.hdri is not None}
    assert len(hdris) > 1 and all(Path(p).suffix in (".hdr", ".exr") for p in hdris)
    textures = {o.texture for r in first.recipes for o in r.objects if isinstance(o, PlaneObject)}
    assert textures <= {str(tmp_path / "textures" / n) for n in ("wood.png", "brick.jpg")}
    # changing an asset's bytes changes the job id, not the choices
    (tmp_path / "hdri" / "sky_b.hdr").write_bytes(_IMAGE_HEADERS[".hdr"] + b"another sky")
    third = compile_config(parse_config(data, "test"))
    assert third.job_id != first.job_id
    assert [r.world for r in third.recipes] == [r.world for r in first.recipes]


def test_relative_asset_folders_resolve_against_the_config(tmp_path: Path) -> None:
    data = _asset_config(tmp_path)
    data["lighting"]["hdri_folder"] = "hdri"
    data["lighting"]["background_folder"] = "textures"
    config_path = tmp_path / "job.json"
    config_path.write_text(json.dumps(data))
    out = tmp_path / "out" / "recipes.json"
    main_compile(str(config_path), str(out), [], None)
    recipes = parse_recipe_file(out.read_text(), str(out)).recipes  # as written, not resolved
    paths = {r.world.hdri.path for r in recipes if r.world.hdri}
    textures = {o.texture for r in recipes for o in r.objects if isinstance(o, PlaneObject) and o.texture}
    # written relative to the recipe file's folder (recipe.ASSET_PATHS), with / separators
    assert paths and all(p.startswith("../hdri/") for p in paths)
    assert textures and all(t.startswith("../textures/") for t in textures)
    # what a worker opens: the paths resolved against the recipe file's folder, as loading the file does
    assert load_recipe_file(out).recipes == [resolve_asset_paths(r, out.parent) for r in recipes]
    for recipe in recipes:
        resolved = resolve_asset_paths(recipe, out.parent)
        assert resolved.world.hdri is not None and Path(resolved.world.hdri.path).is_file()
        (plane,) = [o for o in resolved.objects if isinstance(o, PlaneObject)]
        assert plane.texture is not None and Path(plane.texture).parent == tmp_path / "textures"
        assert resolved.cameras == recipe.cameras and resolved.objects[1:] == recipe.objects[1:]


def test_recipes_with_assets_do_not_depend_on_where_the_job_lives(tmp_path: Path) -> None:
    """The same job in two folders (two machines) compiles to the same bytes: no absolute paths."""
    outputs = []
    for place in ("here", "there/deeper"):
        root = tmp_path / place
        root.mkdir(parents=True)
        data = _asset_config(root)
        data["lighting"]["hdri_folder"] = "hdri"
        data["lighting"]["background_folder"] = "textures"
        (root / "job.json").write_text(json.dumps(data))
        main_compile(str(root / "job.json"), str(root / "recipes.json"), [], None)
        outputs.append((root / "recipes.json").read_text())
    assert outputs[0] == outputs[1]
    assert str(tmp_path) not in outputs[0]


def test_missing_hdri_folder_names_the_field(tmp_path: Path) -> None:
    data = example_data(lighting={"hdri_folder": str(tmp_path / "nowhere")})
    with pytest.raises(InputError) as info:
        compile_config(parse_config(data, "test"), source="job.yaml")
    assert info.value.field == "lighting.hdri_folder" and info.value.source == "job.yaml"


# --------------------------------------------------------------------------- per-camera imaging knobs

KNOBS: dict[str, Any] = {
    "noise": {"photons_at_white": [2000, 8000], "gaussian_sigma": [0.001, 0.002]},
    "tone_mapping": {"curves": ["srgb", "gamma"], "gamma": [1.8, 2.4], "exposure_ev": [-1.0, 0.5]},
    "dynamic_range": {"black_level": [0.0, 0.05], "white_level": [0.9, 1.0]},
    "dynamics": {
        "speed_mps": [0.1, 0.5],
        "angular_speed_dps": [1.0, 10.0],
        "shutter_s": [0.001, 0.01],
        "rolling_shutter_s": [0.005, 0.02],
    },
    "depth_of_field": {"fstop": [2.0, 8.0], "focus_jitter_m": 0.05},
}


def knob_config(**changes: Any) -> GenConfig:
    data = example_data(dataset={"num_scenes": 10})
    data.update(copy.deepcopy(KNOBS))
    data["camera"] = {**data["camera"], "iso_min": 100, "iso_max": 800}
    data.update(changes)
    return parse_config(data, "test")


def test_every_imaging_knob_appears_within_its_range() -> None:
    recipes = compile_config(knob_config())
    curves, gammas, evs, speeds = set(), [], [], []
    for recipe, j in all_cameras(recipes):
        camera = recipe.cameras[j]
        noise = camera.sensor_noise
        assert noise is not None and noise.iso is not None and 100 <= noise.iso <= 800
        shot, read = noise.layers  # shot noise first, then read noise, as light meets the sensor
        assert shot.type == "poisson" and read.type == "gaussian"
        # ISO-coupled: fewer photons at white with more gain
        photons_at_iso_100 = shot.photons_at_white * noise.iso / 100.0
        assert 2000 - 1e-6 <= photons_at_iso_100 <= 8000 + 1e-6
        tone = camera.tone_mapping
        curves.add(tone.curve)
        gammas.append(tone.gamma)
        evs.append(tone.exposure_ev)
        assert tone.metering == "auto" and 1.8 <= tone.gamma <= 2.4 and -1.0 <= tone.exposure_ev <= 0.5
        levels = camera.dynamic_range
        assert 0.0 <= levels.black_level <= 0.05 and 0.9 <= levels.white_level <= 1.0
        dyn = camera.dynamics
        assert dyn is not None
        speeds.append(float(np.linalg.norm(dyn.velocity_mps)))
        assert 0.1 - 1e-9 <= speeds[-1] <= 0.5 + 1e-9
        omega_dps = math.degrees(float(np.linalg.norm(dyn.angular_velocity_radps)))
        assert 1.0 - 1e-9 <= omega_dps <= 10.0 + 1e-9
        assert 0.001 <= dyn.shutter_s <= 0.01 and 0.005 <= dyn.rolling_shutter_s <= 0.02
        dof = camera.depth_of_field
        assert dof is not None and 2.0 <= dof.fstop <= 8.0
        centre, _ = subject_centre_and_normal(recipe)
        depth = float((np.linalg.inv(camera.matrix) @ np.append(centre, 1.0))[2])
        assert abs(dof.focus_distance_m - depth) <= 0.05 + 1e-9  # focused on the subject, jittered
    assert curves == {"srgb", "gamma"}  # every curve offered is chosen
    assert len(set(gammas)) > 1 and len(set(evs)) > 1 and len(set(speeds)) > 1  # drawn, not fixed


def test_imaging_knobs_are_deterministic_and_shard_safe(tmp_path: Path) -> None:
    config = knob_config()
    whole = compile_config(config)
    assert dump_recipe_file(whole) == dump_recipe_file(compile_config(knob_config()))
    parts = [compile_config(config, shard=(i, 3)) for i in range(3)]
    joined = RecipeFile(
        job_id=whole.job_id, job_spec=whole.job_spec, recipes=[r for p in parts for r in p.recipes]
    )
    assert dump_recipe_file(joined) == dump_recipe_file(whole)
    assert compile_scene(config, 7) == whole.recipes[7]


def test_imaging_knobs_leave_the_pose_and_read_noise_streams_alone() -> None:
    """The knobs draw from a stream of their own: poses, subjects and read noise stay as they were."""
    plain = compile_config(
        knob_config(
            **{k: {} for k in ("tone_mapping", "dynamic_range", "dynamics")},
            noise={"gaussian_sigma": [0.001, 0.002]},
            depth_of_field=None,
        )
    )
    varied = compile_config(knob_config())
    for a, b in zip(plain.recipes, varied.recipes, strict=True):
        assert a.objects == b.objects and a.world == b.world
        for ca, cb in zip(a.cameras, b.cameras, strict=True):
            assert ca.cam_to_world == cb.cam_to_world
            assert ca.sensor_noise is not None and cb.sensor_noise is not None
            assert ca.sensor_noise.iso == cb.sensor_noise.iso
            assert ca.sensor_noise.layers == cb.sensor_noise.layers[1:]  # the same read noise
            assert ca.dynamics is None and ca.depth_of_field is None


def test_default_imaging_sections_compile_as_before(tmp_path: Path) -> None:
    """Spelling out the defaults changes nothing; the DESIGN example keeps fixed tone and levels."""
    data = yaml.safe_load(EXAMPLE_YAML)
    explicit = copy.deepcopy(data)
    explicit.update(
        tone_mapping={"curves": ["srgb"], "gamma": [2.2, 2.2], "exposure_ev": [0, 0], "metering": "auto"},
        dynamic_range={"black_level": [0, 0], "white_level": [1, 1]},
        dynamics={"speed_mps": [0, 0], "shutter_s": [0, 0]},
    )
    a, b = compile_config(parse_config(data, "a")), compile_config(parse_config(explicit, "b"))
    assert dump_recipe_file(a) == dump_recipe_file(b)
    for recipe, j in all_cameras(a):
        camera = recipe.cameras[j]
        assert camera.dynamics is None and camera.depth_of_field is None and camera.sensor_noise is None
        assert camera.tone_mapping.exposure_ev == 0.0 and camera.dynamic_range.white_level == 1.0


def test_eevee_jobs_get_shutter_motion_without_rolling_shutter() -> None:
    knobs = copy.deepcopy(KNOBS["dynamics"])
    knobs["rolling_shutter_s"] = [0.0, 0.0]
    recipes = compile_config(knob_config(dynamics=knobs, renderer={"mode": "eevee", "samples": 4}))
    for recipe, j in all_cameras(recipes):
        dyn = recipe.cameras[j].dynamics
        assert dyn is not None and dyn.shutter_s > 0 and dyn.rolling_shutter_s == 0.0
