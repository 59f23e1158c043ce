"""`render-tag audit`, `verify` and `preview`: print the report; 1 when a gate or threshold is missed."""

from __future__ import annotations

from pathlib import Path

from ..dataset.folder import check_output_file
from ..io import write_json_atomic
from ..qa.audit import audit_dataset
from ..qa.diff import AuditDiff
from ..qa.gates import VerifyThresholds
from ..qa.preview import make_preview
from ..qa.verify import verify_dataset
from .exits import EXIT_FAILED, EXIT_OK
from .hold import holding

__all__ = ["main_audit", "main_preview", "main_verify"]


def main_audit(out: str | Path, gates_path: str | Path | None = None, diff: str | Path | None = None) -> int:
    """`render-tag audit OUT [--gates FILE] [--diff OTHER]`: prints the summary (and with --diff what
    changed from OUT to OTHER, also written to OUT/audit_diff.json); 1 when a gate of OUT fails, else 0.
    OTHER is audited first and read only, so a bad OTHER writes nothing."""
    other = audit_dataset(diff, gates_path, plots=False, write=False) if diff is not None else None
    with holding(out, "render-tag audit", create=False):
        report = audit_dataset(out, gates_path)
        changes = AuditDiff(report, other) if other is not None else None
        if changes is not None:
            write_json_atomic(Path(out) / "audit_diff.json", changes.to_dict())
    print(report.summary())
    if changes is not None:
        print(changes.summary())
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
    print(report.summary())
    return EXIT_OK if report.passed else EXIT_FAILED


def main_preview(
    out: str | Path, scene: int | None = None, output: str | Path | None = None, max_images: int = 16
) -> int:
    """`render-tag preview OUT [--scene N] [-o FILE]`: writes the contact sheet, prints its path."""
    if output is not None:
        check_output_file(output)
    with holding(out, "render-tag preview", create=False):
        path = make_preview(out, output, scene=scene, max_images=max_images)
    print(path)
    return EXIT_OK
