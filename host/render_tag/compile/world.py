"""The world of a scene: lights around the subject, an optional HDRI and the background plane under it.

Draw order on the world stream (what a config without the realism fields always drew, so it compiles
the same bytes): the number of lights; per light its type, power, distance, elevation, azimuth and size
(then, only for a SUN, its angle, and only with `color_temperature_k`, its temperature); the HDRI, its
strength and turn; the background image; the floor's grey. The floor's pattern, size and turn come from
a `background` stream of their own, drawn only when `background` asks for them.
"""

from __future__ import annotations

import math

import numpy as np

from render_tag_shared.config import BackgroundSection
from render_tag_shared.recipe import BUILTIN_PREFIX, Hdri, Light, PlaneObject, Pose, ProceduralKind, World

from .context import CompileContext
from .frames import Vec, level_frame, quat_from_matrix, quat_z
from .materials import kelvin_to_rgb, procedural_texture
from .sampler import stream, uniform
from .subject import Subject

__all__ = ["LIGHT_TYPES", "WorldSampler", "customised_floor"]

LIGHT_TYPES = ("POINT", "AREA", "SPOT")
"""Light types whose energy is in watts, the unit of `lighting.intensity_min/max` (the default types)."""


def customised_floor(section: BackgroundSection) -> bool:
    """Whether the config asks the floor for more than the plain grey or image of old."""
    return section != BackgroundSection()


class WorldSampler:
    """Draws the lights, the HDRI and the background of each scene from the world stream."""

    def __init__(self, context: CompileContext) -> None:
        self.context = context
        lighting = context.config.lighting
        self.hdris = [BUILTIN_PREFIX + name for name in lighting.builtin_hdris] + [
            context.asset_path(path) for path in context.hdris
        ]

    def draw(self, rng: np.random.Generator, subject: Subject, seed: int) -> tuple[World, PlaneObject]:
        lighting = self.context.config.lighting
        low, high = lighting.lights_per_scene
        lights = [self._light(rng, subject) for _ in range(int(rng.integers(low, high + 1)))]
        hdri = None
        if self.hdris:
            hdri = Hdri(
                path=self.hdris[int(rng.integers(len(self.hdris)))],
                strength=uniform(rng, *lighting.hdri_strength),
                rotation_z_rad=math.radians(uniform(rng, *lighting.hdri_rotation_deg)),
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
        section = self.context.config.background
        if customised_floor(section):
            background = self._floor(stream(seed, "background"), background, subject, section)
        return World(lights=lights, hdri=hdri), background

    def _light(self, rng: np.random.Generator, subject: Subject) -> Light:
        lighting = self.context.config.lighting
        kind = lighting.light_types[int(rng.integers(len(lighting.light_types)))]
        if kind == "SUN":
            energy = uniform(rng, *lighting.sun_strength)
        else:
            energy = uniform(rng, lighting.intensity_min, lighting.intensity_max)
        distance = uniform(rng, 1.5, 3.0)
        elevation = math.radians(uniform(rng, 30.0, 85.0))
        azimuth = uniform(rng, 0.0, 2.0 * math.pi)
        radius = uniform(rng, *lighting.light_radius_m)
        angle = math.radians(uniform(rng, *lighting.sun_angle_deg)) if kind == "SUN" else 0.01
        color = (1.0, 1.0, 1.0)
        if lighting.color_temperature_k is not None:
            color = kelvin_to_rgb(uniform(rng, *lighting.color_temperature_k))
        # Blender lights shine along their local -z: local +z points from the subject to the light.
        z_axis: Vec = (
            math.cos(elevation) * math.cos(azimuth),
            math.cos(elevation) * math.sin(azimuth),
            math.sin(elevation),
        )
        x_axis, y_down = level_frame((-z_axis[0], -z_axis[1], -z_axis[2]))
        frame = np.column_stack([x_axis, [-c for c in y_down], z_axis])
        return Light(
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
            color=color,
            radius_m=radius,
            angle_rad=angle,
        )

    def _floor(
        self, rng: np.random.Generator, plane: PlaneObject, subject: Subject, section: BackgroundSection
    ) -> PlaneObject:
        """The floor's size, turn and look: a procedural pattern or the drawn image, equally likely."""
        choices: list[ProceduralKind | None] = list(section.procedural)
        if plane.texture is not None or not choices:
            choices.append(None)  # the image (or the plain grey) is one choice among the patterns
        kind = choices[int(rng.integers(len(choices)))]
        side = plane.size_m[0]
        if section.size_m is not None:  # a mat never smaller than what the subject needs
            side = max(uniform(rng, *section.size_m), 2.0 * subject.radius_m + 0.1)
        turn = math.radians(uniform(rng, *section.rotation_deg))
        tiles = uniform(rng, *section.tiles_per_m) if section.tiles_per_m is not None else 1.0
        update: dict[str, object] = {
            "size_m": (side, side),
            "pose": Pose(position=plane.pose.position, rotation_quaternion=quat_z(turn)),
            "texture_repeat": max(1.0, round(side)) if section.tiles_per_m is None else side * tiles,
        }
        if kind is not None:
            update["procedural"] = procedural_texture(rng, kind, section)
            update["texture"] = None
        return plane.model_copy(update=update)
