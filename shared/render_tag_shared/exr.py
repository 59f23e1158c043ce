"""Reading the uncompressed OpenEXR frames the add-on has Blender write, straight into numpy.

Blender's own loader (`bpy.data.images.load`, then the pixels through Python) took 92 ms of the fast
preset's ~450 ms per image for its 1920x1440 half-float frame; reading the scanlines with numpy takes
a fraction of that. Only what the renderer writes is read: one part, scanlines, no compression, HALF or
FLOAT channels. Anything else is refused (`UnsupportedExr`), and the caller falls back to Blender.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["UnsupportedExr", "read_exr"]

_MAGIC = 20000630
_SINGLE_PART_SCANLINE = 2  # version 2, no tiled / deep / multi-part flags
_LONG_NAMES = 0x400  # names up to 255 bytes instead of 31: still null-terminated, read the same
_DTYPES: dict[int, np.dtype[np.floating[Any]]] = {
    1: np.dtype("<f2"),
    2: np.dtype("<f4"),
}  # HALF, FLOAT (UINT is not a colour)


class UnsupportedExr(ValueError):
    """An EXR this reader does not handle (compressed, tiled, multi-part...): let Blender read it."""


def _header(data: bytes) -> tuple[dict[str, tuple[str, bytes]], int]:
    """The header's attributes (name -> (type, value bytes)) and the offset of what follows it."""
    magic, version = struct.unpack_from("<ii", data, 0)
    if magic != _MAGIC:
        raise UnsupportedExr("not an OpenEXR file")
    if version & ~_LONG_NAMES != _SINGLE_PART_SCANLINE:
        raise UnsupportedExr(f"EXR version field {version:#x}: only single-part scanline files are read")
    attributes: dict[str, tuple[str, bytes]] = {}
    pos = 8
    while data[pos] != 0:
        name_end = data.index(b"\0", pos)
        type_end = data.index(b"\0", name_end + 1)
        (size,) = struct.unpack_from("<i", data, type_end + 1)
        value_at = type_end + 5
        attributes[data[pos:name_end].decode()] = (
            data[name_end + 1 : type_end].decode(),
            data[value_at : value_at + size],
        )
        pos = value_at + size
    return attributes, pos + 1


def _channels(chlist: bytes) -> list[tuple[str, np.dtype[np.floating[Any]]]]:
    channels: list[tuple[str, np.dtype[np.floating[Any]]]] = []
    pos = 0
    while chlist[pos] != 0:
        end = chlist.index(b"\0", pos)
        pixel_type, _, x_sampling, y_sampling = struct.unpack_from("<iB3xii", chlist, end + 1)
        if pixel_type not in _DTYPES or (x_sampling, y_sampling) != (1, 1):
            raise UnsupportedExr(
                f"channel {chlist[pos:end]!r}: pixel type {pixel_type}, sampling {x_sampling}"
            )
        channels.append((chlist[pos:end].decode(), _DTYPES[pixel_type]))
        pos = end + 17
    return channels


def read_exr(path: str | Path, order: tuple[str, ...] = ("R", "G", "B", "A")) -> npt.NDArray[np.float32]:
    """(H, W, len(order)) float32 of an uncompressed scanline EXR, row 0 at the top of the image (the
    file's first line), channels in `order` (a missing "A" is 1)."""
    data = Path(path).read_bytes()
    try:
        attributes, pos = _header(data)
        if attributes.get("compression", ("", b"\1"))[1] != b"\0":
            raise UnsupportedExr("compressed EXR")
        channels = _channels(attributes["channels"][1])
        x_min, y_min, x_max, y_max = struct.unpack("<4i", attributes["dataWindow"][1])
    except UnsupportedExr:
        raise
    except (KeyError, IndexError, ValueError, struct.error) as error:  # a header this reader does not know
        raise UnsupportedExr(f"EXR header not read: {error!r}") from error
    width, height = x_max - x_min + 1, y_max - y_min + 1
    offsets = np.frombuffer(data, dtype="<u8", count=height, offset=pos)
    line_bytes = width * sum(dtype.itemsize for _, dtype in channels)
    starts = offsets.astype(np.int64) + 8  # each chunk: int32 y, int32 size, then the line
    if not np.all(np.diff(starts) == line_bytes + 8) or starts[-1] + line_bytes > len(data):
        raise UnsupportedExr("scanline chunks are not one contiguous line each")
    lines = np.frombuffer(data, dtype=np.uint8, count=height * (line_bytes + 8), offset=int(starts[0]) - 8)
    lines = lines.reshape(height, line_bytes + 8)
    ys = lines[:, :4].copy().view("<i4").ravel()
    out = np.ones((height, width, len(order)), dtype=np.float32)
    cursor = 8
    for name, dtype in channels:
        size = width * dtype.itemsize
        if name in order:
            values = lines[:, cursor : cursor + size].copy().view(dtype)
            out[ys - y_min, :, order.index(name)] = values
        cursor += size
    return out
