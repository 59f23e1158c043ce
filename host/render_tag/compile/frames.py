"""Frames and rotations of the compiler: a camera pose from angles (see compiler.py's docstring).

Plain Python floats on 3-tuples: these run for every candidate pose, where numpy's per-call overhead
on 3-vectors would dominate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from render_tag_shared.geometry import matrix_to_quat, normalise_quaternion

__all__ = ["Vec", "camera_pose", "cross", "level_frame", "quat_from_matrix", "quat_z", "unit"]


def quat_z(angle_rad: float) -> tuple[float, float, float, float]:
    """(w, x, y, z) of a rotation about +z, normalised once (Pose keeps a unit quaternion as it is)."""
    return normalise_quaternion((math.cos(angle_rad / 2.0), 0.0, 0.0, math.sin(angle_rad / 2.0)))


def quat_from_matrix(r: np.ndarray) -> tuple[float, float, float, float]:
    """A unit quaternion of a rotation matrix, normalised once (Pose keeps a unit quaternion as it is);
    the sign is canonicalised (w >= 0)."""
    return normalise_quaternion([float(c) for c in matrix_to_quat(r)])


Vec = tuple[float, float, float]


def cross(a: Vec, b: Vec) -> Vec:
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def unit(a: Vec) -> Vec:
    norm = math.sqrt(a[0] * a[0] + a[1] * a[1] + a[2] * a[2])
    return (a[0] / norm, a[1] / norm, a[2] / norm)


NORMAL: Vec = (0.0, 0.0, 1.0)
Y_AXIS: Vec = (0.0, 1.0, 0.0)


def level_frame(forward: Vec) -> tuple[Vec, Vec]:
    """x0, y0 of a level camera looking along `forward` (unit) over the plane z = const (module docstring)."""
    h = cross(forward, NORMAL)
    if h[0] * h[0] + h[1] * h[1] + h[2] * h[2] < 1e-18:  # straight down or up: the subject's +y stands in
        h = cross(forward, Y_AXIS)
    x0 = unit(h)
    return x0, cross(forward, x0)


def camera_pose(
    centre: Sequence[float],
    distance: float,
    elevation_deg: float,
    azimuth_deg: float,
    roll_deg: float,
    image_point: tuple[float, float] = (0.0, 0.0),
) -> np.ndarray:
    """4x4 camera-to-world (OpenCV axes) for a subject at `centre` lying in z = const, facing +z.

    The camera sits at `distance` from the centre, `elevation_deg` above the plane, `azimuth_deg`
    round it; it first looks straight at the centre with `roll_deg` (module docstring), then turns by
    the smallest rotation that puts the centre at `image_point`, in normalised image coordinates
    (x/z, y/z). Plain floats, not numpy: this runs for every candidate pose, and numpy's per-call
    overhead dominates on 3-vectors.
    """
    el, az = math.radians(elevation_deg), math.radians(azimuth_deg)
    direction = (math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el))
    f: Vec = (-direction[0], -direction[1], -direction[2])
    x0, y0 = level_frame(f)
    c, s = math.cos(math.radians(roll_deg)), math.sin(math.radians(roll_deg))
    x: Vec = (c * x0[0] + s * y0[0], c * x0[1] + s * y0[1], c * x0[2] + s * y0[2])
    y = cross(f, x)
    looking = ((x[0], y[0], f[0]), (x[1], y[1], f[1]), (x[2], y[2], f[2]))  # rows of R0
    # Q: the smallest rotation taking d = unit(u, v, 1) to +z; R = R0 Q sees the centre along d.
    u, v = image_point
    norm = math.sqrt(u * u + v * v + 1.0)
    dx, dy, dz = u / norm, v / norm, 1.0 / norm
    sin_t = math.sqrt(dx * dx + dy * dy)
    if sin_t < 1e-15:
        q = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
    else:
        kx, ky = dy / sin_t, -dx / sin_t  # axis d x z, normalised (its z component is 0)
        cos_t, one = dz, 1.0 - dz
        q = (
            (cos_t + one * kx * kx, one * kx * ky, sin_t * ky),
            (one * kx * ky, cos_t + one * ky * ky, -sin_t * kx),
            (-sin_t * ky, sin_t * kx, cos_t),
        )
    # R = R0 Q, each sum in the order sum() takes (it starts from 0, hence the 0.0: the sign of a zero)
    rotation = [
        [0.0 + row[0] * q[0][col] + row[1] * q[1][col] + row[2] * q[2][col] for col in range(3)]
        for row in looking
    ]
    px, py, pz = (float(centre[i]) + distance * direction[i] for i in range(3))
    return np.array(
        [
            [*rotation[0], px],
            [*rotation[1], py],
            [*rotation[2], pz],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )
