"""Clutter: distractor solids on the floor around the subject, drawn after the cameras.

Each distractor stands on the floor (z = 0) in a ring around the subject, never touching it or another
distractor. With `clutter.may_occlude: false` (the default) a candidate is also kept only when, for
every camera of the scene, its projected box (the convex hull of its bounding box's edges through the
lens, grown by `CLEARANCE_PX`) stays clear of every tag's and board's printed outline (quiet zone and
margin included): the labels, which treat solids as transparent, then stay exact. A candidate that
fails is re-drawn up to `ATTEMPTS` times, then that distractor is left out.
"""

from __future__ import annotations

import math

import numpy as np

from render_tag_shared.config import BackgroundSection, ClutterSection
from render_tag_shared.geometry import invert_rigid
from render_tag_shared.lens import project_points
from render_tag_shared.recipe import (
    BoardObject,
    CameraRecipe,
    Pose,
    PrimitiveObject,
    PrimitiveShape,
    TagObject,
)
from render_tag_shared.truth import object_extent_m

from .frames import quat_z
from .materials import solid_look
from .sampler import uniform
from .subject import Subject

__all__ = ["ATTEMPTS", "CLEARANCE_PX", "ClutterSampler", "polygons_apart"]

ATTEMPTS = 40
"""Candidate placements per distractor."""

CLEARANCE_PX = 3.0
"""Pixels kept between a distractor's projected hull and a subject's projected outline."""

EDGE_SAMPLES = 8
"""Points per edge of boxes and outlines sent through the lens (edges curve under distortion)."""

_BOX_EDGES = [(a, b) for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count("1") == 1]


class ClutterSampler:
    """Draws a scene's distractors from the `clutter` stream, after its cameras are known."""

    def __init__(self, section: ClutterSection, background: BackgroundSection) -> None:
        self.section = section
        self.background = background

    @property
    def enabled(self) -> bool:
        return self.section.distractors_per_scene[1] > 0

    def draw(
        self,
        rng: np.random.Generator,
        subject: Subject,
        cameras: list[CameraRecipe],
        floor_half_m: float,
    ) -> list[PrimitiveObject]:
        low, high = self.section.distractors_per_scene
        wanted = int(rng.integers(low, high + 1))
        outlines = [_outline_world(obj) for obj in subject.objects]
        placed: list[tuple[float, float, float]] = []  # (x, y, footprint radius)
        distractors: list[PrimitiveObject] = []
        for index in range(wanted):
            for _ in range(ATTEMPTS):
                candidate = self._candidate(rng, index, subject, floor_half_m)
                x, y = candidate.pose.position[0], candidate.pose.position[1]
                radius = 0.5 * math.hypot(candidate.size_m[0], candidate.size_m[1])
                if any(math.hypot(x - px, y - py) < radius + pr for px, py, pr in placed):
                    continue
                if not self.section.may_occlude and not _clear_of_subject(candidate, outlines, cameras):
                    continue
                placed.append((x, y, radius))
                distractors.append(candidate)
                break
        return distractors

    def _candidate(
        self, rng: np.random.Generator, index: int, subject: Subject, floor_half_m: float
    ) -> PrimitiveObject:
        section = self.section
        shape: PrimitiveShape = section.shapes[int(rng.integers(len(section.shapes)))]
        edge = uniform(rng, *section.size_m)
        if shape == "CUBE":
            size = (
                edge * uniform(rng, 0.5, 1.0),
                edge * uniform(rng, 0.5, 1.0),
                edge * uniform(rng, 0.3, 1.0),
            )
        elif shape == "SPHERE":
            size = (edge, edge, edge)
        else:
            size = (edge, edge, edge * uniform(rng, 0.5, 2.0))
        footprint = 0.5 * math.hypot(size[0], size[1])
        inner = subject.radius_m + footprint + 0.01  # never touching the subject
        outer = max(inner, min(subject.radius_m + section.spread_m, floor_half_m - footprint))
        distance = uniform(rng, inner, outer)
        bearing = uniform(rng, 0.0, 2.0 * math.pi)
        yaw = uniform(rng, 0.0, 2.0 * math.pi)
        color, procedural = solid_look(rng, self.background)
        return PrimitiveObject(
            name=f"distractor{index}",
            pose=Pose(
                position=(
                    subject.centre[0] + distance * math.cos(bearing),
                    subject.centre[1] + distance * math.sin(bearing),
                    0.5 * size[2],  # standing on the floor
                ),
                rotation_quaternion=quat_z(yaw),
            ),
            shape=shape,
            size_m=size,
            color=color,
            procedural=procedural,
            roughness=uniform(rng, 0.2, 0.9),
            metallic=1.0 if rng.random() < 0.15 else 0.0,
        )


def _outline_world(obj: TagObject | BoardObject) -> np.ndarray:
    """The printed rectangle of a tag or board (quiet zone, margin) in the world, edges sampled."""
    w, h = object_extent_m(obj)
    corners = np.array(
        [[-w / 2, h / 2, 0.0], [w / 2, h / 2, 0.0], [w / 2, -h / 2, 0.0], [-w / 2, -h / 2, 0.0]]
    )
    steps = np.arange(EDGE_SAMPLES) / EDGE_SAMPLES
    local = np.concatenate(
        [corners[i] + steps[:, None] * (corners[(i + 1) % 4] - corners[i]) for i in range(4)]
    )
    m = obj.pose.matrix()
    return local @ m[:3, :3].T + m[:3, 3]


