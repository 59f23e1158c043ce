"""Ground truth of one camera of a recipe, as a pure function of the recipe.

The add-on's label writer, the compiler's pose constraints and the viewport overlay all build on
`observe_camera` (arrays; `camera_ground_truth` turns them into records), so what is drawn, what is
sampled and what is written can never disagree.

Visibility per corner or keypoint (COCO's ternary):
- 2: in front of the camera, on the object's front side, not hidden behind another planar object of
  the scene, and inside the image at least `eval_margin_px` from every edge;
- 1: as 2, but outside the image or inside the eval margin (coordinates kept);
- 0: not labelled: behind the camera, seen from behind, or hidden by another object; its coordinates
  are the sentinel (-1, -1), and it keeps its index.
A record is written when at least one of its corners or keypoints is labelled (1 or 2) and its outline
reaches into the image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, cast

import numpy as np

from .boards import BoardDefinition, library_to_object
from .families import get_family
from .geometry import invert_rigid, matrix_to_quat
from .projection import apply_sentinel, in_lens_domain, project_points, visibility
from .recipe import BoardObject, PlaneObject, SceneRecipe, TagObject, recipe_hash, tag_corners_object_frame
from .records import DetectionRecord, ImageLabels

OUTLINE_SAMPLES_PER_EDGE = 16
"""Points per edge of the outline traced through a distorting lens (straight edges curve there)."""


def object_extent_m(obj: TagObject | BoardObject | PlaneObject) -> tuple[float, float]:
    """Width and height of the object's rectangle (metres): the mesh the add-on builds, the occluder here."""
    if isinstance(obj, TagObject):
        side = obj.side_m + 2.0 * obj.margin_modules * tag_module_m(obj)
        return side, side
    if isinstance(obj, BoardObject):
        margin = 2.0 * obj.margin_mm / 1000.0
        return obj.board.width_m + margin, obj.board.height_m + margin
    return obj.size_m


def tag_module_m(tag: TagObject) -> float:
    """The side of one bit of the marker (metres): black border bits count as modules too."""
    family = get_family(tag.tag_family)
    return tag.side_m / (family.marker_bits + 2 * tag.border_bits)


def board_module_m(board: BoardDefinition) -> float:
    """The side of one bit of the board's markers (metres)."""
    return board.marker_size_mm / 1000.0 / (board.family.marker_bits + 2 * board.effective_border_bits)


def board_outline_object_frame(board: BoardDefinition) -> np.ndarray:
    """TL, TR, BR, BL of the printed pattern in the board's object frame (centred, y up)."""
    hw, hh = board.width_m / 2.0, board.height_m / 2.0
    return np.array([[-hw, hh, 0.0], [hw, hh, 0.0], [hw, -hh, 0.0], [-hw, -hh, 0.0]])


@dataclass(frozen=True)
class _Occluder:
    index: int
    world_to_object: np.ndarray
    half_width: float
    half_height: float


def _occluders(recipe: SceneRecipe) -> list[_Occluder]:
    out = []
    for index, obj in enumerate(recipe.objects):
        width, height = object_extent_m(obj)
        out.append(_Occluder(index, invert_rigid(obj.pose.matrix()), width / 2.0, height / 2.0))
    return out


def _hidden(
    points_world: np.ndarray, owners: np.ndarray, camera_centre: np.ndarray, occluders: list[_Occluder]
) -> np.ndarray:
    """True where the segment from the camera to a point crosses another object's rectangle first."""
    hidden = np.zeros(len(points_world), dtype=bool)
    for occ in occluders:
        rotation, shift = occ.world_to_object[:3, :3], occ.world_to_object[:3, 3]
        origin = rotation @ camera_centre + shift
        targets = points_world @ rotation.T + shift
        dz = targets[:, 2] - origin[2]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = -origin[2] / dz
        hit = origin[None, :2] + t[:, None] * (targets[:, :2] - origin[None, :2])
        inside = (np.abs(hit[:, 0]) <= occ.half_width) & (np.abs(hit[:, 1]) <= occ.half_height)
        hidden |= (owners != occ.index) & np.isfinite(t) & (t > 1e-9) & (t < 1.0 - 1e-9) & inside
    return hidden


def _outline_object_frame(corners: np.ndarray, samples: int) -> np.ndarray:
    """Points along the closed polygon TL → TR → BR → BL (corners first of each edge)."""
    steps = np.arange(samples) / samples
    edges = [corners[i] + steps[:, None] * (corners[(i + 1) % 4] - corners[i]) for i in range(4)]
    return np.concatenate(edges)


def _outline_reaches_image(outline: np.ndarray, resolution: tuple[int, int]) -> bool:
    if len(outline) == 0:
        return False
    (x0, y0), (x1, y1) = outline.min(axis=0), outline.max(axis=0)
    return bool(x1 >= -0.5 and y1 >= -0.5 and x0 <= resolution[0] - 0.5 and y0 <= resolution[1] - 0.5)


