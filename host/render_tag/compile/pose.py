"""Camera poses by rejection sampling: distance, elevation and roll hold by construction; the image-space
constraints (corners inside the eval margin, pixel area, pixels per module) are judged by
`render_tag_shared.truth`, the code that writes the labels, so what is sampled is what is labelled."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np

from render_tag_shared.image_space import polygon_area
from render_tag_shared.recipe import BoardObject, TagObject
from render_tag_shared.truth import PreparedScene, observe_prepared

from .context import CompileContext
from .errors import CompileError
from .frames import camera_pose
from .sampler import uniform, uniform_inside
from .subject import Subject

__all__ = ["ATTEMPTS_PER_CAMERA", "CONSTRAINTS", "PoseSampler"]

ATTEMPTS_PER_CAMERA = 200
"""Candidate poses per camera before the scene is declared unsatisfiable."""


@dataclass(frozen=True)
class _Constraint:
    field: str
    description: str


CONSTRAINTS: dict[str, _Constraint] = {
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


class PoseSampler:
    """Draws each camera's pose from its camera stream (the sensor noise draws follow on the same stream)."""

    def __init__(self, context: CompileContext) -> None:
        self.context = context

    def _sweep(self, scene_index: int, camera_index: int, low: float, high: float) -> float:
        """Evenly spaced over every camera of the job, in scene-major order."""
        k = scene_index * self.context.config.camera.samples_per_scene + camera_index
        if self.context.total_samples == 1:
            return 0.5 * (low + high)
        return low + (high - low) * k / (self.context.total_samples - 1)

    def _distance_window(self, subject: Subject, elevation_floor_deg: float) -> tuple[float, float]:
        """A window of distances that holds every feasible one, so sampling inside it and rejecting
        keeps the draw uniform over the feasible set while wasting fewer attempts.

        It must not depend on the sampled elevation (that would reweight elevations), only on the
        subject and the lowest elevation that can be drawn. The estimates are deliberately loose: a
        factor 2 in length, the subject radius R for objects nearer or farther than its centre.
        """
        cam = self.context.config.camera
        low, high = cam.min_distance, cam.max_distance
        f, r = self.context.focal, subject.radius_m
        incidence = max(math.sin(math.radians(elevation_floor_deg)), 0.0)
        pinhole = self.context.intrinsics.distortion_model == "none"
        half_long = 0.5 * max(self.context.intrinsics.resolution) - cam.eval_margin_px
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

    def draw(
        self,
        scene_index: int,
        camera_index: int,
        rng: np.random.Generator,
        subject: Subject,
        probe: PreparedScene,
    ) -> np.ndarray:
        cam = self.context.config.camera
        mode = self.context.config.scenario.sampling_mode
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
            elevation = uniform(rng, cam.min_elevation, cam.max_elevation)
            distance = uniform(rng, *window)
            azimuth = uniform(rng, cam.min_azimuth, cam.max_azimuth)
            roll = uniform(rng, cam.min_roll, cam.max_roll)
            if fixed_elevation is not None:
                elevation = fixed_elevation
            if fixed_distance is not None:
                distance = fixed_distance
            # Aim so the subject centre lands anywhere it may still fit, so corners cover the whole
            # image: angles uniform in the field of view less 3/4 of the subject's radius (a turned
            # square is narrower than its circle; the few that stick out are rejected).
            reach = math.asin(min(1.0, 0.75 * subject.corner_radius_m / distance))
            u = math.tan(uniform_inside(rng, self.context.view_x_rad, reach))
            v = math.tan(uniform_inside(rng, self.context.view_y_rad, reach))
            matrix = camera_pose(subject.centre, distance, elevation, azimuth, roll, (u, v))
            failure = self._judge(probe, matrix, subject)
            if failure is None:
                return matrix
            failures[failure] += 1
        raise self._pose_error(scene_index, camera_index, failures, fixed_distance, fixed_elevation)

    def _judge(self, probe: PreparedScene, matrix: np.ndarray, subject: Subject) -> str | None:
        """None when the pose meets every image-space constraint, else the key of the first broken one.

        `observe_prepared` is `observe_camera` with the subject's points prepared once per scene."""
        cam = self.context.config.camera
        observed = observe_prepared(probe, matrix, self.context.lens, occlusion=not subject.coplanar)
        seen = {o.obj.name: o for o in observed}
        for obj in subject.objects:
            record = seen.get(obj.name)
            if record is None:  # nothing labelled, or entirely outside the image
                return "facing" if faces_away(obj, matrix) else "outside"
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
        constraint = CONSTRAINTS[key]
        sweep = ""
        if fixed_distance is not None:
            sweep = f" at the swept distance {fixed_distance:.4g} m"
        elif fixed_elevation is not None:
            sweep = f" at the swept elevation {fixed_elevation:.4g} deg"
        others = ", ".join(f"{k} {n}" for k, n in failures.most_common()[1:])
        return CompileError(
            self.context.source,
            constraint.field,
            f"scene {scene_index} camera {camera_index}: no pose{sweep} in {ATTEMPTS_PER_CAMERA} attempts "
            f"met the constraints; most often ({count}x) {constraint.description}"
            + (f"; also: {others}" if others else ""),
            scene_index=scene_index,
            rule=key,
        )


def faces_away(obj: TagObject | BoardObject, cam_to_world: np.ndarray) -> bool:
    normal = obj.pose.matrix()[:3, 2]
    return float(normal @ (cam_to_world[:3, 3] - np.asarray(obj.pose.position))) <= 0.0
