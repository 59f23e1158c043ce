"""Atomic file writes: every host writer goes through here (the add-on shares the same code).

The writers live in `render_tag_shared.files`, so the add-on and the host write files one way;
the host adds PNG writing through OpenCV for the pictures it draws (BGR, as cv2 draws them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from render_tag_shared.files import dumps_json, write_bytes_atomic, write_json_atomic, write_text_atomic

__all__ = ["dumps_json", "write_bytes_atomic", "write_json_atomic", "write_png_atomic", "write_text_atomic"]


def write_png_atomic(path: str | Path, image: Any) -> Path:
    """A uint8 image (H, W) or (H, W, 3) BGR as PNG, atomically (cv2 encodes, we write)."""
    import cv2  # the host always has it; imported here so that io stays cheap to import

    ok, buffer = cv2.imencode(".png", image)
    if not ok:
        raise ValueError(f"cannot encode {path} as PNG")
    return write_bytes_atomic(path, buffer.tobytes())
