"""`render-tag target`: SVG and PDF at true scale, rasterised by poppler's pdftoppm and read by OpenCV.

pdftoppm comes from Debian's poppler-utils (`make setup` installs it when run as root, else says so):
it is a real PDF renderer, so a sheet it draws is what a printer gets.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from render_tag.cli import main
from render_tag_shared.boards import BoardDefinition, board_keypoints, board_marker_corners, library_to_object
from render_tag_shared.printable import black_rectangles

from ..builders import CHARUCO

APRILGRID = dict(
    board_type="aprilgrid", rows=4, cols=5, marker_size_mm=40.0, spacing_ratio=0.3, dictionary="tag36h11"
)
CHECKER = dict(board_type="checkerboard", rows=7, cols=10, square_size_mm=25.0)
DPI = 100.0


def _pdftoppm() -> str:
    tool = shutil.which("pdftoppm")
    assert tool, "pdftoppm is missing: `apt-get install -y poppler-utils` (make setup does it as root)"
    return tool


def _spec(board: dict) -> str:
    return yaml.safe_dump(board, default_flow_style=True).strip()


def _pdf_page_mm(pdf: bytes) -> tuple[float, float]:
    box = re.search(rb"/MediaBox \[0 0 ([0-9.]+) ([0-9.]+)\]", pdf)
    assert box is not None
    return float(box.group(1)) * 25.4 / 72.0, float(box.group(2)) * 25.4 / 72.0


def _pdf_rectangles(pdf: bytes) -> np.ndarray:
    stream = re.search(rb"stream\n(.*)\nendstream", pdf, re.S)
    assert stream is not None
    ops = zlib.decompress(stream.group(1)).decode()
    return np.array(
        [[float(v) for v in line.split()[:4]] for line in ops.splitlines() if line.endswith(" re")]
    )


def _svg_rectangles(svg: str) -> tuple[tuple[float, float], tuple[float, float, float, float], np.ndarray]:
    head = re.search(r'<svg [^>]*width="([0-9.]+)mm" height="([0-9.]+)mm" viewBox="([0-9. ]+)"', svg)
    assert head is not None
    rects = re.findall(r'<rect x="([0-9.]+)" y="([0-9.]+)" width="([0-9.]+)" height="([0-9.]+)"/>', svg)
    view = tuple(float(v) for v in head.group(3).split())
    return (float(head.group(1)), float(head.group(2))), view, np.array(rects, dtype=float)  # type: ignore[return-value]


def _write(tmp_path: Path, board: dict, *extra: str) -> Path:
    out = tmp_path / board["board_type"]
    assert main(["target", _spec(board), "-o", str(out), *extra]) == 0
    return out


def _rasterise(pdf: Path) -> np.ndarray:
    stem = pdf.with_suffix("")
    subprocess.run(
        [_pdftoppm(), "-r", f"{DPI:g}", "-gray", "-png", "-singlefile", str(pdf), str(stem)], check=True
    )
    image = cv2.imread(str(stem) + ".png", cv2.IMREAD_GRAYSCALE)
    assert image is not None
    return image


def _library_to_page_px(
    defn: BoardDefinition, origin_mm: tuple[float, float], points: np.ndarray
) -> np.ndarray:
    """Library-frame points (metres) to pixels of the rasterised page (OpenCV centres)."""
    obj = points.reshape(-1, 3) @ library_to_object(defn)[:3, :3].T + library_to_object(defn)[:3, 3]
    x_mm = origin_mm[0] + defn.width_mm / 2.0 + obj[:, 0] * 1000.0
    y_mm = origin_mm[1] + defn.height_mm / 2.0 - obj[:, 1] * 1000.0
    return np.stack([x_mm, y_mm], axis=1) * DPI / 25.4 - 0.5


@pytest.mark.parametrize("board", [CHARUCO, APRILGRID, CHECKER], ids=lambda b: b["board_type"])
def test_sizes_are_true_scale(tmp_path: Path, board: dict) -> None:
    defn = BoardDefinition.model_validate(board)
    out = _write(tmp_path, board, "--margin-mm", "12.5")
    expected = (defn.width_mm + 25.0, defn.height_mm + 25.0)
    pdf = (out / "target.pdf").read_bytes()
    assert np.allclose(_pdf_page_mm(pdf), expected, atol=0.01)
    size, view, svg_rects = _svg_rectangles((out / "target.svg").read_text())
    assert np.allclose(size, expected, atol=0.01) and np.allclose(view, (0, 0, *expected), atol=0.01)
    pdf_rects = _pdf_rectangles(pdf)
    assert np.allclose(svg_rects, pdf_rects, atol=1e-6)  # the white page rect has a fill: not matched
    for rects in (svg_rects, pdf_rects):  # the pattern spans exactly the board's size
        assert rects[:, 0].min() == pytest.approx(12.5, abs=0.01)
        assert rects[:, 1].min() == pytest.approx(12.5, abs=0.01)
        assert (rects[:, 0] + rects[:, 2]).max() == pytest.approx(12.5 + defn.width_mm, abs=0.01)
        assert (rects[:, 1] + rects[:, 3]).max() == pytest.approx(12.5 + defn.height_mm, abs=0.01)
    assert yaml.safe_load((out / "board.json").read_text())["board"]["board_type"] == defn.board_type


def test_paper_size_centres_the_board(tmp_path: Path) -> None:
    out = _write(tmp_path, CHECKER, "--paper", "A4")
    assert np.allclose(_pdf_page_mm((out / "target.pdf").read_bytes()), (297.0, 210.0), atol=0.01)
    rects = _pdf_rectangles((out / "target.pdf").read_bytes())
    assert rects[:, 0].min() == pytest.approx((297.0 - 250.0) / 2, abs=0.01)


def test_rectangles_cover_exactly_the_black_texels() -> None:
    rng = np.random.default_rng(3)
    image = np.where(rng.random((23, 31)) < 0.5, 0, 255).astype(np.uint8)
    painted = np.full(image.shape, 255, dtype=np.uint8)
    for c, r, w, h in black_rectangles(image):
        assert (painted[r : r + h, c : c + w] == 255).all()  # no overlaps
        painted[r : r + h, c : c + w] = 0
    assert np.array_equal(painted, image)


def test_charuco_pdf_detected(tmp_path: Path) -> None:
    defn = BoardDefinition.model_validate(CHARUCO)
    out = _write(tmp_path, CHARUCO)
    gray = _rasterise(out / "target.pdf")
    dictionary = cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_5X5_100)
    cv_board = cv2.aruco.CharucoBoard((defn.cols, defn.rows), 0.04, 0.03, dictionary)
    corners, ids, _, marker_ids = cv2.aruco.CharucoDetector(cv_board).detectBoard(gray)
    assert ids is not None and sorted(ids.ravel().tolist()) == list(range(defn.num_keypoints))
    assert marker_ids is not None and sorted(marker_ids.ravel().tolist()) == defn.resolved_marker_ids()
    truth = _library_to_page_px(defn, (10.0, 10.0), board_keypoints(defn))
    refined = cv2.cornerSubPix(gray, corners, (5, 5), (-1, -1), (cv2.TERM_CRITERIA_EPS, 50, 1e-4))
    error = np.linalg.norm(refined.reshape(-1, 2) - truth[ids.ravel()], axis=1)
    assert np.median(error) < 0.2, error  # at true scale: 1 px is 0.25 mm here
    assert "square_length: 0.04" in (out / "charuco_board.yaml").read_text()


def test_aprilgrid_pdf_detected(tmp_path: Path) -> None:
    defn = BoardDefinition.model_validate(APRILGRID)
    out = _write(tmp_path, APRILGRID)
    gray = _rasterise(out / "target.pdf")
    params = cv2.aruco.DetectorParameters()
    params.markerBorderBits = 2
    params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
    dictionary = cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_APRILTAG_36h11)
    corners, ids, _ = cv2.aruco.ArucoDetector(dictionary, params).detectMarkers(gray)
    assert ids is not None and sorted(ids.ravel().tolist()) == defn.resolved_marker_ids()
    _, truth_corners = board_marker_corners(defn)
    truth = _library_to_page_px(defn, (10.0, 10.0), truth_corners).reshape(-1, 4, 2)
    for tag_id, quad in zip(ids.ravel().tolist(), corners, strict=True):
        centre_error = np.linalg.norm(quad.reshape(4, 2).mean(axis=0) - truth[tag_id].mean(axis=0))
        assert centre_error < 0.5
        assert np.linalg.norm(quad.reshape(4, 2) - truth[tag_id], axis=1).max() < 1.5  # TL..BL in order
    kalibr = yaml.safe_load((out / "target.yaml").read_text())
    assert kalibr == {
        "target_type": "aprilgrid",
        "tagCols": 5,
        "tagRows": 4,
        "tagSize": 0.04,
        "tagSpacing": 0.3,
    }


def test_checkerboard_pdf_detected(tmp_path: Path) -> None:
    defn = BoardDefinition.model_validate(CHECKER)
    out = _write(tmp_path, CHECKER)
    gray = _rasterise(out / "target.pdf")
    ok, found = cv2.findChessboardCornersSB(gray, (defn.cols - 1, defn.rows - 1))
    assert ok and len(found) == defn.num_keypoints
    truth = _library_to_page_px(defn, (10.0, 10.0), board_keypoints(defn))
    error = np.linalg.norm(found.reshape(-1, 2)[::-1] - truth, axis=1)  # SB: reversed order (boards.py)
    assert np.median(error) < 0.2, error
    kalibr = yaml.safe_load((out / "target.yaml").read_text())
    assert kalibr == {"target_type": "checkerboard", "targetCols": 9, "targetRows": 6,
                      "rowSpacingMeters": 0.025, "colSpacingMeters": 0.025}  # fmt: skip


def test_config_source_and_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = Path(__file__).parents[1] / "data" / "charuco.yaml"
    assert main(["target", str(config), "-o", str(tmp_path / "ok")]) == 0
    assert (tmp_path / "ok" / "target.pdf").is_file()
    for argv, words in [
        (["target", "{board_type: charuco, rows: 5}", "-o", str(tmp_path / "bad1")], "BOARD-SPEC: cols"),
        (["target", str(config), "-o", str(tmp_path / "bad2"), "--paper", "A4"], "does not fit on A4"),
        (["target", str(config), "-o", str(tmp_path / "bad3"), "--paper", "B7"], "--paper"),
        (
            ["target", str(config.parent / "design_example.yaml"), "-o", str(tmp_path / "bad4")],
            "BOARD subject",
        ),
    ]:
        assert main(argv) == 2
        assert words in capsys.readouterr().err
        assert not Path(argv[3]).exists()
