"""The `render-tag` command line: parses arguments and hands each command to its module here.

The CLI is the only layer that knows about arguments, printing and exit codes (exits.py); the
commands' modules (compile, render, dataset, qa, addon) print what the domain functions return.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ..batch.plan import DEFAULT_CHUNK_SIZE
from .exits import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, guarded
from .say import starting

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "build_parser", "main"]


def positive_int(text: str) -> int:
    """argparse type of a count that must be at least 1 (argparse names the option and exits 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of 0 or more, got {text}")
    return value


def positive_float(text: str) -> float:
    """A threshold in pixels: above zero (a limit of 0 px can never be met by a real detector)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number above 0, got {text}")
    return value


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


STRICT_PPM_HELP = (
    "refuse (exit 2) rather than warn when a camera sees markers below 3.5 px per marker module "
    "(default: warn)"
)


def _cmd_compile(args: argparse.Namespace) -> int:
    from .compile import main_compile

    return main_compile(
        args.config, args.output, presets=args.preset, shard=args.shard, strict_ppm=args.strict_ppm
    )


def _cmd_render(args: argparse.Namespace) -> int:
    starting(f"render {args.recipes} into {args.output}: checking the recipes, then starting the workers")
    from .render import main_render

    return main_render(
        args.recipes,
        args.output,
        workers=args.workers,
        resume=args.resume,
        force=args.force,
        shard=args.shard,
        blender=args.blender,
        dask=args.dask,
        chunk_size=args.chunk_size,
    )


def _cmd_plan(args: argparse.Namespace) -> int:
    from .render import main_plan

    return main_plan(args.source, args.output, args.chunk_size, args.preset, blender=args.blender)


def _cmd_render_chunk(args: argparse.Namespace) -> int:
    starting(f"render-chunk {args.plan} into {args.output}: checking the plan, then starting the workers")
    from .render import main_render_chunk

    return main_render_chunk(
        args.plan,
        args.chunk,
        args.output,
        workers=args.workers,
        resume=args.resume,
        force=args.force,
        blender=args.blender,
    )


def _cmd_run(args: argparse.Namespace) -> int:
    what = args.config or "the built-in default job"
    starting(f"run {what} into {args.output}: compiling, then rendering, merging, auditing and the report")
    from .render import main_run

    return main_run(
        args.config,
        args.output,
        presets=args.preset,
        workers=args.workers,
        resume=args.resume,
        force=args.force,
        blender=args.blender,
        shard=args.shard,
        dask=args.dask,
        chunk_size=args.chunk_size,
        strict_ppm=args.strict_ppm,
    )


def _cmd_merge(args: argparse.Namespace) -> int:
    from .dataset import main_merge

    return main_merge(args.folders, dest=args.output)


def _cmd_audit(args: argparse.Namespace) -> int:
    starting(f"audit {args.folder}")
    from .qa import main_audit

    return main_audit(args.folder, args.gates, diff=args.diff)


def _cmd_verify(args: argparse.Namespace) -> int:
    starting(f"verify {args.folder}: OpenCV's detectors on every image")
    from .qa import main_verify

    return main_verify(
        args.folder,
        config_path=args.config,
        min_detection_rate=args.min_detection_rate,
        max_mean_offset_px=args.max_mean_offset_px,
        max_median_centre_error_px=args.max_median_centre_error_px,
        max_median_error_px=args.max_median_error_px,
        max_p95_error_px=args.max_p95_error_px,
        max_focal_error_rel=args.max_focal_error_rel,
        max_principal_point_error_px=args.max_principal_point_error_px,
    )


def _cmd_preview(args: argparse.Namespace) -> int:
    from .qa import main_preview

    return main_preview(args.folder, scene=args.scene, output=args.output)


def _cmd_report(args: argparse.Namespace) -> int:
    from .qa import main_report

    return main_report(args.folder)


def _cmd_export(args: argparse.Namespace) -> int:
    from .dataset import main_export

    return main_export(args.folder, dest=args.output)


def _cmd_target(args: argparse.Namespace) -> int:
    from .target import main_target

    return main_target(args.source, args.output, margin_mm=args.margin_mm, paper=args.paper)


def _cmd_addon_build(args: argparse.Namespace) -> int:
    from .addon import main_build

    return main_build(args.output, split_platforms=not args.single)


def _cmd_addon_install(args: argparse.Namespace) -> int:
    from .addon import main_install

    return main_install(args.zip, blender=args.blender)


def _verify_help(name: str, text: str) -> str:
    """Help of one verify threshold with its default, read from the one place defaults live."""
    from ..qa.gates import VerifyThresholds

    return f"{text} (default: {VerifyThresholds.model_fields[name].default})"


def build_parser() -> argparse.ArgumentParser:
    from ..compile.presets import PRESETS
    from .guide import EXAMPLES, Parser, VersionAction

    parser = Parser(
        prog="render-tag",
        description="Synthetic fiducial-marker datasets rendered with Blender. "
        "`render-tag COMMAND --help` explains a command, with examples.",
        epilog="start here:\n  render-tag run -o output/demo      the built-in job: compile, render, "
        "merge, audit\n  render-tag verify output/demo      OpenCV's detectors against the ground truth",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=VersionAction)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str, handler: Callable[[argparse.Namespace], int] | None, text: str, parent: Any = commands
    ) -> argparse.ArgumentParser:
        sub = parent.add_parser(
            name.split()[-1],
            help=text,
            description=text,
            epilog=EXAMPLES[name],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.set_defaults(_parser=sub)
        if handler is not None:
            sub.set_defaults(handler=handler)
        return sub

    presets = ", ".join(sorted(PRESETS))
    preset_help = (
        f"a built-in preset ({presets}) or a YAML/JSON preset file, merged over the config; "
        "repeat it to apply several in order, later ones win (default: none)"
    )
    blender_help = (
        "a Blender binary to render with (default: $BLENDER, else `blender` on PATH, else the bpy module "
        "of this Python)"
    )

    def render_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--workers",
            type=positive_int,
            default=None,
            metavar="N",
            help="Blender worker processes, about 300 MB each (default: sized from the cores and memory)",
        )
        sub.add_argument(
            "--resume",
            action="store_true",
            help="keep the scenes OUT already holds complete, render the rest (default: off)",
        )
        sub.add_argument(
            "--force",
            action="store_true",
            help="clear what OUT holds from an earlier render and render every scene again (default: off)",
        )
        sub.add_argument("--blender", default=None, metavar="PATH", help=blender_help)

    def dask_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--dask",
            default=None,
            metavar="local[:N]|tcp://HOST:PORT",
            help="render on Dask distributed: a local cluster of N workers, or an existing scheduler "
            "(default: off, the local worker pool)",
        )
        sub.add_argument(
            "--chunk-size",
            type=positive_int,
            default=None,
            metavar="N",
            help="scenes per Dask task (default: chosen from the scene and worker counts)",
        )

    def shard_option(sub: argparse.ArgumentParser, what: str) -> None:
        sub.add_argument(
            "--shard",
            default=None,
            metavar="I/N",
            help=f"{what} slice I of N (0-based), the same scenes whatever machine {what}s it "
            "(default: all scenes, or the cluster's array index: $SLURM_ARRAY_TASK_ID ...)",
        )

    sub = command("compile", _cmd_compile, "compile a config into deterministic recipes")
    sub.add_argument("config", help="the job config, YAML or JSON (DESIGN.md has an example)")
    sub.add_argument("-o", "--output", required=True, metavar="RECIPES", help="the recipes.json to write")
    sub.add_argument("--preset", action="append", default=[], metavar="NAME|FILE", help=preset_help)
    shard_option(sub, "compile")
    sub.add_argument("--strict-ppm", action="store_true", help=STRICT_PPM_HELP)

    sub = command("render", _cmd_render, "render recipes on a pool of Blender workers, then merge OUT")
    sub.add_argument("recipes", help="a recipes.json written by `render-tag compile` (or by the add-on)")
    sub.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT",
        help="the dataset folder: images/, labels/, rich_truth.json, coco_labels.json ... (created)",
    )
    render_options(sub)
    dask_options(sub)
    shard_option(sub, "render")

    sub = command("plan", _cmd_plan, "the plan a scheduler holds: recipes, hashes, versions, chunks")
    sub.add_argument(
        "source", metavar="CONFIG|RECIPES", help="a job config (compiled first) or a recipes.json"
    )
    sub.add_argument("-o", "--output", required=True, metavar="PLAN", help="the plan.json to write")
    sub.add_argument(
        "--chunk-size",
        type=positive_int,
        default=DEFAULT_CHUNK_SIZE,
        metavar="N",
        help="scenes per chunk, one cluster task each (default: %(default)s)",
    )
    sub.add_argument("--preset", action="append", default=[], metavar="NAME|FILE", help=preset_help)
    sub.add_argument(
        "--blender",
        default=None,
        metavar="PATH",
        help="the Blender whose version the plan records (default: as render finds one: $BLENDER, PATH, bpy)",
    )

    sub = command("render-chunk", _cmd_render_chunk, "render one chunk of a plan (verifies its hash first)")
    sub.add_argument("plan", help="a plan.json written by `render-tag plan`")
    sub.add_argument(
        "--chunk",
        default=None,
        metavar="K",
        help="the chunk to render, 0-based (default: $JOB_COMPLETION_INDEX, $SLURM_ARRAY_TASK_ID, "
        "$AWS_BATCH_JOB_ARRAY_INDEX ...)",
    )
    sub.add_argument(
        "-o", "--output", required=True, metavar="OUT", help="this chunk's folder (merge them afterwards)"
    )
    render_options(sub)

    sub = command("run", _cmd_run, "compile, render, merge and audit (no CONFIG: the default job)")
    sub.add_argument(
        "config",
        nargs="?",
        default=None,
        help="the job config, YAML or JSON "
        "(default: the built-in job: 4 scenes of loose tags, 2 of a ChArUco board)",
    )
    sub.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT",
        help="the dataset folder: recipes, images, labels, COCO, audit, preview (created)",
    )
    sub.add_argument("--preset", action="append", default=[], metavar="NAME|FILE", help=preset_help)
    render_options(sub)
    dask_options(sub)
    shard_option(sub, "render")
    sub.add_argument("--strict-ppm", action="store_true", help=STRICT_PPM_HELP)

    sub = command("merge", _cmd_merge, "merge labels/ of one or more folders into the dataset files")
    sub.add_argument(
        "folders",
        nargs="+",
        metavar="FOLDER",
        help="dataset, shard or chunk folders whose labels/ to merge (chunks: every chunk of one plan)",
    )
    sub.add_argument(
        "-o", "--output", default=None, metavar="DEST", help="the merged dataset (default: the first FOLDER)"
    )

    sub = command("audit", _cmd_audit, "integrity gates and distributions")
    sub.add_argument("folder", metavar="OUT", help="a dataset folder (writes OUT/audit.json and OUT/audit/)")
    sub.add_argument(
        "--gates",
        default=None,
        metavar="FILE",
        help="a YAML or JSON file of gate limits, at the top level or under `audit: {gates: ...}` "
        "(default: the built-in gates, README 'Auditing a dataset')",
    )
    sub.add_argument(
        "--diff",
        default=None,
        metavar="OTHER",
        help="also audit another dataset folder (read only) and report what changed from OUT to OTHER: "
        "counts, score, distributions, gate statuses (written to OUT/audit_diff.json; default: none)",
    )

    sub = command("verify", _cmd_verify, "OpenCV's detectors against the ground truth")
    sub.add_argument(
        "folder", metavar="OUT", help="a dataset folder with images (writes OUT/verify.json, verify.png)"
    )
    sub.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="a YAML or JSON file of thresholds, under `verify:` or at the top level; the flags below "
        "override it (default: the built-in thresholds)",
    )
    thresholds = {
        "min_detection_rate": (fraction, "X", "the fraction (0..1) of fully visible tags and visible board "
                               "keypoints the detector must find, per family"),
        "max_mean_offset_px": (positive_float, "PX", "the largest |mean signed offset| in x or in y between "
                               "detected and true corners, in pixels: catches a shifted ground truth"),
        "max_median_centre_error_px": (positive_float, "PX", "the largest median error of a tag's centre "
                                       "(the mean of its 4 corners), in pixels"),
        "max_median_error_px": (positive_float, "PX", "the largest median corner error, in pixels (loose: "
                                "ArUco's refinement pulls convex corners ~0.3-0.7 px inwards)"),
        "max_p95_error_px": (positive_float, "PX", "the largest 95th percentile of the corner error, "
                             "in pixels"),
        "max_focal_error_rel": (positive_float, "REL", "ChArUco: the largest relative error of fx and fy "
                                "from cv2.calibrateCamera (0.005 = 0.5 %%)"),
        "max_principal_point_error_px": (positive_float, "PX", "ChArUco: the largest error of cx and cy "
                                         "from cv2.calibrateCamera, in pixels"),
    }  # fmt: skip
    for name, (kind, metavar, text) in thresholds.items():
        sub.add_argument(
            "--" + name.replace("_", "-"),
            type=kind,
            default=None,
            metavar=metavar,
            help=_verify_help(name, text),
        )

    sub = command("preview", _cmd_preview, "contact sheet PNG with the ground truth drawn on")
    sub.add_argument("folder", metavar="OUT", help="a dataset folder with images")
    sub.add_argument(
        "--scene",
        type=non_negative_int,
        default=None,
        metavar="N",
        help="only the cameras of scene N (0, 1, ...; default: up to 16 images spread over the dataset)",
    )
    sub.add_argument(
        "-o",
        "--output",
        default=None,
        metavar="PNG",
        help="the PNG to write (default: OUT/preview.png, or OUT/preview/sceneNNNNNN.png with --scene)",
    )

    sub = command("report", _cmd_report, "OUT/report.html: the dataset card, pictures and figures, one file")
    sub.add_argument("folder", metavar="OUT", help="the dataset folder (writes OUT/report.html)")

    sub = command("export", _cmd_export, "Kalibr target.yaml, OpenCV board parameters, camera_info YAML")
    sub.add_argument("folder", metavar="OUT", help="a dataset folder")
    sub.add_argument(
        "-o", "--output", default=None, metavar="DIR", help="the folder to write into (default: OUT/exports)"
    )

    sub = command("target", _cmd_target, "a board's printable SVG + PDF at true scale and its target yaml")
    sub.add_argument(
        "source",
        metavar="CONFIG|BOARD-SPEC",
        help="a config with a BOARD subject, a board file, or inline YAML such as "
        "'{board_type: checkerboard, rows: 7, cols: 10, square_size_mm: 25}'",
    )
    sub.add_argument(
        "-o", "--output", required=True, metavar="DIR", help="the folder to write into (created)"
    )
    sub.add_argument(
        "--margin-mm",
        type=non_negative_float,
        default=None,
        metavar="MM",
        help="white margin around the pattern, millimetres (default: the subject's, else 10)",
    )
    sub.add_argument(
        "--paper",
        default=None,
        metavar="SIZE",
        help="A0..A4, letter, legal, tabloid: the board centred at true scale on that sheet "
        "(default: a page of the board plus its margin)",
    )

    addon = command("addon", None, "build or install the Blender extension")
    addon_commands = addon.add_subparsers(dest="addon_command", required=True, metavar="ACTION")
    sub = command("addon build", _cmd_addon_build, "build the extension zips", addon_commands)
    sub.add_argument(
        "-o", "--output", default="dist", metavar="DIR", help="the folder for the zips (default: %(default)s)"
    )
    sub.add_argument(
        "--single",
        action="store_true",
        help="one zip for this platform only (default: one per platform: linux, windows, macOS x64/arm64)",
    )
    sub = command("addon install", _cmd_addon_install, "install the extension into a Blender", addon_commands)
    sub.add_argument(
        "zip",
        nargs="?",
        default=None,
        help="the extension zip to install (default: build one for this platform first)",
    )
    sub.add_argument(
        "--blender",
        default=None,
        metavar="PATH",
        help="the Blender binary to install into (default: $BLENDER, else `blender` on PATH)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return guarded(lambda: handler(args))


if __name__ == "__main__":
    sys.exit(main())
