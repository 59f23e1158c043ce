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
Hidden means: another tag, board or plane of the recipe (exact rectangles, here, pure) or, when the
caller passes a `HiddenTest` (the add-on does, at render time), anything in the built scene, by ray
casts from the camera centre to the point (occluder boxes, distractors of any shape).
A record is written when at least one of its corners or keypoints is labelled (1 or 2) and its outline
reaches into the image.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import numpy as np

from .boards import BoardDefinition, library_to_object, marker_corners_object_frame
from .families import get_family
from .geometry import invert_rigid, matrix_to_quat
from .image_space import image_size, visibility_checked
from .lens import coeff_array, in_lens_domain_checked, k_params, max_valid_angle, project_checked
from .recipe import (
    AnyObject,
    BoardObject,
    CameraIntrinsics,
    PlaneObject,
    SceneRecipe,
    TagObject,
    recipe_hash,
    tag_corners_object_frame,
)
from .records import DetectionRecord, ImageLabels, ImageOutputs

HiddenTest = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""`hidden(points_world (N, 3), camera_centre (3,))` -> bool (N,): True where something of the scene lies
on the segment from the camera centre to the point. The add-on answers it with ray casts into the
built Blender scene (every object, whatever its shape); the pure planar test here knows only the
recipe's rectangles."""

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
    """The side of one bit of the board's markers (metres); a checkerboard's square."""
    if board.board_type == "checkerboard":
        return board.marker_size_mm / 1000.0
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


def _occluders(objects: Sequence[AnyObject]) -> list[_Occluder]:
    """The recipe's rectangles (tags, boards, planes). Boxes (OCCLUDER) are left to the scene's
    `HiddenTest`; solid distractors (PRIMITIVE) the compiler keeps off the keypoints unless
    `clutter.may_occlude`, and then the scene's `HiddenTest` sees them too."""
    out = []
    for index, obj in enumerate(objects):
        if not isinstance(obj, TagObject | BoardObject | PlaneObject):
            continue
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


def outline_object_frame(corners: np.ndarray, samples: int) -> np.ndarray:
    """Points along the closed polygon TL → TR → BR → BL (corners first of each edge)."""
    steps = np.arange(samples) / samples
    edges = [corners[i] + steps[:, None] * (corners[(i + 1) % 4] - corners[i]) for i in range(4)]
    return np.concatenate(edges)


def _rows_reach_image(rows: list[list[float]], width: int, height: int) -> bool:
    """Whether the bounding box of finite outline points [x, y] overlaps the image area."""
    if not rows:
        return False
    xs = [row[0] for row in rows]
    ys = [row[1] for row in rows]
    return max(xs) >= -0.5 and max(ys) >= -0.5 and min(xs) <= width - 0.5 and min(ys) <= height - 0.5


def _subject_points(obj: TagObject | BoardObject, outline_samples: int, markers: bool) -> list[np.ndarray]:
    """Object-frame points: corners, keypoints, the outline between corners, a one-module probe, and
    (boards, when asked) the corners of every marker, four per marker in library order."""
    if isinstance(obj, TagObject):
        corners = tag_corners_object_frame(obj.size_mm)
        keypoints = np.empty((0, 3))
        module = tag_module_m(obj)
        marker_points = np.empty((0, 3))
    else:
        corners = board_outline_object_frame(obj.board)
        keypoints = np.asarray(obj.keypoints_3d, dtype=float)
        module = board_module_m(obj.board)
        marker_points = (
            marker_corners_object_frame(obj.board)[1].reshape(-1, 3) if markers else np.empty((0, 3))
        )
    return [*_points_of(corners, keypoints, module, outline_samples), marker_points]


def _points_of(
    corners: np.ndarray, keypoints: np.ndarray, module: float, outline_samples: int
) -> list[np.ndarray]:
    outline = outline_object_frame(corners, outline_samples) if outline_samples > 1 else np.empty((0, 3))
    probe = np.array([[0.0, 0.0, 0.0], [module, 0.0, 0.0], [0.0, module, 0.0]])
    return [corners, keypoints, outline, probe]


