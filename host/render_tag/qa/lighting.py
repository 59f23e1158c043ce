"""Lighting statistics of `render-tag audit`, measured on the pixels: brightness and contrast per image.

The config's light intensities say what was asked; the images say what came out (a light behind the
board, an HDRI that swamps the scene, a tone curve that crushes the blacks). Both numbers are in [0, 1]
of the 8-bit range, on the luminance (BT.601 weights, cv2's grey conversion):

- brightness: the mean luminance / 255;
- contrast: the standard deviation of the luminance / 255 (RMS contrast);
- clipped: the fraction of pixels at 0 or 255 (saturated highlights, crushed shadows).

An image darker than `min_brightness`, brighter than `max_brightness` or flatter than `min_contrast`
is quarantined (audit.json `quarantine`, OUT/quarantine.txt).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from .gates import AuditGates

__all__ = ["image_lighting", "lighting_problems"]


def image_lighting(pixels: npt.NDArray[Any]) -> dict[str, float]:
    """Brightness, contrast and clipped fraction of a decoded image (grey, BGR or BGRA; 8 or 16 bit)."""
    import cv2

    image = pixels
    if image.dtype == np.uint16:
        image = (image // 257).astype(np.uint8)
    if image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    elif image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    elif image.ndim == 3:
        image = image[:, :, 0]
    grey = image.astype(np.float64)
    clipped = np.count_nonzero((image == 0) | (image == 255)) / max(image.size, 1)
    return {
        "brightness": float(grey.mean() / 255.0),
        "contrast": float(grey.std() / 255.0),
        "clipped": float(clipped),
    }


def lighting_problems(stats: dict[str, float], limits: AuditGates) -> list[str]:
    """Why an image's lighting puts it in quarantine ([] when it does not)."""
    problems = []
    if stats["brightness"] < limits.min_brightness:
        problems.append(f"too dark: brightness {stats['brightness']:.3f} < {limits.min_brightness}")
    if stats["brightness"] > limits.max_brightness:
        problems.append(f"too bright: brightness {stats['brightness']:.3f} > {limits.max_brightness}")
    if stats["contrast"] < limits.min_contrast:
        problems.append(f"flat: contrast {stats['contrast']:.3f} < {limits.min_contrast}")
    return problems
