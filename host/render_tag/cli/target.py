"""`render-tag target CONFIG|BOARD-SPEC -o DIR`: print the files written."""

from __future__ import annotations

from render_tag_shared.errors import InputError
from render_tag_shared.printable import PAPER_SIZES_MM

from ..dataset.folder import check_output_folder
from ..dataset.target import DEFAULT_MARGIN_MM, read_target_source, write_target
from .exits import EXIT_OK

__all__ = ["main_target"]


def main_target(source: str, output: str, margin_mm: float | None = None, paper: str | None = None) -> int:
    """Bad input (the source, -o, --paper, a board too big for the paper) exits 2 with nothing written."""
    check_output_folder(output)
    if paper is not None and paper not in PAPER_SIZES_MM:
        raise InputError("--paper", "", f"unknown paper {paper!r}; known: {', '.join(PAPER_SIZES_MM)}")
    target = read_target_source(source)
    margin = margin_mm if margin_mm is not None else target.margin_mm
    try:
        written = write_target(target.board, output, DEFAULT_MARGIN_MM if margin is None else margin, paper)
    except ValueError as exc:
        raise InputError("--paper" if paper else source, "", str(exc)) from None
    for path in written:
        print(path)
    return EXIT_OK
