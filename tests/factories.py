"""Small builders for recipes used across the tests (no randomness unless a seed is given)."""

from __future__ import annotations

from typing import Any

import numpy as np


def look_at_opencv(eye: Any, target: Any, up: Any = (0.0, 0.0, 1.0)) -> list[list[float]]:
    """cam_to_world of an OpenCV camera (x right, y down, z forward) at `eye` looking at `target`."""
    eye_v, target_v = np.asarray(eye, float), np.asarray(target, float)
    z = target_v - eye_v
    z /= np.linalg.norm(z)
    x = np.cross(z, np.asarray(up, float))
    if np.linalg.norm(x) < 1e-9:
        x = np.cross(z, [0.0, 1.0, 0.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = x, y, z, eye_v
    return m.tolist()


def quat_from_axis_angle(axis: Any, angle_rad: float) -> list[float]:
    a = np.asarray(axis, float)
    a /= np.linalg.norm(a)
    return [float(np.cos(angle_rad / 2)), *(float(c) for c in a * np.sin(angle_rad / 2))]


def pinhole(fx: float = 600.0, fy: float = 600.0, cx: float = 319.5, cy: float = 239.5,
            resolution: tuple[int, int] = (640, 480), **extra: Any) -> dict[str, Any]:  # fmt: skip
    return {"k_matrix": [[fx, 0, cx], [0, fy, cy], [0, 0, 1]], "resolution": list(resolution), **extra}
