"""Printable targets: a board as SVG and PDF at true physical scale, drawn from the render texture.

The black modules are those of `boards.board_image` at `board_px_per_bit` (the texture the add-on
puts on the board's mesh), so the printed sheet is the rendered board, bit for bit. Every module is
a vector rectangle (runs of black texels merged into rectangles); lengths are millimetres: the SVG's
viewBox is the page in mm and its width/height carry the `mm` unit, and the PDF's content stream
scales by 72 / 25.4 so that its coordinates are mm too (the MediaBox is in points, as PDF requires).
Nothing is scaled to fit: the page is the board plus a margin, or a chosen paper size with the board
centred on it (refused when it does not fit). Both writers are deterministic (no dates, no ids).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from .boards import BoardDefinition, board_image, board_px_per_bit

__all__ = ["PAPER_SIZES_MM", "PT_PER_MM", "Sheet", "black_rectangles", "pdf_bytes", "sheet", "svg_text"]

PT_PER_MM = 72.0 / 25.4
"""PDF user space units (points) per millimetre."""

PAPER_SIZES_MM: dict[str, tuple[float, float]] = {
    "A0": (841.0, 1189.0),
    "A1": (594.0, 841.0),
    "A2": (420.0, 594.0),
    "A3": (297.0, 420.0),
    "A4": (210.0, 297.0),
    "letter": (215.9, 279.4),
    "legal": (215.9, 355.6),
    "tabloid": (279.4, 431.8),
}
"""Portrait (width, height) in millimetres; a board wider than tall goes on the landscape sheet."""


@dataclass(frozen=True)
class Sheet:
    """A page of `page_mm` with the board's black rectangles (x, y, w, h in mm from the top-left)."""

    board: BoardDefinition
    page_mm: tuple[float, float]
    origin_mm: tuple[float, float]  # the board's top-left corner on the page
    rectangles: list[tuple[float, float, float, float]]


def black_rectangles(image: np.ndarray) -> list[tuple[int, int, int, int]]:
    """(col, row, width, height) in texels covering exactly the black (0) texels of `image`.

    Horizontal runs of each row, extended downwards while the next row has the same run: squares and
    marker modules become few rectangles, and every edge stays on a texel edge.
    """
    black = np.asarray(image) == 0
    h = black.shape[0]
    open_runs: dict[tuple[int, int], int] = {}  # (start, end) -> first row
    out: list[tuple[int, int, int, int]] = []
    for row in range(h + 1):
        runs: set[tuple[int, int]] = set()
        if row < h:
            line = np.concatenate([[False], black[row], [False]])
            edges = np.flatnonzero(line[1:] != line[:-1])
            runs = {(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)}
        for run in sorted(set(open_runs) - runs):
            start_row = open_runs.pop(run)
            out.append((run[0], start_row, run[1] - run[0], row - start_row))
        for run in runs:
            open_runs.setdefault(run, row)
    return sorted(out, key=lambda r: (r[1], r[0]))


def sheet(
    board: BoardDefinition, margin_mm: float = 10.0, paper: str | tuple[float, float] | None = None
) -> Sheet:
    """The board on a page: board + 2 * margin, or centred on `paper` (a name of PAPER_SIZES_MM or
    (width, height) in mm; turned to landscape when the board is wider than tall).

    ValueError when the margin is negative or the board (with its margin) does not fit the paper.
    """
    if not margin_mm >= 0:
        raise ValueError(f"margin_mm must be 0 or more, got {margin_mm}")
    width, height = board.width_mm, board.height_mm
    if paper is None:
        page = (width + 2 * margin_mm, height + 2 * margin_mm)
    else:
        if isinstance(paper, str):
            if paper not in PAPER_SIZES_MM:
                raise ValueError(f"unknown paper {paper!r}; known: {', '.join(PAPER_SIZES_MM)}")
            pw, ph = PAPER_SIZES_MM[paper]
        else:
            pw, ph = paper
        if (width > height) != (pw > ph):
            pw, ph = ph, pw
        if width + 2 * margin_mm > pw or height + 2 * margin_mm > ph:
            raise ValueError(
                f"the board ({width:g} x {height:g} mm, margin {margin_mm:g} mm) does not fit on "
                f"{paper} ({pw:g} x {ph:g} mm) at true scale"
            )
        page = (pw, ph)
    origin = ((page[0] - width) / 2.0, (page[1] - height) / 2.0)
    image = board_image(board, board_px_per_bit(board))
    texel_x = width / image.shape[1]
    texel_y = height / image.shape[0]
    rects = [
        (origin[0] + c * texel_x, origin[1] + r * texel_y, w * texel_x, h * texel_y)
        for c, r, w, h in black_rectangles(image)
    ]
    return Sheet(board=board, page_mm=page, origin_mm=origin, rectangles=rects)


def _n(value: float) -> str:
    """A length in mm, to 0.1 nm: short, exact enough, and the same text on every machine."""
    text = f"{value:.7f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _title(board: BoardDefinition) -> str:
    parts = [board.board_type, f"{board.rows}x{board.cols}"]
    if board.square_size_mm is not None:
        parts.append(f"square {board.square_size_mm:g} mm")
    if board.num_markers:
        parts.append(f"marker {board.marker_size_mm:g} mm {board.dictionary}")
    if board.spacing_ratio is not None:
        parts.append(f"spacing {board.spacing_ratio:g}")
    return "render-tag " + ", ".join(parts)


def svg_text(page: Sheet) -> str:
    """An SVG whose user unit is the millimetre (width/height in mm, viewBox the same numbers)."""
    w, h = page.page_mm
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{_n(w)}mm" height="{_n(h)}mm" '
        f'viewBox="0 0 {_n(w)} {_n(h)}" shape-rendering="crispEdges">',
        f"<title>{_title(page.board)}</title>",
        f'<rect x="0" y="0" width="{_n(w)}" height="{_n(h)}" fill="#ffffff"/>',
        '<g fill="#000000">',
    ]
    lines += [
        f'<rect x="{_n(x)}" y="{_n(y)}" width="{_n(rw)}" height="{_n(rh)}"/>'
        for x, y, rw, rh in page.rectangles
    ]
    lines += ["</g>", "</svg>", ""]
    return "\n".join(lines)


def pdf_bytes(page: Sheet) -> bytes:
    """A one-page PDF 1.4: MediaBox in points, content in mm (a `cm` scale of 72 / 25.4 with y down),
    black rectangles filled with `re f`. Written by hand: four objects, a cross-reference table."""
    w, h = page.page_mm
    w_pt, h_pt = w * PT_PER_MM, h * PT_PER_MM
    ops = [f"{PT_PER_MM!r} 0 0 {-PT_PER_MM!r} 0 {h_pt!r} cm", "0 g"]
    ops += [f"{_n(x)} {_n(y)} {_n(rw)} {_n(rh)} re" for x, y, rw, rh in page.rectangles]
    ops.append("f")
    content = zlib.compress(("\n".join(ops) + "\n").encode("ascii"), 9)
    title = _title(page.board).replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {w_pt!r} {h_pt!r}] /Contents 4 0 R "
            "/Resources << >> >>"
        ).encode("ascii"),
        f"<< /Length {len(content)} /Filter /FlateDecode >>\nstream\n".encode("ascii")
        + content
        + b"\nendstream",
        f"<< /Title ({title}) /Producer (render-tag) >>".encode("ascii"),
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode("ascii") + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode("ascii")
    out += b"".join(f"{offset:010d} 00000 n \n".encode("ascii") for offset in offsets)
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info 5 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode(
            "ascii"
        )
    )
    return bytes(out)
