"""The subject of a scene: one board, or loose tags scattered flat so that no two touch or repeat."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from render_tag_shared.boards import BoardDefinition
from render_tag_shared.config import BoardSubject, GenConfig, TagsSubject
from render_tag_shared.errors import InputError
from render_tag_shared.families import get_family, marker_bits
from render_tag_shared.recipe import BoardObject, Pose, TagObject
from render_tag_shared.truth import board_module_m, object_extent_m, tag_module_m

from .frames import Vec, quat_z
from .sampler import uniform

__all__ = ["SUBJECT_LIFT_M", "Subject", "SubjectSampler", "marker_key"]

SUBJECT_LIFT_M = 0.001
"""The subject floats this far above the background plane: no z-fighting, and the plane never hides it."""


@dataclass
class Subject:
    """The subject of one scene and what the pose sampler needs to know about it."""

    objects: list[TagObject | BoardObject]
    centre: Vec
    radius_m: float  # the farthest subject corner from the centre
    side_m: float  # the edge of one object (area bound heuristic)
    module_m: float  # one module of one object (ppm bound heuristic)
    min_half_width_m: float  # half the narrowest width of one object (fit bound)
    corner_radius_m: float  # the farthest labelled corner from the centre (aiming)
    coplanar: bool = True  # objects in one plane cannot hide each other from a camera above it


class SubjectSampler:
    """Draws the subject of each scene; the board (the same in every scene) is built once."""

    def __init__(self, config: GenConfig, source: str, origin: Pose) -> None:
        self.config = config
        self.source = source
        self.origin = origin
        self._board_cache: Subject | None = None
        subject = config.scenario.subject
        names = subject.tag_families if isinstance(subject, TagsSubject) else []
        self._families = [
            (name, get_family(name).num_ids) for name in dict.fromkeys(get_family(n).name for n in names)
        ]
        self._check_subject()

    def _check_subject(self) -> None:
        subject = self.config.scenario.subject
        if not isinstance(subject, TagsSubject):
            return
        wanted = subject.tags_per_scene[1]
        families = {get_family(name).name for name in subject.tag_families}
        if wanted <= max(get_family(name).num_ids for name in families):
            return  # one family alone has enough distinct markers
        available = len({marker_key(f, i) for f in families for i in range(get_family(f).num_ids)})
        if wanted > available:
            raise InputError(
                self.source,
                "scenario.subject.tags_per_scene",
                f"{wanted} tags per scene need distinct markers, but "
                f"{', '.join(subject.tag_families)} hold only {available}",
            )

    def draw(self, rng: np.random.Generator) -> Subject:
        subject = self.config.scenario.subject
        if isinstance(subject, BoardSubject):
            return self._board(subject)
        return self._tags(subject, rng)

    def _board(self, subject: BoardSubject) -> Subject:
        """The board is the same in every scene: built (and validated, keypoints and all) once."""
        if self._board_cache is None:
            self._board_cache = self._build_board(subject)
        return self._board_cache

    def _build_board(self, subject: BoardSubject) -> Subject:
        definition = BoardDefinition.model_validate(subject.model_dump(exclude={"type", "margin_mm"}))
        board = BoardObject(
            name="board",
            pose=Pose(position=(0.0, 0.0, SUBJECT_LIFT_M)),
            board=definition,
            margin_mm=subject.margin_mm,
        )
        w, h = definition.width_m, definition.height_m
        return Subject(
            objects=[board],
            centre=(0.0, 0.0, SUBJECT_LIFT_M),
            radius_m=0.5 * math.hypot(w, h) + subject.margin_mm / 1000.0 * math.sqrt(2.0),
            corner_radius_m=0.5 * math.hypot(w, h),
            side_m=math.sqrt(w * h),
            module_m=board_module_m(definition),
            min_half_width_m=0.5 * min(w, h),
        )

    def _tags(self, subject: TagsSubject, rng: np.random.Generator) -> Subject:
        low, high = subject.tags_per_scene
        count = int(rng.integers(low, high + 1))
        families = self._families
        used: set[tuple[int, bytes]] = set()
        chosen: list[tuple[str, int]] = []
        while len(chosen) < count:
            family, num_ids = families[int(rng.integers(len(families)))]
            tag_id = int(rng.integers(num_ids))
            key = marker_key(family, tag_id)
            if key not in used:
                used.add(key)
                chosen.append((family, tag_id))
        tags = [
            TagObject(
                name=f"tag{i}",
                tag_family=family,
                tag_id=tag_id,
                size_mm=subject.size_mm,
                margin_modules=subject.margin_modules,
                pose=self.origin,  # an instance: pydantic would deep-copy the default for every tag
            )
            for i, (family, tag_id) in enumerate(chosen)
        ]
        # Each tag's printed square (quiet zone included) fits in a circle; circles that keep apart
        # keep the squares apart whatever their in-plane rotation.
        radii = [0.5 * math.sqrt(2.0) * object_extent_m(tag)[0] for tag in tags]
        centres = disc_layout(radii, rng)
        offsets = (centres - centres.mean(axis=0)).tolist()
        placed = []
        for tag, (x, y) in zip(tags, offsets, strict=True):
            yaw = uniform(rng, 0.0, 2.0 * math.pi)
            pose = Pose(position=(x, y, SUBJECT_LIFT_M), rotation_quaternion=quat_z(yaw))
            placed.append(tag.model_copy(update={"pose": pose}))
        radius = max(math.hypot(x, y) + r for (x, y), r in zip(offsets, radii, strict=True))
        return Subject(
            objects=list(placed),
            centre=(0.0, 0.0, SUBJECT_LIFT_M),
            radius_m=radius,
            corner_radius_m=max(
                math.hypot(x, y) + subject.size_mm / 2000.0 * math.sqrt(2.0) for x, y in offsets
            ),
            side_m=subject.size_mm / 1000.0,
            module_m=min(tag_module_m(tag) for tag in tags),
            min_half_width_m=subject.size_mm / 2000.0,
        )


@functools.lru_cache(maxsize=65536)
def marker_key(family: str, tag_id: int) -> tuple[int, bytes]:
    """What a detector sees of a marker: its bits, whatever the family is called and however it turns.

    Two ids with equal keys could not be told apart in one image: OpenCV's DICT_4X4_50 is the start
    of DICT_4X4_100, so id 3 of both is one marker, and a family has aliases (DICT_APRILTAG_36h11).
    """
    bits = marker_bits(family, tag_id)
    return bits.shape[0], min(np.rot90(bits, k).tobytes() for k in range(4))


def disc_layout(radii: list[float], rng: np.random.Generator) -> np.ndarray:
    """Centres of non-overlapping discs (a small gap apart), scattered in a region that grows if crowded."""
    n = len(radii)
    if n == 1:
        return np.zeros((1, 2))
    gap = 0.1 * max(radii)
    half = 1.3 * max(radii) * math.sqrt(n)
    centres: list[np.ndarray] = []
    placed: list[tuple[float, float]] = []  # the same centres as Python floats
    while len(centres) < n:
        for _ in range(100):
            x, y = uniform(rng, -half, half), uniform(rng, -half, half)
            candidate = np.array([x, y])
            r = radii[len(centres)]
            # np.hypot of the difference, as on the arrays, without an array per pair
            if all(
                float(np.hypot(x - px, y - py)) >= r + radii[i] + gap for i, (px, py) in enumerate(placed)
            ):
                centres.append(candidate)
                placed.append((x, y))
                break
        else:
            half *= 1.25
    return np.array(centres)