def marker_frames(board: BoardDefinition) -> tuple[np.ndarray, np.ndarray]:
    """(ids (M,), (M, 4, 4) marker-to-object transforms): each board marker's own single-tag frame
    (origin at its centre, x from its TL to TR, y from its BL to TL), so that a marker record's pose
    maps `tag_corners` onto its corners as a loose tag's does."""
    ids, corners = marker_corners_object_frame(board)
    frames = np.tile(np.eye(4), (len(ids), 1, 1))
    for k, (tl, tr, _, bl) in enumerate(corners):
        x = (tr - tl) / np.linalg.norm(tr - tl)
        y = (tl - bl) / np.linalg.norm(tl - bl)
        frames[k, :3, :3] = np.stack([x, y, np.cross(x, y)], axis=1)
        frames[k, :3, 3] = corners[k].mean(axis=0)
    return ids, frames


@functools.lru_cache(maxsize=256)
def _tag_points(
    size_mm: float, family: str, border_bits: int, outline_samples: int
) -> tuple[np.ndarray, tuple[int, ...]]:
    """`_subject_points` of a tag, concatenated (read-only), with the length of each part."""
    corners = tag_corners_object_frame(size_mm)
    module = size_mm / 1000.0 / (get_family(family).marker_bits + 2 * border_bits)  # tag_module_m
    parts = _points_of(corners, np.empty((0, 3)), module, outline_samples)
    parts.append(np.empty((0, 3)))  # a tag has no markers of its own
    points = np.concatenate(parts)
    points.setflags(write=False)
    return points, tuple(len(part) for part in parts)


def _ternary(vis: np.ndarray) -> list[Literal[0, 1, 2]]:
    return cast(list[Literal[0, 1, 2]], vis.tolist())


def _quaternion(pose: np.ndarray) -> tuple[float, float, float, float]:
    w, x, y, z = (float(c) for c in matrix_to_quat(pose[:3, :3]))
    return (w, x, y, z)


def _pixels_per_module_rows(probe: list[list[float]]) -> float:
    """sqrt of the projected area of one module at the object's centre: the detector's resolution.
    `probe` holds the pixels [x, y] of the centre and of one module along x and along y."""
    (x0, y0), (x1, y1), (x2, y2) = probe
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1, x2, y2)):
        return 0.0
    ax, ay, bx, by = x1 - x0, y1 - y0, x2 - x0, y2 - y0
    return math.sqrt(abs(ax * by - ay * bx))


@dataclass
class MarkerObservation:
    """One marker of a board (ChArUco, AprilGrid) as the camera sees it: corners as an ArUco detector
    reports them (TL, TR, BR, BL), sentinel where not labelled."""

    tag_id: int
    corners: np.ndarray  # (4, 2)
    corners_visibility: np.ndarray  # (4,)
    outline: np.ndarray  # (K, 2) the finite projected corners
    pose: np.ndarray  # 4x4 marker frame to camera
    distance: float


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
    markers: list[MarkerObservation] = field(default_factory=list)


class Lens:
    """A camera's intrinsics, checked and unpacked once for many projections through them."""

    def __init__(self, intrinsics: CameraIntrinsics):
        self.intrinsics = intrinsics
        self.model = intrinsics.distortion_model
        self.coeffs = coeff_array(self.model, list(intrinsics.distortion_coeffs))
        self.fx, self.fy, self.cx, self.cy = k_params(intrinsics.k)
        self.width, self.height = image_size(intrinsics.resolution)
        self.margin = float(intrinsics.eval_margin_px)
        self.theta_max = max_valid_angle(self.model, self.coeffs)


@dataclass
class _Static:
    """What a subject contributes to every camera: its object-frame pose and its slices of the batch."""

    index: int
    obj: TagObject | BoardObject
    obj_to_world: np.ndarray
    corners: slice
    keypoints: slice
    outline: slice
    probe: slice
    library: np.ndarray | None  # boards: library frame to object frame
    markers: slice = field(default_factory=lambda: slice(0, 0))  # boards, with markers: 4 corners each
    marker_ids: np.ndarray | None = None
    marker_frames: np.ndarray | None = None  # (M, 4, 4) marker to object frame


