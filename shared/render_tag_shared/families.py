"""Tag families: the codebooks of AprilTag and ArUco markers, and their images, without OpenCV.

Ground truth is only as good as the marker drawn in the scene, so every image made here is the one
OpenCV makes: `marker_image` equals `cv2.aruco.generateImageMarker` bit for bit for every id of
every family and every size. The codes come from `data/codebooks.json`, which
`tools/extract_codebooks.py` copies out of `cv2.aruco.getPredefinedDictionary`; this module itself
stays pure numpy so that it loads inside Blender.

Bits are n x n bool arrays, True = white, row 0 at the top and column 0 at the left of the marker
as it is printed (OpenCV's image convention). Blender stores images bottom row first: flip rows
before writing `bpy.types.Image.pixels`.
"""

from __future__ import annotations

import json
import operator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal, SupportsIndex

import numpy as np
import numpy.typing as npt

__all__ = [
    "FAMILY_NAMES",
    "TagFamily",
    "UnknownFamilyError",
    "get_family",
    "marker_bits",
    "marker_grid",
    "marker_image",
    "marker_texture",
]

# Listed here (not only in the data file) so the supported names are visible without any I/O;
# loading the data checks that both agree.
FAMILY_NAMES: tuple[str, ...] = (
    "tag16h5",
    "tag25h9",
    "tag36h10",
    "tag36h11",
    "DICT_4X4_50",
    "DICT_4X4_100",
    "DICT_4X4_250",
    "DICT_4X4_1000",
    "DICT_5X5_50",
    "DICT_5X5_100",
    "DICT_5X5_250",
    "DICT_5X5_1000",
    "DICT_6X6_50",
    "DICT_6X6_100",
    "DICT_6X6_250",
    "DICT_6X6_1000",
    "DICT_7X7_50",
    "DICT_7X7_100",
    "DICT_7X7_250",
    "DICT_7X7_1000",
    "DICT_ARUCO_ORIGINAL",
)

_DATA_PACKAGE = "render_tag_shared"
_DATA_FILE = "data/codebooks.json"

BoolArray = npt.NDArray[np.bool_]
UInt8Array = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class TagFamily:
    """What a family is, as OpenCV's predefined dictionary of the same name defines it.

    `marker_bits` is n, the side of the data grid without the black border; `max_correction_bits`
    is OpenCV 4.11's `Dictionary.maxCorrectionBits`, the OpenCV the codebooks were extracted with (0 for
    its AprilTag dictionaries and DICT_ARUCO_ORIGINAL; 4.14 and later give those error correction). The
    codes are the same in every OpenCV; nothing here decodes with this number.
    """

    name: str
    kind: Literal["apriltag", "aruco"]
    marker_bits: int
    num_ids: int
    max_correction_bits: int
    opencv_name: str


class UnknownFamilyError(ValueError):
    """A family name that is not supported; the message lists the names that are."""

    def __init__(self, name: object) -> None:
        self.name = name
        super().__init__(f"unknown tag family {name!r}; valid families: {', '.join(FAMILY_NAMES)}")


@dataclass(frozen=True)
class _Data:
    """The parsed data file."""

    families: dict[str, TagFamily]
    aliases: dict[str, str]  # OpenCV dictionary name -> render-tag name
    codebook_of: dict[str, str]  # family -> the stored codebook whose first num_ids codes it uses
    codebooks: dict[str, list[str]]  # hex codes, one per id


@cache
def _load() -> _Data:
    """Read the shipped data file once (importlib.resources, so it also works from a zip or wheel)."""
    text = resources.files(_DATA_PACKAGE).joinpath(_DATA_FILE).read_text(encoding="utf-8")
    doc = json.loads(text)
    fams = {
        name: TagFamily(
            name=name,
            kind=entry["kind"],
            marker_bits=int(entry["marker_bits"]),
            num_ids=int(entry["num_ids"]),
            max_correction_bits=int(entry["max_correction_bits"]),
            opencv_name=entry["opencv_name"],
        )
        for name, entry in doc["families"].items()
    }
    if tuple(fams) != FAMILY_NAMES:
        raise RuntimeError(f"{_DATA_FILE} lists {tuple(fams)}, expected {FAMILY_NAMES}")
    return _Data(
        families=fams,
        aliases={fam.opencv_name: name for name, fam in fams.items()},
        codebook_of={name: entry["codebook"] for name, entry in doc["families"].items()},
        codebooks=doc["codebooks"],
    )


def get_family(name: str) -> TagFamily:
    """The family called `name`: render-tag's name, or OpenCV's (e.g. "DICT_APRILTAG_36h11")."""
    data = _load()
    if not isinstance(name, str):
        raise UnknownFamilyError(name)
    canonical = name if name in data.families else data.aliases.get(name)
    if canonical is None:
        raise UnknownFamilyError(name)
    return data.families[canonical]


def marker_identity(family: str, tag_id: int) -> tuple[str, int]:
    """What a detector tells markers apart by: (codebook, id). Aliases and OpenCV's nested dictionaries
    (id 3 of DICT_4X4_50 is id 3 of DICT_4X4_1000) give the same identity, so a scene can refuse both."""
    return _load().codebook_of[get_family(family).name], int(tag_id)


