"""GenConfig: the DESIGN.md example loads verbatim, legacy fields migrate, bad configs name the field."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from render_tag_shared.config import BoardSubject, GenConfig, TagsSubject, load_config, parse_config
from render_tag_shared.errors import InputError

from ..builders import DATA


def example() -> dict[str, Any]:
    return yaml.safe_load((DATA / "design_example.yaml").read_text())


def test_design_example_loads_verbatim_from_yaml() -> None:
    config = load_config(DATA / "design_example.yaml")
    assert config.dataset.name == "demo" and config.dataset.num_scenes == 8 and config.dataset.seed == 42
    assert isinstance(config.scenario.subject, TagsSubject)
    assert config.scenario.subject.tag_families == ["tag36h11"]
    assert config.scenario.subject.size_mm == 100
    assert config.scenario.subject.tags_per_scene == (1, 4)
    assert config.camera.intrinsics.k_matrix((640, 480)) == [[600, 0, 319.5], [0, 600, 239.5], [0, 0, 1]]
    assert config.camera.eval_margin_px == 5
    assert config.renderer.mode == "cycles" and config.renderer.samples == 32


def test_design_example_loads_from_json(tmp_path: Path) -> None:
    path = tmp_path / "job.json"
    path.write_text(json.dumps(example()))
    assert load_config(path) == load_config(DATA / "design_example.yaml")


@pytest.mark.parametrize("name", ["charuco.yaml", "aprilgrid.yaml"])
def test_board_configs_load(name: str) -> None:
    config = load_config(DATA / name)
    assert isinstance(config.scenario.subject, BoardSubject)


def test_fov_gives_a_centred_square_pixel_camera() -> None:
    config = load_config(DATA / "charuco.yaml")
    k = config.camera.intrinsics.k_matrix((640, 480))
    assert k[0][0] == pytest.approx(320 / 0.5773502691896257) and k[0][0] == k[1][1]
    assert (k[0][2], k[1][2]) == (319.5, 239.5)


def test_legacy_metre_sizes_migrate_to_millimetres() -> None:
    data = example()
    subject = data["scenario"]["subject"]
    del subject["size_mm"]
    subject["size_meters"] = 0.12
    assert parse_config(data, "legacy.yaml").scenario.subject.size_mm == pytest.approx(120.0)  # type: ignore[union-attr]
    board = {"type": "BOARD", "board_type": "charuco", "rows": 5, "cols": 7, "square_size": 0.04,
             "marker_size": 0.03, "dictionary": "DICT_5X5_100"}  # fmt: skip
    data["scenario"]["subject"] = board
    subject_model = parse_config(data, "legacy.yaml").scenario.subject
    assert isinstance(subject_model, BoardSubject)
    assert subject_model.square_size_mm == pytest.approx(40.0)
    assert subject_model.marker_size_mm == pytest.approx(30.0)


def test_legacy_and_new_field_together_is_refused() -> None:
    data = example()
    data["scenario"]["subject"]["size_meters"] = 0.1
    with pytest.raises(InputError, match=r"size_mm or the legacy size_meters"):
        parse_config(data, "both.yaml")


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    for key in keys[:-1]:
        data = data.setdefault(key, {})
    data[keys[-1]] = value


BAD_CONFIGS = [
    # (dotted key, value, field the error must name, a fragment of the message)
    ("scenario.subject.tag_families", ["tag99h1"], "scenario.subject.tag_families", "unknown tag family"),
    ("scenario.subject.size_mm", -5, "scenario.subject.size_mm", "greater than 0"),
    ("scenario.subject.tags_per_scene", [3, 1], "scenario.subject.tags_per_scene", "min <= max"),
    ("scenario.sampling_mode", "spiral", "scenario.sampling_mode", "random"),
    ("dataset.num_scenes", 0, "dataset.num_scenes", "greater than or equal to 1"),
    ("camera.resolution", [0, 480], "camera.resolution", "positive"),
    ("camera.min_distance", 3.0, "camera", "min_distance (3.0) must not exceed max_distance"),
    ("camera.max_elevation", 120, "camera.max_elevation", "less than or equal to 90"),
    ("camera.intrinsics", {"fx": 600}, "camera.intrinsics", "give fx, fy, cx and cy"),
    ("camera.intrinsics", {"fov": 60, "fx": 600}, "camera.intrinsics", "either fov or fx"),
    (
        "camera.intrinsics",
        {"fov": 60, "distortion_model": "brown_conrady", "distortion_coeffs": [0.1]},
        "camera.intrinsics",
        "brown_conrady takes 5 coefficients, got 1",
    ),
    (
        "camera.intrinsics",
        {"fov": 60, "distortion_model": "fisheye"},
        "camera.intrinsics.distortion_model",
        "",
    ),
    ("lighting.intensity_min", 900, "lighting", "intensity_min (900.0) must not exceed intensity_max"),
    ("renderer.mode", "luxcore", "renderer.mode", "cycles"),
    ("renderer.samples", 0, "renderer.samples", "greater than or equal to 1"),
    ("camera.focal_length", 35, "camera.focal_length", "Extra inputs are not permitted"),
    ("dataset.name", "my job/1", "dataset.name", "String should match pattern"),
    ("dataset.seed", -1, "dataset.seed", "greater than or equal to 0"),
    ("camera.min_roll", 190, "camera", "min_roll (190.0) must not exceed max_roll"),
    ("camera.eval_margin_px", -1, "camera.eval_margin_px", "greater than or equal to 0"),
    ("camera.max_pixel_area", -5, "camera.max_pixel_area", "greater than 0"),
    ("camera.iso_min", 100, "camera", "give both iso_min and iso_max"),
    ("camera.samples_per_scene", 0, "camera.samples_per_scene", "greater than or equal to 1"),
    ("lighting.lights_per_scene", [2, 1], "lighting", "lights_per_scene must be [min, max]"),
    ("noise.salt_pepper", 2, "noise.salt_pepper", "less than or equal to 1"),
]


@pytest.mark.parametrize(("key", "value", "field", "fragment"), BAD_CONFIGS)
def test_bad_config_names_the_file_and_field(
    tmp_path: Path, key: str, value: Any, field: str, fragment: str
) -> None:
    data = copy.deepcopy(example())
    _set(data, key, value)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(InputError) as info:
        load_config(path)
    assert info.value.source == str(path)
    assert info.value.field == field
    assert fragment in str(info.value)
    assert str(info.value).startswith(f"{path}: {field}: ")


def test_pixels_per_module_range_must_be_ordered() -> None:
    data = example()
    data["camera"].update(ppm_min=4.0, ppm_max=2.0)
    with pytest.raises(InputError, match=r"camera: ppm_min \(4.0\) must not exceed ppm_max \(2.0\)"):
        parse_config(data, "ppm.yaml")


BAD_BOARDS = [
    ({"marker_size_mm": 40}, "marker_size_mm"),
    ({"marker_size_mm": 45}, "marker_size_mm"),
    ({"square_size_mm": -1}, "square_size_mm"),
    ({"dictionary": "DICT_9X9_50"}, "dictionary"),
    ({"rows": 0}, "rows"),
]


@pytest.mark.parametrize(("change", "field"), BAD_BOARDS)
def test_bad_board_subject_names_the_field(change: dict[str, Any], field: str) -> None:
    data = yaml.safe_load((DATA / "charuco.yaml").read_text())
    data["scenario"]["subject"].update(change)
    with pytest.raises(InputError) as info:
        parse_config(data, "board.yaml")
    assert field in str(info.value)
    assert info.value.field.startswith("scenario.subject")


def test_unreadable_and_malformed_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="missing.yaml: cannot read"):
        load_config(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("dataset: {name: [unclosed\n")
    with pytest.raises(InputError, match="broken.yaml: not valid YAML"):
        load_config(broken)
    not_mapping = tmp_path / "list.json"
    not_mapping.write_text("[1, 2]")
    with pytest.raises(InputError, match="list.json: the config must be a mapping"):
        load_config(not_mapping)


def test_config_round_trips_through_json() -> None:
    config = load_config(DATA / "design_example.yaml")
    again = GenConfig.model_validate_json(config.model_dump_json())
    assert again == config


def test_missing_required_field_is_named() -> None:
    data = example()
    del data["dataset"]["num_scenes"]
    with pytest.raises(InputError) as info:
        parse_config(data, "job.yaml")
    assert str(info.value) == "job.yaml: dataset.num_scenes: Field required"


# --------------------------------------------------------------------------- per-camera imaging knobs


def test_imaging_sections_default_to_fixed_values() -> None:
    config = load_config(DATA / "design_example.yaml")
    assert config.noise.photons_at_white is None
    assert config.tone_mapping.curves == ["srgb"] and config.tone_mapping.exposure_ev == (0.0, 0.0)
    assert config.tone_mapping.metering == "auto"
    assert config.dynamic_range.black_level == (0.0, 0.0) and config.dynamic_range.white_level == (1.0, 1.0)
    assert not config.dynamics.enabled and config.depth_of_field is None


@pytest.mark.parametrize(
    ("section", "value", "field", "words"),
    [
        ("noise", {"photons_at_white": [2000, 1000]}, "noise.photons_at_white", "min <= max"),
        ("noise", {"photons_at_white": [0, 1000]}, "noise.photons_at_white", "greater than 0"),
        ("tone_mapping", {"exposure_ev": [1, -1]}, "tone_mapping.exposure_ev", "min <= max"),
        ("tone_mapping", {"gamma": [2.4, 1.8]}, "tone_mapping.gamma", "min <= max"),
        ("tone_mapping", {"gamma": [0, 2]}, "tone_mapping.gamma", "greater than 0"),
        ("tone_mapping", {"curves": ["filmic"]}, "tone_mapping.curves", "srgb"),
        ("tone_mapping", {"curves": []}, "tone_mapping.curves", "at least 1"),
        ("dynamic_range", {"black_level": [0.1, 0.0]}, "dynamic_range.black_level", "min <= max"),
        ("dynamic_range", {"white_level": [0.9, 1.2]}, "dynamic_range.white_level", "less than or equal"),
        ("dynamic_range", {"black_level": [0, 0.5], "white_level": [0.4, 1]}, "dynamic_range", "white_level"),
        ("dynamics", {"speed_mps": [1, 0.5]}, "dynamics.speed_mps", "min <= max"),
        ("dynamics", {"angular_speed_dps": [-1, 5]}, "dynamics.angular_speed_dps", "greater than or equal"),
        ("dynamics", {"shutter_s": [0.02, 0.01]}, "dynamics.shutter_s", "min <= max"),
        ("dynamics", {"rolling_shutter_s": [0.03, 0.01]}, "dynamics.rolling_shutter_s", "min <= max"),
        ("depth_of_field", {"fstop": [8, 2]}, "depth_of_field.fstop", "min <= max"),
        ("depth_of_field", {"fstop": [0, 2]}, "depth_of_field.fstop", "greater than 0"),
        ("depth_of_field", {"fstop": [2, 4], "focus_jitter_m": -0.1}, "depth_of_field.focus_jitter_m", ""),
        ("depth_of_field", {"focus_jitter_m": 0.1}, "depth_of_field.fstop", "required"),
    ],
)
def test_bad_imaging_knob_names_its_field(
    section: str, value: dict[str, Any], field: str, words: str
) -> None:
    data = example()
    data[section] = value
    with pytest.raises(InputError) as info:
        parse_config(data, "job.yaml")
    assert info.value.field.startswith(field), info.value.field
    assert words in str(info.value)


@pytest.mark.parametrize(
    ("mode", "dynamics", "field"),
    [
        ("eevee", {"rolling_shutter_s": [0.0, 0.01]}, "dynamics.rolling_shutter_s"),
        ("workbench", {"rolling_shutter_s": [0.0, 0.01]}, "dynamics.rolling_shutter_s"),
        ("workbench", {"shutter_s": [0.0, 0.01]}, "dynamics.shutter_s"),
    ],
)
def test_motion_the_renderer_cannot_show_is_refused(mode: str, dynamics: dict[str, Any], field: str) -> None:
    data = example()
    data["renderer"] = {**data["renderer"], "mode": mode}
    data["dynamics"] = dynamics
    with pytest.raises(InputError) as info:
        parse_config(data, "job.yaml")
    assert info.value.field == field and mode in str(info.value).lower()
    data["renderer"]["mode"] = "cycles"  # Cycles renders both
    assert parse_config(data, "job.yaml").dynamics.enabled
    if "rolling_shutter_s" not in dynamics:
        data["renderer"]["mode"] = "eevee"  # EEVEE renders shutter motion blur
        assert parse_config(data, "job.yaml").dynamics.enabled
