"""The recipe contract: impossible input is refused with the field named; the schema does not drift."""

from __future__ import annotations

import copy
import hashlib
import json
import math
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from render_tag_shared.errors import InputError
from render_tag_shared.recipe import SCHEMA_VERSION, CameraIntrinsics, RecipeFile, SceneRecipe
from render_tag_shared.recipe_io import (
    dump_recipe_file,
    load_recipe_file,
    parse_recipe_file,
    rebase_asset_paths,
    resolve_asset_paths,
)
from render_tag_shared.schema import committed_schema, generate_schemas
from render_tag_shared.seeds import derive_seed, job_id
from render_tag_shared.versions import ADDON_VERSION

from ..builders import CHARUCO, REPO_ROOT, look_at


def valid_recipe() -> dict[str, Any]:
    return {
        "scene_id": 3,
        "random_seed": 99,
        "objects": [
            {
                "type": "TAG",
                "name": "tag_a",
                "pose": {},
                "tag_family": "tag36h11",
                "tag_id": 5,
                "size_mm": 100,
            },
            {
                "type": "BOARD",
                "name": "board",
                "pose": {"position": [0.5, 0, 0]},
                "board": CHARUCO,
            },
            {"type": "PLANE", "name": "floor", "pose": {"position": [0, 0, -0.01]}, "size_m": [3, 3]},
        ],
        "world": {"lights": [{"type": "SUN", "energy": 3.0}]},
        "cameras": [
            {
                "name": "cam0",
                "cam_to_world": look_at([0, -0.5, 1.5], [0, 0, 0]),
                "intrinsics": {
                    "k_matrix": [[600, 0, 319.5], [0, 600, 239.5], [0, 0, 1]],
                    "resolution": [640, 480],
                },
            }
        ],
    }


def test_valid_recipe_fills_derived_fields() -> None:
    recipe = SceneRecipe.model_validate(valid_recipe())
    tag = recipe.objects[0]
    assert tag.keypoints_3d == [
        (-0.05, 0.05, 0.0),
        (0.05, 0.05, 0.0),
        (0.05, -0.05, 0.0),
        (-0.05, -0.05, 0.0),
    ]
    board = recipe.objects[1]
    assert board.keypoints_3d is not None and len(board.keypoints_3d) == 4 * 6
    assert recipe.image_id(0) == "scene000003_cam00"


def test_distorted_camera_gets_its_overscan_target() -> None:
    intr = CameraIntrinsics.model_validate(
        {
            "k_matrix": [[500, 0, 320], [0, 500, 240], [0, 0, 1]],
            "resolution": [640, 480],
            "distortion_model": "brown_conrady",
            "distortion_coeffs": [-0.3, 0.1, 0.0, 0.0, 0.0],
        }
    )
    assert intr.overscan is not None and intr.overscan.projection == "perspective"
    assert intr.overscan.resolution[0] > 640 and intr.overscan.resolution[1] > 480
    fisheye = CameraIntrinsics.model_validate(
        {
            "k_matrix": [[300, 0, 320], [0, 300, 240], [0, 0, 1]],
            "resolution": [640, 480],
            "distortion_model": "kannala_brandt",
            "distortion_coeffs": [0.01, -0.01, 0.0, 0.0],
        }
    )
    assert fisheye.overscan is not None and fisheye.overscan.projection == "equidistant"
    assert fisheye.overscan.fov_rad is not None and fisheye.overscan.fov_rad > math.radians(90)


def _set(data: Any, path: str, value: Any) -> None:
    keys: list[Any] = [int(k) if k.isdigit() else k for k in path.split(".")]
    for key in keys[:-1]:
        data = data[key]
    data[keys[-1]] = value


