"""Ground truth of one camera of a recipe, as a pure function of the recipe.

The add-on's label writer, the compiler's pose constraints and the viewport overlay all call
`camera_ground_truth`, so what is drawn, what is sampled and what is written can never disagree.

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

import numpy as np

from .boards import BoardDefinition, library_to_object
from .families import get_family
from .geometry import invert_rigid, matrix_to_quat, transform_points
from .projection import apply_sentinel, in_lens_domain, project_points, visibility
from .recipe import BoardObject, CameraRecipe, PlaneObject, SceneRecipe, TagObject, tag_corners_object_frame
from .records import DetectionRecord

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
    name: str
    world_to_object: np.ndarray
    half_width: float
    half_height: float


def _occluders(recipe: SceneRecipe) -> list[_Occluder]:
    out = []
    for obj in recipe.objects:
        width, height = object_extent_m(obj)
        out.append(_Occluder(obj.name, invert_rigid(obj.pose.matrix()), width / 2.0, height / 2.0))
    return out


def _hidden(
    points_world: np.ndarray, camera_centre: np.ndarray, occluders: list[_Occluder], own: str
) -> np.ndarray:
    """True where the segment from the camera to a point crosses another object's rectangle first."""
    hidden = np.zeros(len(points_world), dtype=bool)
    for occ in occluders:
        if occ.name == own:
            continue
        origin = transform_points(occ.world_to_object, camera_centre)
        targets = transform_points(occ.world_to_object, points_world)
        dz = targets[:, 2] - origin[2]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = -origin[2] / dz
        hit = origin[None, :2] + t[:, None] * (targets[:, :2] - origin[None, :2])
        inside = (np.abs(hit[:, 0]) <= occ.half_width) & (np.abs(hit[:, 1]) <= occ.half_height)
        hidden |= np.isfinite(t) & (t > 1e-9) & (t < 1.0 - 1e-9) & inside
    return hidden


def _outline_object_frame(corners: np.ndarray, samples: int) -> np.ndarray:
    """Points along the closed polygon TL → TR → BR → BL (corners first of each edge)."""
    steps = np.arange(samples) / samples
    edges = [corners[i] + steps[:, None] * (corners[(i + 1) % 4] - corners[i]) for i in range(4)]
    return np.concatenate(edges)


class _CameraView:
    """What one camera needs to project: K, lens, resolution and the world-to-camera transform."""

    def __init__(self, camera: CameraRecipe):
        intr = camera.intrinsics
        self.k = intr.k
        self.model = intr.distortion_model
        self.coeffs = list(intr.distortion_coeffs)
        self.resolution = intr.resolution
        self.margin = intr.eval_margin_px
        self.cam_to_world = camera.matrix
        self.world_to_cam = invert_rigid(self.cam_to_world)
        self.centre_world = self.cam_to_world[:3, 3]

    def project(self, points_cam: np.ndarray) -> np.ndarray:
        return project_points(points_cam, self.k, self.model, self.coeffs)


