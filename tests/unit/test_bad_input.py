"""Every malformed config of issue 10 is bad input: exit 2 at once, the message names the file and the
field, no traceback, nothing written. Each case runs `render-tag compile` in-process under a time
limit, so a case that used to hang fails here instead of hanging the suite."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from render_tag.cli import main
from render_tag.qa.gates import AuditGates
from render_tag_shared.assets import asset_problem
from render_tag_shared.errors import InputError
from render_tag_shared.inputs import MAX_CONFIG_BYTES, parse_json, parse_yaml, read_input_text
from render_tag_shared.recipe_io import load_recipe_file

from ..builders import DATA, time_limit

DESIGN = yaml.safe_load((DATA / "design_example.yaml").read_text(encoding="utf-8"))
CHARUCO = {
    "type": "BOARD",
    "board_type": "charuco",
    "rows": 5,
    "cols": 7,
    "square_size_mm": 40,
    "marker_size_mm": 30,
    "dictionary": "DICT_5X5_100",
}
PNG_HEADER = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x02\x00\x00\x00"


def changed(path: str, value: Any, base: dict[str, Any] = DESIGN) -> dict[str, Any]:
    """The DESIGN example with the value at dotted `path` replaced (`path` may end in a new key)."""
    data = copy.deepcopy(base)
    keys = path.split(".")
    node = data
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value
    return data


def as_json(data: Any) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        path = folder / "config.json"
        path.write_text(json.dumps(data), encoding="utf-8")
        return path

    return write


def as_text(text: str | bytes, name: str = "config.yaml") -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        path = folder / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        return path

    return write


def design_yaml_with(extra: str) -> str:
    return (DATA / "design_example.yaml").read_text(encoding="utf-8") + extra


def legacy_size(value: Any) -> dict[str, Any]:
    data = changed("scenario.subject.size_meters", value)
    del data["scenario"]["subject"]["size_mm"]
    return data


def with_asset_folder(kind: str) -> Callable[[Path], Path]:
    """A config whose background_folder holds one bad `.png` of `kind`."""

    def write(folder: Path) -> Path:
        assets = folder / "backgrounds"
        assets.mkdir()
        (assets / "good.png").write_bytes(PNG_HEADER + b"\x00" * 64)
        bad = assets / "bad.png"
        if kind == "folder":
            bad.mkdir()
        elif kind == "text":
            bad.write_text("not an image", encoding="utf-8")
        elif kind == "empty":
            bad.write_bytes(b"")
        else:
            bad.symlink_to(kind)  # /dev/zero, a /proc file
        return as_json(changed("lighting.background_folder", "backgrounds"))(folder)

    return write


def yaml_bomb() -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]")
    return "\n".join(lines) + "\ndataset: {name: bomb, num_scenes: 1}\n"


CASES: list[tuple[str, Callable[[Path], Path], list[str]]] = [
    # files that are not text, or not a file
    ("non-utf8", as_text(b"dataset: {name: caf\xe9, num_scenes: 1}\n"), ["not UTF-8"]),
    ("binary junk", as_text(bytes(range(256)) * 8), ["not UTF-8"]),
    ("nul bytes", as_text(b"dataset:\x00\x00\x00 {}\n"), ["not valid YAML"]),
    ("folder", lambda folder: folder, ["a folder"]),
    ("missing", lambda folder: folder / "nope.yaml", ["cannot read"]),
    ("/dev/zero", lambda folder: Path("/dev/zero"), ["a device"]),
    ("too large", as_text("#" * (MAX_CONFIG_BYTES + 10) + "\n"), ["too large"]),
    ("truncated yaml", as_text(design_yaml_with("camera: {resolution: [640,")), ["not valid YAML"]),
    # structure
    ("json nested 600", as_text('{"dataset": ' + "[" * 600 + "]" * 600 + "}", "c.json"), ["nested"]),
    ("yaml nested 600", as_text("dataset: " + "[" * 600 + "]" * 600 + "\n"), ["nested"]),
    ("yaml nested 600 blocks", as_text("".join(f"{' ' * i}k{i}:\n" for i in range(600))), ["nested"]),
    ("yaml bomb", as_text(yaml_bomb()), ["more than"]),
    (
        "json 5000 digits",
        as_text('{"dataset": {"num_scenes": ' + "9" * 5000 + "}}", "c.json"),
        ["5000 digits"],
    ),
    ("yaml 5000 digits", as_text("dataset: {num_scenes: " + "9" * 5000 + "}\n"), ["5000 digits"]),
    ("json NaN", as_text('{"dataset": {"num_scenes": NaN}}', "c.json"), ["NaN"]),
    ("json 1e999", as_text('{"dataset": {"num_scenes": 1e999}}', "c.json"), ["out of range"]),
    (
        "yaml duplicate key",
        as_text(design_yaml_with("dataset: {name: b, num_scenes: 3}\n")),
        ["'dataset'", "twice"],
    ),
    (
        "yaml nested duplicate key",
        as_text(design_yaml_with("noise: {salt_pepper: 0.1, salt_pepper: 0.2}\n")),
        ["'salt_pepper'", "twice"],
    ),
    ("json duplicate key", as_text('{"dataset": {"name": "a", "name": "b"}}', "c.json"), ["'name'", "twice"]),
    # sizes and counts
    ("num_scenes 1e30 json", as_json(changed("dataset.num_scenes", 1e30)), ["dataset.num_scenes"]),
    (
        "num_scenes 1e30 yaml",
        as_text(design_yaml_with("").replace("num_scenes: 8", "num_scenes: 1e30")),
        ["dataset.num_scenes"],
    ),
    ("num_scenes 10**30", as_json(changed("dataset.num_scenes", 10**30)), ["dataset.num_scenes"]),
    ("num_scenes 1e6 float", as_json(changed("dataset.num_scenes", 1e6)), ["dataset.num_scenes"]),
    ("num_scenes over the limit", as_json(changed("dataset.num_scenes", 10**6 + 1)), ["dataset.num_scenes"]),
    (
        "samples_per_scene 1e6",
        as_json(changed("camera.samples_per_scene", 10**6)),
        ["camera.samples_per_scene"],
    ),
    ("samples_per_scene 65", as_json(changed("camera.samples_per_scene", 65)), ["camera.samples_per_scene"]),
    (
        "square_size_mm 1e308",
        as_json(changed("scenario.subject", {**CHARUCO, "square_size_mm": 1e308})),
        ["scenario.subject.square_size_mm"],
    ),
    ("size_mm 1e308", as_json(changed("scenario.subject.size_mm", 1e308)), ["scenario.subject.size_mm"]),
    (
        "lights_per_scene [1, 1e30]",
        as_json(changed("lighting.lights_per_scene", [1, 1e30])),
        ["lighting.lights_per_scene[1]"],
    ),
    (
        "lights_per_scene [1, 10**30]",
        as_json(changed("lighting.lights_per_scene", [1, 10**30])),
        ["lighting.lights_per_scene[1]"],
    ),
    (
        "lights_per_scene [1, 10**6]",
        as_json(changed("lighting.lights_per_scene", [1, 10**6])),
        ["lighting.lights_per_scene[1]"],
    ),
    (
        "tags_per_scene [1, 1e30]",
        as_json(changed("scenario.subject.tags_per_scene", [1, 1e30])),
        ["scenario.subject.tags_per_scene[1]"],
    ),
    ("light of 4e307 W", as_json(changed("lighting.intensity_max", 4e307)), ["lighting.intensity_max"]),
    (
        "shutter of 1e308 s",
        as_json(changed("dynamics", {"shutter_s": [0, 1e308]})),
        ["dynamics.shutter_s[1]"],
    ),
    ("resolution 100000²", as_json(changed("camera.resolution", [100000, 100000])), ["camera.resolution[0]"]),
    ("samples 1e9", as_json(changed("renderer.samples", 10**9)), ["renderer.samples"]),
    (
        "border_bits 9",
        as_json(changed("scenario.subject", {**CHARUCO, "border_bits": 9})),
        ["scenario.subject.border_bits"],
    ),
    ("distance 1e300 m", as_json(changed("camera.max_distance", 1e300)), ["camera.max_distance"]),
    # booleans and strings where numbers belong
    ("num_scenes true", as_json(changed("dataset.num_scenes", True)), ["dataset.num_scenes", "True"]),
    ("size_mm true", as_json(changed("scenario.subject.size_mm", True)), ["scenario.subject.size_mm"]),
    ("intensity_max true", as_json(changed("lighting.intensity_max", True)), ["lighting.intensity_max"]),
    ("resolution [true, 480]", as_json(changed("camera.resolution", [True, 480])), ["camera.resolution[0]"]),
    ("size_mm '100'", as_json(changed("scenario.subject.size_mm", "100")), ["scenario.subject.size_mm"]),
    ("legacy size_meters '0.1'", as_json(legacy_size("0.1")), ["scenario.subject.size_meters", "'0.1'"]),
    ("legacy size_meters true", as_json(legacy_size(True)), ["scenario.subject.size_meters"]),
    # asset folders
    (
        "background folder holds a folder",
        with_asset_folder("folder"),
        ["lighting.background_folder", "bad.png"],
    ),
    (
        "background folder holds text",
        with_asset_folder("text"),
        ["lighting.background_folder", "not an image"],
    ),
    (
        "background folder holds an empty file",
        with_asset_folder("empty"),
        ["lighting.background_folder", "empty"],
    ),
    (
        "background folder links /dev/zero",
        with_asset_folder("/dev/zero"),
        ["lighting.background_folder", "bad.png"],
    ),
    ("background folder links /proc", with_asset_folder("/proc/self/status"), ["lighting.background_folder"]),
]


@pytest.mark.parametrize(("name", "make", "words"), CASES, ids=[case[0] for case in CASES])
def test_a_bad_config_is_refused_at_once(
    name: str, make: Callable[[Path], Path], words: list[str], tmp_path: Path, capsys: Any
) -> None:
    config = make(tmp_path)
    out = tmp_path / "out" / "recipes.json"
    with time_limit(20):
        code = main(["compile", str(config), "-o", str(out)])
    captured = capsys.readouterr()
    assert code == 2, captured.err
    assert not out.parent.exists(), "something was written"
    assert "Traceback" not in captured.err
    first = captured.err.splitlines()[0]
    assert first.startswith(f"render-tag: error: {config}"), first
    for word in words:
        assert word in captured.err, captured.err


def test_a_fifo_config_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    """The real CLI in its own process: a FIFO with no writer would block `open` for ever."""
    fifo = tmp_path / "config.yaml"
    os.mkfifo(fifo)
    code = "import sys; from render_tag.cli import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run(
        [sys.executable, "-c", code, "compile", str(fifo), "-o", str(tmp_path / "out.json")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert f"{fifo}: cannot read: a FIFO" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out.json").exists()


def test_a_preset_file_and_a_gate_file_are_read_as_strictly(tmp_path: Path, capsys: Any) -> None:
    preset = tmp_path / "preset.yaml"
    preset.write_text("camera: {samples_per_scene: 2, samples_per_scene: 3}\n", encoding="utf-8")
    code = main(
        ["compile", str(DATA / "design_example.yaml"), "--preset", str(preset), "-o", str(tmp_path / "r")]
    )
    err = capsys.readouterr().err
    assert code == 2 and str(preset) in err and "'samples_per_scene' is given twice" in err
    gates = tmp_path / "gates.yaml"
    gates.write_text("min_score: true\n", encoding="utf-8")
    with pytest.raises(InputError) as info:
        AuditGates.load(gates)
    assert info.value.field == "min_score"
    os.mkfifo(tmp_path / "gates.fifo")
    with time_limit(10), pytest.raises(InputError, match="FIFO"):
        AuditGates.load(tmp_path / "gates.fifo")


def test_strict_parsers_accept_what_configs_really_hold() -> None:
    """The guards refuse junk, not YAML: anchors, merge keys, big-but-sane numbers all still load."""
    text = (
        "base: &b {x: 1, y: 2.5}\nother:\n  <<: *b\n  y: 3\nseed: 18446744073709551615\nv: [1.0e+3, -0.0]\n"
    )
    assert parse_yaml(text, "t") == {
        "base": {"x": 1, "y": 2.5},
        "other": {"x": 1, "y": 3},
        "seed": 2**64 - 1,
        "v": [1000.0, -0.0],
    }
    assert parse_json('{"a": [1, 2.5e3, {"b": null}]}', "t") == {"a": [1, 2500.0, {"b": None}]}
    with pytest.raises(InputError, match="nested"):
        parse_json("[" * 101 + "]" * 101, "t")
    parse_json("[" * 99 + "]" * 99, "t")


def test_read_input_text_refuses_a_file_grown_past_its_limit(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("a: 1\n" * 100, encoding="utf-8")
    assert read_input_text(path, max_bytes=500) == "a: 1\n" * 100
    with pytest.raises(InputError, match="too large"):
        read_input_text(path, max_bytes=499)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (PNG_HEADER + b"\x00" * 16, None),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 16, None),
        (b"\x76\x2f\x31\x01" + b"\x00" * 16, None),
        (b"#?RADIANCE\n" + b"\x00" * 16, None),
        (b"GIF89a" + b"\x00" * 16, "not an image"),
        (PNG_HEADER[:16] + b"\x00\x01\x86\xa0\x00\x01\x86\xa0" + b"\x00" * 16, "100000x100000"),
    ],
)
def test_asset_headers(tmp_path: Path, content: bytes, words: str | None) -> None:
    path = tmp_path / "asset"
    path.write_bytes(content)
    problem = asset_problem(path)
    assert (problem is None) if words is None else (problem is not None and words in problem), problem


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("fifo", None, "FIFO"),
        ("duplicate key", '{"recipes": [], "recipes": []}', "'recipes' is given twice"),
        ("non-utf8", b'{"recipes": ["\xff"]}', "not UTF-8"),
        ("nested 5000", "[" * 5000 + "]" * 5000, "nested"),
        ("scene_id of 5000 digits", '{"recipes": [{"scene_id": ' + "1" * 5000 + "}]}", "5000 digits"),
    ],
)
def test_a_bad_recipe_file_is_refused(
    name: str, content: str | bytes | None, words: str, tmp_path: Path
) -> None:
    path = tmp_path / "recipes.json"
    if content is None:
        os.mkfifo(path)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with time_limit(10), pytest.raises(InputError) as info:
        load_recipe_file(path)
    assert info.value.source == str(path) and words in str(info.value)