K_PATH = "cameras.0.intrinsics.k_matrix"
BAD_RECIPES = [
    # (path to set, value, the field the error names, a fragment of the message)
    ("objects.0.tag_family", "tag99h9", "objects[0].tag_family", "unknown tag family"),
    ("objects.0.tag_id", 587, "objects[0]", "outside tag36h11 (ids 0..586)"),
    ("objects.0.tag_id", -1, "objects[0].tag_id", "greater than or equal to 0"),
    ("objects.0.size_mm", -100, "objects[0].size_mm", "greater than 0"),
    ("objects.0.size_mm", 0, "objects[0].size_mm", "greater than 0"),
    ("objects.0.keypoints_3d", [[0, 0, 0]] * 4, "objects[0]", "keypoints_3d disagrees"),
    (
        "objects.0.pose.rotation_quaternion",
        [0, 0, 0, 0],
        "objects[0].pose.rotation_quaternion",
        "zero length",
    ),
    ("objects.0.colour", "red", "objects[0].colour", "Extra inputs are not permitted"),
    ("objects.1.board.marker_size_mm", 40, "objects[1].board", "marker_size_mm"),
    ("objects.1.board.square_size_mm", -40, "objects[1].board.square_size_mm", ""),
    ("objects.1.board.dictionary", "DICT_3X3_5", "objects[1].board", "unknown tag family"),
    ("objects.2.size_m", [3, -1], "objects[2].size_m[1]", "greater than 0"),
    ("objects.2.name", "tag_a", "", "objects[2].name: 'tag_a' is used twice"),
    ("objects.0.type", "SPHERE", "objects[0]", "does not match any of the expected tags"),
    (K_PATH, [[600, 0, 319.5], [0, 600, 239.5]], "cameras[0].intrinsics.k_matrix", "3x3 matrix"),
    (K_PATH, [[600, 0, 319.5], [0, 600, 239.5], [0, 1, 1]], "cameras[0].intrinsics.k_matrix", "[0, 0, 1]"),
    (K_PATH, [[-600, 0, 319.5], [0, 600, 239.5], [0, 0, 1]], "cameras[0].intrinsics.k_matrix", "positive"),
    (K_PATH, [[600, 2, 319.5], [0, 600, 239.5], [0, 0, 1]], "cameras[0].intrinsics.k_matrix", "skew"),
    ("cameras.0.intrinsics.resolution", [640, 0], "cameras[0].intrinsics.resolution", "positive"),
    (
        "cameras.0.intrinsics.distortion_model",
        "kannala_brandt",
        "cameras[0].intrinsics",
        "takes 4 coefficients",
    ),
    ("cameras.0.intrinsics.distortion_coeffs", [0.1, 0.2], "cameras[0].intrinsics", "none takes 0"),
    ("cameras.0.intrinsics.eval_margin_px", -2, "cameras[0].intrinsics.eval_margin_px", ""),
    ("cameras.0.cam_to_world", np.diag([1, 1, -1, 1]).tolist(), "cameras[0].cam_to_world", "determinant"),
    ("cameras.0.cam_to_world", np.eye(3).tolist(), "cameras[0].cam_to_world", "4x4"),
    (
        "cameras.0.dynamic_range",
        {"black_level": 0.6, "white_level": 0.5},
        "cameras[0].dynamic_range",
        "above",
    ),
    (
        "cameras.0.sensor_noise",
        {"seed": 1, "layers": [{"type": "gaussian", "sigma": -1}]},
        "cameras[0]",
        "sigma",
    ),
    ("cameras", [], "cameras", "at least 1"),
    ("renderer", {"mode": "cycles", "samples": 0}, "renderer.samples", "greater than or equal to 1"),
    ("world.lights.0.energy", 0, "world.lights[0].energy", "greater than 0"),
]


@pytest.mark.parametrize(("path", "value", "field", "fragment"), BAD_RECIPES)
def test_impossible_recipe_is_refused_naming_the_field(
    path: str, value: Any, field: str, fragment: str
) -> None:
    data = copy.deepcopy(valid_recipe())
    _set(data, path, value)
    with pytest.raises(InputError) as info:
        parse_recipe_file(json.dumps(data), "recipes.json")
    message = str(info.value)
    assert message.startswith("recipes.json: ")
    assert info.value.field.startswith(f"recipes[0].{field}".rstrip(".")), message
    assert fragment in message


@pytest.mark.parametrize("mode", ["eevee", "workbench"])
def test_cycles_only_features_are_refused_for_other_engines(mode: str) -> None:
    data = valid_recipe()
    data["renderer"] = {"mode": mode}
    data["cameras"][0]["intrinsics"].update(distortion_model="kannala_brandt", distortion_coeffs=[0, 0, 0, 0])
    with pytest.raises(InputError, match="kannala_brandt lens renders through Cycles"):
        parse_recipe_file(json.dumps(data), "recipes.json")
    data = valid_recipe()
    data["renderer"] = {"mode": mode}
    data["cameras"][0]["dynamics"] = {"rolling_shutter_s": 0.01}
    with pytest.raises(InputError, match="rolling shutter is Cycles-only"):
        parse_recipe_file(json.dumps(data), "recipes.json")
    data["renderer"] = {"mode": "cycles"}
    parse_recipe_file(json.dumps(data), "recipes.json")
    data["renderer"] = {"mode": "workbench"}
    data["cameras"][0]["dynamics"] = {"shutter_s": 0.01}
    with pytest.raises(InputError, match="Workbench renders no motion blur"):
        parse_recipe_file(json.dumps(data), "recipes.json")


