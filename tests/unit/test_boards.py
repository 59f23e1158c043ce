"""Calibration boards against the libraries that define them: OpenCV's CharucoBoard and Kalibr's AprilGrid.

Images are compared bit for bit with `CharucoBoard.generateImage`, layouts with OpenCV's own board
object, and the pixel positions predicted from the package's geometry with what OpenCV's detectors
find on the generated images.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from render_tag_shared.boards import (
    BoardDefinition,
    board_image,
    board_keypoints,
    board_marker_corners,
    board_px_per_bit,
    charuco_generate_image,
    keypoints_object_frame,
    library_to_object,
    marker_corners_object_frame,
)
from render_tag_shared.families import get_family

from ..builders import CHARUCO
from ..opencv_helpers import OPENCV_VERSION, aruco_parameters, charuco_detector_bias

# OpenCV 4.7 to 4.13's CharucoDetector hands cornerSubPix `p - 0.5` and returns `result + 0.5`
# (objdetect/src/aruco/charuco_detector.cpp, opencv/opencv#25539), so on an image whose pixel centres
# are integers its chessboard corners come out half a pixel right and down of the saddle; 4.14 and
# 5.x do not. Measured on OpenCV's own board image (tests/opencv_helpers.py), not assumed from the
# version. ArucoDetector's marker corners have no such shift.
CHARUCO_DETECTOR_SHIFT = charuco_detector_bias()

# OpenCV 4.14 to 5.1's generateImage fails an ROI assertion (matrix.cpp, `Mat(roi)`) on some sizes that
# 4.11 draws, e.g. a 7x5 board at 652x172 px with a 14 px margin and 2 border bits: a bug of
# OpenCV's, not a size too small to draw, so no comparison is possible there.
OPENCV_ROI_BUG = OPENCV_VERSION >= (4, 14)


def charuco(
    rows: int, cols: int, square: float, marker: float, dictionary: str, **kw: object
) -> BoardDefinition:
    return BoardDefinition(
        board_type="charuco",
        rows=rows,
        cols=cols,
        square_size_mm=square,
        marker_size_mm=marker,
        dictionary=dictionary,
        **kw,
    )


def aprilgrid(
    rows: int, cols: int, size: float, spacing: float, dictionary: str = "tag36h11", **kw: Any
) -> BoardDefinition:
    return BoardDefinition(
        board_type="aprilgrid",
        rows=rows,
        cols=cols,
        marker_size_mm=size,
        spacing_ratio=spacing,
        dictionary=dictionary,
        **kw,
    )


def cv_dictionary(name: str) -> Any:
    return cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, get_family(name).opencv_name))


def cv_board(defn: BoardDefinition, units: str = "m") -> Any:
    """OpenCV's board for a definition, lengths in metres (or millimetres) as a user would pass them."""
    scale = 1000.0 if units == "m" else 1.0
    assert defn.square_size_mm is not None
    ids = None if defn.marker_ids is None else np.array(defn.marker_ids, dtype=np.int32)
    board = cv2.aruco.CharucoBoard(
        (defn.cols, defn.rows),
        defn.square_size_mm / scale,
        defn.marker_size_mm / scale,
        cv_dictionary(defn.dictionary),
        ids,
    )
    board.setLegacyPattern(defn.legacy_pattern)
    return board


CHARUCO_BOARDS = [
    charuco(5, 7, 40, 30, "DICT_5X5_100"),  # DESIGN.md's example
    charuco(6, 4, 40, 30, "DICT_4X4_50"),  # even rows: legacy flips the pattern
    charuco(6, 4, 40, 30, "DICT_4X4_50", legacy_pattern=True),
    charuco(5, 4, 40, 30, "DICT_4X4_50", legacy_pattern=True),  # odd rows: legacy changes nothing
    charuco(7, 5, 35.3, 27.1, "tag36h11"),
    charuco(8, 6, 25, 12.5, "DICT_ARUCO_ORIGINAL", legacy_pattern=True),
    charuco(3, 3, 30, 22, "DICT_7X7_50", marker_ids=[7, 3, 40, 11]),
    charuco(4, 9, 20, 15, "tag16h5"),
]
BOARD_IDS = [
    f"{b.rows}x{b.cols}-{b.dictionary}{'-legacy' if b.legacy_pattern else ''}" for b in CHARUCO_BOARDS
]


