"""Asset files (textures, HDRIs, background images) checked before any expensive work starts.

A recipe that names a missing texture, a folder, `/dev/zero` or a `/proc` file is bad input: the
host refuses it (exit 2, naming the file and the field) before a Blender worker starts, and a worker
that still meets one (an asset deleted in between, a recipe rendered on another machine) reports it
as not worth retrying. The check is cheap: a regular, non-empty file of bounded size whose first
bytes are those of an image format Blender reads, and, where the header says, sides within bounds.
"""

from __future__ import annotations

import os
import stat
import struct
from collections.abc import Iterable
from pathlib import Path

from .errors import InputError
from .limits import MAX_RENDER_SIDE

__all__ = ["MAX_ASSET_BYTES", "asset_problem", "check_asset", "check_assets"]

MAX_ASSET_BYTES = 4 * 1024 * 1024 * 1024
"""The largest asset file (a 16K float EXR is about 3 GB)."""

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x76\x2f\x31\x01", "OpenEXR"),
    (b"#?RADIANCE", "Radiance HDR"),
    (b"#?RGBE", "Radiance HDR"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
)


def _image_format(head: bytes) -> str | None:
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    return None


def _png_size(head: bytes) -> tuple[int, int] | None:
    if len(head) >= 24 and head[12:16] == b"IHDR":
        width, height = struct.unpack(">II", head[16:24])
        return int(width), int(height)
    return None


def asset_problem(path: str | Path) -> str | None:
    """What is wrong with an asset file, or None when it looks like an image Blender can read."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        return f"{str(path)!r}: {exc.strerror or 'cannot be opened'}"
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            return f"{str(path)!r} is a folder, not an image file"
        if not stat.S_ISREG(info.st_mode):
            return f"{str(path)!r} is not a regular file (a device, FIFO or socket)"
        if info.st_size == 0:
            return f"{str(path)!r} is empty"
        if info.st_size > MAX_ASSET_BYTES:
            return f"{str(path)!r} is too large ({info.st_size} bytes, at most {MAX_ASSET_BYTES})"
        head = os.read(fd, 64)
    except OSError as exc:
        return f"{str(path)!r}: {exc.strerror or 'cannot be read'}"
    finally:
        os.close(fd)
    kind = _image_format(head)
    if kind is None:
        return f"{str(path)!r} is not an image (PNG, JPEG, OpenEXR, Radiance HDR, TIFF, BMP or WebP)"
    size = _png_size(head) if kind == "PNG" else None
    if size is not None and not (0 < size[0] <= MAX_RENDER_SIDE and 0 < size[1] <= MAX_RENDER_SIDE):
        return f"{str(path)!r} is a {size[0]}x{size[1]} PNG (each side 1..{MAX_RENDER_SIDE} px)"
    return None


def check_asset(path: str | Path, source: str, field: str) -> None:
    """InputError naming `source` and `field` when the asset at `path` is unusable."""
    problem = asset_problem(path)
    if problem is not None:
        raise InputError(source, field, problem)


def check_assets(assets: Iterable[tuple[str, str]], source: str) -> None:
    """Checks each (field, path) once per path; the first unusable one raises InputError."""
    seen: set[str] = set()
    for field, path in assets:
        if path in seen:
            continue
        seen.add(path)
        check_asset(path, source, field)
