"""The compiler: a `GenConfig` in, fully resolved `SceneRecipe`s out.

Every random decision of a job is made here, so a worker only renders. Scene N draws from
`derive_seed(job_seed, "scene", N)` and labelled sub-seeds of it, never from a running generator, so
its recipe depends on the config and N alone: any shard split compiles the same bytes.

Geometry of a scene: the subject (loose tags or one board) lies flat, faces +z, is centred on the
z axis, and floats 1 mm above a background PLANE in z = 0 (textured from `lighting.background_folder`
when given; an HDRI from `lighting.hdri_folder` lights the world). Loose tags are scattered with random
in-plane turns so that their printed squares, quiet zone included, never touch, and no marker appears
twice (nested OpenCV dictionaries and family aliases count as the same marker). Asset paths in the
recipes follow `recipe.ASSET_PATHS` (relative to the recipes.json's folder when the compiler writes one).

Per camera, besides the pose: read noise and ISO from the camera's stream (after the pose), and from
`derive_seed(scene_seed, "optics", j)`, a stream that exists only when the config varies them, shot
noise (`noise.photons_at_white`, divided by ISO / 100), tone mapping (`tone_mapping`: curve, gamma,
exposure in EV), output levels (`dynamic_range`), motion (`dynamics`) and depth of field
(`depth_of_field`, focused on the subject centre's depth). A config without them compiles the bytes it
always did.

Camera poses are drawn by rejection sampling: distance, elevation and roll hold by construction;
whether every subject corner lies inside the image (at least `eval_margin_px` from the edge), each
object's pixel area (its outline, through the lens) and pixels per module are judged by
`render_tag_shared.truth.observe_camera`, the function that writes the labels, so what is sampled
is what is labelled. `sampling_mode: distance` (or `angle`) replaces the random distance (elevation)
by an even sweep from min to max over every camera of the job, in scene-major order.

Angles of a camera pose, with s the subject centre, n the subject normal and c the camera centre:
- distance: |c - s| (metres);
- elevation: the angle of c - s above the subject plane, asin(n · (c - s) / |c - s|) (degrees);
- roll: the rotation of the camera about its line of sight to s, away from level, as if it looked
  straight at s (f = (s - c) / |s - c|). Level means the camera's x axis is parallel to the subject
  plane (x0 = f × n, normalised; image "up" leans towards n); when f is parallel to n (looking straight
  down) the subject's +y axis stands in: x0 = f × y. Positive roll turns x towards the camera's y
  (down) axis: x = cos(roll) x0 + sin(roll) (f × x0).
The camera is then turned by the smallest rotation that puts s at a random point of the image where
the subject still fits, so the subject does not always sit in the middle. To measure the roll of a
camera R: find the subject centre's direction d = R^T (s - c) in its frame, undo the smallest rotation
Q with Q d = +z (R0 = R Q^T), and read the roll of R0.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import importlib.metadata
import math
import os
import sys
import time
import tomllib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from pydantic import ValidationError

from render_tag_shared.boards import BoardDefinition
from render_tag_shared.config import BoardSubject, GenConfig, TagsSubject, parse_config, read_config_data
from render_tag_shared.errors import InputError, field_path
from render_tag_shared.families import get_family, marker_bits
from render_tag_shared.geometry import matrix_to_quat
from render_tag_shared.image_space import polygon_area
from render_tag_shared.lens import unproject_pixels
from render_tag_shared.recipe import (
    SCHEMA_VERSION,
    BoardObject,
    CameraIntrinsics,
    CameraRecipe,
    DepthOfField,
    DynamicRange,
    Dynamics,
    GaussianNoise,
    Hdri,
    Light,
    PlaneObject,
    PoissonNoise,
    Pose,
    RecipeFile,
    RendererSettings,
    SaltPepperNoise,
    SceneRecipe,
    SensorNoise,
    TagObject,
    ToneMapping,
    World,
    require_unique_scene_ids,
)
from render_tag_shared.recipe_io import dump_recipe_file
from render_tag_shared.seeds import derive_seed, job_id, spec_hash
from render_tag_shared.truth import (
    Lens,
    PreparedScene,
    board_module_m,
    object_extent_m,
    observe_prepared,
    tag_module_m,
)
from render_tag_shared.versions import ADDON_VERSION

from .io import write_text_atomic
from .presets import compose_config

__all__ = [
    "ATTEMPTS_PER_CAMERA",
    "VALIDATION_ATTEMPTS",
    "CompileError",
    "addon_version",
    "assets_sha256",
    "camera_pose",
    "compile_config",
    "compile_scene",
    "job_spec",
    "load_job_config",
    "main_compile",
    "parse_shard",
    "shard_range",
]

ATTEMPTS_PER_CAMERA = 200
"""Candidate poses per camera before the scene is declared unsatisfiable."""

VALIDATION_ATTEMPTS = 8
"""Re-samplings of a scene whose recipe breaks a rule of the recipe validator."""

SUBJECT_LIFT_M = 0.001
"""The subject floats this far above the background plane: no z-fighting, and the plane never hides it."""

HDRI_SUFFIXES = (".hdr", ".exr")
TEXTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".exr", ".hdr", ".bmp", ".webp")
LIGHT_TYPES = ("POINT", "AREA", "SPOT")
"""Light types whose energy is in watts, the unit of `lighting.intensity_min/max`."""

_CYCLES_SEED_LIMIT = 2**31
"""Blender's `cycles.seed` is a signed 32-bit property."""