# -- (a) images equal CharucoBoard.generateImage ---------------------------------------------------


def _sizes(defn: BoardDefinition, rng: np.random.Generator) -> list[tuple[tuple[int, int], int, int]]:
    """Exact layouts, squares that don't divide the image, and random awkward sizes and margins."""
    cases = [((defn.cols * 60, defn.rows * 60), 0, 1), ((defn.cols * 50 + 40, defn.rows * 50 + 40), 20, 1)]
    cases += [((defn.cols * 61 + 3, defn.rows * 59 + 1), 7, 2), ((703, 500), 0, 1), ((500, 703), 13, 1)]
    for _ in range(12):
        size = (int(rng.integers(150, 1000)), int(rng.integers(150, 1000)))
        cases.append((size, int(rng.integers(0, 25)), int(rng.integers(1, 3))))
    return cases


@pytest.mark.parametrize("defn", CHARUCO_BOARDS, ids=BOARD_IDS)
def test_charuco_image_equals_opencv_generate_image(defn: BoardDefinition) -> None:
    board = cv_board(defn)
    rng = np.random.default_rng(defn.rows * 100 + defn.cols)
    compared = 0
    for size, margin, border in _sizes(defn, rng):
        try:
            ref = board.generateImage(size, marginSize=margin, borderBits=border)
        except cv2.error as exc:  # too small for OpenCV: ours must refuse it too
            if OPENCV_ROI_BUG and "roi.x + roi.width <= m.cols" in str(exc):
                assert charuco_generate_image(defn, size, margin, border).shape == size[::-1]
                continue
            with pytest.raises(ValueError):
                charuco_generate_image(defn, size, margin, border)
            continue
        ours = charuco_generate_image(defn, size, margin, border)
        assert ours.dtype == np.uint8 and ours.shape == ref.shape
        bad = np.argwhere(ours != ref)
        assert bad.size == 0, f"size={size} margin={margin} borderBits={border}: {len(bad)} pixels differ"
        compared += 1
    assert compared >= 10


def test_charuco_image_in_millimetre_units_and_tiny_sizes() -> None:
    defn = charuco(5, 7, 40.1, 30.3, "DICT_6X6_250")
    board = cv_board(defn, units="mm")
    for size, margin in [((700, 500), 10), ((641, 479), 0), ((129, 97), 3)]:
        ref = board.generateImage(size, marginSize=margin, borderBits=1)
        assert np.array_equal(charuco_generate_image(defn, size, margin, units="mm"), ref)
    with pytest.raises(cv2.error):
        board.generateImage((40, 30), marginSize=0, borderBits=1)
    with pytest.raises(ValueError):
        charuco_generate_image(defn, (40, 30))


EXACT = [0, 1, 2, 3, 5, 6, 7]  # boards whose layout is whole pixels below board_px_per_bit's size cap


@pytest.mark.parametrize("defn", [CHARUCO_BOARDS[i] for i in EXACT], ids=[BOARD_IDS[i] for i in EXACT])
def test_texture_equals_generate_image_at_its_own_size(defn: BoardDefinition) -> None:
    """The render texture is OpenCV's board image whenever its layout is whole pixels."""
    k = board_px_per_bit(defn)
    tex = board_image(defn, k)
    modules = defn.family.marker_bits + 2
    assert defn.square_size_mm is not None
    sq_px = defn.square_size_mm / defn.marker_size_mm * modules * k
    assert tex.shape == (defn.rows * round(sq_px), defn.cols * round(sq_px))
    assert abs(sq_px - round(sq_px)) < 1e-9
    ref = cv_board(defn).generateImage((tex.shape[1], tex.shape[0]), marginSize=0, borderBits=1)
    assert np.array_equal(tex, ref)
    assert np.array_equal(charuco_generate_image(defn, (tex.shape[1], tex.shape[0])), tex)


# -- (b) geometry equals OpenCV's board -----------------------------------------------------------


