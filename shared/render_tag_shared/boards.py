"""Calibration boards (ChArUco, AprilGrid, checkerboard): definition, geometry in each library's frame,
images.

Ground truth for a board is only useful if it matches what the calibration library believes the
board is, so every layout here is the library's own, not a reinterpretation:

ChArUco follows OpenCV >= 4.6 (`cv2.aruco.CharucoBoard`, modules/objdetect/src/aruco/aruco_board.cpp).
  Library frame: origin at the board's top-left outer corner, x right, y DOWN (image rows), z into
  the board. `cols` squares along x (OpenCV's size.width), `rows` along y (size.height).
  Chessboard corner i = y * (cols - 1) + x sits at ((x + 1) * square, (y + 1) * square)
  (`getChessboardCorners`). Markers sit on the white squares, row-major from the top-left, ids
  0..n-1 by default (`getIds`), each with corners TL, TR, BR, BL (`getObjPoints`). The top-left
  square is black; with `legacy_pattern` (OpenCV < 4.6, `setLegacyPattern`) and an even number of
  rows it is white instead, which flips every square.

AprilGrid follows Kalibr (aslam_cameras_april GridCalibrationTargetAprilgrid.cpp, kalibr_create_target_pdf).
  Library frame: origin at the bottom-left outer corner of tag 0, x right, y UP, z out of the board.
  Tag id k = y * cols + x sits with its bottom-left corner at (x, y) * (1 + spacing) * size, so
  tag 0 is bottom-left. Grid points are the tag corners: point r * (2 cols) + c at
  ((c // 2) * (1 + spacing) * size + (c % 2) * size, (r // 2) * (1 + spacing) * size + (r % 2) * size),
  i.e. tag k's corners are points base, base + 1, base + 2 cols + 1, base + 2 cols (its own BL, BR,
  TR, TL) with base = (k // cols) * 4 cols + (k % cols) * 2. Kalibr prints tags with a 2-bit black
  border (AprilgridOptions.blackTagBorder = 2), in AprilTag's own orientation, which is OpenCV's
  `generateImageMarker` turned by 180 degrees; and it prints black squares of side
  spacing * size at every tag-gap intersection (including the outer ones) so that each tag corner is
  a chessboard-like saddle. So OpenCV's ArucoDetector reports a Kalibr tag's corners as its printed
  BR, BL, TL, TR: Kalibr points base + 1, base, base + 2 cols, base + 2 cols + 1.

Checkerboard follows OpenCV's `findChessboardCorners` and Kalibr's checkerboard target: `rows` x `cols`
  squares of `square_size_mm` (pattern size = inner corners (cols - 1, rows - 1), Kalibr's targetCols,
  targetRows), the top-left square black, no markers. Library frame and corner order are ChArUco's
  (corner i = y * (cols - 1) + x at ((x + 1) * square, (y + 1) * square), from the top-left inner
  corner, row by row). With rows + cols odd the board has no half-turn symmetry and OpenCV is
  unambiguous: `findChessboardCorners` returns this order and `findChessboardCornersSB` its reverse
  (it starts at the bottom-right inner corner); with rows + cols even the pattern looks the same turned
  by half a turn, so either detector's order depends on the view.

render-tag's object frame for a board is the one of a single tag: origin at the centre of the
printed pattern, x right, y up, z out of the board towards the viewer, board in z = 0.
`library_to_object` is the rigid transform between the two (ChArUco: a half turn about x and a
shift; AprilGrid: a shift). A ChArUco marker's corners in it are a single tag's; an AprilGrid tag's
are a single tag's turned 180 degrees about z, because of the printing orientation above.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Annotated, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from .families import TagFamily, UnknownFamilyError, get_family, marker_image
from .limits import MAX_ID, MAX_SIZE_MM

__all__ = [
    "BoardDefinition",
    "board_image",
    "board_keypoints",
    "board_marker_corners",
    "board_px_per_bit",
    "charuco_generate_image",
    "keypoints_object_frame",
    "library_to_object",
    "marker_corners_object_frame",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
UInt8Array = npt.NDArray[np.uint8]

_DEFAULT_BORDER_BITS = {"charuco": 1, "aprilgrid": 2, "checkerboard": 1}
"""OpenCV's boards use a 1-bit marker border; Kalibr's AprilGrid tags a 2-bit one (a checkerboard has
no markers)."""

_SQUARE_BOARDS = ("charuco", "checkerboard")
"""Boards made of chessboard squares (square_size_mm, ChArUco's library frame and corner order)."""


class BoardDefinition(BaseModel):
    """A ChArUco, AprilGrid or checkerboard board, in millimetres, with the library's own parameters.

    ChArUco: `rows` x `cols` chessboard squares of `square_size_mm`, markers of `marker_size_mm`
    (OpenCV's CharucoBoard((cols, rows), square, marker, dictionary)). AprilGrid: `rows` x `cols`
    tags of `marker_size_mm` (outer edge of the black border), `spacing_ratio` = gap / tag size
    (Kalibr's tagRows, tagCols, tagSize, tagSpacing). Checkerboard: `rows` x `cols` squares of
    `square_size_mm` (OpenCV's pattern size is the inner corners, (cols - 1, rows - 1)); it has no
    markers, so `dictionary` stays empty and `marker_size_mm` is the square. Every check names the
    field it is about:
    fields are validated in declaration order, so each validator can see the ones before it.
    """

    model_config = ConfigDict(extra="forbid")

    board_type: Literal["charuco", "aprilgrid", "checkerboard"]
    rows: int = Field(
        gt=0,
        le=1000,
        strict=True,
        description="ChArUco, checkerboard: squares along y; AprilGrid: tags along y",
    )
    cols: int = Field(
        gt=0,
        le=1000,
        strict=True,
        description="ChArUco, checkerboard: squares along x; AprilGrid: tags along x",
    )
    square_size_mm: Annotated[float, Field(strict=True)] | None = Field(
        None,
        validate_default=True,
        description=f"ChArUco and checkerboard only: chessboard square side (at most {MAX_SIZE_MM:g})",
    )
    marker_size_mm: float = Field(
        0.0,
        validate_default=True,
        le=MAX_SIZE_MM,
        allow_inf_nan=False,
        strict=True,
        description="outer edge of the black border (required); checkerboard: omit, it is the square",
    )
    spacing_ratio: Annotated[float, Field(strict=True)] | None = Field(
        None, validate_default=True, description="AprilGrid only: gap between tags / tag size (tagSpacing)"
    )
    dictionary: str = Field(
        "",
        validate_default=True,
        description="tag family: render-tag's or OpenCV's name; none on a checkerboard",
    )
    legacy_pattern: bool = Field(False, description="ChArUco only: OpenCV < 4.6 layout (setLegacyPattern)")
    border_bits: Annotated[int, Field(strict=True, ge=1, le=4)] | None = Field(
        None, description="black border in modules; default 1 (ChArUco, OpenCV), 2 (AprilGrid, Kalibr)"
    )
    marker_ids: list[Annotated[int, Field(strict=True, le=MAX_ID)]] | None = Field(
        None, validate_default=True, description="id of each marker in library order; default 0..n-1"
    )

    @field_validator("rows", "cols")
    @classmethod
    def _rows_cols(cls, value: int, info: ValidationInfo) -> int:
        board_type = info.data.get("board_type")
        if board_type in _SQUARE_BOARDS and value < 2:
            raise ValueError(f"{info.field_name} must be at least 2 for a {board_type} board, got {value}")
        return value

    @field_validator("square_size_mm")
    @classmethod
    def _square(cls, value: float | None, info: ValidationInfo) -> float | None:
        board_type = info.data.get("board_type")
        if board_type in _SQUARE_BOARDS:
            if value is None:
                raise ValueError(f"square_size_mm is required for a {board_type} board")
            if not math.isfinite(value) or not 0 < value <= MAX_SIZE_MM:
                raise ValueError(
                    f"square_size_mm must be a positive number of millimetres up to {MAX_SIZE_MM:g}, "
                    f"got {value}"
                )
        elif board_type == "aprilgrid" and value is not None:
            raise ValueError("square_size_mm is for charuco boards; an aprilgrid has marker_size_mm only")
        return value

    @field_validator("marker_size_mm")
    @classmethod
    def _marker(cls, value: float, info: ValidationInfo) -> float:
        square = info.data.get("square_size_mm")
        if info.data.get("board_type") == "checkerboard":
            if value and square is not None and value != square:
                raise ValueError(
                    f"a checkerboard has no markers: omit marker_size_mm (or give the square, {square})"
                )
            return square if square is not None else value
        if not value > 0:
            board_type = info.data.get("board_type")
            raise ValueError(f"is required for a {board_type} board and must be greater than 0, got {value}")
        if info.data.get("board_type") == "charuco" and square is not None and value >= square:
            raise ValueError(
                f"marker_size_mm ({value}) must be smaller than square_size_mm ({square}): "
                "the marker sits inside a white square"
            )
        return value

    @field_validator("spacing_ratio")
    @classmethod
    def _spacing(cls, value: float | None, info: ValidationInfo) -> float | None:
        board_type = info.data.get("board_type")
        if board_type == "aprilgrid":
            if value is None:
                raise ValueError("spacing_ratio is required for an aprilgrid (Kalibr's tagSpacing)")
            if not math.isfinite(value) or not 0 < value <= 100:
                raise ValueError(
                    f"spacing_ratio must be positive (gap / tag size) and at most 100, got {value}"
                )
        elif board_type in _SQUARE_BOARDS and value is not None:
            raise ValueError(
                f"spacing_ratio is for aprilgrid boards; a {board_type} board has square_size_mm"
            )
        return value

    @field_validator("dictionary")
    @classmethod
    def _dictionary(cls, value: str, info: ValidationInfo) -> str:
        board_type = info.data.get("board_type")
        if board_type == "checkerboard":
            if value:
                raise ValueError("a checkerboard has no markers: omit dictionary")
            return ""
        if not value:
            raise ValueError(f"dictionary is required for a {board_type} board")
        try:
            family = get_family(value)
        except UnknownFamilyError as exc:
            raise ValueError(f"dictionary: {exc}") from None
        if board_type == "aprilgrid" and family.kind != "apriltag":
            raise ValueError(
                f"dictionary {value!r} is not an AprilTag family; an aprilgrid (Kalibr) uses AprilTags"
            )
        rows, cols = info.data.get("rows"), info.data.get("cols")
        if board_type is not None and rows is not None and cols is not None:
            needed = _marker_count(board_type, rows, cols)
            if needed > family.num_ids:
                raise ValueError(
                    f"dictionary {family.name} has {family.num_ids} ids but a {rows}x{cols} {board_type} "
                    f"needs {needed} markers; choose a larger dictionary or a smaller board"
                )
        return family.name  # canonical, so that "DICT_APRILTAG_36h11" and "tag36h11" compare equal

    @field_validator("legacy_pattern")
    @classmethod
    def _legacy(cls, value: bool, info: ValidationInfo) -> bool:
        board_type = info.data.get("board_type")
        if value and board_type != "charuco":
            raise ValueError(
                "legacy_pattern is an OpenCV ChArUco option; it must be false for "
                f"{'an' if board_type == 'aprilgrid' else 'a'} {board_type}"
            )
        return value

    @field_validator("marker_ids")
    @classmethod
    def _ids(cls, value: list[int] | None, info: ValidationInfo) -> list[int] | None:
        if value is None:
            return None
        data = info.data
        if all(k in data for k in ("board_type", "rows", "cols")):
            needed = _marker_count(data["board_type"], data["rows"], data["cols"])
            if len(value) != needed:
                raise ValueError(f"marker_ids has {len(value)} ids but the board has {needed} markers")
        seen: dict[int, int] = {}
        for index, tag_id in enumerate(value):
            if tag_id in seen:
                raise ValueError(f"marker_ids[{index}] = {tag_id} repeats marker_ids[{seen[tag_id]}]")
            seen[tag_id] = index
        name = data.get("dictionary")
        if name:
            num_ids = get_family(name).num_ids
            for index, tag_id in enumerate(value):
                if not 0 <= tag_id < num_ids:
                    raise ValueError(
                        f"marker_ids[{index}] = {tag_id} is not in {name} (ids 0..{num_ids - 1})"
                    )
        return value

    # -- derived values ------------------------------------------------------------------------

    @property
    def family(self) -> TagFamily:
        """The markers' family (ValueError on a checkerboard, which has none)."""
        if not self.dictionary:
            raise ValueError(f"a {self.board_type} board has no markers and no tag family")
        return get_family(self.dictionary)

    @property
    def effective_border_bits(self) -> int:
        """The marker border in modules: the field, or the library's default."""
        return self.border_bits if self.border_bits is not None else _DEFAULT_BORDER_BITS[self.board_type]

    @property
    def num_markers(self) -> int:
        return _marker_count(self.board_type, self.rows, self.cols)

    @property
    def num_keypoints(self) -> int:
        if self.board_type in _SQUARE_BOARDS:
            return (self.rows - 1) * (self.cols - 1)
        return 4 * self.rows * self.cols

    def resolved_marker_ids(self) -> list[int]:
        """The id of each marker in library order: `marker_ids`, or 0..n-1 as OpenCV and Kalibr do."""
        return list(self.marker_ids) if self.marker_ids is not None else list(range(self.num_markers))

    @property
    def gap_mm(self) -> float:
        """AprilGrid: the gap between tags (and the side of the black corner squares); 0 for ChArUco."""
        return self.marker_size_mm * self.spacing_ratio if self.spacing_ratio is not None else 0.0

    @property
    def width_mm(self) -> float:
        """Width of the printed pattern: ChArUco cols * square; AprilGrid tags, gaps and corner squares."""
        return _extent_mm(self, self.cols)

    @property
    def height_mm(self) -> float:
        return _extent_mm(self, self.rows)

    @property
    def width_m(self) -> float:
        return self.width_mm / 1000.0

    @property
    def height_m(self) -> float:
        return self.height_mm / 1000.0

    @property
    def size_m(self) -> tuple[float, float]:
        """(width, height) of the printed pattern in metres: what a render texture covers."""
        return (self.width_m, self.height_m)


def _marker_count(board_type: str, rows: int, cols: int) -> int:
    # ChArUco: one marker per white square, which is half the squares, rounded down (both layouts).
    if board_type == "checkerboard":
        return 0
    return rows * cols // 2 if board_type == "charuco" else rows * cols


def _extent_mm(defn: BoardDefinition, count: int) -> float:
    if defn.board_type in _SQUARE_BOARDS:
        assert defn.square_size_mm is not None
        return count * defn.square_size_mm
    # Kalibr's corner squares stick out by one gap on each side of the outermost tags.
    return count * defn.marker_size_mm + (count + 1) * defn.gap_mm


def _charuco_marker_squares(defn: BoardDefinition) -> list[tuple[int, int]]:
    """(x, y) of the squares that carry a marker, in OpenCV's order (createCharucoBoard)."""
    legacy = defn.legacy_pattern and defn.rows % 2 == 0
    out = []
    for y in range(defn.rows):
        for x in range(defn.cols):
            black = (y + 1) % 2 == x % 2 if legacy else y % 2 == x % 2
            if not black:
                out.append((x, y))
    return out


def _checker_black(rows: int, cols: int) -> npt.NDArray[np.bool_]:
    """(rows, cols): True where a checkerboard square is black (the top-left one is)."""
    yy, xx = np.mgrid[0:rows, 0:cols]
    return np.asarray((yy + xx) % 2 == 0)


def _charuco_black(defn: BoardDefinition, x: int, y: int) -> bool:
    legacy = defn.legacy_pattern and defn.rows % 2 == 0
    return (y + 1) % 2 == x % 2 if legacy else y % 2 == x % 2


# -- geometry --------------------------------------------------------------------------------------


def board_keypoints(defn: BoardDefinition) -> FloatArray:
    """(N, 3) keypoints in metres, in the library's frame and corner-id order.

    ChArUco: `CharucoBoard.getChessboardCorners()`; AprilGrid: Kalibr's grid points (tag corners);
    checkerboard: the inner corners in ChArUco's order (`findChessboardCorners`' on an upright board).
    """
    if defn.board_type in _SQUARE_BOARDS:
        assert defn.square_size_mm is not None
        sq = defn.square_size_mm / 1000.0
        yy, xx = np.mgrid[1 : defn.rows, 1 : defn.cols]
        pts = np.stack([xx.ravel() * sq, yy.ravel() * sq, np.zeros(xx.size)], axis=1)
        return pts.astype(np.float64)
    size = defn.marker_size_mm / 1000.0
    pitch = size * (1.0 + float(defn.spacing_ratio or 0.0))
    rr, cc = np.mgrid[0 : 2 * defn.rows, 0 : 2 * defn.cols]
    x = (cc // 2) * pitch + (cc % 2) * size
    y = (rr // 2) * pitch + (rr % 2) * size
    return np.stack([x.ravel(), y.ravel(), np.zeros(x.size)], axis=1).astype(np.float64)


def board_marker_corners(defn: BoardDefinition) -> tuple[IntArray, FloatArray]:
    """(ids (M,), corners (M, 4, 3)) in metres in the library frame, in the library's marker order.

    Each marker's corners are its own TL, TR, BR, BL as an ArUco detector reports them. ChArUco:
    `getIds()` and `getObjPoints()`. AprilGrid: tags in id order; because Kalibr prints AprilTags
    turned 180 degrees from OpenCV's marker images, OpenCV's TL is the tag's bottom-right as
    printed, so the corners are Kalibr points base + 1, base, base + 2 cols, base + 2 cols + 1.
    """
    ids = np.asarray(defn.resolved_marker_ids(), dtype=np.int64)
    m = defn.marker_size_mm / 1000.0
    if defn.board_type == "checkerboard":
        return ids, np.empty((0, 4, 3))
    if defn.board_type == "charuco":
        assert defn.square_size_mm is not None
        sq = defn.square_size_mm / 1000.0
        off = (sq - m) / 2.0
        squares = np.array(_charuco_marker_squares(defn), dtype=np.float64)
        x0 = squares[:, 0] * sq + off
        y0 = squares[:, 1] * sq + off
        dx = np.array([0.0, m, m, 0.0])
        dy = np.array([0.0, 0.0, m, m])
        corners = np.stack([x0[:, None] + dx, y0[:, None] + dy, np.zeros((len(x0), 4))], axis=2)
        return ids, corners
    pitch = m * (1.0 + float(defn.spacing_ratio or 0.0))
    k = np.arange(defn.rows * defn.cols)
    x0 = (k % defn.cols) * pitch
    y0 = (k // defn.cols) * pitch
    # OpenCV's TL, TR, BR, BL on a tag printed upside down relative to OpenCV's image: BR, BL, TL, TR.
    dx = np.array([m, 0.0, 0.0, m])
    dy = np.array([0.0, 0.0, m, m])
    corners = np.stack([x0[:, None] + dx, y0[:, None] + dy, np.zeros((len(k), 4))], axis=2)
    return ids, corners


def library_to_object(defn: BoardDefinition) -> FloatArray:
    """4x4 rigid transform taking library-frame points to render-tag's object frame.

    Object frame: origin at the centre of the printed pattern, x right, y up, z towards the viewer.
    ChArUco (y down, z into the board): a half turn about x plus a shift. AprilGrid (y up already):
    a shift, by half the tag grid (the corner squares stick out equally on every side).
    """
    t = np.eye(4)
    if defn.board_type in _SQUARE_BOARDS:
        t[1, 1] = t[2, 2] = -1.0
        t[0, 3] = -defn.width_m / 2.0
        t[1, 3] = defn.height_m / 2.0
    else:
        t[0, 3] = -(defn.width_m - 2.0 * defn.gap_mm / 1000.0) / 2.0
        t[1, 3] = -(defn.height_m - 2.0 * defn.gap_mm / 1000.0) / 2.0
    return t


def _apply(transform: FloatArray, points: FloatArray) -> FloatArray:
    flat = points.reshape(-1, 3)
    out = flat @ transform[:3, :3].T + transform[:3, 3]
    return out.reshape(points.shape)


def keypoints_object_frame(defn: BoardDefinition) -> FloatArray:
    """`board_keypoints` in render-tag's object frame (metres), same order."""
    return _apply(library_to_object(defn), board_keypoints(defn))


def marker_corners_object_frame(defn: BoardDefinition) -> tuple[IntArray, FloatArray]:
    """`board_marker_corners` in render-tag's object frame (metres), same order."""
    ids, corners = board_marker_corners(defn)
    return ids, _apply(library_to_object(defn), corners)


# -- render texture --------------------------------------------------------------------------------


def _layout_bits(defn: BoardDefinition) -> tuple[Fraction, ...]:
    """The lengths a texture must place on whole pixels, in marker modules (bits), as fractions.

    ChArUco: the square and the marker's inset in it; AprilGrid: the gap; checkerboard: the square,
    which is its module. Sizes are read as the decimal numbers a user typed (limit_denominator), so
    40.1 mm is 401/10, not a binary float.
    """
    if defn.board_type == "checkerboard":
        return (Fraction(1),)
    modules = defn.family.marker_bits + 2 * defn.effective_border_bits
    m = Fraction(defn.marker_size_mm).limit_denominator(10**6)
    if defn.board_type == "charuco":
        assert defn.square_size_mm is not None
        sq = Fraction(defn.square_size_mm).limit_denominator(10**6)
        return (sq * modules / m, (sq - m) * modules / (2 * m))
    gap = Fraction(defn.spacing_ratio or 0.0).limit_denominator(10**6) * modules
    return (gap,)


def _side_bits(defn: BoardDefinition) -> float:
    """The longer side of the pattern in marker modules (checkerboard: squares)."""
    if defn.board_type == "checkerboard":
        return float(max(defn.rows, defn.cols))
    modules = defn.family.marker_bits + 2 * defn.effective_border_bits
    return max(defn.width_mm, defn.height_mm) * modules / defn.marker_size_mm


def board_px_per_bit(defn: BoardDefinition, max_side_px: int = 8192) -> int:
    """Pixels per marker module for `board_image`: the smallest that puts every edge on a whole pixel.

    Nearest sampling of such a texture draws the board exactly. If that needs a side above
    `max_side_px`, the largest scale that fits is returned instead and `board_image` rounds the
    squares/gaps to whole pixels (at most half a pixel of the texture).
    """
    exact = math.lcm(*(f.denominator for f in _layout_bits(defn)))
    largest = int(max_side_px // _side_bits(defn))
    if largest < 1:
        raise ValueError(f"max_side_px={max_side_px} is too small for one pixel per module on this board")
    return exact if exact <= largest else largest


def board_image(defn: BoardDefinition, px_per_bit: int | None = None) -> UInt8Array:
    """The board as a render texture: uint8 0/255, covering exactly the printed pattern (`size_m`).

    Row 0 is the top of the board as it faces the viewer (object +y). Every marker module is
    `px_per_bit` pixels (default `board_px_per_bit`), so nearest ("Closest") sampling reproduces
    it; square and gap edges land on whole pixels when `px_per_bit` is a multiple of the exact
    scale `board_px_per_bit` finds (otherwise they are rounded). ChArUco markers are
    `generateImageMarker`'s images (and the whole texture equals `generateImage` at its size);
    AprilGrid tags are Kalibr's, i.e. OpenCV's marker images turned 180 degrees. A checkerboard's
    module is its square: `px_per_bit` pixels per square (default 1, which nearest sampling draws exactly).
    """
    k = board_px_per_bit(defn) if px_per_bit is None else int(px_per_bit)
    if k < 1:
        raise ValueError(f"px_per_bit must be at least 1, got {px_per_bit}")
    if defn.board_type == "checkerboard":  # a module is a square
        black = _checker_black(defn.rows, defn.cols)
        return np.where(np.repeat(np.repeat(black, k, axis=0), k, axis=1), 0, 255).astype(np.uint8)
    bb = defn.effective_border_bits
    modules = defn.family.marker_bits + 2 * bb
    marker_px = modules * k
    ids = defn.resolved_marker_ids()

    if defn.board_type == "charuco":
        sq_bits, _ = _layout_bits(defn)
        sq_px = round(sq_bits * k)
        inset = (sq_px - marker_px) // 2  # exact when the scale is exact; else centred to half a pixel
        img = np.full((defn.rows * sq_px, defn.cols * sq_px), 255, dtype=np.uint8)
        for y in range(defn.rows):
            for x in range(defn.cols):
                if _charuco_black(defn, x, y):
                    img[y * sq_px : (y + 1) * sq_px, x * sq_px : (x + 1) * sq_px] = 0
        for tag_id, (x, y) in zip(ids, _charuco_marker_squares(defn), strict=True):
            r, c = y * sq_px + inset, x * sq_px + inset
            img[r : r + marker_px, c : c + marker_px] = marker_image(defn.dictionary, tag_id, marker_px, bb)
        return img

    (gap_bits,) = _layout_bits(defn)
    gap = round(gap_bits * k)
    pitch = marker_px + gap
    h = defn.rows * pitch + gap
    w = defn.cols * pitch + gap
    img = np.full((h, w), 255, dtype=np.uint8)
    for i in range(defn.rows + 1):  # Kalibr's corner squares, at every gap intersection
        for j in range(defn.cols + 1):
            img[i * pitch : i * pitch + gap, j * pitch : j * pitch + gap] = 0
    for index, tag_id in enumerate(ids):
        x, y = index % defn.cols, index // defn.cols  # Kalibr counts rows up from the bottom
        r = h - gap - y * pitch - marker_px
        c = gap + x * pitch
        tag = marker_image(defn.dictionary, tag_id, marker_px, bb)
        img[r : r + marker_px, c : c + marker_px] = tag[::-1, ::-1]  # AprilTag's upright = OpenCV's turned
    return img


# -- OpenCV's CharucoBoard.generateImage -----------------------------------------------------------


def charuco_generate_image(
    defn: BoardDefinition,
    out_size: tuple[int, int],
    margin_px: int = 0,
    border_bits: int = 1,
    units: Literal["m", "mm"] = "m",
) -> UInt8Array:
    """`cv2.aruco.CharucoBoard(...).generateImage(out_size, marginSize, borderBits)`, bit for bit.

    A step-by-step copy of OpenCV 4.11's CharucoBoardImpl::generateImage and
    Board::Impl::generateImage (opencv-python 4.11.0.86 sources), in the same float32 arithmetic
    with cvRound (half to even), because the fit of the board into `out_size` rounds and an
    "equivalent" formula moves edges by a pixel on awkward sizes. (OpenCV 4.6-4.7 fitted the board
    differently: centred marker zone, truncation; their images differ.) `units` is the unit the
    board's lengths were given to OpenCV in ("m": square_size_mm / 1000); it matters only through
    float rounding. Raises ValueError where OpenCV would fail an assertion (board too small).
    """
    if defn.board_type != "charuco":
        raise ValueError(f"charuco_generate_image needs a charuco board, got board_type={defn.board_type!r}")
    assert defn.square_size_mm is not None
    w, h = int(out_size[0]), int(out_size[1])
    margin = int(margin_px)
    if w <= 0 or h <= 0 or margin < 0 or w - 2 * margin <= 0 or h - 2 * margin <= 0:
        raise ValueError(f"out_size {out_size} with margin_px={margin_px} leaves no room for the board")
    f32 = np.float32
    scale = 1000.0 if units == "m" else 1.0
    sq = f32(defn.square_size_mm / scale)
    mk = f32(defn.marker_size_mm / scale)

    # createCharucoBoard: marker corners 0 and 2 (TL, BR), float32 as OpenCV stores them.
    diff = f32(f32(sq - mk) / f32(2))
    squares = _charuco_marker_squares(defn)
    tl = [(f32(f32(x) * sq) + diff, f32(f32(y) * sq) + diff) for x, y in squares]
    br = [(f32(cx + mk), f32(cy + mk)) for cx, cy in tl]

    img = np.full((h, w), 255, dtype=np.uint8)
    no_margin = img[margin : h - margin, margin : w - margin]
    nm_h, nm_w = no_margin.shape

    # CharucoBoardImpl::generateImage: fit the chessboard (float32, cvRound = round half to even).
    px_sq_x = f32(f32(nm_w) / f32(defn.cols))
    px_sq_y = f32(f32(nm_h) / f32(defn.rows))
    zone_x = zone_y = 0
    zone_w, zone_h = nm_w, nm_h
    if px_sq_x <= px_sq_y:
        px_sq = px_sq_x
        zone_h = _cv_round(f32(px_sq * f32(defn.rows)))
        zone_y = _c_div(nm_h - zone_h, 2)
    else:
        px_sq = px_sq_y
        zone_w = _cv_round(f32(px_sq * f32(defn.cols)))
        zone_x = _c_div(nm_w - zone_w, 2)
    if zone_x < 0 or zone_y < 0:
        raise ValueError(f"out_size {out_size} is too small for this board")
    zone = no_margin[zone_y : zone_y + zone_h, zone_x : zone_x + zone_w]
    px_marker = f32(f32(mk / sq) * px_sq)
    px_inset = f32(f32(0.5) * f32(px_sq - px_marker))
    end_x = _cv_round(f32(f32(f32(px_sq * f32(defn.cols - 1)) + px_inset) + px_marker))
    end_y = _cv_round(f32(f32(f32(px_sq * f32(defn.rows - 1)) + px_inset) + px_marker))
    start = _cv_round(px_inset)
    aruco_zone = zone[start:end_y, start:end_x]

    # Board::Impl::generateImage(arucoZone.size(), arucoZone, 0, borderBits): the marker corners'
    # bounding box is stretched over the zone on each axis (no centring), float32.
    zh, zw = aruco_zone.shape
    if zh <= 0 or zw <= 0:
        raise ValueError(f"out_size {out_size} is too small for this board")
    min_x = min(p[0] for p in tl)
    max_x = max(p[0] for p in br)
    min_y = min(p[1] for p in tl)
    max_y = max(p[1] for p in br)
    size_x = f32(max_x - min_x)
    size_y = f32(max_y - min_y)
    for tag_id, (x0, y0), (x2, y2) in zip(defn.resolved_marker_ids(), tl, br, strict=True):
        p0x = f32(f32(f32(x0 - min_x) / size_x) * f32(zw))
        p0y = f32(f32(f32(y0 - min_y) / size_y) * f32(zh))
        p2x = f32(f32(f32(x2 - min_x) / size_x) * f32(zw))
        p2y = f32(f32(f32(y2 - min_y) / size_y) * f32(zh))
        # Size(Point2f) and Rect(Point2f, Size) convert with cvRound.
        side = min(_cv_round(f32(p2x - p0x)), _cv_round(f32(p2y - p0y)))
        c, r = _cv_round(p0x), _cv_round(p0y)
        if side <= 0 or r < 0 or c < 0 or r + side > zh or c + side > zw:
            raise ValueError(f"out_size {out_size} is too small to draw the markers of this board")
        aruco_zone[r : r + side, c : c + side] = marker_image(defn.dictionary, tag_id, side, border_bits)

    for y in range(defn.rows):
        for x in range(defn.cols):
            if _charuco_black(defn, x, y):
                sx = f32(px_sq * f32(x))
                sy = f32(px_sq * f32(y))
                r0, r1 = _cv_round(sy), _cv_round(f32(sy + px_sq))
                c0, c1 = _cv_round(sx), _cv_round(f32(sx + px_sq))
                zone[r0:r1, c0:c1] = 0
    return img


def _cv_round(value: np.float32) -> int:
    """OpenCV's cvRound on a float: round half to even (SSE cvtss2si under the default mode)."""
    return int(np.rint(value))


def _c_div(a: int, b: int) -> int:
    """C++ integer division (truncates towards zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q