class CompileError(InputError):
    """A config the compiler cannot satisfy: names the scene and the constraint's config field."""

    def __init__(
        self,
        source: str,
        field: str,
        message: str,
        *,
        scene_index: int | None = None,
        rule: str | None = None,
        details: list[str] | None = None,
    ):
        self.scene_index = scene_index
        self.rule = rule
        super().__init__(source, field, message, details)


# --------------------------------------------------------------------------- constraints


@dataclass(frozen=True)
class _Constraint:
    field: str
    description: str


_CONSTRAINTS: dict[str, _Constraint] = {
    "outside": _Constraint(
        "camera.min_distance",
        "a subject corner fell outside the image or within camera.eval_margin_px of its edge "
        "(raise min_distance, lower eval_margin_px or use fewer/smaller tags)",
    ),
    "hidden": _Constraint("scenario.subject", "a subject corner was hidden behind another object"),
    "facing": _Constraint("camera.min_elevation", "the subject faced away from the camera"),
    "min_pixel_area": _Constraint(
        "camera.min_pixel_area", "the subject's pixel area was below min_pixel_area"
    ),
    "max_pixel_area": _Constraint(
        "camera.max_pixel_area", "the subject's pixel area was above max_pixel_area"
    ),
    "ppm_min": _Constraint("camera.ppm_min", "pixels per module were below ppm_min"),
    "ppm_max": _Constraint("camera.ppm_max", "pixels per module were above ppm_max"),
}


# --------------------------------------------------------------------------- small helpers


def _rng(seed: int, label: str, index: int = 0) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(derive_seed(seed, label, index)))


def _quat_z(angle_rad: float) -> tuple[float, float, float, float]:
    """(w, x, y, z) of a rotation about +z."""
    return (math.cos(angle_rad / 2.0), 0.0, 0.0, math.sin(angle_rad / 2.0))


def _quat_from_matrix(r: np.ndarray) -> tuple[float, float, float, float]:
    """A unit quaternion of a rotation matrix; the sign is canonicalised (w >= 0)."""
    q = matrix_to_quat(r)
    return (float(q[0]), float(q[1]), float(q[2]), float(q[3]))


Vec = tuple[float, float, float]


def _cross(a: Vec, b: Vec) -> Vec:
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def _unit(a: Vec) -> Vec:
    norm = math.sqrt(a[0] * a[0] + a[1] * a[1] + a[2] * a[2])
    return (a[0] / norm, a[1] / norm, a[2] / norm)


_NORMAL: Vec = (0.0, 0.0, 1.0)
_Y_AXIS: Vec = (0.0, 1.0, 0.0)


def _level_frame(forward: Vec) -> tuple[Vec, Vec]:
    """x0, y0 of a level camera looking along `forward` (unit) over the plane z = const (module docstring)."""
    h = _cross(forward, _NORMAL)
    if h[0] * h[0] + h[1] * h[1] + h[2] * h[2] < 1e-18:  # straight down or up: the subject's +y stands in
        h = _cross(forward, _Y_AXIS)
    x0 = _unit(h)
    return x0, _cross(forward, x0)


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
    x0, y0 = _level_frame(f)
    c, s = math.cos(math.radians(roll_deg)), math.sin(math.radians(roll_deg))
    x: Vec = (c * x0[0] + s * y0[0], c * x0[1] + s * y0[1], c * x0[2] + s * y0[2])
    y = _cross(f, x)
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


# --------------------------------------------------------------------------- the compiler


@dataclass
class _Subject:
    """The subject of one scene and what the pose sampler needs to know about it."""

    objects: list[TagObject | BoardObject]
    centre: Vec
    radius_m: float  # the farthest subject corner from the centre
    side_m: float  # the edge of one object (area bound heuristic)
    module_m: float  # one module of one object (ppm bound heuristic)
    min_half_width_m: float  # half the narrowest width of one object (fit bound)
    corner_radius_m: float  # the farthest labelled corner from the centre (aiming)
    coplanar: bool = True  # objects in one plane cannot hide each other from a camera above it