def test_duplicate_marker_ids_are_refused() -> None:
    data = valid_recipe()
    data["objects"].append(
        {"type": "TAG", "name": "tag_b", "tag_family": "tag36h11", "tag_id": 5, "size_mm": 50}
    )
    with pytest.raises(InputError, match="tag36h11 id 5 is already used by objects\\[0\\]"):
        parse_recipe_file(json.dumps(data), "recipes.json")
    data["objects"][-1] = {
        "type": "TAG",
        "name": "tag_b",
        "tag_family": "DICT_5X5_100",
        "tag_id": 3,
        "size_mm": 50,
    }
    with pytest.raises(InputError, match="DICT_5X5_100 id 3 is already used by objects\\[1\\]"):
        parse_recipe_file(json.dumps(data), "recipes.json")
    # OpenCV's names and nested dictionaries are the same markers to a detector.
    data["objects"][-1] = {
        "type": "TAG",
        "name": "tag_b",
        "tag_family": "DICT_5X5_1000",
        "tag_id": 3,
        "size_mm": 50,
    }
    with pytest.raises(InputError, match="DICT_5X5_1000 id 3 is already used by objects\\[1\\]"):
        parse_recipe_file(json.dumps(data), "recipes.json")
    data["objects"][-1] = {
        "type": "TAG",
        "name": "tag_b",
        "tag_family": "DICT_APRILTAG_36h11",
        "tag_id": 5,
        "size_mm": 50,
    }
    with pytest.raises(InputError, match="tag36h11 id 5 is already used by objects\\[0\\]"):
        parse_recipe_file(json.dumps(data), "recipes.json")


def test_recipe_file_version_and_ids() -> None:
    bundle = {"schema_version": "9.0.0", "recipes": [valid_recipe()]}
    with pytest.raises(InputError, match="schema_version 9.0.0 is not compatible"):
        parse_recipe_file(json.dumps(bundle), "r.json")
    bundle = {"schema_version": SCHEMA_VERSION, "recipes": [valid_recipe(), valid_recipe()]}
    with pytest.raises(InputError, match="scene_id: '3' is used twice"):
        parse_recipe_file(json.dumps(bundle), "r.json")
    with pytest.raises(InputError, match="r.json: not valid JSON"):
        parse_recipe_file("{", "r.json")


def test_recipe_file_round_trips_byte_for_byte() -> None:
    recipes = RecipeFile(recipes=[SceneRecipe.model_validate(valid_recipe())])
    text = dump_recipe_file(recipes)
    again = parse_recipe_file(text, "r.json")
    assert again == recipes
    assert dump_recipe_file(again) == text


def test_recipe_file_carries_its_job_spec() -> None:
    spec = {
        "config_sha256": "0" * 64,
        "presets": ["hd-camera"],
        "versions": {"addon": "0.1.0", "blender": None},
    }
    recipes = RecipeFile(
        job_id=job_id(spec), job_spec=spec, recipes=[SceneRecipe.model_validate(valid_recipe())]
    )
    text = dump_recipe_file(recipes)
    again = parse_recipe_file(text, "r.json")
    assert again.job_spec == spec and dump_recipe_file(again) == text
    assert parse_recipe_file(json.dumps({"recipes": [valid_recipe()]}), "r.json").job_spec is None  # optional


def test_addon_version_constant_matches_the_manifest() -> None:
    """The host records ADDON_VERSION when it runs without a checkout: it must be the manifest's."""
    manifest = REPO_ROOT / "blender_manifest.toml"
    with manifest.open("rb") as handle:
        assert tomllib.load(handle)["version"] == ADDON_VERSION