def _label_points(
    view: _CameraView,
    points_obj: np.ndarray,
    obj_to_world: np.ndarray,
    facing: bool,
    occluders: list[_Occluder] | None,
    own: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (sentinel where unlabelled) and ternary visibility of object-frame points."""
    points_world = transform_points(obj_to_world, points_obj)
    points_cam = transform_points(view.world_to_cam, points_world)
    uv = view.project(points_cam)
    vis = visibility(uv, view.resolution, view.margin)
    # Past the lens polynomial's fold a point projects somewhere, but no real lens images it there.
    in_domain = in_lens_domain(points_cam, view.model, view.coeffs)
    unlabelled = ~np.isfinite(uv).all(axis=1) | (points_cam[:, 2] <= 0) | ~in_domain
    if not facing:
        unlabelled[:] = True
    if occluders is not None:
        unlabelled |= _hidden(points_world, view.centre_world, occluders, own)
    vis = np.where(unlabelled, 0, vis).astype(np.int8)
    return apply_sentinel(uv, vis), vis


def _pixels_per_module(view: _CameraView, obj_to_cam: np.ndarray, module_m: float) -> float:
    """sqrt of the projected area of one module at the object's centre: the detector's resolution."""
    points = np.array([[0.0, 0.0, 0.0], [module_m, 0.0, 0.0], [0.0, module_m, 0.0]])
    uv = view.project(transform_points(obj_to_cam, points))
    if not np.isfinite(uv).all():
        return 0.0
    a, b = uv[1] - uv[0], uv[2] - uv[0]
    return math.sqrt(abs(a[0] * b[1] - a[1] * b[0]))


def _outline_reaches_image(outline: np.ndarray, resolution: tuple[int, int]) -> bool:
    finite = outline[np.isfinite(outline).all(axis=1)]
    if len(finite) == 0:
        return False
    (x0, y0), (x1, y1) = finite.min(axis=0), finite.max(axis=0)
    return bool(x1 >= -0.5 and y1 >= -0.5 and x0 <= resolution[0] - 0.5 and y0 <= resolution[1] - 0.5)


def camera_ground_truth(
    recipe: SceneRecipe, camera_index: int, *, occlusion: bool = True
) -> list[DetectionRecord]:
    """The rich-truth records of every tag and board that camera `camera_index` of `recipe` sees."""
    camera = recipe.cameras[camera_index]
    view = _CameraView(camera)
    occluders = _occluders(recipe) if occlusion else None
    image = recipe.image_id(camera_index)
    records = []
    for obj in recipe.objects:
        if isinstance(obj, PlaneObject):
            continue
        obj_to_world = obj.pose.matrix()
        obj_to_cam = view.world_to_cam @ obj_to_world
        centre = obj_to_cam[:3, 3]
        normal = obj_to_cam[:3, 2]
        distance = float(np.linalg.norm(centre))
        cos_incidence = float(-normal @ centre / distance) if distance > 0 else -1.0
        facing = cos_incidence > 0
        if isinstance(obj, TagObject):
            corners_obj = tag_corners_object_frame(obj.size_mm)
            module = tag_module_m(obj)
            keypoints_obj = None
            pose = obj_to_cam
        else:
            corners_obj = board_outline_object_frame(obj.board)
            module = board_module_m(obj.board)
            keypoints_obj = np.asarray(obj.keypoints_3d, dtype=float)
            pose = obj_to_cam @ library_to_object(obj.board)
        corners, corners_vis = _label_points(view, corners_obj, obj_to_world, facing, occluders, obj.name)
        outline_obj = _outline_object_frame(
            corners_obj, OUTLINE_SAMPLES_PER_EDGE if view.model != "none" else 1
        )
        outline = view.project(transform_points(obj_to_cam, outline_obj))
        keypoints = keypoints_vis = None
        if keypoints_obj is not None:
            keypoints, keypoints_vis = _label_points(
                view, keypoints_obj, obj_to_world, facing, occluders, obj.name
            )
        labelled = bool(corners_vis.any()) or (keypoints_vis is not None and bool(keypoints_vis.any()))
        if not labelled or not _outline_reaches_image(outline, view.resolution):
            continue
        finite_outline = outline[np.isfinite(outline).all(axis=1)]
        records.append(
            DetectionRecord(
                image_id=image,
                scene_id=recipe.scene_id,
                camera_name=camera.name,
                object_name=obj.name,
                record_type=obj.type,
                tag_family=obj.tag_family if isinstance(obj, TagObject) else obj.board.dictionary,
                tag_id=obj.tag_id if isinstance(obj, TagObject) else None,
                corners=[(float(x), float(y)) for x, y in corners],
                corners_visibility=[int(v) for v in corners_vis],
                outline=[(float(x), float(y)) for x, y in finite_outline],
                keypoints=None if keypoints is None else [(float(x), float(y)) for x, y in keypoints],
                keypoints_visibility=None if keypoints_vis is None else [int(v) for v in keypoints_vis],
                board_definition=obj.board if isinstance(obj, BoardObject) else None,
                k_matrix=camera.intrinsics.k_matrix,
                resolution=camera.intrinsics.resolution,
                distortion_model=camera.intrinsics.distortion_model,
                distortion_coeffs=list(camera.intrinsics.distortion_coeffs),
                position=(float(pose[0, 3]), float(pose[1, 3]), float(pose[2, 3])),
                rotation_quaternion=tuple(float(c) for c in matrix_to_quat(pose[:3, :3])),
                distance=distance,
                angle_of_incidence=math.degrees(math.acos(max(-1.0, min(1.0, cos_incidence)))),
                ppm=_pixels_per_module(view, obj_to_cam, module),
                tag_size_mm=obj.size_mm if isinstance(obj, TagObject) else obj.board.marker_size_mm,
                border_bits=obj.border_bits
                if isinstance(obj, TagObject)
                else obj.board.effective_border_bits,
            )
        )
    return records
