"""The CLI's side of holding OUT (dataset/folder.py): every command that writes into a dataset folder
runs inside `holding`, which tells the user when it took over a stale lock."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

from ..dataset.folder import FolderLock, hold_folder

__all__ = ["holding"]


@contextlib.contextmanager
def holding(
    out: str | Path, command: str, *, create: bool = True, reads: tuple[str | Path, ...] = ()
) -> Iterator[FolderLock]:
    """Holds OUT (written: no link may be inside) and the folders in `reads` (only read, but locked so
    that no render changes them meanwhile). InputError (exit 2) when another run holds one of them."""
    with contextlib.ExitStack() as stack:
        lock = stack.enter_context(hold_folder(out, command=command, create=create))
        held = [lock]
        for folder in reads:
            read = stack.enter_context(hold_folder(folder, command=command, create=False, writes=False))
            if all(read is not other for other in held):  # OUT itself, or a folder named twice
                held.append(read)
        for each in held:
            note = each.note()
            if note is not None:
                print(f"render-tag: note: {note}", file=sys.stderr)
        yield lock
