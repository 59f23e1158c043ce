"""Measures the constant offset of this OpenCV's CharucoDetector corners, unrounded, on exact images.

    python tools/opencv_bias.py          # prints one JSON line: the OpenCV version and the offsets

Three images whose saddle points are known exactly (OpenCV's pixel-centre convention: a pixel edge at
integer i lies at i - 0.5): `CharucoBoard.generateImage` as drawn (hard edges); the same blurred
(Gaussian, sigma 1 px); and drawn 8x larger then shrunk with INTER_AREA (anti-aliased edges, the
mapping x_small = (x_big + 0.5) / 8 - 0.5). For each: the mean (dx, dy) of detection minus truth and
the largest |error| after removing that mean. opencv/opencv#25539 shows as (+0.5, +0.5); a fixed
OpenCV as (0, 0). Also `cornerSubPix` on the detector's corners, which does not carry the offset.
"""

from __future__ import annotations

import json

import cv2
import numpy as np


def measure() -> dict[str, object]:
    dictionary = cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_5X5_100)
    cols, rows, square, margin = 7, 5, 60, 30
    board = cv2.aruco.CharucoBoard((cols, rows), 0.04, 0.03, dictionary)
    detector = cv2.aruco.CharucoDetector(board)

    def truth_of(ids: np.ndarray, sq: float, m: float) -> np.ndarray:
        return np.asarray(board.getChessboardCorners())[ids, :2] / 0.04 * sq + m - 0.5

    big = 8
    sharp = board.generateImage((cols * square + 2 * margin, rows * square + 2 * margin), marginSize=margin)
    drawn_big = board.generateImage(
        (big * (cols * square + 2 * margin), big * (rows * square + 2 * margin)), marginSize=big * margin
    )
    images = {
        "sharp": (sharp, lambda ids: truth_of(ids, square, margin)),
        "blurred": (cv2.GaussianBlur(sharp, (0, 0), 1.0), lambda ids: truth_of(ids, square, margin)),
        "area8x": (
            cv2.resize(drawn_big, sharp.shape[::-1], interpolation=cv2.INTER_AREA),
            lambda ids: (truth_of(ids, big * square, big * margin) + 0.5) / big - 0.5,
        ),
    }
    out: dict[str, object] = {"opencv": cv2.__version__}
    for name, (image, truth_fn) in images.items():
        corners, ids, _, _ = detector.detectBoard(image)
        if ids is None:
            out[name] = "no corners"
            continue
        ids = ids.ravel()
        found = np.asarray(corners, dtype=np.float64).reshape(-1, 2)
        err = found - truth_fn(ids)
        mean = err.mean(axis=0)
        entry = {
            "n": len(ids),
            "mean": [round(float(v), 4) for v in mean],
            "spread": round(float(np.abs(err - mean).max()), 4),
        }
        refined = cv2.cornerSubPix(
            image,
            found.astype(np.float32).reshape(-1, 1, 2).copy(),
            (5, 5),
            (-1, -1),
            (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 100, 1e-4),
        ).reshape(-1, 2)
        entry["cornerSubPix_mean"] = [round(float(v), 4) for v in (refined - truth_fn(ids)).mean(axis=0)]
        out[name] = entry
    return out


if __name__ == "__main__":
    print(json.dumps(measure()))
