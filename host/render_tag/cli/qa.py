"""`render-tag audit`, `verify`, `preview` and `report`: print the results and what was written; 1 when a gate
or threshold is missed. audit and verify refresh OUT/report.html."""

from __future__ import annotations

from pathlib import Path

from ..dataset.folder import check_output_file
from ..io import write_json_atomic
from ..qa.audit import audit_dataset
from ..qa.diff import AuditDiff
from ..qa.gates import VerifyThresholds
from ..qa.preview import make_preview
from ..qa.report import write_report
from ..qa.verify import verify_dataset
from .exits import EXIT_FAILED, EXIT_OK
from .hold import holding
from .say import done, quoted

__all__ = ["main_audit", "main_preview", "main_report", "main_verify"]


def main_audit(out: str | Path, gates_path: str | Path | None = None, diff: str | Path | None = None) -> int:
    """`render-tag audit OUT [--gates FILE] [--diff OTHER]`: prints the summary (and with --diff what
    changed from OUT to OTHER, also written to OUT/audit_diff.json); 1 when a gate of OUT fails, else 0.
    OTHER is audited first and read only, so a bad OTHER writes nothing."""
    other = audit_dataset(diff, gates_path, plots=False, write=False) if diff is not None else None
    with holding(out, "render-tag audit", create=False):
        report = audit_dataset(out, gates_path)
        page = write_report(out)
        changes = AuditDiff(report, other) if other is not None else None
        if changes is not None:
            write_json_atomic(Path(out) / "audit_diff.json", changes.to_dict())
    print(report.summary())
    if changes is not None:
        print(changes.summary())
    root = Path(out)
    steps = [] if (root / "verify.json").exists() else [f"render-tag verify {quoted(out)}"]
    written = [root / "audit.json", root / "audit"] + (
        [root / "audit_diff.json"] if changes is not None else []
    )
    done(written, page, steps or [f"open {page}"])
    return EXIT_OK if report.passed else EXIT_FAILED


def main_verify(
    out: str | Path,
    thresholds: dict[str, float] | None = None,
    config_path: str | Path | None = None,
    plot: bool = True,
    *,
    min_detection_rate: float | None = None,
    max_mean_offset_px: float | None = None,
    max_median_centre_error_px: float | None = None,
    max_median_error_px: float | None = None,
    max_p95_error_px: float | None = None,
    max_focal_error_rel: float | None = None,
    max_principal_point_error_px: float | None = None,
) -> int:
    """`render-tag verify OUT [--config FILE] [--min-detection-rate X ...]`: 1 when a threshold is missed.

    Command-line values (keywords, or the `thresholds` dict) override the config file, which overrides
    the defaults; None means "not given".
    """
    options = {
        "min_detection_rate": min_detection_rate,
        "max_mean_offset_px": max_mean_offset_px,
        "max_median_centre_error_px": max_median_centre_error_px,
        "max_median_error_px": max_median_error_px,
        "max_p95_error_px": max_p95_error_px,
        "max_focal_error_rel": max_focal_error_rel,
        "max_principal_point_error_px": max_principal_point_error_px,
        **(thresholds or {}),
    }
    limits = VerifyThresholds.load(config_path, **options)
    with holding(out, "render-tag verify", create=False):
        report = verify_dataset(out, limits, plot=plot)
        page = write_report(out)
    print(report.summary())
    root = Path(out)
    wrote = [root / "verify.json"] + ([root / report.plot] if report.plot else [])
    done(wrote, page, [f"open {page}"])
    return EXIT_OK if report.passed else EXIT_FAILED


def main_preview(
    out: str | Path, scene: int | None = None, output: str | Path | None = None, max_images: int = 16
) -> int:
    """`render-tag preview OUT [--scene N] [-o FILE]`: writes the contact sheet (OUT/preview.png, or
    OUT/preview/sceneNNNNNN.png for one scene, so the dataset's own sheet is kept), prints its path."""
    if output is not None:
        check_output_file(output)
    elif scene is not None:
        output = Path(out) / "preview" / f"scene{scene:06d}.png"
    with holding(out, "render-tag preview", create=False):
        path = make_preview(out, output, scene=scene, max_images=max_images)
    done([path], None, [f"open {path}"])
    return EXIT_OK


def main_report(out: str | Path) -> int:
    """`render-tag report OUT`: writes OUT/report.html from what OUT holds (and preview.png when missing)."""
    root = Path(out)
    had_preview = (root / "preview.png").exists()
    with holding(out, "render-tag report", create=False):
        page = write_report(out)
    wrote = [page] + ([root / "preview.png"] if not had_preview and (root / "preview.png").exists() else [])
    steps = [
        f"render-tag {name} {quoted(out)}"
        for name in ("audit", "verify")
        if not (root / f"{name}.json").exists()
    ]
    done(wrote, page, steps or [f"open {page}"])
    return EXIT_OK