class PreparedScene:
    """The camera-independent half of `observe_camera` for one list of recipe objects: every subject's
    points in the world, once. `observe_prepared` then judges any number of camera poses against it
    (the compiler's pose sampler tries many poses of one scene). The objects must not change after.
    `markers` adds every board marker's corners (the labels need them; the pose sampler does not)."""

    def __init__(self, objects: Sequence[AnyObject], distortion_model: str, *, markers: bool = False):
        self.objects = list(objects)
        self.distortion_model = distortion_model
        self.outline_samples = OUTLINE_SAMPLES_PER_EDGE if distortion_model != "none" else 1
        self.statics: list[_Static] = []
        blocks_world: list[np.ndarray] = []
        owners: list[tuple[int, int]] = []  # (object index, number of points), for occlusion
        cursor = 0
        for index, obj in enumerate(self.objects):
            if not isinstance(obj, TagObject | BoardObject):
                continue
            obj_to_world = obj.pose.matrix()
            if isinstance(obj, TagObject):  # tags of a job share a few shapes
                points, lengths = _tag_points(
                    obj.size_mm, obj.tag_family, obj.border_bits, self.outline_samples
                )
            else:
                parts = _subject_points(obj, self.outline_samples, markers)
                points, lengths = np.concatenate(parts), tuple(len(part) for part in parts)
            bounds = []
            for length in lengths:
                bounds.append(slice(cursor, cursor + length))
                cursor += length
            blocks_world.append(points @ obj_to_world[:3, :3].T + obj_to_world[:3, 3])
            owners.append((index, len(points)))
            library = library_to_object(obj.board) if isinstance(obj, BoardObject) else None
            corners, keypoints, outline, probe, marker_part = bounds
            static = _Static(index, obj, obj_to_world, corners, keypoints, outline, probe, library)
            if isinstance(obj, BoardObject) and markers and obj.board.num_markers:
                static.markers = marker_part
                static.marker_ids, static.marker_frames = marker_frames(obj.board)
            self.statics.append(static)
        self.points_world = np.concatenate(blocks_world) if blocks_world else np.empty((0, 3))
        self._owner_runs = owners
        self._owners: np.ndarray | None = None
        self._occluders: list[_Occluder] | None = None

    def owners(self) -> np.ndarray:
        """The index (in the object list) of the object each point belongs to."""
        if self._owners is None:
            runs = [np.full(count, index) for index, count in self._owner_runs]
            self._owners = np.concatenate(runs) if runs else np.empty(0, dtype=int)
        return self._owners

    def occluders(self) -> list[_Occluder]:
        if self._occluders is None:
            self._occluders = _occluders(self.objects)
        return self._occluders


def observe_camera(
    recipe: SceneRecipe,
    camera_index: int,
    *,
    occlusion: bool = True,
    markers: bool = False,
    hidden: HiddenTest | None = None,
) -> list[Observation]:
    """Every tag and board that camera `camera_index` of `recipe` labels, with its projected points.

    All points of all objects go through the lens in one batch. The compiler judges every pose it
    tries with the same computation split in two (`PreparedScene` once per scene, then
    `observe_prepared` per pose), so it is a hot path. `markers`: observe each board marker's corners
    too; `hidden`: the scene's own occlusion test on top of the recipe's rectangles.
    """
    camera = recipe.cameras[camera_index]
    prepared = PreparedScene(recipe.objects, camera.intrinsics.distortion_model, markers=markers)
    return observe_prepared(
        prepared, camera.matrix, Lens(camera.intrinsics), occlusion=occlusion, hidden=hidden
    )


def _label_slices(prepared: PreparedScene) -> np.ndarray:
    """Indices of the points that are labels (corners, keypoints, marker corners): what a
    `HiddenTest` is asked about (outline and probe points only locate the object)."""
    parts = [
        np.arange(part.start, part.stop)
        for sub in prepared.statics
        for part in (sub.corners, sub.keypoints, sub.markers)
    ]
    return np.concatenate(parts) if parts else np.empty(0, dtype=int)


