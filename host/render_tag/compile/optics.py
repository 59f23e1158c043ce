"""Per-camera optics: sensor noise, tone mapping, dynamic range, motion and depth of field."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from render_tag_shared.config import GenConfig
from render_tag_shared.recipe import (
    CameraRecipe,
    DepthOfField,
    DynamicRange,
    Dynamics,
    GaussianNoise,
    PoissonNoise,
    SaltPepperNoise,
    SensorNoise,
    ToneMapping,
)

from .context import CompileContext
from .sampler import random_direction, uniform
from .subject import Subject

__all__ = ["OpticsSampler", "varies_optics"]


class OpticsSampler:
    """Builds each camera of a scene. Read noise and ISO come from the camera's stream (after the pose);
    everything else from an `optics` stream that exists only when the config varies it (`varies`)."""

    def __init__(self, context: CompileContext) -> None:
        self.context = context
        self.tone_mapping = ToneMapping(curve="srgb")
        self.dynamic_range = DynamicRange()
        self.varies = varies_optics(context.config)

    def camera(
        self,
        index: int,
        matrix: np.ndarray,
        rng: np.random.Generator,
        optics: np.random.Generator | None,
        subject: Subject,
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
            config = self.context.config
            if config.noise.photons_at_white is not None:
                photons = uniform(optics, *config.noise.photons_at_white)
            tone, levels = config.tone_mapping, config.dynamic_range
            tone_mapping = ToneMapping(
                curve=tone.curves[int(optics.integers(len(tone.curves)))],
                gamma=uniform(optics, *tone.gamma),
                metering=tone.metering,
                exposure_ev=uniform(optics, *tone.exposure_ev),
            )
            dynamic_range = DynamicRange(
                black_level=uniform(optics, *levels.black_level),
                white_level=uniform(optics, *levels.white_level),
                sensor_db=uniform(optics, *levels.sensor_db) if levels.sensor_db is not None else None,
                bit_depth=levels.bit_depth,
            )
            if config.dynamics.enabled:
                dynamics = self._dynamics(optics)
            if config.depth_of_field is not None:
                depth_of_field = self._depth_of_field(optics, matrix, subject)
        fields: dict[str, Any] = {
            "name": f"cam{index}",
            "cam_to_world": matrix.tolist(),
            "intrinsics": self.context.intrinsics,
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
        dyn = self.context.config.dynamics
        speed = uniform(rng, *dyn.speed_mps)
        velocity = random_direction(rng)
        angular = math.radians(uniform(rng, *dyn.angular_speed_dps))
        axis = random_direction(rng)
        return Dynamics(
            velocity_mps=(speed * velocity[0], speed * velocity[1], speed * velocity[2]),
            angular_velocity_radps=(angular * axis[0], angular * axis[1], angular * axis[2]),
            shutter_s=uniform(rng, *dyn.shutter_s),
            rolling_shutter_s=uniform(rng, *dyn.rolling_shutter_s),
        )

    def _depth_of_field(self, rng: np.random.Generator, matrix: np.ndarray, subject: Subject) -> DepthOfField:
        """Focused on the subject centre's depth (its distance along the optical axis, as Blender's focus
        distance is measured), moved by up to `focus_jitter_m` either way; never nearer than 1 cm."""
        dof = self.context.config.depth_of_field
        assert dof is not None
        fstop = uniform(rng, *dof.fstop)
        depth = sum(float(matrix[i, 2]) * (subject.centre[i] - float(matrix[i, 3])) for i in range(3))
        jitter = uniform(rng, -dof.focus_jitter_m, dof.focus_jitter_m)
        return DepthOfField(focus_distance_m=max(0.01, depth + jitter), fstop=fstop)

    def _noise(self, rng: np.random.Generator, photons_at_white: float | None = None) -> SensorNoise | None:
        """Shot noise (when configured), read noise, dead pixels: in the order light meets a sensor."""
        noise = self.context.config.noise
        cam = self.context.config.camera
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


def varies_optics(config: GenConfig) -> bool:
    """Whether any per-camera knob beyond pose and read noise differs from the fixed defaults."""
    defaults = GenConfig.model_fields
    return (
        config.noise.photons_at_white is not None
        or config.tone_mapping != defaults["tone_mapping"].default
        or config.dynamic_range != defaults["dynamic_range"].default
        or config.dynamics.enabled
        or config.depth_of_field is not None
    )
