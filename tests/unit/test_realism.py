"""Built-in realism (issue 11 points 1, 5, 6): recipes, compiler, clutter placement, tone and sensor.

Pure Python: the renders are in tests/blender/test_realism_render.py.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml
from pydantic import ValidationError

from render_tag.cli import main
from render_tag.compile import DEFAULT_JOB, compile_config, compile_default_job
from render_tag.compile.checks import check_module_size, small_modules
from render_tag.compile.clutter import convex_hull, polygons_apart
from render_tag.compile.errors import CompileError
from render_tag.compile.materials import kelvin_to_rgb
from render_tag.compile.presets import compose_config
from render_tag_shared import imaging
from render_tag_shared.config import parse_config
from render_tag_shared.errors import InputError
from render_tag_shared.geometry import invert_rigid
from render_tag_shared.lens import project_points
from render_tag_shared.recipe import (
    BUILTIN_HDRIS,
    BoardObject,
    CameraRecipe,
    DynamicRange,
    Hdri,
    PlaneObject,
    PrimitiveObject,
    ProceduralTexture,
    SceneRecipe,
    TagObject,
    ToneMapping,
)
from render_tag_shared.recipe_io import dump_recipe_file, rebase_asset_paths, resolve_asset_paths
from render_tag_shared.truth import object_extent_m

from ..builders import REPO_ROOT

DATA = REPO_ROOT / "tests" / "data"


def tags_config(**sections: Any) -> dict[str, Any]:
    """The default job's tag document (its realism included) with sections replaced."""
    document = next(d for d in yaml.safe_load_all(DEFAULT_JOB.read_text(encoding="utf-8")) if d)
    document = copy.deepcopy(document)
    document.update(sections)
    return document


def compiled(data: dict[str, Any], presets: list[str] | None = None) -> list[SceneRecipe]:
    return compile_config(parse_config(compose_config(data, presets or []), "test")).recipes


# ------------------------------------------------------------------------------------- recipes


def test_builtin_hdri_names_are_checked_and_never_rebased(tmp_path: Path) -> None:
    assert Hdri(path="builtin:forest.exr").path == "builtin:forest.exr"
    with pytest.raises(ValidationError, match="unknown built-in HDRI"):
        Hdri(path="builtin:beach.exr")
    recipe = compiled(tags_config(dataset={"name": "t", "num_scenes": 1, "seed": 1}))[0]
    assert recipe.world.hdri is not None and recipe.world.hdri.path.startswith("builtin:")
    # a recipe file moved or read from any folder keeps naming Blender's own file, not a relative path
    assert resolve_asset_paths(recipe, tmp_path).world.hdri == recipe.world.hdri
    assert rebase_asset_paths(recipe, tmp_path, tmp_path / "sub").world.hdri == recipe.world.hdri


def test_new_recipe_fields_are_validated() -> None:
    with pytest.raises(ValidationError, match="luminance"):
        TagObject(
            name="t",
            tag_family="tag36h11",
            tag_id=0,
            size_mm=100,
            paper_color=(0.5,) * 3,
            ink_color=(0.4,) * 3,
        )
    with pytest.raises(ValidationError):
        ProceduralTexture(kind="plasma", color_a=(0, 0, 0), color_b=(1, 1, 1), scale=1.0)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        ProceduralTexture(kind="noise", color_a=(0, 0, 0), color_b=(1, 1, 1), scale=0.0)
    with pytest.raises(ValidationError):
        PrimitiveObject(name="p", shape="CUBE", size_m=(0.1, -0.1, 0.1))
    with pytest.raises(ValidationError):
        PrimitiveObject(name="p", shape="TEAPOT", size_m=(0.1, 0.1, 0.1))  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        DynamicRange(bit_depth=12)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        DynamicRange(sensor_db=0.0)
    assert ToneMapping(curve="agx").curve == "agx"


@pytest.mark.parametrize(
    ("section", "value", "field"),
    [
        ("lighting", {"builtin_hdris": ["beach"]}, "lighting.builtin_hdris"),
        ("lighting", {"light_types": ["LASER"]}, "lighting.light_types"),
        ("lighting", {"color_temperature_k": [7000, 3000]}, "lighting.color_temperature_k"),
        ("background", {"procedural": ["plasma"]}, "background.procedural"),
        ("background", {"size_m": [0, 2]}, "background.size_m"),
        ("clutter", {"distractors_per_scene": [3, 1]}, "clutter.distractors_per_scene"),
        ("paper", {"paper_brightness": [0.4, 0.5], "ink_level": [0.2, 0.3]}, "paper"),
        ("dynamic_range", {"bit_depth": 12}, "dynamic_range.bit_depth"),
        ("camera", {"min_azimuth": 90, "max_azimuth": 10}, "camera"),
    ],
)
def test_bad_realism_config_names_the_field(section: str, value: dict[str, Any], field: str) -> None:
    data = tags_config()
    data[section] = {**data.get(section, {}), **value}
    with pytest.raises(InputError) as caught:
        parse_config(data, "job.yaml")
    assert caught.value.source == "job.yaml"
    assert caught.value.field.startswith(field), caught.value.field