def observe_prepared(
    prepared: PreparedScene,
    cam_to_world: np.ndarray,
    lens: Lens,
    *,
    occlusion: bool = True,
    hidden: HiddenTest | None = None,
) -> list[Observation]:
    """`observe_camera` for a camera at `cam_to_world` (4x4 float64, OpenCV axes) with the intrinsics
    of `lens`, over a scene prepared for the same distortion model."""
    if not prepared.statics:
        return []
    if lens.model != prepared.distortion_model:
        raise ValueError(f"the scene was prepared for a {prepared.distortion_model} lens, not {lens.model}")
    world_to_cam = invert_rigid(cam_to_world)
    points_world = prepared.points_world
    points_cam = points_world @ world_to_cam[:3, :3].T + world_to_cam[:3, 3]
    uv = project_checked(points_cam, lens.fx, lens.fy, lens.cx, lens.cy, lens.model, lens.coeffs)
    finite = np.isfinite(uv).all(axis=1)
    # Past the lens polynomial's fold a point projects somewhere, but no real lens images it there.
    unlabelled = (
        ~finite | (points_cam[:, 2] <= 0) | ~in_lens_domain_checked(points_cam, lens.model, lens.theta_max)
    )
    if occlusion:
        unlabelled |= _hidden(points_world, prepared.owners(), cam_to_world[:3, 3], prepared.occluders())
    if occlusion and hidden is not None:
        asked = _label_slices(prepared)
        asked = asked[~unlabelled[asked]]
        if len(asked):
            unlabelled[asked] |= np.asarray(hidden(points_world[asked], cam_to_world[:3, 3]), dtype=bool)
    # visibility() less the points that are not labelled (they include every non-finite one)
    vis = visibility_checked(uv, lens.width, lens.height, lens.margin)
    vis[unlabelled] = 0
    labelled_uv = uv.copy()
    labelled_uv[unlabelled] = -1.0  # the COCO sentinel, as apply_sentinel puts it
    # Small per-object sums and bounds in Python floats: the same IEEE operations as on numpy scalars.
    uv_rows = uv.tolist()
    vis_rows = vis.tolist()
    distorted = prepared.outline_samples > 1
    width, height = lens.width, lens.height

    observations = []
    for sub in prepared.statics:
        obj = sub.obj
        obj_to_cam = world_to_cam @ sub.obj_to_world
        centre = obj_to_cam[:3, 3]
        flat = centre.ravel(order="K")
        distance = math.sqrt(flat.dot(flat))  # np.linalg.norm(centre), step by step
        cos_incidence = float(-obj_to_cam[:3, 2] @ centre / distance) if distance > 0 else -1.0
        facing = cos_incidence > 0  # seen from behind, nothing of it is labelled
        keypoint_rows = vis_rows[sub.keypoints] if sub.library is not None else []
        if not facing or not (any(vis_rows[sub.corners]) or any(keypoint_rows) or any(vis_rows[sub.markers])):
            continue  # nothing labelled
        span = sub.outline if distorted else sub.corners
        outline_finite = finite[span]
        outline = uv[span][outline_finite]
        rows = [row for row, ok in zip(uv_rows[span], outline_finite.tolist(), strict=True) if ok]
        if not _rows_reach_image(rows, width, height):
            continue
        keypoints = keypoints_vis = None
        if sub.library is not None:
            keypoints_vis = vis[sub.keypoints]
            keypoints = labelled_uv[sub.keypoints]
        pose = obj_to_cam if sub.library is None else obj_to_cam @ sub.library
        markers = []
        if sub.marker_ids is not None and sub.marker_frames is not None:
            marker_uv = labelled_uv[sub.markers].reshape(-1, 4, 2)
            marker_vis = vis[sub.markers].reshape(-1, 4)
            marker_finite = finite[sub.markers].reshape(-1, 4)
            raw_uv = uv[sub.markers].reshape(-1, 4, 2)
            for k, tag_id in enumerate(sub.marker_ids.tolist()):
                if not marker_vis[k].any():
                    continue
                marker_pose = obj_to_cam @ sub.marker_frames[k]
                markers.append(
                    MarkerObservation(
                        tag_id=int(tag_id),
                        corners=marker_uv[k],
                        corners_visibility=marker_vis[k],
                        outline=raw_uv[k][marker_finite[k]],
                        pose=marker_pose,
                        distance=float(np.linalg.norm(marker_pose[:3, 3])),
                    )
                )
        observations.append(
            Observation(
                obj=obj,
                corners=labelled_uv[sub.corners],
                corners_visibility=vis[sub.corners],
                outline=outline,
                keypoints=keypoints,
                keypoints_visibility=keypoints_vis,
                pose=pose,
                distance=distance,
                angle_of_incidence_deg=math.degrees(math.acos(max(-1.0, min(1.0, cos_incidence)))),
                ppm=_pixels_per_module_rows(uv_rows[sub.probe]),
                markers=markers,
            )
        )
    return observations