def _box_world(prim: PrimitiveObject) -> np.ndarray:
    """Points along the 12 edges of the primitive's bounding box, in the world."""
    hx, hy, hz = (0.5 * s for s in prim.size_m)
    corners = np.array(
        [[(hx if i & 1 else -hx), (hy if i & 2 else -hy), (hz if i & 4 else -hz)] for i in range(8)]
    )
    steps = np.arange(EDGE_SAMPLES + 1) / EDGE_SAMPLES
    local = np.concatenate([corners[a] + steps[:, None] * (corners[b] - corners[a]) for a, b in _BOX_EDGES])
    m = prim.pose.matrix()
    return local @ m[:3, :3].T + m[:3, 3]


def _project(points_world: np.ndarray, camera: CameraRecipe) -> np.ndarray | None:
    """Pixels of world points, or None when any lies at or behind the camera's plane (no verdict)."""
    world_to_cam = invert_rigid(camera.matrix)
    cam = points_world @ world_to_cam[:3, :3].T + world_to_cam[:3, 3]
    if (cam[:, 2] <= 1e-3).any():
        return None
    intr = camera.intrinsics
    uv = project_points(cam, intr.k, intr.distortion_model, intr.distortion_coeffs)
    return uv if np.isfinite(uv).all() else None


def _clear_of_subject(prim: PrimitiveObject, outlines: list[np.ndarray], cameras: list[CameraRecipe]) -> bool:
    box = _box_world(prim)
    for camera in cameras:
        hull_points = _project(box, camera)
        if hull_points is None:
            return False
        hull = convex_hull(hull_points)
        for outline in outlines:
            polygon = _project(outline, camera)
            if polygon is None or not polygons_apart(hull, polygon, CLEARANCE_PX):
                return False
    return True


def convex_hull(points: np.ndarray) -> np.ndarray:
    """The convex hull of 2-D points, counter-clockwise in (x, y) (Andrew's monotone chain)."""
    pts = sorted({(float(x), float(y)) for x, y in points})
    if len(pts) <= 2:
        return np.array(pts)

    def half(seq: list[tuple[float, float]]) -> list[tuple[float, float]]:
        chain: list[tuple[float, float]] = []
        for p in seq:
            while len(chain) >= 2:
                (ax, ay), (bx, by) = chain[-2], chain[-1]
                if (bx - ax) * (p[1] - ay) - (by - ay) * (p[0] - ax) > 0:
                    break
                chain.pop()
            chain.append(p)
        return chain

    lower, upper = half(pts), half(pts[::-1])
    return np.array(lower[:-1] + upper[:-1])


def _inside(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Even-odd rule: which points lie inside the closed polygon."""
    x, y = points[:, 0][:, None], points[:, 1][:, None]
    ax, ay = polygon[:, 0][None, :], polygon[:, 1][None, :]
    bx, by = np.roll(polygon[:, 0], -1)[None, :], np.roll(polygon[:, 1], -1)[None, :]
    crosses = (ay > y) != (by > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        at = ax + (y - ay) * (bx - ax) / (by - ay)
    return np.asarray((crosses & (x < at)).sum(axis=1) % 2 == 1)


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distances from every point p (N, 2) to every segment a-b (M, 2): (N, M)."""
    ab = b - a
    length2 = np.maximum((ab * ab).sum(axis=1), 1e-18)
    t = np.clip(((p[:, None, :] - a[None]) * ab[None]).sum(axis=2) / length2[None], 0.0, 1.0)
    nearest = a[None] + t[..., None] * ab[None]
    return np.asarray(np.linalg.norm(p[:, None, :] - nearest, axis=2))


def _segments_cross(a0: np.ndarray, a1: np.ndarray, b0: np.ndarray, b1: np.ndarray) -> bool:
    def orient(p: np.ndarray, q: np.ndarray, r: np.ndarray) -> np.ndarray:
        return np.asarray(
            (q[..., 0] - p[..., 0]) * (r[..., 1] - p[..., 1])
            - (q[..., 1] - p[..., 1]) * (r[..., 0] - p[..., 0])
        )

    A0, A1 = a0[:, None], a1[:, None]
    B0, B1 = b0[None], b1[None]
    d1, d2 = orient(A0, A1, B0), orient(A0, A1, B1)
    d3, d4 = orient(B0, B1, A0), orient(B0, B1, A1)
    return bool(((d1 * d2 < 0) & (d3 * d4 < 0)).any())


def polygons_apart(a: np.ndarray, b: np.ndarray, clearance: float) -> bool:
    """Whether two closed polygons (vertices in order) neither overlap nor come within `clearance` px."""
    if len(a) < 3 or len(b) < 3:
        return False
    if _inside(a, b).any() or _inside(b, a).any():
        return False
    a_next, b_next = np.roll(a, -1, axis=0), np.roll(b, -1, axis=0)
    if _segments_cross(a, a_next, b, b_next):
        return False
    near = min(_segment_distance(a, b, b_next).min(), _segment_distance(b, a, a_next).min())
    return bool(near > clearance)
