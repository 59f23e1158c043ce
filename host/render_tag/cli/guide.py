"""Help that teaches: each command's examples, `render-tag --version`, and "did you mean".

argparse (Python 3.11) names a misspelled subcommand or flag but suggests nothing; `Parser` adds the
nearest valid names (difflib), for subcommands, for flags and for choices. The examples are the
epilog of each command's `--help`, kept here beside each other so that they read as one manual.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.metadata
import importlib.util
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

__all__ = ["EXAMPLES", "Parser", "VersionAction", "close_names", "versions_text"]

EXAMPLES: dict[str, str] = {
    "compile": """\
examples:
  render-tag compile job.yaml -o recipes.json              same config -> same bytes
  render-tag compile job.yaml -o r.json --preset fisheye   a built-in preset over the config
  render-tag compile job.yaml -o part0.json --shard 0/4    the first quarter of the scenes""",
    "render": """\
examples:
  render-tag render recipes.json -o out                    workers sized from the cores
  render-tag render recipes.json -o out --workers 2 --resume
  render-tag render recipes.json -o out --dask local:4     on a local Dask cluster
  render-tag render recipes.json -o out --shard 1/8        one eighth (a cluster array task)""",
    "plan": """\
examples:
  render-tag plan job.yaml -o plan.json                    then one render-chunk per chunk
  render-tag plan recipes.json -o plan.json --chunk-size 16""",
    "render-chunk": """\