def test_realistic_compile_is_deterministic_and_uses_every_feature() -> None:
    data = tags_config(dataset={"name": "r", "num_scenes": 12, "seed": 5})
    config = parse_config(data, "test")
    first, second = compile_config(config), compile_config(config)
    assert dump_recipe_file(first) == dump_recipe_file(second)
    recipes = first.recipes
    hdris = {r.world.hdri.path for r in recipes if r.world.hdri is not None}
    assert len(hdris) >= 4 and all(p[len("builtin:") :] in BUILTIN_HDRIS for p in hdris)
    floors = [o for r in recipes for o in r.objects if isinstance(o, PlaneObject)]
    assert len({f.procedural.kind for f in floors if f.procedural is not None}) >= 3
    assert len({f.size_m for f in floors}) == len(floors)  # a mat of random size
    assert sum(isinstance(o, PrimitiveObject) for r in recipes for o in r.objects) >= 12
    lights = [light for r in recipes for light in r.world.lights]
    assert {"SUN"} <= {light.type for light in lights}
    assert any(light.color != (1.0, 1.0, 1.0) for light in lights)
    tags = [o for r in recipes for o in r.objects if isinstance(o, TagObject)]
    assert all(t.ink_color[0] > 0.0 and t.paper_color != (1.0, 1.0, 1.0) for t in tags)
    assert {c.tone_mapping.curve for r in recipes for c in r.cameras} == {"srgb", "agx"}
    assert all(c.dynamic_range.sensor_db is not None for r in recipes for c in r.cameras)


def test_a_config_without_realism_compiles_no_realism() -> None:
    data = yaml.safe_load((DATA / "design_example.yaml").read_text())
    recipes = compiled(data)
    assert all(r.world.hdri is None for r in recipes)
    assert not any(isinstance(o, PrimitiveObject) for r in recipes for o in r.objects)
    assert all(o.procedural is None for r in recipes for o in r.objects if isinstance(o, PlaneObject))
    assert all(
        t.paper_color == (1.0, 1.0, 1.0) for r in recipes for t in r.objects if isinstance(t, TagObject)
    )


def test_the_default_job_compiles_with_realism_and_the_preset_matches_it() -> None:
    recipes = compile_default_job().recipes
    assert all(r.world.hdri is not None for r in recipes)
    assert any(isinstance(o, PrimitiveObject) for r in recipes for o in r.objects)
    plain = tags_config(dataset={"name": "p", "num_scenes": 2, "seed": 42})
    for section in ("background", "clutter", "paper", "tone_mapping", "dynamic_range"):
        plain.pop(section)
    plain["lighting"] = {"intensity_min": 200, "intensity_max": 800}
    by_preset = compiled(plain, ["realistic"])
    inline = compiled(tags_config(dataset={"name": "p", "num_scenes": 2, "seed": 42}))
    assert [r.world for r in by_preset] == [r.world for r in inline]


def test_camera_azimuth_range_holds() -> None:
    camera = {**tags_config()["camera"], "min_azimuth": 80.0, "max_azimuth": 100.0, "min_elevation": 40.0}
    for recipe in compiled(tags_config(dataset={"name": "a", "num_scenes": 6, "seed": 3}, camera=camera)):
        x, y = recipe.cameras[0].matrix[:2, 3]
        assert 80.0 - 1e-6 <= math.degrees(math.atan2(y, x)) <= 100.0 + 1e-6


# ------------------------------------------------------------------------------------- clutter


def _surface_points(prim: PrimitiveObject, n: int = 12) -> np.ndarray:
    """Points on the box that bounds the distractor (all six faces, a grid each), in the world."""
    g = np.linspace(-0.5, 0.5, n)
    u, v = (a.ravel() for a in np.meshgrid(g, g))
    faces = []
    for axis in range(3):
        for side in (-0.5, 0.5):
            p = np.zeros((len(u), 3))
            p[:, axis] = side
            p[:, (axis + 1) % 3], p[:, (axis + 2) % 3] = u, v
            faces.append(p)
    local = np.concatenate(faces) * np.asarray(prim.size_m)
    m = prim.pose.matrix()
    return local @ m[:3, :3].T + m[:3, 3]