@pytest.mark.parametrize("defn", CHARUCO_BOARDS, ids=BOARD_IDS)
def test_charuco_geometry_equals_opencv(defn: BoardDefinition) -> None:
    board = cv_board(defn)
    kp = board_keypoints(defn)
    ref_kp = np.asarray(board.getChessboardCorners(), dtype=np.float64).reshape(-1, 3)
    assert kp.shape == ref_kp.shape == (defn.num_keypoints, 3)
    np.testing.assert_allclose(kp, ref_kp, atol=1e-7)

    ids, corners = board_marker_corners(defn)
    np.testing.assert_array_equal(ids, np.asarray(board.getIds()).ravel())
    ref_corners = np.asarray(board.getObjPoints(), dtype=np.float64).reshape(-1, 4, 3)
    assert corners.shape == ref_corners.shape == (defn.num_markers, 4, 3)
    np.testing.assert_allclose(corners, ref_corners, atol=1e-7)


def test_legacy_pattern_flips_even_rows_only() -> None:
    new, old = charuco(6, 4, 40, 30, "DICT_4X4_50"), charuco(6, 4, 40, 30, "DICT_4X4_50", legacy_pattern=True)
    assert not np.allclose(board_marker_corners(new)[1], board_marker_corners(old)[1])
    odd_new = charuco(5, 4, 40, 30, "DICT_4X4_50")
    odd_old = charuco(5, 4, 40, 30, "DICT_4X4_50", legacy_pattern=True)
    np.testing.assert_array_equal(board_marker_corners(odd_new)[1], board_marker_corners(odd_old)[1])
    # OpenCV >= 4.6: the top-left square is black (no marker there); legacy with even rows: white.
    assert board_image(new)[0, 0] == 0 and board_image(old)[0, 0] == 255


# -- (c) CharucoDetector finds every corner where the geometry says ------------------------------