examples:
  render-tag render-chunk plan.json --chunk 3 -o chunks/3
  SLURM_ARRAY_TASK_ID=3 render-tag render-chunk plan.json -o chunks/3
  render-tag merge chunks/* -o out                         then merge every chunk""",
    "run": """\
examples:
  render-tag run -o output/demo                            the built-in default job
  render-tag run job.yaml -o out --workers 2
  render-tag run job.yaml -o out --preset charuco-5x7 --preset fisheye
  render-tag run job.yaml -o out --resume                  finish an interrupted run""",
    "merge": """\
examples:
  render-tag merge out                                     rebuild out's dataset files from labels/
  render-tag merge shard0 shard1 shard2 -o out             shards into one dataset""",
    "audit": """\
examples:
  render-tag audit out                                     gates, distributions, audit.json
  render-tag audit out --gates gates.yaml                  your own limits (audit: {gates: ...})
  render-tag audit old --diff new                          what changed from old to new""",
    "verify": """\
examples:
  render-tag verify out                                    OpenCV's detectors on the pixels
  render-tag verify out --max-median-centre-error-px 0.2   one threshold tighter
  render-tag verify out --config limits.yaml               thresholds under `verify:`""",
    "preview": """\
examples:
  render-tag preview out                                   up to 16 images, ground truth drawn on
  render-tag preview out --scene 3 -o scene3.png           the cameras of scene 3""",
    "report": """\
examples:
  render-tag report out                                    writes out/report.html (run, audit, verify do too)
  render-tag report output/demo                            one self-contained page, no network""",
    "target": """\
examples:
  render-tag target tests/data/charuco.yaml -o print/     target.svg, target.pdf, charuco_board.yaml
  render-tag target board.yaml -o grid/ --paper A3         a board file, centred on an A3 sheet""",
    "export": """\
examples:
  render-tag export out                                    Kalibr yaml, OpenCV board, camera_info
  render-tag export out -o calib/""",
    "addon": """\
examples:
  render-tag addon build -o dist                           the extension zips
  render-tag addon install --blender /opt/blender/blender""",
    "addon build": """\
examples:
  render-tag addon build                                   zips for every platform into dist/
  render-tag addon build -o dist --single                  one zip for this platform""",
    "addon install": """\
examples:
  render-tag addon install                                 build, then install into the Blender found
  render-tag addon install dist/render_tag-0.1.0-linux_x64.zip --blender ~/blender/blender""",
}
"""The examples section (argparse epilog) of each command, by its name as typed after `render-tag`."""


def close_names(word: str, names: Sequence[str]) -> list[str]:
    """The valid names nearest to a misspelled `word`, best first: the best match and any as close as it
    (difflib's ratio within 0.05), at most three. Leading dashes are not compared: every flag has them."""
    stem = word.lstrip("-")
    ratios = ((difflib.SequenceMatcher(None, stem, name.lstrip("-")).ratio(), name) for name in names)
    scored = sorted(ratios, reverse=True)
    if not scored or scored[0][0] < 0.6:
        return []
    return [name for ratio, name in scored[:3] if ratio >= max(0.6, scored[0][0] - 0.05)]


def _did_you_mean(word: str, names: Sequence[str]) -> str:
    close = close_names(word, names)
    return f"; did you mean {' or '.join(repr(n) for n in close)}?" if close else ""


class Parser(argparse.ArgumentParser):
    """argparse with "did you mean" for misspelled subcommands, choices and flags."""

    def error(self, message: str) -> NoReturn:
        invalid = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if invalid:
            message += _did_you_mean(invalid.group(1), re.findall(r"'([^']*)'", invalid.group(2)))
        unknown = re.match(r"unrecognized arguments: (.*)", message)
        if unknown:
            flags = [s for s in self._option_string_actions if s.startswith("--")]
            for word in unknown.group(1).split():
                if word.startswith("-"):
                    message += _did_you_mean(word.split("=", 1)[0], flags)
        super().error(message)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, extras = super().parse_known_args(args, namespace)
        chosen: Parser | None = getattr(parsed, "_parser", None)
        if extras and chosen is not None and chosen is not self:
            # The top parser would report these without knowing the subcommand's flags.
            chosen.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras


# -- versions --------------------------------------------------------------------------------------


def _distribution_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _blender_versions() -> list[str]:
    """What would render: the `bpy` module (version from its metadata: importing it costs a second) and a
    Blender binary ($BLENDER, else PATH; its `--version`, no worker started)."""
    import subprocess

    from render_tag_shared.errors import InputError

    from ..batch.launcher import find_blender

    found = []
    if importlib.util.find_spec("bpy") is not None:
        found.append(f"bpy module {_distribution_version('bpy')}")
    try:
        binary = find_blender(None)
    except InputError as exc:
        found.append(f"binary: {exc}")
        binary = None
    if binary is not None:
        try:
            done = subprocess.run(
                [binary, "-b", "--factory-startup", "--version"], capture_output=True, text=True, timeout=60
            )
            first = done.stdout.strip().splitlines()[0] if done.stdout.strip() else "version unknown"
        except (OSError, subprocess.SubprocessError) as exc:
            first = f"does not run ({exc})"
        found.append(f"binary {first.removeprefix('Blender ').strip()} ({binary})")
    return found or ["not found (install the bpy module or pass --blender PATH)"]


def versions_text() -> str:
    """`render-tag --version`: host, add-on, shared, Blender and OpenCV, one a line."""
    from ..addon_source import addon_dir, addon_version

    try:
        import cv2

        opencv = str(cv2.__version__)
    except ImportError:
        opencv = "not installed"
    lines = [
        f"render-tag (host)        {_distribution_version('render-tag')}",
        f"render-tag add-on        {addon_version()} ({addon_dir()})",
        f"render-tag-shared        {_distribution_version('render-tag-shared')}",
        *(f"Blender                  {line}" for line in _blender_versions()),
        f"OpenCV                   {opencv}",
        f"Python                   {sys.version.split()[0]}",
    ]
    return "\n".join(lines)


class VersionAction(argparse.Action):
    """`--version`: computed when asked (it looks for Blender), printed, exit 0."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        kwargs.setdefault("help", "print the host, add-on, shared, Blender and OpenCV versions and exit")
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        print(versions_text())
        parser.exit()