def test_relative_asset_paths_resolve_against_the_recipe_folder(tmp_path: Path) -> None:
    data = valid_recipe()
    data["world"] = {"hdri": {"path": "../assets/sky.hdr"}, "background_texture": "/abs/wall.png"}
    data["objects"].append({"type": "PLANE", "name": "wall", "size_m": [2, 2], "texture": "wall.jpg"})
    recipe = SceneRecipe.model_validate(data)
    folder = tmp_path / "job"
    resolved = resolve_asset_paths(recipe, folder)
    assert resolved.world.hdri is not None
    assert resolved.world.hdri.path == str(tmp_path / "assets" / "sky.hdr")
    assert resolved.world.background_texture == "/abs/wall.png"  # absolute: as it is
    assert resolved.objects[-1].texture == str(folder / "wall.jpg")  # type: ignore[union-attr]
    assert resolved.cameras == recipe.cameras and recipe.world.hdri.path == "../assets/sky.hdr"  # type: ignore[union-attr]


def test_asset_paths_rebase_to_another_recipe_folder(tmp_path: Path) -> None:
    data = valid_recipe()
    data["world"] = {"hdri": {"path": "../assets/sky.hdr"}, "background_texture": "/abs/wall.png"}
    recipe = SceneRecipe.model_validate(data)
    moved = rebase_asset_paths(recipe, tmp_path / "job", tmp_path / "out" / "shard0")
    assert moved.world.hdri is not None and moved.world.hdri.path == "../../assets/sky.hdr"
    assert moved.world.background_texture == "/abs/wall.png"
    # either way, the same files
    assert resolve_asset_paths(moved, tmp_path / "out" / "shard0") == resolve_asset_paths(
        recipe, tmp_path / "job"
    )


def test_committed_schema_matches_the_models() -> None:
    for name, text in generate_schemas().items():
        assert committed_schema(name) == text, f"{name} drifted: run `python tools/generate_schema.py`"


def test_derive_seed_is_stable_and_independent() -> None:
    assert derive_seed(42, "scene", 7) == derive_seed(42, "scene", 7)
    seeds = {derive_seed(42, "scene", i) for i in range(1000)}
    assert len(seeds) == 1000
    assert derive_seed(42, "scene", 7) != derive_seed(43, "scene", 7) != derive_seed(42, "light", 7)
    assert all(0 <= s < 2**63 for s in seeds)
    # Pinned to the SHA-256 definition: a change to the derivation changes every dataset.
    digest = hashlib.sha256(b"42\x1fscene\x1f7").digest()
    assert derive_seed(42, "scene", 7) == int.from_bytes(digest[:8], "big") >> 1
    with pytest.raises(ValueError):
        derive_seed(-1, "scene", 0)


def test_job_id_hashes_the_spec_without_order_or_time() -> None:
    assert job_id({"a": 1, "b": [1, 2]}) == job_id({"b": [1, 2], "a": 1})
    assert job_id({"a": 1}) != job_id({"a": 2})


def test_importing_the_shared_package_loads_no_blender_opencv_or_zmq() -> None:
    code = (
        "import sys, render_tag_shared, render_tag_shared.recipe, render_tag_shared.config, "
        "render_tag_shared.truth, render_tag_shared.records, render_tag_shared.schema\n"
        "bad = [m for m in ('bpy', 'cv2', 'zmq') if m in sys.modules]\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_loaded_recipe_files_resolve_relative_asset_paths_against_their_folder(tmp_path: Path) -> None:
    data = valid_recipe()
    data["world"]["hdri"] = {"path": "assets/sky.exr"}
    data["objects"][2]["texture"] = "../shared/floor.png"
    folder = tmp_path / "job"
    folder.mkdir()
    (folder / "recipes.json").write_text(json.dumps({"recipes": [data]}))
    (recipe,) = load_recipe_file(folder / "recipes.json").recipes
    assert recipe.world.hdri is not None and recipe.world.hdri.path == str(folder / "assets" / "sky.exr")
    assert recipe.objects[2].texture == str(tmp_path / "shared" / "floor.png")
    # Absolute paths stay as they are; a text parsed without a file keeps its relative paths.
    data["world"]["hdri"] = {"path": "/srv/hdri/sky.exr"}
    (folder / "recipes.json").write_text(json.dumps({"recipes": [data]}))
    assert load_recipe_file(folder / "recipes.json").recipes[0].world.hdri.path == "/srv/hdri/sky.exr"
    assert (
        parse_recipe_file(json.dumps({"recipes": [data]}), "r").recipes[0].objects[2].texture
        == "../shared/floor.png"
    )
