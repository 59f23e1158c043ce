"""What every command says at its start and at its end: a first line at once, and one closing block.

A newcomer should never wonder whether a command is working, where its results went, or what to run
next. `starting` prints before the heavy imports and the workers (within a second of the command);
`done` prints the files written, the report's path and the next command.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Iterable
from pathlib import Path

__all__ = ["done", "quoted", "starting"]


def starting(text: str) -> None:
    """One line on stderr, at once, for a person at a terminal (stdout stays for results; a log or a
    pipe gets the progress lines and the closing block, and an error stays the first line of stderr)."""
    if sys.stderr.isatty():
        print(f"render-tag: {text}", file=sys.stderr, flush=True)


def quoted(path: str | Path) -> str:
    """A path as it would be typed in a shell."""
    return shlex.quote(str(path))


def done(
    wrote: Iterable[str | Path] = (), report: str | Path | None = None, next_steps: Iterable[str] = ()
) -> None:
    """The closing block: `wrote:` one line per file or folder, `report:` and `next:` lines."""
    items = [Path(item) if not isinstance(item, Path) and " (" not in str(item) else item for item in wrote]
    folders = {item.parent for item in items if isinstance(item, Path)}
    if len(items) > 2 and len(folders) == 1 and all(isinstance(item, Path) for item in items):
        names = [f"{item.name}/" if item.is_dir() else item.name for item in items if isinstance(item, Path)]
        lines = [f"wrote: {folders.pop()}: {', '.join(names)}"]
    else:
        lines = [f"wrote: {item}" for item in items]
    if report is not None:
        lines.append(f"report: {report}")
    lines += [f"next: {step}" for step in next_steps]
    if lines:
        print("\n".join(lines), flush=True)
