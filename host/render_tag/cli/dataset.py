"""`render-tag merge` and `render-tag export`: print what was written."""

from __future__ import annotations

import sys
from pathlib import Path

from ..batch.chunks import AssemblyError, check_chunk_folders
from ..dataset.exports import export_dataset
from ..dataset.merge import merge_dataset
from .exits import EXIT_FAILED, EXIT_OK

__all__ = ["main_export", "main_merge"]


def main_merge(out_dirs: list[str] | list[Path] | str | Path, dest: str | Path | None = None) -> int:
    """`render-tag merge OUT [OUT2 ...] [-o DEST]`: 0 when every label file merged, 1 when some were not.

    Chunk folders (`render-chunk`'s, with chunk.json) merge only when they are every chunk of one plan
    exactly once, complete, with their files as reported (1 otherwise, naming the chunk; nothing written)."""
    folders: list[str | Path] = [out_dirs] if isinstance(out_dirs, str | Path) else list(out_dirs)
    try:
        check_chunk_folders(folders)
    except AssemblyError as exc:
        print(f"render-tag: merge refused: {exc}", file=sys.stderr)
        return EXIT_FAILED
    report = merge_dataset(out_dirs, dest)
    print(report.summary())
    return EXIT_OK if report.ok else EXIT_FAILED


def main_export(out: str | Path, dest: str | Path | None = None) -> int:
    """`render-tag export OUT [-o DIR]`: prints the files written."""
    for path in export_dataset(out, dest):
        print(path)
    return EXIT_OK
