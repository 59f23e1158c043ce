"""Tag families against OpenCV: every id of every family, drawn bit for bit as OpenCV draws it."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from render_tag_shared import families as fm
from render_tag_shared.families import (
    FAMILY_NAMES,
    TagFamily,
    UnknownFamilyError,
    get_family,
    marker_bits,
    marker_grid,
    marker_image,
    marker_texture,
)

from ..builders import REPO_ROOT
from ..opencv_helpers import OPENCV_VERSION

REPO = REPO_ROOT


def cv_dict(family: str) -> cv2.aruco.Dictionary:
    return cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, get_family(family).opencv_name))


def tricky_side(grid: int, limit: int) -> int | None:
    """The smallest side up to `limit` where OpenCV's nearest mapping is not floor(x * grid / side).

    Found from OpenCV itself (a resized ramp), so the image test covers a size on which a plain
    integer implementation fails.
    """
    ramp = np.arange(grid, dtype=np.uint8)[None, :]
    for side in range(grid, limit + 1):
        got = cv2.resize(ramp, (side, 1), interpolation=cv2.INTER_NEAREST)[0]
        if not np.array_equal(got, np.arange(side) * grid // side):
            return side
    return None


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_metadata_matches_opencv(family: str) -> None:
    fam = get_family(family)
    d = cv_dict(family)
    assert isinstance(fam, TagFamily)
    assert fam.name == family
    assert fam.kind == ("apriltag" if family.startswith("tag") else "aruco")
    assert fam.marker_bits == d.markerSize
    assert fam.num_ids == d.bytesList.shape[0]
    assert d.maxCorrectionBits == expected_correction_bits(family, fam.max_correction_bits)


# OpenCV 4.14 gave its AprilTag dictionaries and DICT_ARUCO_ORIGINAL error correction (4.11: 0 bits);
# the codes themselves are unchanged (test_every_id_matches_generate_image_marker).
CORRECTION_BITS_SINCE_4_14 = {
    "tag16h5": 2,
    "tag25h9": 4,
    "tag36h10": 4,
    "tag36h11": 5,
    "DICT_ARUCO_ORIGINAL": 1,
}


def expected_correction_bits(family: str, shipped: int) -> int:
    """OpenCV's `maxCorrectionBits` for `family`: the shipped (4.11) value, or 4.14's where it changed."""
    if OPENCV_VERSION >= (4, 14) and family in CORRECTION_BITS_SINCE_4_14:
        return CORRECTION_BITS_SINCE_4_14[family]
    return shipped


@pytest.mark.parametrize("border_bits", [1, 2])
@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_every_id_matches_generate_image_marker(family: str, border_bits: int) -> None:
    fam = get_family(family)
    d = cv_dict(family)
    grid = fam.marker_bits + 2 * border_bits
    sides = sorted({grid, 7 * grid, 37, 50, 123} | {tricky_side(grid, 160) or grid})
    for side in sides:
        bad, previous = [], None
        for i in range(fam.num_ids):
            ours = marker_image(family, i, side, border_bits)
            theirs = d.generateImageMarker(i, side, borderBits=border_bits)
            assert ours.dtype == theirs.dtype == np.uint8 and ours.shape == theirs.shape == (side, side)
            if not np.array_equal(ours, theirs):
                bad.append(i)
            # The comparison can fail: every id draws a different image.
            assert previous is None or not np.array_equal(ours, previous)
            previous = theirs
        assert not bad, f"{family} side {side} border {border_bits}: ids {bad[:10]} differ"


@pytest.mark.parametrize(("family", "border_bits"), [("DICT_5X5_1000", 1), ("DICT_7X7_1000", 2)])
def test_large_tricky_sides(family: str, border_bits: int) -> None:
    # Grids of 7 and 11 modules first differ from integer rounding at 343 and 539 pixels.
    grid = get_family(family).marker_bits + 2 * border_bits
    side = tricky_side(grid, 600)
    assert side is not None
    d = cv_dict(family)
    for i in (0, 1, 500, 999):
        np.testing.assert_array_equal(
            marker_image(family, i, side, border_bits), d.generateImageMarker(i, side, borderBits=border_bits)
        )


@pytest.mark.parametrize("grid", range(6, 12))
def test_nearest_index_matches_cv_resize_for_every_side(grid: int) -> None:
    # Each axis of an INTER_NEAREST resize maps independently; a ramp shows the mapping.
    ramp = np.arange(grid, dtype=np.uint8)[None, :]
    for side in range(grid, 700):
        expected = cv2.resize(ramp, (side, 1), interpolation=cv2.INTER_NEAREST)[0]
        np.testing.assert_array_equal(fm._nearest_index(grid, side), expected, err_msg=f"side {side}")


def test_tricky_sides_exist() -> None:
    # If OpenCV ever switched to exact integer mapping, the tricky-size check above would be vacuous.
    assert tricky_side(6, 100) == 34


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_bits_and_grid(family: str) -> None:
    fam = get_family(family)
    n = fam.marker_bits
    bits = marker_bits(family, fam.num_ids - 1)
    assert bits.dtype == np.bool_ and bits.shape == (n, n)
    grid = marker_grid(family, fam.num_ids - 1, border_bits=2)
    assert grid.shape == (n + 4, n + 4) and grid.dtype == np.uint8
    assert set(np.unique(grid)) <= {0, 255}
    assert (grid[:2] == 0).all() and (grid[-2:] == 0).all() and (grid[:, :2] == 0).all()
    np.testing.assert_array_equal(grid[2:-2, 2:-2] == 255, bits)
    # Ids are distinct codes.
    packed = {marker_bits(family, i).tobytes() for i in range(fam.num_ids)}
    assert len(packed) == fam.num_ids


def test_bits_are_a_copy() -> None:
    bits = marker_bits("tag36h11", 0)
    bits[:] = ~bits
    assert not np.array_equal(marker_bits("tag36h11", 0), bits)


@pytest.mark.parametrize(("family", "tag_id"), [("tag36h11", 586), ("DICT_4X4_50", 7), ("tag16h5", 0)])
def test_texture(family: str, tag_id: int) -> None:
    fam = get_family(family)
    module_px, border, margin = 3, 1, 2
    tex = marker_texture(family, tag_id, module_px, border_bits=border, margin_modules=margin)
    side = (fam.marker_bits + 2 * border + 2 * margin) * module_px
    assert tex.shape == (side, side) and tex.dtype == np.uint8
    q = margin * module_px
    assert (tex[:q] == 255).all() and (tex[-q:] == 255).all()
    assert (tex[:, :q] == 255).all() and (tex[:, -q:] == 255).all()
    inner = tex[q:-q, q:-q]
    d = cv_dict(family)
    np.testing.assert_array_equal(inner, d.generateImageMarker(tag_id, inner.shape[0], borderBits=border))
    assert marker_texture(family, tag_id, 1, margin_modules=0).shape == (fam.marker_bits + 2,) * 2


def test_unknown_family_lists_valid_names() -> None:
    with pytest.raises(UnknownFamilyError) as info:
        get_family("tag36h12")
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert "tag36h12" in message
    for name in FAMILY_NAMES:
        assert name in message
    for call in (lambda: marker_bits("DICT_4X4", 0), lambda: marker_image("aruco", 0, 60)):
        with pytest.raises(UnknownFamilyError):
            call()


def test_opencv_names_are_aliases() -> None:
    assert get_family("DICT_APRILTAG_36h11") is get_family("tag36h11")
    assert get_family("DICT_5X5_100").name == "DICT_5X5_100"


@pytest.mark.parametrize("bad_id", [-1, 587, 10**9, 1.5, 2.0, True, "3", None])
def test_bad_id_names_family_and_range(bad_id: object) -> None:
    with pytest.raises(ValueError, match=r"tag36h11.*0\.\.586"):
        marker_bits("tag36h11", bad_id)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"tag36h11.*0\.\.586"):
        marker_image("tag36h11", bad_id, 100)  # type: ignore[arg-type]


def test_numpy_integer_ids_are_accepted() -> None:
    # Typed `int`, but ids taken from numpy arrays work at run time too.
    from_numpy = marker_bits("DICT_6X6_250", np.int64(249))  # type: ignore[arg-type]
    np.testing.assert_array_equal(from_numpy, marker_bits("DICT_6X6_250", 249))


def test_bad_sizes_and_borders() -> None:
    with pytest.raises(ValueError, match="side_px must be at least 8"):
        marker_image("tag36h11", 0, 7)
    with pytest.raises(ValueError, match="border_bits"):
        marker_grid("tag36h11", 0, border_bits=0)
    with pytest.raises(ValueError, match="module_px"):
        marker_texture("tag36h11", 0, 0)
    with pytest.raises(ValueError, match="margin_modules"):
        marker_texture("tag36h11", 0, 4, margin_modules=-1)
    # OpenCV refuses the same inputs.
    with pytest.raises(cv2.error):
        cv_dict("tag36h11").generateImageMarker(0, 7, borderBits=1)


def test_data_file_is_what_the_extractor_writes() -> None:
    spec = importlib.util.spec_from_file_location(
        "extract_codebooks", REPO / "tools" / "extract_codebooks.py"
    )
    assert spec is not None and spec.loader is not None
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    shipped = (REPO / "shared" / "render_tag_shared" / "data" / "codebooks.json").read_text(encoding="utf-8")
    built = tool.build()
    if f'OpenCV {cv2.__version__}"' in shipped:  # the OpenCV it was extracted with: byte for byte
        assert tool.dump(built) == shipped, "run tools/extract_codebooks.py"
    else:  # another OpenCV: the same codes and layout; only max_correction_bits may differ (4.14+)
        doc = json.loads(shipped)
        assert built["codebooks"] == doc["codebooks"]
        for name, fam in built["families"].items():
            fam["max_correction_bits"] = doc["families"][name]["max_correction_bits"] = (
                expected_correction_bits(name, doc["families"][name]["max_correction_bits"])
            )
        assert built["families"] == doc["families"]
    assert tuple(name for name, _, _ in tool.FAMILIES) == FAMILY_NAMES


def test_import_does_not_pull_cv2() -> None:
    code = (
        "import sys\n"
        "import render_tag_shared.families as f\n"
        "f.marker_image('tag36h11', 5, 37)\n"
        "f.marker_texture('DICT_4X4_50', 1, 4)\n"
        "heavy = sorted(m for m in ('cv2', 'bpy', 'zmq') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
