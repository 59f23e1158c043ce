"""Rigid transforms and quaternions on numpy, shared by the compiler, the add-on and the audit.

Conventions: 4x4 homogeneous matrices act on column vectors (``p' = M @ p``); quaternions are
``(w, x, y, z)`` (Blender's and the recipe's order), unit length, and represent the same rotation as
the matrix :func:`quat_to_matrix` returns. Camera frames: OpenCV's camera looks down +z with +y down;
Blender's looks down -z with +y up. :data:`BLENDER_TO_OPENCV_CAMERA` converts between the two.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = [
    "BLENDER_TO_OPENCV_CAMERA",
    "blender_camera_to_opencv",
    "invert_rigid",
    "matrix_to_quat",
    "normalise_quaternion",
    "pose_matrix",
    "quat_to_matrix",
    "transform_points",
    "unit_quaternion",
]

ArrayLike = npt.ArrayLike
FloatArray = npt.NDArray[np.float64]

UNIT_NORM_TOLERANCE = 1e-12
"""|w² + x² + y² + z² - 1| up to which a quaternion counts as unit and is kept bit for bit. Dividing by
the norm leaves a few ulps (~1e-16) of error, so a quaternion normalised once is always inside it; an
angle error of 1e-12 rad is far below anything a render or a label can show."""


def normalise_quaternion(q: Sequence[float]) -> tuple[float, float, float, float]:
    """(w, x, y, z) / |q|, always: how the compiler makes its quaternions unit (once, before a Pose
    keeps them). Raises ValueError for a zero-length quaternion."""
    w, x, y, z = (float(c) for c in q)
    norm = math.sqrt(w * w + x * x + y * y + z * z)
    if norm < 1e-9:
        raise ValueError("the quaternion has zero length")
    return (w / norm, x / norm, y / norm, z / norm)


def unit_quaternion(q: Sequence[float]) -> tuple[float, float, float, float]:
    """q itself when it is already unit (UNIT_NORM_TOLERANCE), else normalise_quaternion(q).

    Idempotent on purpose: dividing a unit quaternion by its norm again changes the last bits about
    once in 100 times, so a recipe saved and loaded would change its hash (and be re-rendered on
    every resume)."""
    w, x, y, z = (float(c) for c in q)
    if abs(w * w + x * x + y * y + z * z - 1.0) <= UNIT_NORM_TOLERANCE:
        return (w, x, y, z)
    return normalise_quaternion((w, x, y, z))


#: Right-multiply a Blender camera-to-world matrix by this to get the OpenCV camera-to-world matrix
#: (and vice versa: it is its own inverse). It flips the camera's y and z axes.
BLENDER_TO_OPENCV_CAMERA: FloatArray = np.diag([1.0, -1.0, -1.0, 1.0])


def _as_matrix4(matrix: ArrayLike) -> FloatArray:
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (4, 4):
        raise ValueError(f"expected a 4x4 matrix, got shape {m.shape}")
    return m


def transform_points(matrix_4x4: ArrayLike, points: ArrayLike) -> FloatArray:
    """Apply a 4x4 transform to (N, 3) points (or one 3-vector); returns the same shape.

    The projective divide is applied so a general homogeneous matrix works too; for the rigid and
    affine matrices we use, the last row is (0, 0, 0, 1) and the divide is by one.
    """
    m = _as_matrix4(matrix_4x4)
    p = np.asarray(points, dtype=np.float64)
    single = p.ndim == 1
    p2 = np.atleast_2d(p)
    if p2.shape[-1] != 3:
        raise ValueError(f"expected points of shape (N, 3), got {p.shape}")
    out = p2 @ m[:3, :3].T + m[:3, 3]
    w = p2 @ m[3, :3] + m[3, 3]
    if not np.all(w == 1.0):
        out = out / w[:, None]
    return out[0] if single else out


def invert_rigid(matrix: ArrayLike) -> FloatArray:
    """Invert a rigid (rotation + translation) 4x4 matrix exactly: ``[R^T, -R^T t]``.

    Cheaper and better conditioned than ``np.linalg.inv`` and keeps R^T orthonormal; the caller is
    responsible for passing a rigid matrix (no scale or shear).
    """
    m = _as_matrix4(matrix)
    r_t = m[:3, :3].T
    out = np.eye(4)
    out[:3, :3] = r_t
    out[:3, 3] = -r_t @ m[:3, 3]
    return out


def quat_to_matrix(wxyz: ArrayLike) -> FloatArray:
    """Rotation matrix of a (w, x, y, z) quaternion; the quaternion is normalised first."""
    q = np.asarray(wxyz, dtype=np.float64)
    if q.shape != (4,):
        raise ValueError(f"expected a (w, x, y, z) quaternion, got shape {q.shape}")
    n = float(np.linalg.norm(q))
    if not np.isfinite(n) or n == 0.0:
        raise ValueError("quaternion has zero or non-finite norm")
    # Python floats: the same IEEE operations as on numpy scalars, without their per-operation cost.
    w, x, y, z = (q / n).tolist()
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def matrix_to_quat(rotation: ArrayLike) -> FloatArray:
    """Unit (w, x, y, z) quaternion of a 3x3 rotation matrix, with w >= 0 (a canonical sign).

    Shepperd's method: pick the largest of w, x, y, z to divide by, so it is accurate for every
    rotation including 180 degrees. A 4x4 matrix is accepted (its upper-left block is used).
    """
    r = np.asarray(rotation, dtype=np.float64)
    if r.shape == (4, 4):
        r = r[:3, :3]
    if r.shape != (3, 3):
        raise ValueError(f"expected a 3x3 rotation matrix, got shape {r.shape}")
    rows = r.tolist()
    if all(math.isfinite(v) for row in rows for v in row):
        return _matrix_to_quat_floats(rows)
    trace = r[0, 0] + r[1, 1] + r[2, 2]
    cands = np.array([trace, r[0, 0], r[1, 1], r[2, 2]])
    i = int(np.argmax(cands))
    if i == 0:
        s = 2.0 * np.sqrt(max(1.0 + trace, 0.0))
        q = np.array([0.25 * s, (r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s])
    elif i == 1:
        s = 2.0 * np.sqrt(max(1.0 + r[0, 0] - r[1, 1] - r[2, 2], 0.0))
        q = np.array([(r[2, 1] - r[1, 2]) / s, 0.25 * s, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s])
    elif i == 2:
        s = 2.0 * np.sqrt(max(1.0 - r[0, 0] + r[1, 1] - r[2, 2], 0.0))
        q = np.array([(r[0, 2] - r[2, 0]) / s, (r[0, 1] + r[1, 0]) / s, 0.25 * s, (r[1, 2] + r[2, 1]) / s])
    else:
        s = 2.0 * np.sqrt(max(1.0 - r[0, 0] - r[1, 1] + r[2, 2], 0.0))
        q = np.array([(r[1, 0] - r[0, 1]) / s, (r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, 0.25 * s])
    q /= np.linalg.norm(q)
    if q[0] < 0.0:
        q = -q
    return q


def _matrix_to_quat_floats(rows: list[list[float]]) -> FloatArray:
    """matrix_to_quat of a finite 3x3 matrix on Python floats: the same IEEE operations, in the same
    order, as the numpy-scalar code (numpy's argmax and Python's max both pick the first largest)."""
    (r00, r01, r02), (r10, r11, r12), (r20, r21, r22) = rows
    trace = r00 + r11 + r22
    cands = (trace, r00, r11, r22)
    i = max(range(4), key=cands.__getitem__)
    if i == 0:
        s = 2.0 * math.sqrt(max(1.0 + trace, 0.0))
        q = np.array([0.25 * s, (r21 - r12) / s, (r02 - r20) / s, (r10 - r01) / s])
    elif i == 1:
        s = 2.0 * math.sqrt(max(1.0 + r00 - r11 - r22, 0.0))
        q = np.array([(r21 - r12) / s, 0.25 * s, (r01 + r10) / s, (r02 + r20) / s])
    elif i == 2:
        s = 2.0 * math.sqrt(max(1.0 - r00 + r11 - r22, 0.0))
        q = np.array([(r02 - r20) / s, (r01 + r10) / s, 0.25 * s, (r12 + r21) / s])
    else:
        s = 2.0 * math.sqrt(max(1.0 - r00 - r11 + r22, 0.0))
        q = np.array([(r10 - r01) / s, (r02 + r20) / s, (r12 + r21) / s, 0.25 * s])
    q /= np.linalg.norm(q)
    if q[0] < 0.0:
        q = -q
    return q


def pose_matrix(position: Sequence[float] | ArrayLike, quat: Sequence[float] | ArrayLike) -> FloatArray:
    """4x4 rigid matrix from a position (metres) and a (w, x, y, z) quaternion."""
    t = np.asarray(position, dtype=np.float64)
    if t.shape != (3,):
        raise ValueError(f"expected a 3-vector position, got shape {t.shape}")
    out = np.eye(4)
    out[:3, :3] = quat_to_matrix(quat)
    out[:3, 3] = t
    return out


def blender_camera_to_opencv(cam_to_world: ArrayLike) -> FloatArray:
    """Convert a camera-to-world matrix between Blender's and OpenCV's camera axes (an involution)."""
    return _as_matrix4(cam_to_world) @ BLENDER_TO_OPENCV_CAMERA
