"""The world of a scene: lights around the subject, an optional HDRI and the background plane under it."""

from __future__ import annotations

import math

import numpy as np

from render_tag_shared.recipe import Hdri, Light, PlaneObject, Pose, World

from .context import CompileContext
from .frames import Vec, level_frame, quat_from_matrix
from .sampler import uniform
from .subject import Subject

__all__ = ["LIGHT_TYPES", "WorldSampler"]

LIGHT_TYPES = ("POINT", "AREA", "SPOT")
"""Light types whose energy is in watts, the unit of `lighting.intensity_min/max`."""


class WorldSampler:
    """Draws the lights, the HDRI and the background of each scene from the world stream."""

    def __init__(self, context: CompileContext) -> None:
        self.context = context

    def draw(self, rng: np.random.Generator, subject: Subject) -> tuple[World, PlaneObject]:
        lighting = self.context.config.lighting
        low, high = lighting.lights_per_scene
        lights = []
        for _ in range(int(rng.integers(low, high + 1))):
            kind = LIGHT_TYPES[int(rng.integers(len(LIGHT_TYPES)))]
            energy = uniform(rng, lighting.intensity_min, lighting.intensity_max)
            distance = uniform(rng, 1.5, 3.0)
            elevation = math.radians(uniform(rng, 30.0, 85.0))
            azimuth = uniform(rng, 0.0, 2.0 * math.pi)
            # Blender lights shine along their local -z: local +z points from the subject to the light.
            z_axis: Vec = (
                math.cos(elevation) * math.cos(azimuth),
                math.cos(elevation) * math.sin(azimuth),
                math.sin(elevation),
            )
            x_axis, y_down = level_frame((-z_axis[0], -z_axis[1], -z_axis[2]))
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
                        rotation_quaternion=quat_from_matrix(frame),
                    ),
                    energy=energy,
                    radius_m=uniform(rng, 0.05, 0.5),
                )
            )
        hdri = None
        if self.context.hdris:
            hdri = Hdri(
                path=self.context.asset_path(self.context.hdris[int(rng.integers(len(self.context.hdris)))]),
                strength=uniform(rng, 0.5, 1.5),
                rotation_z_rad=uniform(rng, 0.0, 2.0 * math.pi),
            )
        texture = (
            self.context.asset_path(
                self.context.backgrounds[int(rng.integers(len(self.context.backgrounds)))]
            )
            if self.context.backgrounds
            else None
        )
        grey = uniform(rng, 0.2, 0.8)
        side = 8.0 * self.context.config.camera.max_distance + 4.0 * subject.radius_m
        background = PlaneObject(
            name="background",
            pose=self.context.origin,
            size_m=(side, side),
            color=(grey, grey, grey),
            texture=texture,
            texture_repeat=max(1.0, round(side)),
        )
        return World(lights=lights, hdri=hdri), background
