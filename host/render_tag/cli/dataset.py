"""`render-tag merge` and `render-tag export`: print what was written."""

from __future__ import annotations

from pathlib import Path

from ..dataset.exports import export_dataset
from ..dataset.merge import merge_dataset
from .exits import EXIT_FAILED, EXIT_OK

__all__ = ["main_export", "main_merge"]


def main_merge(out_dirs: list[str] | list[Path] | str | Path, dest: str | Path | None = None) -> int:
    """`render-tag merge OUT [OUT2 ...] [-o DEST]`: 0 when every label file merged, 1 when some were not."""
    report = merge_dataset(out_dirs, dest)
    print(report.summary())
    return EXIT_OK if report.ok else EXIT_FAILED


def main_export(out: str | Path, dest: str | Path | None = None) -> int:
    """`render-tag export OUT [-o DIR]`: prints the files written."""
    for path in export_dataset(out, dest):
        print(path)
    return EXIT_OK
