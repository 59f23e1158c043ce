"""`render-tag merge` and `render-tag export`: print what was written."""

from __future__ import annotations

import sys
from pathlib import Path

from ..batch.chunks import AssemblyError, check_chunk_folders
from ..dataset.exports import export_dataset
from ..dataset.folder import check_output_folder
from ..dataset.merge import merge_dataset
from .exits import EXIT_FAILED, EXIT_OK
from .hold import holding
from .say import done, quoted

__all__ = ["main_export", "main_merge"]


def main_merge(out_dirs: list[str] | list[Path] | str | Path, dest: str | Path | None = None) -> int:
    """`render-tag merge OUT [OUT2 ...] [-o DEST]`: 0 when every label file merged, 1 when some were not.

    Chunk folders (`render-chunk`'s, with chunk.json) merge only when they are every chunk of one plan
    exactly once, complete, with their files as reported (1 otherwise, naming the chunk; nothing written)."""
    sources: list[str | Path] = [out_dirs] if isinstance(out_dirs, str | Path) else list(out_dirs)
    target = dest if dest is not None else (sources[0] if sources else None)
    if target is None:
        report = merge_dataset([], dest)  # no folder: bad input, named by merge
    else:
        with holding(target, "render-tag merge", create=dest is not None, reads=tuple(sources)):
            try:
                check_chunk_folders(sources)
            except AssemblyError as exc:
                print(f"render-tag: merge refused: {exc}", file=sys.stderr)
                return EXIT_FAILED
            report = merge_dataset([Path(source) for source in sources], dest)
    print(report.summary())
    if target is not None:
        done([], None, [f"render-tag audit {quoted(target)}", f"render-tag verify {quoted(target)}"])
    return EXIT_OK if report.ok else EXIT_FAILED


def main_export(out: str | Path, dest: str | Path | None = None) -> int:
    """`render-tag export OUT [-o DIR]`: prints the files written."""
    if dest is not None:
        check_output_folder(dest)
    with holding(out, "render-tag export", create=False):
        written = export_dataset(out, dest)
    done(written, None, [])
    return EXIT_OK