def _subject_polygon(obj: TagObject | BoardObject, camera: CameraRecipe) -> np.ndarray:
    w, h = object_extent_m(obj)
    corners = np.array([[-w / 2, h / 2, 0], [w / 2, h / 2, 0], [w / 2, -h / 2, 0], [-w / 2, -h / 2, 0]])
    return _project(corners @ obj.pose.matrix()[:3, :3].T + obj.pose.matrix()[:3, 3], camera)


def _project(world: np.ndarray, camera: CameraRecipe) -> np.ndarray:
    w2c = invert_rigid(camera.matrix)
    cam = world @ w2c[:3, :3].T + w2c[:3, 3]
    intr = camera.intrinsics
    return project_points(cam, intr.k, intr.distortion_model, intr.distortion_coeffs)


def _covered(recipes: list[SceneRecipe]) -> tuple[int, int]:
    """(distractors that cover a point of a tag or board in some camera, distractors in view)."""
    covering = in_view = 0
    for recipe in recipes:
        subjects = [o for o in recipe.objects if isinstance(o, TagObject | BoardObject)]
        for prim in (o for o in recipe.objects if isinstance(o, PrimitiveObject)):
            hit = seen = False
            for camera in recipe.cameras:
                uv = _project(_surface_points(prim), camera)
                w, h = camera.intrinsics.resolution
                seen |= bool(((uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)).any())
                for obj in subjects:
                    polygon = _subject_polygon(obj, camera).astype(np.float32)
                    inside = [cv2.pointPolygonTest(polygon, (float(x), float(y)), False) >= 0 for x, y in uv]
                    hit |= any(inside)
            covering += hit
            in_view += seen
    return covering, in_view


def test_distractors_never_cover_a_marker_from_any_camera() -> None:
    camera = {**tags_config()["camera"], "samples_per_scene": 3}
    data = tags_config(
        dataset={"name": "c", "num_scenes": 10, "seed": 11},
        camera=camera,
        clutter={"distractors_per_scene": [4, 6], "size_m": [0.1, 0.4], "spread_m": 0.6},
    )
    recipes = compiled(data)
    covering, in_view = _covered(recipes)
    assert in_view >= 10, "the clutter should show in the pictures"
    assert covering == 0
    for recipe in recipes:
        for prim in (o for o in recipe.objects if isinstance(o, PrimitiveObject)):
            assert prim.pose.position[2] == pytest.approx(prim.size_m[2] / 2)  # standing on the floor


def test_may_occlude_lets_distractors_cover_markers() -> None:
    camera = {**tags_config()["camera"], "samples_per_scene": 3}
    data = tags_config(
        dataset={"name": "c", "num_scenes": 10, "seed": 11},
        camera=camera,
        clutter={"distractors_per_scene": [4, 6], "size_m": [0.1, 0.4], "spread_m": 0.6, "may_occlude": True},
    )
    covering, _ = _covered(compiled(data))
    assert covering > 0


def test_polygons_apart() -> None:
    square = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], dtype=float)
    assert polygons_apart(square, square + 20, 3.0)
    assert not polygons_apart(square, square + 5, 3.0)  # overlapping
    assert not polygons_apart(square, square + np.array([12.0, 0.0]), 3.0)  # 2 px apart: inside the clearance
    assert not polygons_apart(square, square * 0.2 + 4, 0.0)  # one inside the other
    cross = np.array([[-5, 4], [15, 4], [15, 6], [-5, 6]], dtype=float)
    assert not polygons_apart(square, cross, 0.0)  # edges cross, no vertex inside
    assert convex_hull(np.array([[0, 0], [1, 0], [1, 1], [0, 1], [0.5, 0.5]])).shape == (4, 2)


# ------------------------------------------------------------------------------- module size


def test_small_modules_are_warned_about_and_refused_when_strict() -> None:
    data = yaml.safe_load((DATA / "aprilgrid.yaml").read_text())
    data["camera"] = {**data["camera"], "resolution": [320, 240], "intrinsics": {"fov": 60}}
    data["camera"].pop("ppm_min")
    data["camera"]["min_distance"], data["camera"]["max_distance"] = 1.0, 2.0
    recipes = compile_config(parse_config(data, "grid.yaml"))
    assert small_modules(recipes)
    (line,) = check_module_size(recipes, "grid.yaml")
    assert "below 3.5 px per module" in line
    with pytest.raises(CompileError) as caught:
        check_module_size(recipes, "grid.yaml", strict=True)
    assert caught.value.field == "camera.ppm_min"