class _Compiler:
    """Per-config state shared by every scene: validated intrinsics, asset listings, seeds."""

    def __init__(
        self,
        config: GenConfig,
        source: str = "config",
        base_dir: str | Path | None = None,
        recipe_dir: str | Path | None = None,
    ):
        self.config = config
        self.source = source
        self.base_dir = Path(base_dir) if base_dir is not None else None
        # normalised, symlinks kept: a linked asset store stays where the user's folders say it is
        self.recipe_dir = Path(os.path.abspath(recipe_dir)) if recipe_dir is not None else None
        self.job_seed = config.dataset.seed
        cam = config.camera
        try:
            self.intrinsics = CameraIntrinsics(
                k_matrix=cam.intrinsics.k_matrix(cam.resolution),
                resolution=cam.resolution,
                distortion_model=cam.intrinsics.distortion_model,
                distortion_coeffs=list(cam.intrinsics.distortion_coeffs),
                eval_margin_px=cam.eval_margin_px,
            )
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            raise InputError(
                source, "camera.intrinsics", str(first["msg"]).removeprefix("Value error, ")
            ) from exc
        except ValueError as exc:  # the overscan derivation refuses a folding lens
            raise InputError(source, "camera.intrinsics.distortion_coeffs", str(exc)) from exc
        self.lens = Lens(self.intrinsics)  # checked once for every pose the sampler judges
        k = self.intrinsics.k
        self.focal = math.sqrt(k[0, 0] * k[1, 1])
        self.view_x_rad, self.view_y_rad = self._field_of_view()
        self.total_samples = config.dataset.num_scenes * cam.samples_per_scene
        self.hdris = self._assets("lighting.hdri_folder", config.lighting.hdri_folder, HDRI_SUFFIXES)
        self.backgrounds = self._assets(
            "lighting.background_folder", config.lighting.background_folder, TEXTURE_SUFFIXES
        )
        self.tone_mapping = ToneMapping(curve="srgb")
        self.dynamic_range = DynamicRange()
        self._varies_optics = _varies_optics(config)
        self.origin = Pose()
        self._board_cache: _Subject | None = None
        subject = config.scenario.subject
        names = subject.tag_families if isinstance(subject, TagsSubject) else []
        self._families = [
            (name, get_family(name).num_ids) for name in dict.fromkeys(get_family(n).name for n in names)
        ]
        self._check_subject()

    def _field_of_view(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """Angles (radians) from the optical axis to the left/right and top/bottom edges of the valid
        image area (eval margin inset), through the lens: where a subject centre may be aimed."""
        intr, margin = self.intrinsics, self.config.camera.eval_margin_px
        (width, height), k = intr.resolution, intr.k
        cx, cy = k[0, 2], k[1, 2]
        edges = np.array(
            [[margin - 0.5, cy], [width - 0.5 - margin, cy], [cx, margin - 0.5], [cx, height - 0.5 - margin]]
        )
        rays = unproject_pixels(edges, k, intr.distortion_model, intr.distortion_coeffs)
        limit = math.radians(80.0)  # beyond this, tan() of an aim point is no longer useful
        angles: list[float] = []
        for (x, y, z), axis in zip(rays, (0, 0, 1, 1), strict=True):
            if not np.isfinite(z):  # outside a fisheye's image circle: fall back to the pinhole
                pixel = edges[len(angles)][axis]
                angle = math.atan((pixel - k[axis, 2]) / k[axis, axis])
            else:
                angle = math.atan2(x if axis == 0 else y, z)
            angles.append(max(-limit, min(limit, angle)))
        return (angles[0], angles[1]), (angles[2], angles[3])

    # -- config-level checks ---------------------------------------------------------------

    def _assets(self, field: str, folder: str | None, suffixes: tuple[str, ...]) -> list[str]:
        """Sorted files of an asset folder as absolute, normalised paths; InputError when unusable.

        A relative folder is relative to the config file's folder (`base_dir`), else to the cwd."""
        if folder is None:
            return []
        path = Path(folder)
        if not path.is_absolute() and self.base_dir is not None:
            path = self.base_dir / path
        if not path.is_dir():
            raise InputError(self.source, field, f"folder {str(path)!r} does not exist")
        path = Path(os.path.abspath(path))
        files = sorted(str(p) for p in path.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
        if not files:
            raise InputError(self.source, field, f"folder {str(path)!r} holds no {'/'.join(suffixes)} file")
        return files

    def _asset_path(self, path: str) -> str:
        """How a recipe names an asset (recipe.ASSET_PATHS): relative to the recipe file's folder (with
        `/` separators, so recipes and their assets move together between machines) when the compiler
        knows where the recipes go, else absolute."""
        if self.recipe_dir is None:
            return path
        try:
            return Path(os.path.relpath(path, self.recipe_dir)).as_posix()
        except ValueError:  # another drive (Windows): no relative path exists
            return path

    def _check_subject(self) -> None:
        subject = self.config.scenario.subject
        if not isinstance(subject, TagsSubject):
            return
        wanted = subject.tags_per_scene[1]
        families = {get_family(name).name for name in subject.tag_families}
        if wanted <= max(get_family(name).num_ids for name in families):
            return  # one family alone has enough distinct markers
        available = len({_marker_key(f, i) for f in families for i in range(get_family(f).num_ids)})
        if wanted > available:
            raise InputError(
                self.source,
                "scenario.subject.tags_per_scene",
                f"{wanted} tags per scene need distinct markers, but "
                f"{', '.join(subject.tag_families)} hold only {available}",
            )

    @property
    def asset_files(self) -> list[str]:
        return self.hdris + self.backgrounds

    # -- one scene ---------------------------------------------------------------------------

    def scene(self, scene_index: int, *, validate: bool = True) -> SceneRecipe:
        """Scene `scene_index`; with `validate`, a recipe that breaks a rule is re-drawn from a retry seed."""
        if not 0 <= scene_index < self.config.dataset.num_scenes:
            raise ValueError(f"scene_index {scene_index} outside 0..{self.config.dataset.num_scenes - 1}")
        base_seed = derive_seed(self.job_seed, "scene", scene_index)
        if not validate:
            return self._build(scene_index, base_seed, validate=False)
        failures: list[str] = []
        last: ValidationError | None = None
        for attempt in range(VALIDATION_ATTEMPTS):
            seed = base_seed if attempt == 0 else derive_seed(base_seed, "retry", attempt)
            try:
                return self._build(scene_index, seed, validate=True)
            except ValidationError as exc:
                last = exc
                first = exc.errors(include_url=False)[0]
                failures.append(f"{field_path(tuple(first['loc'])) or exc.title}: {first['msg']}")
        assert last is not None
        rule = Counter(failures).most_common(1)[0][0]
        raise CompileError(
            self.source,
            "scenario",
            f"scene {scene_index}: the recipe broke a rule of the recipe validator in all "
            f"{VALIDATION_ATTEMPTS} attempts; most often {rule}",
            scene_index=scene_index,
            rule=rule,
            details=failures,
        ) from last

    def _build(self, scene_index: int, seed: int, *, validate: bool) -> SceneRecipe:
        subject = self._subject(_rng(seed, "subject"))
        world, background = self._world(_rng(seed, "world"), subject)
        objects: list[TagObject | BoardObject | PlaneObject] = [background, *subject.objects]
        renderer = RendererSettings(
            mode=self.config.renderer.mode,
            samples=self.config.renderer.samples,
            denoise=self.config.renderer.denoise,
            noise_threshold=self.config.renderer.noise_threshold,
            max_bounces=self.config.renderer.max_bounces,
            seed=derive_seed(seed, "renderer") % _CYCLES_SEED_LIMIT,
        )
        # The pose check sees the subject only: the background lies below it and can never hide it.
        probe = PreparedScene(subject.objects, self.intrinsics.distortion_model)
        cameras = []
        for j in range(self.config.camera.samples_per_scene):
            camera_rng = _rng(seed, "camera", j)  # the pose, then the sensor noise
            matrix = self._pose(scene_index, j, camera_rng, subject, probe)
            optics = _rng(seed, "optics", j) if self._varies_optics else None
            cameras.append(self._camera(j, matrix, camera_rng, optics, subject, validate=validate))
        fields: dict[str, Any] = {
            "scene_id": scene_index,
            "random_seed": seed,
            "world": world,
            "renderer": renderer,
            "objects": objects,
            "cameras": cameras,
        }
        # Nested models were validated as they were built; this runs the scene-level rules only.
        return SceneRecipe.model_validate(fields) if validate else SceneRecipe.model_construct(**fields)

    # -- subject -----------------------------------------------------------------------------

    def _subject(self, rng: np.random.Generator) -> _Subject:
        subject = self.config.scenario.subject
        if isinstance(subject, BoardSubject):
            return self._board(subject)
        return self._tags(subject, rng)

    def _board(self, subject: BoardSubject) -> _Subject:
        """The board is the same in every scene: built (and validated, keypoints and all) once."""
        if self._board_cache is None:
            self._board_cache = self._build_board(subject)
        return self._board_cache

    def _build_board(self, subject: BoardSubject) -> _Subject:
        definition = BoardDefinition.model_validate(subject.model_dump(exclude={"type", "margin_mm"}))
        board = BoardObject(
            name="board",
            pose=Pose(position=(0.0, 0.0, SUBJECT_LIFT_M)),
            board=definition,
            margin_mm=subject.margin_mm,
        )
        w, h = definition.width_m, definition.height_m
        return _Subject(
            objects=[board],
            centre=(0.0, 0.0, SUBJECT_LIFT_M),
            radius_m=0.5 * math.hypot(w, h) + subject.margin_mm / 1000.0 * math.sqrt(2.0),
            corner_radius_m=0.5 * math.hypot(w, h),
            side_m=math.sqrt(w * h),
            module_m=board_module_m(definition),
            min_half_width_m=0.5 * min(w, h),
        )

    def _tags(self, subject: TagsSubject, rng: np.random.Generator) -> _Subject:
        low, high = subject.tags_per_scene
        count = int(rng.integers(low, high + 1))
        families = self._families
        used: set[tuple[int, bytes]] = set()
        chosen: list[tuple[str, int]] = []
        while len(chosen) < count:
            family, num_ids = families[int(rng.integers(len(families)))]
            tag_id = int(rng.integers(num_ids))
            key = _marker_key(family, tag_id)
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
        centres = _disc_layout(radii, rng)
        offsets = (centres - centres.mean(axis=0)).tolist()
        placed = []
        for tag, (x, y) in zip(tags, offsets, strict=True):
            yaw = _uniform(rng, 0.0, 2.0 * math.pi)
            pose = Pose(position=(x, y, SUBJECT_LIFT_M), rotation_quaternion=_quat_z(yaw))
            placed.append(tag.model_copy(update={"pose": pose}))
        radius = max(math.hypot(x, y) + r for (x, y), r in zip(offsets, radii, strict=True))
        return _Subject(
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

    # -- world -------------------------------------------------------------------------------

    def _world(self, rng: np.random.Generator, subject: _Subject) -> tuple[World, PlaneObject]:
        lighting = self.config.lighting
        low, high = lighting.lights_per_scene
        lights = []
        for _ in range(int(rng.integers(low, high + 1))):
            kind = LIGHT_TYPES[int(rng.integers(len(LIGHT_TYPES)))]
            energy = _uniform(rng, lighting.intensity_min, lighting.intensity_max)
            distance = _uniform(rng, 1.5, 3.0)
            elevation = math.radians(_uniform(rng, 30.0, 85.0))
            azimuth = _uniform(rng, 0.0, 2.0 * math.pi)
            # Blender lights shine along their local -z: local +z points from the subject to the light.
            z_axis: Vec = (
                math.cos(elevation) * math.cos(azimuth),
                math.cos(elevation) * math.sin(azimuth),
                math.sin(elevation),
            )
            x_axis, y_down = _level_frame((-z_axis[0], -z_axis[1], -z_axis[2]))
            frame = np.column_stack([x_axis, [-c for c in y_down], z_axis])
            lights.append(
                Light(
                    type=kind,
                    pose=Pose(
                        position=(
                            subject.centre[0] + distance * z_axis[0],
                            subject.centre[1] + distance * z_axis[1],
                            subject.centre[2] + distance * z_axis[2],
                        ),
                        rotation_quaternion=_quat_from_matrix(frame),
                    ),
                    energy=energy,
                    radius_m=_uniform(rng, 0.05, 0.5),
                )
            )
        hdri = None
        if self.hdris:
            hdri = Hdri(
                path=self._asset_path(self.hdris[int(rng.integers(len(self.hdris)))]),
                strength=_uniform(rng, 0.5, 1.5),
                rotation_z_rad=_uniform(rng, 0.0, 2.0 * math.pi),
            )
        texture = (
            self._asset_path(self.backgrounds[int(rng.integers(len(self.backgrounds)))])
            if self.backgrounds
            else None
        )
        grey = _uniform(rng, 0.2, 0.8)
        side = 8.0 * self.config.camera.max_distance + 4.0 * subject.radius_m
        background = PlaneObject(
            name="background",
            pose=self.origin,
            size_m=(side, side),
            color=(grey, grey, grey),
            texture=texture,
            texture_repeat=max(1.0, round(side)),
        )
        return World(lights=lights, hdri=hdri), background

    # -- cameras -----------------------------------------------------------------------------

    def _sweep(self, scene_index: int, camera_index: int, low: float, high: float) -> float:
        """Evenly spaced over every camera of the job, in scene-major order."""
        k = scene_index * self.config.camera.samples_per_scene + camera_index
        if self.total_samples == 1:
            return 0.5 * (low + high)
        return low + (high - low) * k / (self.total_samples - 1)

    def _distance_window(self, subject: _Subject, elevation_floor_deg: float) -> tuple[float, float]:
        """A window of distances that holds every feasible one, so sampling inside it and rejecting
        keeps the draw uniform over the feasible set while wasting fewer attempts.

        It must not depend on the sampled elevation (that would reweight elevations), only on the
        subject and the lowest elevation that can be drawn. The estimates are deliberately loose: a
        factor 2 in length, the subject radius R for objects nearer or farther than its centre.
        """
        cam = self.config.camera
        low, high = cam.min_distance, cam.max_distance
        f, r = self.focal, subject.radius_m
        incidence = max(math.sin(math.radians(elevation_floor_deg)), 0.0)
        pinhole = self.intrinsics.distortion_model == "none"
        half_long = 0.5 * max(self.intrinsics.resolution) - cam.eval_margin_px
        if pinhole and half_long > 0:  # one object must fit across the image's long axis
            low = max(low, f * subject.min_half_width_m / half_long - r)
        # upper bounds: pixel area and ppm can only grow (factor 4 and 2 allow for off-axis magnification)
        if cam.min_pixel_area > 0:
            high = min(high, r + 2.0 * f * subject.side_m / math.sqrt(cam.min_pixel_area))
        if cam.ppm_min:
            high = min(high, r + 2.0 * f * subject.module_m / cam.ppm_min)
        # lower bounds need the smallest incidence factor and a lens that does not shrink the image
        if pinhole and cam.max_pixel_area is not None:
            low = max(low, 0.5 * f * subject.side_m * math.sqrt(incidence / cam.max_pixel_area) - r)
        if pinhole and cam.ppm_max is not None:
            low = max(low, 0.5 * f * subject.module_m * math.sqrt(incidence) / cam.ppm_max - r)
        if low > high:  # nothing feasible by the estimate: sample the whole range and report honestly
            return cam.min_distance, cam.max_distance
        return low, high

    def _pose(
        self,
        scene_index: int,
        camera_index: int,
        rng: np.random.Generator,
        subject: _Subject,
        probe: PreparedScene,
    ) -> np.ndarray:
        cam = self.config.camera
        mode = self.config.scenario.sampling_mode
        fixed_distance = (
            self._sweep(scene_index, camera_index, cam.min_distance, cam.max_distance)
            if mode == "distance"
            else None
        )
        fixed_elevation = (
            self._sweep(scene_index, camera_index, cam.min_elevation, cam.max_elevation)
            if mode == "angle"
            else None
        )
        floor = fixed_elevation if fixed_elevation is not None else cam.min_elevation
        window = self._distance_window(subject, floor)
        failures: Counter[str] = Counter()
        for _ in range(ATTEMPTS_PER_CAMERA):
            # a swept value is fixed; the draw is made anyway so every pose uses the same stream layout
            elevation = _uniform(rng, cam.min_elevation, cam.max_elevation)
            distance = _uniform(rng, *window)
            azimuth = _uniform(rng, 0.0, 360.0)
            roll = _uniform(rng, cam.min_roll, cam.max_roll)
            if fixed_elevation is not None:
                elevation = fixed_elevation
            if fixed_distance is not None:
                distance = fixed_distance
            # Aim so the subject centre lands anywhere it may still fit, so corners cover the whole
            # image: angles uniform in the field of view less 3/4 of the subject's radius (a turned
            # square is narrower than its circle; the few that stick out are rejected).
            reach = math.asin(min(1.0, 0.75 * subject.corner_radius_m / distance))
            u = math.tan(_uniform_inside(rng, self.view_x_rad, reach))
            v = math.tan(_uniform_inside(rng, self.view_y_rad, reach))
            matrix = camera_pose(subject.centre, distance, elevation, azimuth, roll, (u, v))
            failure = self._judge(probe, matrix, subject)
            if failure is None:
                return matrix
            failures[failure] += 1
        raise self._pose_error(scene_index, camera_index, failures, fixed_distance, fixed_elevation)

    def _judge(self, probe: PreparedScene, matrix: np.ndarray, subject: _Subject) -> str | None:
        """None when the pose meets every image-space constraint, else the key of the first broken one.

        `observe_prepared` is `observe_camera` with the subject's points prepared once per scene."""
        cam = self.config.camera
        observed = observe_prepared(probe, matrix, self.lens, occlusion=not subject.coplanar)
        seen = {o.obj.name: o for o in observed}
        for obj in subject.objects:
            record = seen.get(obj.name)
            if record is None:  # nothing labelled, or entirely outside the image
                return "facing" if _faces_away(obj, matrix) else "outside"
            if not record.corners_visibility.all():
                return "hidden"
            if (record.corners_visibility == 1).any():
                return "outside"
            outline = record.outline if len(record.outline) >= 3 else record.corners
            area = abs(polygon_area(outline))
            if area < cam.min_pixel_area:
                return "min_pixel_area"
            if cam.max_pixel_area is not None and area > cam.max_pixel_area:
                return "max_pixel_area"
            if cam.ppm_min is not None and record.ppm < cam.ppm_min:
                return "ppm_min"
            if cam.ppm_max is not None and record.ppm > cam.ppm_max:
                return "ppm_max"
        return None

    def _pose_error(
        self,
        scene_index: int,
        camera_index: int,
        failures: Counter[str],
        fixed_distance: float | None,
        fixed_elevation: float | None,
    ) -> CompileError:
        key, count = failures.most_common(1)[0]
        constraint = _CONSTRAINTS[key]
        sweep = ""
        if fixed_distance is not None:
            sweep = f" at the swept distance {fixed_distance:.4g} m"
        elif fixed_elevation is not None:
            sweep = f" at the swept elevation {fixed_elevation:.4g} deg"
        others = ", ".join(f"{k} {n}" for k, n in failures.most_common()[1:])
        return CompileError(
            self.source,
            constraint.field,
            f"scene {scene_index} camera {camera_index}: no pose{sweep} in {ATTEMPTS_PER_CAMERA} attempts "
            f"met the constraints; most often ({count}x) {constraint.description}"
            + (f"; also: {others}" if others else ""),
            scene_index=scene_index,
            rule=key,
        )

    def _camera(
        self,
        index: int,
        matrix: np.ndarray,
        rng: np.random.Generator,
        optics: np.random.Generator | None,
        subject: _Subject,
        *,
        validate: bool,
    ) -> CameraRecipe:
        """One camera. `rng` (after the pose) draws the read noise and ISO; `optics`, a stream of its own
        that exists only when the config varies them, draws shot noise, tone mapping, dynamic range,
        motion and depth of field, in that order (so a config without them compiles as it always did)."""
        photons = None
        tone_mapping, dynamic_range = self.tone_mapping, self.dynamic_range
        dynamics = depth_of_field = None
        if optics is not None:
            config = self.config
            if config.noise.photons_at_white is not None:
                photons = _uniform(optics, *config.noise.photons_at_white)
            tone, levels = config.tone_mapping, config.dynamic_range
            tone_mapping = ToneMapping(
                curve=tone.curves[int(optics.integers(len(tone.curves)))],
                gamma=_uniform(optics, *tone.gamma),
                metering=tone.metering,
                exposure_ev=_uniform(optics, *tone.exposure_ev),
            )
            dynamic_range = DynamicRange(
                black_level=_uniform(optics, *levels.black_level),
                white_level=_uniform(optics, *levels.white_level),
            )
            if config.dynamics.enabled:
                dynamics = self._dynamics(optics)
            if config.depth_of_field is not None:
                depth_of_field = self._depth_of_field(optics, matrix, subject)
        fields: dict[str, Any] = {
            "name": f"cam{index}",
            "cam_to_world": matrix.tolist(),
            "intrinsics": self.intrinsics,
            "sensor_noise": self._noise(rng, photons),
            "dynamics": dynamics,
            "tone_mapping": tone_mapping,
            "dynamic_range": dynamic_range,
            "depth_of_field": depth_of_field,
        }
        return CameraRecipe.model_validate(fields) if validate else CameraRecipe.model_construct(**fields)

    def _dynamics(self, rng: np.random.Generator) -> Dynamics:
        """Speeds from their ranges, directions uniform on the sphere (velocity in the world frame, the
        rotation axis in the camera frame, as `Dynamics` defines them)."""
        dyn = self.config.dynamics
        speed = _uniform(rng, *dyn.speed_mps)
        velocity = _random_direction(rng)
        angular = math.radians(_uniform(rng, *dyn.angular_speed_dps))
        axis = _random_direction(rng)
        return Dynamics(
            velocity_mps=(speed * velocity[0], speed * velocity[1], speed * velocity[2]),
            angular_velocity_radps=(angular * axis[0], angular * axis[1], angular * axis[2]),
            shutter_s=_uniform(rng, *dyn.shutter_s),
            rolling_shutter_s=_uniform(rng, *dyn.rolling_shutter_s),
        )

    def _depth_of_field(
        self, rng: np.random.Generator, matrix: np.ndarray, subject: _Subject
    ) -> DepthOfField:
        """Focused on the subject centre's depth (its distance along the optical axis, as Blender's focus
        distance is measured), moved by up to `focus_jitter_m` either way; never nearer than 1 cm."""
        dof = self.config.depth_of_field
        assert dof is not None
        fstop = _uniform(rng, *dof.fstop)
        depth = sum(float(matrix[i, 2]) * (subject.centre[i] - float(matrix[i, 3])) for i in range(3))
        jitter = _uniform(rng, -dof.focus_jitter_m, dof.focus_jitter_m)
        return DepthOfField(focus_distance_m=max(0.01, depth + jitter), fstop=fstop)

    def _noise(self, rng: np.random.Generator, photons_at_white: float | None = None) -> SensorNoise | None:
        """Shot noise (when configured), read noise, dead pixels: in the order light meets a sensor."""
        noise = self.config.noise
        cam = self.config.camera
        iso = None
        sigma = float(rng.uniform(*noise.gaussian_sigma)) if noise.gaussian_sigma[1] > 0 else 0.0
        if cam.iso_min is not None and cam.iso_max is not None:
            iso = float(rng.uniform(cam.iso_min, cam.iso_max))
            sigma *= iso / 100.0  # read noise grows with gain; ISO 100 is the reference
            if photons_at_white is not None:  # more gain: white is reached with fewer photons
                photons_at_white /= iso / 100.0
        layers: list[GaussianNoise | PoissonNoise | SaltPepperNoise] = []
        if photons_at_white is not None:
            layers.append(PoissonNoise(photons_at_white=photons_at_white))
        if sigma > 0:
            layers.append(GaussianNoise(sigma=sigma))
        if noise.salt_pepper > 0:
            layers.append(SaltPepperNoise(amount=noise.salt_pepper))
        if not layers and iso is None:
            return None
        return SensorNoise(seed=int(rng.integers(0, 2**63 - 1)), iso=iso, layers=list(layers))


def _varies_optics(config: GenConfig) -> bool:
    """Whether any per-camera knob beyond pose and read noise differs from the fixed defaults."""
    defaults = GenConfig.model_fields
    return (
        config.noise.photons_at_white is not None
        or config.tone_mapping != defaults["tone_mapping"].default
        or config.dynamic_range != defaults["dynamic_range"].default
        or config.dynamics.enabled
        or config.depth_of_field is not None
    )


def _random_direction(rng: np.random.Generator) -> Vec:
    """A unit vector uniform on the sphere (z uniform in [-1, 1], azimuth uniform)."""
    z = _uniform(rng, -1.0, 1.0)
    phi = _uniform(rng, 0.0, 2.0 * math.pi)
    r = math.sqrt(max(0.0, 1.0 - z * z))
    return (r * math.cos(phi), r * math.sin(phi), z)


def _uniform(rng: np.random.Generator, low: float, high: float) -> float:
    """`rng.uniform(low, high)` for one number: numpy computes low + (high - low) * next_double, which is
    this, to the bit and from the same stream, without numpy's per-call overhead (a hot path)."""
    return low + (high - low) * rng.random()


def _uniform_inside(rng: np.random.Generator, bounds: tuple[float, float], inset: float) -> float:
    """Uniform in [low + inset, high - inset], or the middle when the inset leaves nothing."""
    low, high = bounds[0] + inset, bounds[1] - inset
    if low >= high:
        return 0.5 * (bounds[0] + bounds[1])
    return _uniform(rng, low, high)


@functools.lru_cache(maxsize=65536)
def _marker_key(family: str, tag_id: int) -> tuple[int, bytes]:
    """What a detector sees of a marker: its bits, whatever the family is called and however it turns.

    Two ids with equal keys could not be told apart in one image: OpenCV's DICT_4X4_50 is the start
    of DICT_4X4_100, so id 3 of both is one marker, and a family has aliases (DICT_APRILTAG_36h11).
    """
    bits = marker_bits(family, tag_id)
    return bits.shape[0], min(np.rot90(bits, k).tobytes() for k in range(4))


def _faces_away(obj: TagObject | BoardObject, cam_to_world: np.ndarray) -> bool:
    normal = obj.pose.matrix()[:3, 2]
    return float(normal @ (cam_to_world[:3, 3] - np.asarray(obj.pose.position))) <= 0.0


def _disc_layout(radii: list[float], rng: np.random.Generator) -> np.ndarray:
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
            x, y = _uniform(rng, -half, half), _uniform(rng, -half, half)
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


# --------------------------------------------------------------------------- public API


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while scenes are compiled: a scene allocates thousands of small
    objects and no reference cycles, so the collector's passes only cost time (5-10 %)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def compile_scene(config: GenConfig, scene_index: int, *, validate: bool = True) -> SceneRecipe:
    """The recipe of scene `scene_index`: a function of the config and the index only."""
    return _Compiler(config).scene(scene_index, validate=validate)


def shard_range(num_scenes: int, shard: tuple[int, int] | None) -> range:
    """Scenes of shard (i, n): a contiguous block, so the shards in order concatenate to the whole job."""
    if shard is None:
        return range(num_scenes)
    index, count = shard
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard {index}/{count}: need 0 <= I < N")
    return range(index * num_scenes // count, (index + 1) * num_scenes // count)


def compile_config(
    config: GenConfig,
    *,
    shard: tuple[int, int] | None = None,
    validate: bool = True,
    source: str = "config",
    base_dir: str | Path | None = None,
    recipe_dir: str | Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> RecipeFile:
    """The recipes of a job (or of one shard of it), with the job id of the full job's spec.

    `shard=(i, n)` compiles the i-th of n contiguous blocks of scenes (0-based), so the shards' recipes
    concatenated in order are the whole job's. With `validate` every part of a recipe is validated once
    as it is built, then the scene's own rules run; a scene that breaks one is re-drawn from
    `derive_seed(scene_seed, "retry", attempt)` up to VALIDATION_ATTEMPTS times. Without it the
    camera matrices and scene-level rules go unchecked (the recipes are the same when nothing fails).
    `source` names the config in error messages; relative asset folders resolve against `base_dir` (the
    config file's folder). Asset paths in the recipes follow `recipe.ASSET_PATHS`: relative to
    `recipe_dir`, the folder the recipes will be written to, when it is given, else absolute.
    `progress` is called with the number of scenes done after each scene.
    The file carries the full job's spec (`job_spec`), so every shard carries the same one.
    Raises InputError (CompileError when a scene cannot be satisfied).
    """
    compiler = _Compiler(config, source, base_dir, recipe_dir)
    recipes = []
    with _gc_paused():
        for i in shard_range(config.dataset.num_scenes, shard):
            recipes.append(compiler.scene(i, validate=validate))
            if progress is not None:
                progress(len(recipes))
    spec = job_spec(config, config.presets, compiler.asset_files)
    recipe_file = RecipeFile.model_construct(
        schema_version=SCHEMA_VERSION, job_id=job_id(spec), job_spec=spec, recipes=recipes
    )
    if validate:
        # Every recipe was validated as it was built (validating the file would run the nested model
        # validators of every recipe again): the file's own rule is what is left.
        require_unique_scene_ids(recipes)
    return recipe_file


# --------------------------------------------------------------------------- the job spec


def _distribution_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def addon_version() -> str:
    """The add-on's version: blender_manifest.toml's in a checkout (repository root or addon/), else
    `render_tag_shared.versions.ADDON_VERSION`, the release the installed contract belongs to (a test
    keeps the two equal), so a non-editable install records it too."""
    root = Path(__file__).resolve().parents[2]
    for path in (root / "blender_manifest.toml", root / "addon" / "blender_manifest.toml"):
        if path.is_file():
            with path.open("rb") as handle:
                version = tomllib.load(handle).get("version")
            if version is not None:
                return str(version)
    return ADDON_VERSION


def assets_sha256(files: Sequence[str]) -> str:
    """SHA-256 over the asset files' names and bytes, in sorted order (paths themselves do not count,
    so the same assets in another folder hash the same)."""
    digest = hashlib.sha256()
    for name in sorted(files, key=lambda p: (Path(p).name, p)):
        digest.update(Path(name).name.encode() + b"\0")
        with open(name, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def job_spec(config: GenConfig, presets: Sequence[str], asset_files: Sequence[str]) -> dict[str, Any]:
    """What makes a dataset reproducible; `seeds.job_id` of it is the job id, and compiled recipe files
    carry it as `job_spec`. `versions.blender` is the `bpy` module's version on the compiling host (None
    without one); the Blender that rendered is recorded by the render in manifest.json and provenance.json."""
    return {
        "config_sha256": spec_hash(config.model_dump(mode="json")),
        "presets": list(presets),
        "seeds": {"job": config.dataset.seed, "scene": 'derive_seed(job, "scene", N)'},
        "num_scenes": config.dataset.num_scenes,
        "schema_version": SCHEMA_VERSION,
        "versions": {
            "render_tag": _distribution_version("render-tag"),
            "render_tag_shared": _distribution_version("render-tag-shared"),
            "addon": addon_version(),
            "blender": _distribution_version("bpy"),
        },
        "assets_sha256": assets_sha256(asset_files),
    }


# --------------------------------------------------------------------------- CLI entry


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """`"I/N"` (0-based I) → (I, N); InputError naming `--shard` otherwise."""
    if text is None:
        return None
    try:
        index_text, count_text = text.split("/")
        index, count = int(index_text), int(count_text)
    except ValueError:
        raise InputError("--shard", "", f"expected I/N with 0 <= I < N, got {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise InputError("--shard", "", f"expected I/N with 0 <= I < N, got {text!r}")
    return index, count


def load_job_config(config_path: str, presets: Sequence[str] = ()) -> GenConfig:
    """Reads a config file and composes the presets over it (in order) before validating."""
    data = read_config_data(config_path)
    if not isinstance(data, dict):
        raise InputError(config_path, "", "the config must be a mapping with `dataset` and `scenario`")
    return parse_config(compose_config(data, list(presets)), config_path)


class _CompileProgress:
    """A progress line on stderr for long compiles: redrawn on a terminal, a line per 10 % otherwise."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.started = time.monotonic()
        self._last = -1.0

    def __call__(self, done: int) -> None:
        elapsed = time.monotonic() - self.started
        finished = done >= self.total
        if self.tty:
            if not finished and elapsed - self._last < 0.2:
                return
        elif (10 * done) // self.total == (10 * (done - 1)) // self.total and not finished:
            return
        self._last = elapsed
        rate = done / elapsed if elapsed > 0 else 0.0
        line = f"compile {done}/{self.total} scenes  {rate:.0f} scenes/s"
        self.stream.write(("\r" + line + "\x1b[K" + ("\n" if finished else "")) if self.tty else line + "\n")
        self.stream.flush()


PROGRESS_MIN_SCENES = 2000
"""Compiles smaller than this finish in a few seconds and print no progress."""


def main_compile(config_path: str, output: str, presets: list[str], shard: str | None) -> int:
    """`render-tag compile`: writes the recipes atomically; InputError propagates and nothing is written."""
    shard_pair = parse_shard(shard)
    config = load_job_config(config_path, presets)
    count = len(shard_range(config.dataset.num_scenes, shard_pair))
    progress = _CompileProgress(count) if count >= PROGRESS_MIN_SCENES else None
    recipes = compile_config(
        config,
        shard=shard_pair,
        source=config_path,
        base_dir=Path(config_path).parent,
        recipe_dir=Path(output).parent,
        progress=progress,
    )
    write_text_atomic(output, dump_recipe_file(recipes))
    return 0
