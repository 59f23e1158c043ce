"""The `render-tag` command line: parses arguments and hands each command to its module here.

The CLI is the only layer that knows about arguments, printing and exit codes (exits.py); the
commands' modules (compile, render, dataset, qa, addon) print what the domain functions return.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

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


STRICT_PPM_HELP = "refuse (exit 2) rather than warn when a camera sees markers below 3.5 px per module"


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

    return main_audit(args.folder, args.gates)


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="render-tag", description="Synthetic fiducial-marker datasets rendered with Blender."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str, handler: Callable[[argparse.Namespace], int], text: str
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=text, description=text)
        sub.set_defaults(handler=handler)
        return sub

    def render_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--workers", type=positive_int, default=None, help="Blender workers (default: from the cores)"
        )
        sub.add_argument("--resume", action="store_true", help="skip what is complete, redo what is not")
        sub.add_argument("--force", action="store_true", help="redo everything")
        sub.add_argument("--blender", default=None, help="a Blender binary (default: $BLENDER, PATH, bpy)")

    def dask_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--dask",
            default=None,
            metavar="local[:N]|tcp://HOST:PORT",
            help="render on Dask distributed: a local cluster of N workers, or an existing scheduler",
        )
        sub.add_argument(
            "--chunk-size", type=positive_int, default=None, help="scenes per Dask task (default: auto)"
        )

    sub = command("compile", _cmd_compile, "compile a config into deterministic recipes")
    sub.add_argument("config")
    sub.add_argument("-o", "--output", required=True, help="recipes.json to write")
    sub.add_argument("--preset", action="append", default=[], help="a named preset or a preset file")
    sub.add_argument("--shard", default=None, help="I/N: compile one deterministic slice")
    sub.add_argument("--strict-ppm", action="store_true", help=STRICT_PPM_HELP)

    sub = command("render", _cmd_render, "render recipes on a pool of Blender workers, then merge OUT")
    sub.add_argument("recipes")
    sub.add_argument("-o", "--output", required=True)
    render_options(sub)
    dask_options(sub)
    sub.add_argument("--shard", default=None, help="I/N (default: from the cluster's array index)")

    sub = command("plan", _cmd_plan, "the plan a scheduler holds: recipes, hashes, versions, chunks")
    sub.add_argument("source", metavar="CONFIG|RECIPES")
    sub.add_argument("-o", "--output", required=True, help="plan.json to write")
    sub.add_argument("--chunk-size", type=positive_int, default=DEFAULT_CHUNK_SIZE, help="scenes per chunk")
    sub.add_argument("--preset", action="append", default=[], help="a named preset or a preset file")
    sub.add_argument("--blender", default=None, help="the Blender the plan fixes (default: as render)")

    sub = command("render-chunk", _cmd_render_chunk, "render one chunk of a plan (verifies its hash first)")
    sub.add_argument("plan")
    sub.add_argument(
        "--chunk",
        default=None,
        help="K (default: $JOB_COMPLETION_INDEX, $SLURM_ARRAY_TASK_ID, $AWS_BATCH_JOB_ARRAY_INDEX ...)",
    )
    sub.add_argument("-o", "--output", required=True, help="this chunk's folder")
    render_options(sub)

    sub = command("run", _cmd_run, "compile, render, merge and audit (no CONFIG: the default job)")
    sub.add_argument("config", nargs="?", default=None)
    sub.add_argument("-o", "--output", required=True)
    sub.add_argument("--preset", action="append", default=[])
    render_options(sub)
    dask_options(sub)
    sub.add_argument("--shard", default=None, help="I/N (default: from the cluster's array index)")
    sub.add_argument("--strict-ppm", action="store_true", help=STRICT_PPM_HELP)

    sub = command("merge", _cmd_merge, "merge labels/ of one or more folders into the dataset files")
    sub.add_argument("folders", nargs="+")
    sub.add_argument("-o", "--output", default=None, help="destination (default: the first folder)")

    sub = command("audit", _cmd_audit, "integrity gates and distributions")
    sub.add_argument("folder")
    sub.add_argument("--gates", default=None, help="a YAML or JSON file of quality gates")

    sub = command("verify", _cmd_verify, "OpenCV's detectors against the ground truth")
    sub.add_argument("folder")
    sub.add_argument("--config", default=None, help="a YAML or JSON file of thresholds (under `verify:`)")
    sub.add_argument("--min-detection-rate", type=fraction, default=None)
    sub.add_argument("--max-mean-offset-px", type=positive_float, default=None)
    sub.add_argument("--max-median-centre-error-px", type=positive_float, default=None)
    sub.add_argument("--max-median-error-px", type=positive_float, default=None)
    sub.add_argument("--max-p95-error-px", type=positive_float, default=None)
    sub.add_argument("--max-focal-error-rel", type=positive_float, default=None)
    sub.add_argument("--max-principal-point-error-px", type=positive_float, default=None)

    sub = command("preview", _cmd_preview, "contact sheet PNG with the ground truth drawn on")
    sub.add_argument("folder")
    sub.add_argument("--scene", type=non_negative_int, default=None, help="a scene id (0, 1, ...)")
    sub.add_argument("-o", "--output", default=None)

    sub = command("report", _cmd_report, "OUT/report.html: the dataset card, pictures and figures, one file")
    sub.add_argument("folder", help="the dataset folder (OUT)")

    sub = command("export", _cmd_export, "Kalibr target.yaml, OpenCV board parameters, camera_info YAML")
    sub.add_argument("folder")
    sub.add_argument("-o", "--output", default=None, help="destination (default: OUT/exports)")

    sub = command("target", _cmd_target, "a board's printable SVG + PDF at true scale and its target yaml")
    sub.add_argument("source", metavar="CONFIG|BOARD-SPEC", help="a config with a BOARD subject, a board "
                     "file, or inline YAML such as '{board_type: checkerboard, rows: 7, cols: 10, "
                     "square_size_mm: 25}'")  # fmt: skip
    sub.add_argument("-o", "--output", required=True, help="the folder to write into")
    sub.add_argument("--margin-mm", type=non_negative_float, default=None,
                     help="white margin around the pattern (default: the subject's, else 10)")  # fmt: skip
    sub.add_argument("--paper", default=None, help="A0..A4, letter, legal, tabloid: the board centred at "
                     "true scale on that sheet (default: a page of the board plus its margin)")  # fmt: skip

    addon = commands.add_parser("addon", help="build or install the Blender extension")
    addon_commands = addon.add_subparsers(dest="addon_command", required=True, metavar="ACTION")
    sub = addon_commands.add_parser("build", help="build the extension zips")
    sub.set_defaults(handler=_cmd_addon_build)
    sub.add_argument("-o", "--output", default="dist")
    sub.add_argument("--single", action="store_true", help="one zip for this platform only")
    sub = addon_commands.add_parser("install", help="install the extension into a Blender")
    sub.set_defaults(handler=_cmd_addon_install)
    sub.add_argument("zip", nargs="?", default=None, help="default: build one first")
    sub.add_argument("--blender", default=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return guarded(lambda: handler(args))


if __name__ == "__main__":
    sys.exit(main())