def _detect_charuco(defn: BoardDefinition, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    detector = cv2.aruco.CharucoDetector(cv_board(defn))
    corners, ids, _, _ = detector.detectBoard(image)
    assert ids is not None, "no ChArUco corner detected"
    return corners.reshape(-1, 2).astype(np.float64), ids.ravel()


@pytest.mark.parametrize("defn", CHARUCO_BOARDS[:6], ids=BOARD_IDS[:6])
def test_charuco_detector_on_generated_image(defn: BoardDefinition) -> None:
    """generateImage-equal image with a quiet zone: every corner, its id, within 0.05 px."""
    # 120 px squares: at 60-80 px the detector's refinement window reaches the marker borders on
    # some boards and pulls corners by up to 0.2 px (a property of the detector, not of the image)
    square_px, margin = 120, 40
    image = charuco_generate_image(
        defn, (defn.cols * square_px + 2 * margin, defn.rows * square_px + 2 * margin), margin
    )
    corners, ids = _detect_charuco(defn, image)
    assert sorted(ids.tolist()) == list(range(defn.num_keypoints))
    assert defn.square_size_mm is not None
    px_per_m = square_px / (defn.square_size_mm / 1000.0)
    # library frame (x right, y down, origin at the board's top-left edge) to pixel centres
    predicted = board_keypoints(defn)[ids, :2] * px_per_m + margin - 0.5 + CHARUCO_DETECTOR_SHIFT
    err = np.abs(corners - predicted)
    assert err.max() < 0.05, f"worst corner {ids[err.max(axis=1).argmax()]} off by {err.max():.3f} px"


@pytest.mark.parametrize("defn", [CHARUCO_BOARDS[0], CHARUCO_BOARDS[2]], ids=[BOARD_IDS[0], BOARD_IDS[2]])
def test_charuco_detector_on_texture_through_object_frame(defn: BoardDefinition) -> None:
    """The render texture, read through the object frame (y up, centred): same corners, same ids."""
    k = board_px_per_bit(defn) * 2
    tex = board_image(defn, k)
    pad = 60
    image = np.pad(tex, pad, constant_values=255)
    corners, ids = _detect_charuco(defn, image)
    assert sorted(ids.tolist()) == list(range(defn.num_keypoints))
    px_per_m = tex.shape[1] / defn.width_m
    assert tex.shape[0] / defn.height_m == pytest.approx(px_per_m)
    obj = keypoints_object_frame(defn)[ids]
    u = (obj[:, 0] + defn.width_m / 2) * px_per_m + pad - 0.5 + CHARUCO_DETECTOR_SHIFT
    v = (defn.height_m / 2 - obj[:, 1]) * px_per_m + pad - 0.5 + CHARUCO_DETECTOR_SHIFT
    assert np.abs(corners - np.stack([u, v], axis=1)).max() < 0.05


# -- (d) AprilGrid: Kalibr's layout, ArucoDetector finds every tag --------------------------------

APRILGRIDS = [
    aprilgrid(6, 6, 50, 0.3),  # DESIGN.md's example
    aprilgrid(3, 4, 80, 0.25),  # Kalibr's old default spacing: the gap is 2.5 modules
    aprilgrid(4, 3, 30, 0.5, "tag16h5"),
    aprilgrid(2, 5, 40, 0.3, "tag25h9", border_bits=1),
]
GRID_IDS = [
    f"{g.rows}x{g.cols}-{g.dictionary}-s{g.spacing_ratio}-b{g.effective_border_bits}" for g in APRILGRIDS
]


def kalibr_grid_points(tag_rows: int, tag_cols: int, size: float, spacing: float) -> np.ndarray:
    """GridCalibrationTargetAprilgrid::createGridPoints, transcribed (rows = 2 tagRows, cols = 2 tagCols)."""
    rows, cols = 2 * tag_rows, 2 * tag_cols
    pts = np.zeros((rows * cols, 3))
    for r in range(rows):
        for c in range(cols):
            pts[r * cols + c] = [
                (c // 2) * (1 + spacing) * size + (c % 2) * size,
                (r // 2) * (1 + spacing) * size + (r % 2) * size,
                0.0,
            ]
    return pts


@pytest.mark.parametrize("defn", APRILGRIDS, ids=GRID_IDS)
def test_aprilgrid_points_follow_kalibr(defn: BoardDefinition) -> None:
    kp = board_keypoints(defn)
    ref = kalibr_grid_points(defn.rows, defn.cols, defn.marker_size_mm / 1000, defn.spacing_ratio or 0.0)
    np.testing.assert_allclose(kp, ref, atol=1e-12)
    ids, corners = board_marker_corners(defn)
    np.testing.assert_array_equal(ids, np.arange(defn.rows * defn.cols))
    cols = 2 * defn.cols
    for tag_id in ids:
        # computeObservation: Kalibr stores detection corner j (the tag's BL, BR, TR, TL) at pIdx[j]
        base = (tag_id // defn.cols) * cols * 2 + (tag_id % defn.cols) * 2
        p_idx = [base, base + 1, base + cols + 1, base + cols]
        # OpenCV reports BR, BL, TL, TR of a Kalibr tag: Kalibr's order is corners 1, 0, 3, 2
        np.testing.assert_allclose(kp[p_idx], corners[tag_id][[1, 0, 3, 2]], atol=1e-12)


# The first codes of Kalibr's t36h11 list (kalibr_create_target_pdf, AprilTagCodes.t36h11).
KALIBR_T36H11 = [0xD5D628584, 0xD97F18B49, 0xDD280910E, 0xE479E9C98]


def kalibr_tag_bits(code: int, n: int) -> np.ndarray:
    """generateAprilTag's data bits as printed (True = white), row 0 at the top of the page."""
    black = np.zeros((n, n), dtype=bool)
    for i in range(n):
        for j in range(n):
            black[i, j] = not code & (1 << (n * i + j))
    black = np.rot90(black, 2)
    # bit (i, j) is drawn at x = (j + border) * bit, y = (border - 1 + n - i) * bit in PDF
    # coordinates (y up), i.e. row i counted from the top
    return ~black


def test_aprilgrid_tags_are_printed_as_kalibr_prints_them() -> None:
    defn = aprilgrid(2, 2, 50, 0.3)
    k = board_px_per_bit(defn)
    tex = board_image(defn, k)
    gap = round(0.3 * 10 * k)
    modules = 10  # 6 data bits + 2 x 2 border bits (Kalibr's blackTagBorder = 2)
    for tag_id, code in enumerate(KALIBR_T36H11):
        x, y = tag_id % 2, tag_id // 2
        r = tex.shape[0] - gap - y * (modules * k + gap) - modules * k
        c = gap + x * (modules * k + gap)
        tag = tex[r : r + modules * k : k, c : c + modules * k : k] > 127
        assert not tag[:2].any() and not tag[-2:].any() and not tag[:, :2].any() and not tag[:, -2:].any()
        np.testing.assert_array_equal(tag[2:-2, 2:-2], kalibr_tag_bits(code, 6), err_msg=f"tag {tag_id}")
    # Kalibr's corner squares: black at every gap intersection, white gaps between them
    g = gap
    assert (tex[:g, :g] == 0).all() and (tex[-g:, -g:] == 0).all()
    assert (tex[:g, g : g + modules * k] == 255).all()


@pytest.mark.parametrize("defn", APRILGRIDS, ids=GRID_IDS)
def test_aruco_detector_on_aprilgrid(defn: BoardDefinition) -> None:
    """Every tag, its id, its corners in OpenCV's order, within 0.05 px (the corners are saddles)."""
    k = board_px_per_bit(defn)
    k *= -(-8 // k)  # at least 8 px per module so that subpixel refinement has a window
    tex = board_image(defn, k)
    pad = 4 * k
    image = np.pad(tex, pad, constant_values=255)
    params = aruco_parameters(defn.effective_border_bits)
    detector = cv2.aruco.ArucoDetector(cv_dictionary(defn.dictionary), params)
    found, found_ids, _ = detector.detectMarkers(image)
    assert found_ids is not None
    expected_ids, expected = board_marker_corners(defn)
    assert sorted(found_ids.ravel().tolist()) == sorted(expected_ids.tolist())
    px_per_m = tex.shape[1] / defn.width_m
    gap = defn.gap_mm / 1000
    top = defn.height_m - gap  # library y of the texture's top edge
    for corners, tag_id in zip(found, found_ids.ravel(), strict=True):
        lib = expected[list(expected_ids).index(tag_id)]
        u = (lib[:, 0] + gap) * px_per_m + pad - 0.5
        v = (top - lib[:, 1]) * px_per_m + pad - 0.5
        err = np.abs(corners.reshape(4, 2) - np.stack([u, v], axis=1)).max()
        assert err < 0.05, f"tag {tag_id}: corners off by {err:.3f} px"


# -- frames ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("defn", CHARUCO_BOARDS + APRILGRIDS, ids=BOARD_IDS + GRID_IDS)
def test_object_frame_is_a_single_tags_frame(defn: BoardDefinition) -> None:
    """ChArUco markers' corners in the object frame are a single tag's (TL -+, TR ++, BR +-, BL --).

    AprilGrid tags are printed upright in AprilTag's sense, which is OpenCV's marker image turned
    180 degrees: in the board's frame (Kalibr's, y up) OpenCV's TL of every tag is at its bottom right.
    """
    t = library_to_object(defn)
    np.testing.assert_allclose(t[:3, :3] @ t[:3, :3].T, np.eye(3), atol=1e-12)
    assert np.linalg.det(t[:3, :3]) == pytest.approx(1.0)
    h = defn.marker_size_mm / 2000
    single = np.array([[-h, h, 0.0], [h, h, 0.0], [h, -h, 0.0], [-h, -h, 0.0]])
    if defn.board_type == "aprilgrid":
        single = -single  # a half turn about z
    _, corners = marker_corners_object_frame(defn)
    for quad in corners:
        np.testing.assert_allclose(quad - quad.mean(axis=0), single, atol=1e-12)
    kp = keypoints_object_frame(defn)
    np.testing.assert_allclose(kp.mean(axis=0), 0.0, atol=1e-12)  # centred: the grids are symmetric
    assert np.abs(kp[:, 0]).max() < defn.width_m / 2 and np.abs(kp[:, 1]).max() < defn.height_m / 2
    if defn.board_type == "charuco":  # keypoint 0 is the top-left inner corner
        assert kp[0, 0] < 0 < kp[0, 1]
    else:  # Kalibr's point 0 is tag 0's bottom-left corner
        assert kp[0, 0] < 0 and kp[0, 1] < 0


def test_sizes_and_counts() -> None:
    c = charuco(5, 7, 40, 30, "DICT_5X5_100")
    assert c.size_m == pytest.approx((0.28, 0.2))
    assert (c.num_markers, c.num_keypoints, c.effective_border_bits) == (17, 24, 1)
    g = aprilgrid(6, 6, 50, 0.3)
    # 6 tags + 7 gaps (Kalibr's corner squares stick out by one gap on each side)
    assert g.size_m == pytest.approx((0.405, 0.405))
    assert (g.num_markers, g.num_keypoints, g.effective_border_bits) == (36, 144, 2)
    assert board_image(g).shape == (81, 81)  # 10 modules a tag, 3 a gap, 1 px each
    assert BoardDefinition.model_validate(g.model_dump()) == g


def test_px_per_bit_exact_or_capped() -> None:
    assert board_px_per_bit(aprilgrid(3, 4, 80, 0.25)) == 2  # gap 2.5 modules
    assert board_px_per_bit(charuco(5, 7, 40, 30, "DICT_5X5_100")) == 6  # square 9 1/3, inset 7/6 modules
    awkward = charuco(5, 7, 40.3, 30.1, "DICT_5X5_100")
    exact = board_px_per_bit(awkward, max_side_px=100_000)
    assert exact == 43
    capped = board_px_per_bit(awkward, max_side_px=1000)
    assert capped < exact and max(board_image(awkward, capped).shape) <= 1000


def test_opencv_alias_is_canonicalised() -> None:
    g = aprilgrid(2, 2, 50, 0.3, "DICT_APRILTAG_36h11")
    assert g.dictionary == "tag36h11"


# -- (e) validation: every rule names its field ---------------------------------------------------

GOOD_CHARUCO = CHARUCO
GOOD_GRID = dict(
    board_type="aprilgrid", rows=6, cols=6, marker_size_mm=50, spacing_ratio=0.3, dictionary="tag36h11"
)
GOOD_CHECKER = dict(board_type="checkerboard", rows=7, cols=10, square_size_mm=25)


@pytest.mark.parametrize(
    ("base", "change", "field", "words"),
    [
        (GOOD_CHARUCO, {"rows": 0}, "rows", "greater than 0"),
        (GOOD_GRID, {"cols": -1}, "cols", "greater than 0"),
        (GOOD_CHARUCO, {"rows": 1}, "rows", "at least 2"),
        (GOOD_CHARUCO, {"cols": 1}, "cols", "at least 2"),
        (GOOD_CHARUCO, {"square_size_mm": None}, "square_size_mm", "required"),
        (GOOD_CHARUCO, {"square_size_mm": 0}, "square_size_mm", "positive"),
        (GOOD_GRID, {"square_size_mm": 40}, "square_size_mm", "charuco"),
        (GOOD_CHARUCO, {"marker_size_mm": 0}, "marker_size_mm", "greater than 0"),
        (GOOD_CHARUCO, {"marker_size_mm": 40}, "marker_size_mm", "smaller than square_size_mm"),
        (GOOD_CHARUCO, {"marker_size_mm": 45}, "marker_size_mm", "smaller than square_size_mm"),
        (GOOD_GRID, {"spacing_ratio": None}, "spacing_ratio", "required"),
        (GOOD_GRID, {"spacing_ratio": 0}, "spacing_ratio", "positive"),
        (GOOD_CHARUCO, {"spacing_ratio": 0.3}, "spacing_ratio", "aprilgrid"),
        (GOOD_CHARUCO, {"dictionary": "DICT_9X9_1"}, "dictionary", "unknown"),
        (GOOD_GRID, {"dictionary": "DICT_4X4_1000"}, "dictionary", "AprilTag"),
        (GOOD_CHARUCO, {"rows": 11, "cols": 11, "dictionary": "DICT_4X4_50"}, "dictionary", "60 markers"),
        (GOOD_GRID, {"rows": 6, "cols": 6, "dictionary": "tag16h5"}, "dictionary", "36 markers"),
        (GOOD_GRID, {"legacy_pattern": True}, "legacy_pattern", "false for an aprilgrid"),
        (GOOD_CHARUCO, {"border_bits": 0}, "border_bits", "greater than or equal to 1"),
        (GOOD_CHARUCO, {"rows": 2, "cols": 2, "marker_ids": [1, 2, 3]}, "marker_ids", "2 markers"),
        (GOOD_CHARUCO, {"rows": 2, "cols": 2, "marker_ids": [4, 4]}, "marker_ids", "repeats"),
        (GOOD_CHARUCO, {"rows": 2, "cols": 2, "marker_ids": [0, 100]}, "marker_ids", "not in DICT_5X5_100"),
        (GOOD_CHARUCO, {"rows": 2, "cols": 2, "marker_ids": [0, -1]}, "marker_ids", "not in"),
        (GOOD_CHARUCO, {"board_type": "hexboard"}, "board_type", "checkerboard"),
        (GOOD_CHECKER, {"dictionary": "DICT_4X4_50"}, "dictionary", "no markers"),
        (GOOD_CHECKER, {"marker_size_mm": 20}, "marker_size_mm", "no markers"),
        (GOOD_CHECKER, {"square_size_mm": None}, "square_size_mm", "required for a checkerboard"),
        (GOOD_CHECKER, {"legacy_pattern": True}, "legacy_pattern", "false for a checkerboard"),
        (GOOD_CHECKER, {"rows": 1}, "rows", "at least 2"),
        ({k: v for k, v in GOOD_CHARUCO.items() if k != "dictionary"}, {}, "dictionary", "required"),
        (GOOD_CHARUCO, {"tag_spacing": 0.3}, "tag_spacing", "not permitted"),
    ],
)
def test_validation_names_the_field(base: dict, change: dict, field: str, words: str) -> None:
    with pytest.raises(ValidationError) as info:
        BoardDefinition(**{**base, **change})
    errors = info.value.errors()
    assert any(e["loc"] == (field,) for e in errors), errors
    text = str(info.value)
    assert field in text and words in text, text


def test_valid_definitions_pass() -> None:
    BoardDefinition(**GOOD_CHECKER)
    BoardDefinition(**GOOD_CHARUCO)
    BoardDefinition(**GOOD_GRID)
    BoardDefinition(**{**GOOD_CHARUCO, "rows": 2, "cols": 2, "marker_ids": [49, 0]})
    BoardDefinition(**{**GOOD_CHARUCO, "rows": 10, "cols": 10, "dictionary": "DICT_4X4_50"})  # exactly 50


# -- checkerboard ----------------------------------------------------------------------------------


def _upright_checkerboard(defn: BoardDefinition, px: int, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """The board image at `px` pixels per square with a white margin, and its keypoints in pixels."""
    img = np.pad(board_image(defn, px), pad, constant_values=255)
    lib = board_keypoints(defn)[:, :2] / (defn.square_size_mm / 1000.0)  # in squares, y down
    return img, lib * px + pad - 0.5  # OpenCV pixel centres


@pytest.mark.parametrize(("rows", "cols"), [(7, 10), (6, 9), (4, 5)])
def test_checkerboard_matches_opencv_corner_order(rows: int, cols: int) -> None:
    """An upright board: findChessboardCorners gives the keypoints in order, findChessboardCornersSB
    reversed (rows + cols odd, so the order is unambiguous); the image is OpenCV's chessboard."""
    defn = BoardDefinition(board_type="checkerboard", rows=rows, cols=cols, square_size_mm=30)
    assert defn.num_keypoints == (rows - 1) * (cols - 1) and defn.num_markers == 0
    assert defn.width_mm == cols * 30 and defn.height_mm == rows * 30
    img, truth = _upright_checkerboard(defn, 24, 30)
    assert img[30, 30] == 0 and img[30, 30 + 24] == 255  # the top-left square is black
    ok, found = cv2.findChessboardCorners(img, (cols - 1, rows - 1))
    assert ok
    found = cv2.cornerSubPix(img, found, (5, 5), (-1, -1), (cv2.TERM_CRITERIA_EPS, 50, 1e-4))
    assert np.abs(found.reshape(-1, 2) - truth).max() < 0.05
    ok, found_sb = cv2.findChessboardCornersSB(img, (cols - 1, rows - 1))
    assert ok
    assert np.abs(found_sb.reshape(-1, 2)[::-1] - truth).max() < 0.2


def test_checkerboard_frame_and_texture() -> None:
    defn = BoardDefinition(**GOOD_CHECKER)
    assert defn.marker_size_mm == 25 and defn.dictionary == "" and board_px_per_bit(defn) == 1
    assert board_image(defn).shape == (7, 10)
    ids, corners = board_marker_corners(defn)
    assert ids.shape == (0,) and corners.shape == (0, 4, 3)
    kp = keypoints_object_frame(defn)
    assert np.allclose(kp[0], [-0.125 + 0.025, 0.0875 - 0.025, 0.0])  # top-left inner corner, y up
    assert np.allclose(kp.mean(axis=0), 0.0)
    with pytest.raises(ValueError, match="no markers"):
        _ = defn.family