def _points(array: np.ndarray) -> list[tuple[float, float]]:
    return [(x, y) for x, y in array.tolist()]


def camera_ground_truth(
    recipe: SceneRecipe,
    camera_index: int,
    *,
    occlusion: bool = True,
    hidden: HiddenTest | None = None,
) -> list[DetectionRecord]:
    """The rich-truth records of every tag and board that camera `camera_index` of `recipe` sees, and
    a MARKER record for each marker of a board with a labelled corner (its dictionary id and corners)."""
    camera = recipe.cameras[camera_index]
    intr = camera.intrinsics
    image = recipe.image_id(camera_index)
    common: dict[str, Any] = {
        "image_id": image,
        "scene_id": recipe.scene_id,
        "camera_name": camera.name,
        "k_matrix": intr.k_matrix,
        "resolution": intr.resolution,
        "distortion_model": intr.distortion_model,
        "distortion_coeffs": list(intr.distortion_coeffs),
    }
    records = []
    for seen in observe_camera(recipe, camera_index, occlusion=occlusion, markers=True, hidden=hidden):
        obj = seen.obj
        tag = obj if isinstance(obj, TagObject) else None
        board = obj.board if isinstance(obj, BoardObject) else None
        angle = seen.angle_of_incidence_deg
        # The inputs are computed here, not typed by a user: skip re-validating them.
        records.append(
            DetectionRecord.model_construct(
                **common,
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
                position=(float(seen.pose[0, 3]), float(seen.pose[1, 3]), float(seen.pose[2, 3])),
                rotation_quaternion=_quaternion(seen.pose),
                distance=seen.distance,
                angle_of_incidence=angle,
                ppm=seen.ppm,
                tag_size_mm=tag.size_mm if tag else board.marker_size_mm if board else 0.0,
                border_bits=tag.border_bits if tag else board.effective_border_bits if board else 1,
            )
        )
        for marker in seen.markers:
            assert board is not None
            records.append(
                DetectionRecord.model_construct(
                    **common,
                    object_name=obj.name,
                    record_type="MARKER",
                    tag_family=board.dictionary,
                    tag_id=marker.tag_id,
                    corners=_points(marker.corners),
                    corners_visibility=_ternary(marker.corners_visibility),
                    outline=_points(marker.outline),
                    keypoints=None,
                    keypoints_visibility=None,
                    board_definition=None,
                    position=(float(marker.pose[0, 3]), float(marker.pose[1, 3]), float(marker.pose[2, 3])),
                    rotation_quaternion=_quaternion(marker.pose),
                    distance=marker.distance,
                    angle_of_incidence=angle,
                    ppm=seen.ppm,
                    tag_size_mm=board.marker_size_mm,
                    border_bits=board.effective_border_bits,
                )
            )
    return records


def image_labels(
    recipe: SceneRecipe,
    camera_index: int,
    *,
    render_environment: dict[str, str] | None = None,
    hidden: HiddenTest | None = None,
    outputs: ImageOutputs | None = None,
) -> ImageLabels:
    """labels/<image_id>.json of one camera: what the add-on writes beside each image and what the host
    writes from recipes alone, so the two give the same bytes (unless something that is not a
    rectangle of the recipe hides a label: only the add-on's `hidden` sees that). `outputs` lists the
    image's masks, depth and normals files and the mask ids."""
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
        records=camera_ground_truth(recipe, camera_index, hidden=hidden),
        outputs=outputs,
    )