@cache
def _codebook_bits(book: str, n: int) -> BoolArray:
    """Decode one stored codebook to (num_codes, n, n) bool, read-only (it is shared by callers)."""
    codes = _load().codebooks[book]
    width = (n * n + 3) // 4
    if any(len(c) != width for c in codes):
        raise RuntimeError(f"{_DATA_FILE}: codebook {book} has codes that are not {width} hex digits")
    values = np.array([int(c, 16) for c in codes], dtype=np.uint64)
    shifts = np.arange(n * n - 1, -1, -1, dtype=np.uint64)
    bits = ((values[:, None] >> shifts) & np.uint64(1)).astype(bool).reshape(-1, n, n)
    bits.setflags(write=False)
    return bits


def _family_bits(family: str) -> tuple[TagFamily, BoolArray]:
    """A family and the bits of all its ids, (num_ids, n, n), read-only."""
    fam = get_family(family)
    book = _load().codebook_of[fam.name]
    all_bits = _codebook_bits(book, fam.marker_bits)
    if all_bits.shape[0] < fam.num_ids:
        raise RuntimeError(f"{_DATA_FILE}: codebook {book} is shorter than {fam.name}'s {fam.num_ids} ids")
    return fam, all_bits[: fam.num_ids]


def _as_int(value: object) -> int | None:
    """`value` as an int (numpy integers too), or None: bools and floats are refused, not truncated."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, SupportsIndex):
        return None
    return operator.index(value)


def _check_int(value: object, what: str, minimum: int) -> int:
    """An integer argument of at least `minimum`, or a ValueError that names it."""
    i = _as_int(value)
    if i is None or i < minimum:
        raise ValueError(f"{what} must be an integer of at least {minimum}, got {value!r}")
    return i


def marker_bits(family: str, tag_id: int) -> BoolArray:
    """The n x n data bits of one marker (True = white, row 0 at the top), without the border."""
    fam, bits = _family_bits(family)
    i = _as_int(tag_id)
    if i is None or not 0 <= i < fam.num_ids:
        raise ValueError(f"tag id {tag_id!r} is not in {fam.name}, whose ids are 0..{fam.num_ids - 1}")
    return bits[i].copy()


def _check_border(border_bits: int) -> int:
    """OpenCV refuses borderBits < 1: a marker without its black border cannot be detected."""
    return _check_int(border_bits, "border_bits", 1)


def marker_grid(family: str, tag_id: int, border_bits: int = 1) -> UInt8Array:
    """The marker at one pixel per module: uint8 0/255 of side n + 2 * border_bits (black border)."""
    b = _check_border(border_bits)
    bits = marker_bits(family, tag_id)
    n = bits.shape[0]
    grid = np.zeros((n + 2 * b, n + 2 * b), dtype=np.uint8)
    grid[b : b + n, b : b + n] = np.where(bits, 255, 0).astype(np.uint8)
    return grid


def _nearest_index(src: int, dst: int) -> npt.NDArray[np.intp]:
    """Source index of each destination pixel, exactly as `cv::resize` with INTER_NEAREST maps it.

    OpenCV (imgproc/src/resize.cpp, resizeNN) computes `scale = (double)dst / src`,
    `inv = 1. / scale` and `sx = min(cvFloor(x * inv), src - 1)` in double precision. That is not
    always floor(x * src / dst): where x * src / dst is a whole number, x * inv can round just
    below it (src=6, dst=34: x=17 maps to 2, not 3), so it is reproduced operation by
    operation in IEEE doubles here, never with integer arithmetic.
    """
    inv = 1.0 / (dst / src)
    x = np.arange(dst, dtype=np.float64)
    return np.minimum(np.floor(x * inv).astype(np.intp), src - 1)


def marker_image(family: str, tag_id: int, side_px: int, border_bits: int = 1) -> UInt8Array:
    """The marker image of `cv2.aruco.generateImageMarker(dict, tag_id, side_px, borderBits=...)`.

    uint8 0/255, side_px x side_px, identical bit for bit for any side, including sides that are
    not a multiple of the module grid (OpenCV then makes some modules one pixel wider than others).
    """
    grid = marker_grid(family, tag_id, border_bits)
    side = _as_int(side_px)
    if side is None or side < grid.shape[0]:
        raise ValueError(
            f"side_px must be at least {grid.shape[0]} for {get_family(family).name} with "
            f"border_bits={border_bits} (one pixel per module), got {side_px!r}"
        )
    idx = _nearest_index(grid.shape[0], side)
    return grid[np.ix_(idx, idx)]


def marker_texture(
    family: str, tag_id: int, module_px: int, border_bits: int = 1, margin_modules: int = 1
) -> UInt8Array:
    """A render texture: the marker at `module_px` pixels per module inside a white quiet zone.

    Every module is exactly `module_px` pixels so nothing is resampled; the black border starts
    `margin_modules * module_px` pixels from each edge. Side: (n + 2 * border_bits +
    2 * margin_modules) * module_px. Detectors need the light quiet zone to find the border.
    """
    m = _check_int(module_px, "module_px", 1)
    margin = _check_int(margin_modules, "margin_modules", 0)
    grid = np.pad(marker_grid(family, tag_id, border_bits), margin, constant_values=255)
    return np.repeat(np.repeat(grid, m, axis=0), m, axis=1)
