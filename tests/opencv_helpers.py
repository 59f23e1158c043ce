"""OpenCV as the tests' judge, the same on every OpenCV the project supports (4.11 to 5.1).

Pure OpenCV and numpy (no Blender), so the unit tier uses it too. What differs between OpenCV
versions is handled here once: CharucoDetector's +0.5 px (4.11 to 4.13) is measured, not assumed,
and ArucoDetector's bit decision is set to 4.11's on 4.14 and later.
"""

from __future__ import annotations

import functools
from typing import Any

import cv2
import numpy as np

from render_tag_shared.families import get_family

OPENCV_VERSION: tuple[int, ...] = tuple(int(p) for p in cv2.__version__.split(".")[:2])
"""The running OpenCV as (major, minor), for the few differences that are version facts, not biases."""


def aruco_parameters(border_bits: int = 1) -> Any:
    """ArUco detector parameters with sub-pixel corners, deciding marker bits as OpenCV 4.11 does.

    OpenCV 4.14 added `validBitIdThreshold` (default 0.49), which rejects tags that 4.11 decodes with
    the right id on motion-blurred renders; 0.5 is 4.11's decision (the product's verify does the same).
    """
    params = cv2.aruco.DetectorParameters()
    if hasattr(params, "validBitIdThreshold"):
        params.validBitIdThreshold = 0.5
    params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
    params.markerBorderBits = border_bits
    return params


def opencv_dictionary(family: str) -> Any:
    return cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, get_family(family).opencv_name))


def detect_tags(gray: np.ndarray, family: str, border_bits: int = 1) -> dict[int, np.ndarray]:
    """ArUco detections with sub-pixel corner refinement: id -> (4, 2) corners TL, TR, BR, BL."""
    detector = cv2.aruco.ArucoDetector(opencv_dictionary(family), aruco_parameters(border_bits))
    corners, ids, _ = detector.detectMarkers(gray)
    if ids is None:
        return {}
    return {int(i): c.reshape(4, 2).astype(np.float64) for c, i in zip(corners, ids.ravel(), strict=True)}


@functools.cache
def charuco_detector_bias() -> float:
    """The constant offset OpenCV's CharucoDetector adds to every corner: 0.5 px or 0.

    OpenCV 4.7 to 4.13 shift the corners handed to cornerSubPix by -0.5 px and the result back by
    +0.5 px, so every ChArUco corner comes out 0.5 px right of and below the saddle point
    (opencv/opencv#25539, fixed by #28380). Measured here on OpenCV's own board image, whose corners
    are known exactly, so the Blender test neither depends on the OpenCV version nor hides a shift
    of ours: the renderer is compared with the detector's saddle points, not with its bug.
    """
    rows, cols, square, pad = 4, 5, 60, 40
    board = cv2.aruco.CharucoBoard((cols, rows), 0.04, 0.03, opencv_dictionary("DICT_4X4_50"))
    image = np.pad(
        board.generateImage((cols * square, rows * square), marginSize=0), pad, constant_values=255
    )
    image = cv2.GaussianBlur(image, (0, 0), 1.0)
    corners, ids, _, _ = cv2.aruco.CharucoDetector(board).detectBoard(image)
    assert ids is not None and len(ids) == (rows - 1) * (cols - 1), (
        "CharucoDetector failed on OpenCV's own board"
    )
    ids = ids.ravel()
    # corner i sits at the edge between squares: ((x + 1) * square, (y + 1) * square) pixel edges
    truth = np.stack([(ids % (cols - 1) + 1) * square, (ids // (cols - 1) + 1) * square], axis=1) - 0.5 + pad
    mean = (corners.reshape(-1, 2) - truth).mean(axis=0)
    bias = 0.5 if mean.mean() > 0.25 else 0.0
    assert np.all(np.abs(mean - bias) < 0.15), f"unexpected CharucoDetector offset {mean}"
    return bias