@dataclass
class _Subject:
    """One tag or board and where its points sit in the camera's one batch of points."""

    index: int
    obj: TagObject | BoardObject
    obj_to_cam: np.ndarray
    corners: slice
    keypoints: slice
    outline: slice
    probe: slice


def _subject_points(obj: TagObject | BoardObject, outline_samples: int) -> list[np.ndarray]:
    """Object-frame points: corners, keypoints, the outline between corners, and a one-module probe."""
    if isinstance(obj, TagObject):
        corners = tag_corners_object_frame(obj.size_mm)
        keypoints = np.empty((0, 3))
        module = tag_module_m(obj)
    else:
        corners = board_outline_object_frame(obj.board)
        keypoints = np.asarray(obj.keypoints_3d, dtype=float)
        module = board_module_m(obj.board)
    outline = _outline_object_frame(corners, outline_samples) if outline_samples > 1 else np.empty((0, 3))
    probe = np.array([[0.0, 0.0, 0.0], [module, 0.0, 0.0], [0.0, module, 0.0]])
    return [corners, keypoints, outline, probe]


def _ternary(vis: np.ndarray) -> list[Literal[0, 1, 2]]:
    return cast(list[Literal[0, 1, 2]], vis.tolist())


def _quaternion(pose: np.ndarray) -> tuple[float, float, float, float]:
    w, x, y, z = (float(c) for c in matrix_to_quat(pose[:3, :3]))
    return (w, x, y, z)


def _pixels_per_module(probe: np.ndarray) -> float:
    """sqrt of the projected area of one module at the object's centre: the detector's resolution."""
    if not np.isfinite(probe).all():
        return 0.0
    a, b = probe[1] - probe[0], probe[2] - probe[0]
    return math.sqrt(abs(a[0] * b[1] - a[1] * b[0]))


@dataclass
class Observation:
    """What one camera sees of one tag or board, as arrays: the core every caller builds on."""

    obj: TagObject | BoardObject
    corners: np.ndarray  # (4, 2) pixels, sentinel (-1, -1) where not labelled
    corners_visibility: np.ndarray  # (4,) int8, ternary
    outline: np.ndarray  # (M, 2) the border traced through the lens (finite points only)
    keypoints: np.ndarray | None  # boards: (N, 2), sentinel where not labelled
    keypoints_visibility: np.ndarray | None
    pose: np.ndarray  # 4x4 object (tag) or library board frame to camera (OpenCV axes)
    distance: float
    angle_of_incidence_deg: float
    ppm: float


def observe_camera(recipe: SceneRecipe, camera_index: int, *, occlusion: bool = True) -> list[Observation]:
    """Every tag and board that camera `camera_index` of `recipe` labels, with its projected points.

    All points of all objects go through the lens in one batch: the compiler calls this for every
    pose it tries, so it is a hot path.
    """
    camera = recipe.cameras[camera_index]
    intr = camera.intrinsics
    model, coeffs = intr.distortion_model, list(intr.distortion_coeffs)
    cam_to_world = camera.matrix
    world_to_cam = invert_rigid(cam_to_world)
    outline_samples = OUTLINE_SAMPLES_PER_EDGE if model != "none" else 1

    subjects: list[_Subject] = []
    blocks_world: list[np.ndarray] = []
    owners: list[np.ndarray] = []
    cursor = 0
    for index, obj in enumerate(recipe.objects):
        if isinstance(obj, PlaneObject):
            continue
        obj_to_world = obj.pose.matrix()
        parts = _subject_points(obj, outline_samples)
        bounds = []
        for part in parts:
            bounds.append(slice(cursor, cursor + len(part)))
            cursor += len(part)
        points = np.concatenate(parts)
        blocks_world.append(points @ obj_to_world[:3, :3].T + obj_to_world[:3, 3])
        owners.append(np.full(len(points), index))
        subjects.append(_Subject(index, obj, world_to_cam @ obj_to_world, *bounds))
    if not subjects:
        return []

    points_world = np.concatenate(blocks_world)
    points_cam = points_world @ world_to_cam[:3, :3].T + world_to_cam[:3, 3]
    uv = project_points(points_cam, intr.k, model, coeffs)
    vis = visibility(uv, intr.resolution, intr.eval_margin_px)
    # Past the lens polynomial's fold a point projects somewhere, but no real lens images it there.
    unlabelled = (
        ~np.isfinite(uv).all(axis=1) | (points_cam[:, 2] <= 0) | ~in_lens_domain(points_cam, model, coeffs)
    )
    if occlusion:
        unlabelled |= _hidden(points_world, np.concatenate(owners), cam_to_world[:3, 3], _occluders(recipe))
    vis = np.where(unlabelled, 0, vis).astype(np.int8)
    labelled_uv = apply_sentinel(uv, vis)

    observations = []
    for sub in subjects:
        obj = sub.obj
        centre = sub.obj_to_cam[:3, 3]
        distance = float(np.linalg.norm(centre))
        cos_incidence = float(-sub.obj_to_cam[:3, 2] @ centre / distance) if distance > 0 else -1.0
        facing = cos_incidence > 0  # seen from behind, nothing of it is labelled
        corners_vis = vis[sub.corners] if facing else np.zeros(4, dtype=np.int8)
        corners = labelled_uv[sub.corners] if facing else np.full((4, 2), -1.0)
        outline = uv[sub.outline] if outline_samples > 1 else uv[sub.corners]
        outline = outline[np.isfinite(outline).all(axis=1)]
        keypoints = keypoints_vis = None
        if isinstance(obj, BoardObject):
            count = sub.keypoints.stop - sub.keypoints.start
            keypoints_vis = vis[sub.keypoints] if facing else np.zeros(count, dtype=np.int8)
            keypoints = labelled_uv[sub.keypoints] if facing else np.full((count, 2), -1.0)
        labelled = bool(corners_vis.any()) or (keypoints_vis is not None and bool(keypoints_vis.any()))
        if not labelled or not _outline_reaches_image(outline, intr.resolution):
            continue
        pose = sub.obj_to_cam if isinstance(obj, TagObject) else sub.obj_to_cam @ library_to_object(obj.board)
        observations.append(
            Observation(
                obj=obj,
                corners=corners,
                corners_visibility=corners_vis,
                outline=outline,
                keypoints=keypoints,
                keypoints_visibility=keypoints_vis,
                pose=pose,
                distance=distance,
                angle_of_incidence_deg=math.degrees(math.acos(max(-1.0, min(1.0, cos_incidence)))),
                ppm=_pixels_per_module(uv[sub.probe]),
            )
        )
    return observations


