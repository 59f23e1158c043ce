"""Help that teaches: every argument explained with its default, examples that parse, `--version`, and
"did you mean" for misspelled subcommands, flags and config keys."""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest

from render_tag.cli import build_parser, main
from render_tag_shared.config import load_config
from render_tag_shared.errors import InputError

from ..builders import DATA


def subcommands(
    parser: argparse.ArgumentParser, path: str = ""
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """(name as typed after `render-tag`, parser) of every command and sub-command, depth first."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                full = f"{path} {name}".strip()
                yield full, sub
                yield from subcommands(sub, full)


COMMANDS = dict(subcommands(build_parser()))


def test_every_command_is_walked() -> None:
    assert {"compile", "render", "run", "audit", "verify", "preview", "addon build", "addon install"} <= set(
        COMMANDS
    )


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_argument_has_help_with_its_default(name: str) -> None:
    parser = COMMANDS[name]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        label = "/".join(action.option_strings) or action.dest
        assert action.help and action.help != argparse.SUPPRESS, f"{name}: {label} has no help"
        assert len(action.help) >= 15, f"{name}: {label}: help too short to teach: {action.help!r}"
        optional = (bool(action.option_strings) and not action.required) or action.nargs == "?"
        if optional:
            assert "default" in action.help, f"{name}: {label} does not say its default: {action.help!r}"
    assert parser.description


def example_lines(name: str) -> list[str]:
    epilog = COMMANDS[name].epilog or ""
    assert epilog.startswith("examples:"), f"{name}: no examples section"
    lines = [line.strip() for line in epilog.splitlines()[1:] if line.strip()]
    return [re.split(r"\s{2,}", line)[0] for line in lines]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_examples_that_parse(name: str) -> None:
    examples = example_lines(name)
    assert any(re.match(rf"(\w+=\S+ )*render-tag {name}\b", line) for line in examples), examples
    for line in examples:
        words = shlex.split(line)
        while "=" in words[0]:  # an environment variable set for the command
            words.pop(0)
        assert words[0] == "render-tag"
        build_parser().parse_args(words[1:])  # exits 2 (SystemExit) if an example is wrong


def test_help_prints_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["verify", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "render-tag verify out" in out
    assert "--max-focal-error-rel REL" in out and "(default: 0.005)" in out
    assert "in pixels" in out


def test_version_prints_every_component(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    rows = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in out.strip().splitlines())
    assert rows["render-tag (host)"] == importlib.metadata.version("render-tag")
    assert rows["render-tag-shared"] == importlib.metadata.version("render-tag-shared")
    assert rows["render-tag add-on"].startswith("0.")
    assert rows["OpenCV"] == cv2.__version__
    assert rows["Blender"].startswith(("bpy module 4.", "bpy module 5.", "binary", "not found"))


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (["rendr", "x"], "did you mean 'render'?"),
        (["verfy", "out"], "did you mean 'verify'?"),
        (["render", "r.json", "-o", "out", "--wokers", "2"], "did you mean '--workers'?"),
        (["run", "-o", "out", "--resme"], "did you mean '--resume'?"),
        (["addon", "biuld"], "did you mean 'build'?"),
        (["addon", "build", "--singel"], "did you mean '--single'?"),
    ],
)
def test_misspelled_commands_and_flags_get_a_suggestion(
    argv: list[str], hint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert hint in capsys.readouterr().err


def test_no_suggestion_for_nonsense(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["xyzzy"])
    assert "did you mean" not in capsys.readouterr().err


def test_misspelled_config_key_gets_the_nearest_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (DATA / "design_example.yaml").read_text()
    assert "tags_per_scene:" in text and "min_distance:" in text and "renderer:" in text
    bad = tmp_path / "job.yaml"
    bad.write_text(
        text.replace("tags_per_scene:", "tags_per_scen:")
        .replace("min_distance:", "min_distanse:")
        .replace("renderer:", "rendrer:")
    )
    with pytest.raises(InputError) as error:
        load_config(bad)
    assert error.value.field == "scenario.subject.tags_per_scen"
    assert "did you mean `tags_per_scene`?" in error.value.message
    details = "\n".join(error.value.details)
    assert "camera.min_distanse: Extra inputs are not permitted; did you mean `min_distance`" in details
    assert "rendrer: Extra inputs are not permitted; did you mean `renderer`?" in details
    assert main(["compile", str(bad), "-o", str(tmp_path / "r.json")]) == 2
    assert "did you mean `tags_per_scene`?" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_unrelated_config_key_gets_no_suggestion(tmp_path: Path) -> None:
    bad = tmp_path / "job.yaml"
    bad.write_text((DATA / "design_example.yaml").read_text() + "zzz_qqq: 1\n")
    with pytest.raises(InputError) as error:
        load_config(bad)
    assert error.value.field == "zzz_qqq" and "did you mean" not in str(error.value)


def test_misspelled_preset_gets_a_suggestion(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "compile",
        str(DATA / "design_example.yaml"),
        "-o",
        str(tmp_path / "r.json"),
        "--preset",
        "fishey",
    ]
    assert main(argv) == 2
    assert "unknown preset 'fishey'; did you mean `fisheye`?" in capsys.readouterr().err