@pytest.mark.parametrize("name", ["design_example.yaml", "charuco.yaml", "aprilgrid.yaml"])
def test_shipped_board_configs_keep_modules_large_enough(name: str) -> None:
    data = yaml.safe_load((DATA / name).read_text())
    recipes = compile_config(parse_config(data, name))
    if name != "design_example.yaml":  # the DESIGN.md example is verbatim: it may only warn
        assert check_module_size(recipes, name) == []
    assert check_module_size(compile_default_job(), "default") == []


def test_compile_cli_refuses_small_modules_with_strict_ppm(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "grid.yaml"
    data = yaml.safe_load((DATA / "aprilgrid.yaml").read_text())
    data["camera"] = {
        "resolution": [320, 240],
        "intrinsics": {"fov": 60},
        "min_distance": 1.0,
        "max_distance": 2.0,
    }
    config.write_text(yaml.safe_dump(data))
    out = tmp_path / "recipes.json"
    argv = ["compile", str(config), "-o", str(out)]
    assert main(argv) == 0
    assert "warning" in capsys.readouterr().err and out.exists()
    out.unlink()
    assert main([*argv, "--strict-ppm"]) == 2
    err = capsys.readouterr().err
    assert "camera.ppm_min" in err and "grid.yaml" in err and "Traceback" not in err
    assert not out.exists()


# ------------------------------------------------------------------------------- tone and sensor


def test_agx_curve() -> None:
    x = np.array([0.0, 0.001, 0.01, 0.05, 0.18, 0.5, 1.0, 2.0, 8.0, 16.0, 100.0])
    y = imaging.agx_tone(x)
    assert np.all(np.diff(y) >= 0) and y.min() >= 0 and y.max() <= 1
    assert 0.45 < float(imaging.agx_tone(np.array(0.18))) < 0.55  # middle grey near half the display range
    assert imaging.agx_tone(np.array(1.0)) < 0.85  # white is not clipped: highlights roll off above it
    assert imaging.agx_tone(np.array(8.0)) > imaging.agx_tone(np.array(1.0)) + 0.1
    rgb = np.stack([x, x, x], axis=-1)
    assert np.allclose(imaging.agx_tone(rgb)[:, 0], y)  # grey in, grey out
    tone = ToneMapping(curve="agx")
    assert np.allclose(imaging.apply_tone_mapping(x, tone), y)


def test_sensor_dynamic_range_in_db() -> None:
    assert imaging.db_to_ratio(60.0) == pytest.approx(1000.0)
    assert imaging.db_to_ratio(20.0) == pytest.approx(10.0)
    v = np.array([0.0, 0.005, 0.01, 0.5, 1.0, 2.0])
    out = imaging.apply_sensor_range(v, 40.0)  # floor 0.01
    assert out[:3].tolist() == [0.0, 0.0, 0.0]
    assert out[3] == pytest.approx((0.5 - 0.01) / 0.99)
    assert out[4:].tolist() == [1.0, 1.0]
    assert np.array_equal(imaging.apply_sensor_range(v, None), v)


def test_sixteen_bit_png_round_trips_through_opencv(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for shape in [(5, 7), (5, 7, 3), (4, 3, 4)]:
        array = rng.integers(0, 65536, size=shape, dtype=np.uint16)
        path = imaging.write_png_atomic(tmp_path / "x.png", array)
        back = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        expected = array if len(shape) == 2 else array[..., [2, 1, 0, 3][: shape[2]]]
        assert back.dtype == np.uint16 and np.array_equal(back, expected)
        assert imaging.decode_png_header(path.read_bytes()) == (
            shape[1],
            shape[0],
            1 if len(shape) == 2 else shape[2],
        )
    linear = np.full((4, 6, 3), 0.25)
    camera = CameraRecipe.model_validate(
        {
            "cam_to_world": np.eye(4).tolist(),
            "intrinsics": {"k_matrix": [[5, 0, 2.5], [0, 5, 1.5], [0, 0, 1]], "resolution": [6, 4]},
            "tone_mapping": {"curve": "linear", "metering": "none"},
            "dynamic_range": {"bit_depth": 16},
        }
    )
    out = imaging.postprocess(linear, camera)
    assert out.dtype == np.uint16 and int(out[0, 0, 0]) == round(0.25 * 65535)


def test_colour_temperature() -> None:
    warm, daylight, cool = kelvin_to_rgb(3000.0), kelvin_to_rgb(6500.0), kelvin_to_rgb(12000.0)
    assert max(warm) == max(cool) == pytest.approx(1.0)
    assert warm[0] == 1.0 and warm[2] < 0.4
    assert min(daylight) > 0.9
    assert cool[2] == 1.0 and cool[0] < 0.8