def _points(array: np.ndarray) -> list[tuple[float, float]]:
    return [(x, y) for x, y in array.tolist()]


def camera_ground_truth(
    recipe: SceneRecipe, camera_index: int, *, occlusion: bool = True
) -> list[DetectionRecord]:
    """The rich-truth records of every tag and board that camera `camera_index` of `recipe` sees."""
    camera = recipe.cameras[camera_index]
    intr = camera.intrinsics
    image = recipe.image_id(camera_index)
    records = []
    for seen in observe_camera(recipe, camera_index, occlusion=occlusion):
        obj = seen.obj
        tag = obj if isinstance(obj, TagObject) else None
        board = obj.board if isinstance(obj, BoardObject) else None
        # The inputs are computed here, not typed by a user: skip re-validating them.
        records.append(
            DetectionRecord.model_construct(
                image_id=image,
                scene_id=recipe.scene_id,
                camera_name=camera.name,
                object_name=obj.name,
                record_type=obj.type,
                tag_family=tag.tag_family if tag else board.dictionary if board else "",
                tag_id=tag.tag_id if tag else None,
                corners=_points(seen.corners),
                corners_visibility=_ternary(seen.corners_visibility),
                outline=_points(seen.outline),
                keypoints=None if seen.keypoints is None else _points(seen.keypoints),
                keypoints_visibility=(
                    None if seen.keypoints_visibility is None else _ternary(seen.keypoints_visibility)
                ),
                board_definition=board,
                k_matrix=intr.k_matrix,
                resolution=intr.resolution,
                distortion_model=intr.distortion_model,
                distortion_coeffs=list(intr.distortion_coeffs),
                position=(float(seen.pose[0, 3]), float(seen.pose[1, 3]), float(seen.pose[2, 3])),
                rotation_quaternion=_quaternion(seen.pose),
                distance=seen.distance,
                angle_of_incidence=seen.angle_of_incidence_deg,
                ppm=seen.ppm,
                tag_size_mm=tag.size_mm if tag else board.marker_size_mm if board else 0.0,
                border_bits=tag.border_bits if tag else board.effective_border_bits if board else 1,
            )
        )
    return records


def image_labels(
    recipe: SceneRecipe, camera_index: int, *, render_environment: dict[str, str] | None = None
) -> ImageLabels:
    """labels/<image_id>.json of one camera: what the add-on writes beside each image and what the host
    writes from recipes alone, so the two give the same bytes."""
    camera = recipe.cameras[camera_index]
    image = recipe.image_id(camera_index)
    return ImageLabels(
        image_id=image,
        file_name=f"images/{image}.png",
        width=camera.intrinsics.width,
        height=camera.intrinsics.height,
        scene_id=recipe.scene_id,
        camera_name=camera.name,
        recipe_hash=recipe_hash(recipe),
        eval_margin_px=camera.intrinsics.eval_margin_px,
        render_environment=render_environment or {},
        records=camera_ground_truth(recipe, camera_index),
    )
