"""Atomic file writes and the one JSON text form, shared by the add-on and the host.

A dataset is read while it is being written (resume, a second merge, a user's notebook), so a file
must never be seen half written: each write goes to a temporary file in the same folder, is flushed
to disk, and then replaces the target in one `os.replace`.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from .errors import InputError

__all__ = ["dumps_json", "write_bytes_atomic", "write_json_atomic", "write_text_atomic"]


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (best effort: not every platform can open a directory)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


TEMP_SUFFIX = ".tmp"
"""Atomic writes go to `.<name>.<random>.tmp` beside their target, then are renamed over it."""


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Removes the temporaries that atomic writes into `folder` left when their process was killed
    between writing and renaming. Only for the folder's one writer (it holds the folder's lock), so no
    write can be in progress; a link is never followed."""
    removed = []
    for path in Path(folder).glob(f".*{TEMP_SUFFIX}"):
        if path.is_symlink() or path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Writes `data` to `path` so that readers see the old file or the new one, never a mix.

    Only a regular file (or a link, which is replaced, not followed) is ever replaced: a device, a
    FIFO or a socket at `path` is bad input, so `-o /dev/null` can never replace the device node.
    """
    path = Path(path)
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        mode = os.lstat(path).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
            raise InputError(str(path), "", "exists and is not a regular file: it is not replaced")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; datasets are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """UTF-8 text, atomically (no newline translation, so the bytes are the same on every OS)."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def dumps_json(value: Any, *, indent: int | None = 1) -> str:
    """The one JSON text form of the host: stable key order as given, no NaN, trailing newline.

    `indent=None` gives the compact form used for the large dataset files.
    """
    separators = (",", ":") if indent is None else (",", ": ")
    return json.dumps(value, indent=indent, separators=separators, ensure_ascii=False, allow_nan=False) + "\n"


def write_json_atomic(path: str | Path, value: Any, *, indent: int | None = 1) -> Path:
    """JSON (see `dumps_json`), atomically."""
    return write_text_atomic(path, dumps_json(value, indent=indent))
