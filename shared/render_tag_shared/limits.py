"""The bounds of every size in a config and a recipe: generous for real use, refused beyond.

A value past one of these is not a bigger job but a mistake (a typo, a unit slip, a fuzzer): a
resolution of 100000² would need 40 GB per frame, a light of 4e307 W overflows every renderer's
maths, and 1e30 scenes would never finish compiling. The models cite these constants in their
fields (`le=...`), so the committed JSON Schemas document them as `maximum`/`maxItems`.
"""

from __future__ import annotations

MAX_SCENES = 1_000_000
"""Scenes in one config (`dataset.num_scenes`) and recipes in one recipe file."""

MAX_CAMERAS_PER_SCENE = 64
"""Cameras of one scene (`camera.samples_per_scene`, a recipe's `cameras`)."""

MAX_IMAGE_SIDE = 16384
"""Pixels along each side of an image (16K; a frame then holds 268 Mpx)."""

MAX_RENDER_SIDE = 4 * MAX_IMAGE_SIDE
"""Pixels along each side of the overscan render a distorted camera needs (derived from the image)."""

MAX_FOCAL_PX = 1.0e7
"""Focal length in pixels (a 16K image then spans 0.1 degrees)."""

MAX_PRINCIPAL_POINT_PX = float(MAX_RENDER_SIDE)
"""|cx| and |cy| in pixels: the principal point may lie off the image, not light years off it."""

MAX_DISTORTION_COEFF = 1000.0
"""|k1|, |p1|, ... of a lens model (real lenses stay below 10)."""

MAX_LIGHTS = 64
"""Lights of one scene."""

MAX_OBJECTS = 4096
"""Objects (tags, boards, planes) of one scene."""

MAX_TAGS_PER_SCENE = 1024
"""Loose tags of one scene (`scenario.subject.tags_per_scene`)."""

MAX_LIGHT_ENERGY = 1.0e6
"""Watts of a point, spot or area light, or W/m² of a sun: a stadium floodlight is 2 kW."""

MAX_STRENGTH = 1.0e6
"""Strength of an HDRI or a background colour."""

MAX_SIZE_MM = 100_000.0
"""Marker, board square and margin sizes in millimetres (100 m)."""

MAX_PLANE_M = 100_000.0
"""Side of a plane in metres (a background under a camera up to MAX_DISTANCE_M away)."""

MAX_DISTANCE_M = 1000.0
"""Camera distances, focus jitter and light radii in metres."""

MAX_SHUTTER_S = 60.0
"""Exposure and rolling-shutter readout times in seconds."""

MAX_SPEED_MPS = 1000.0
"""Linear speed of a moving camera, metres per second."""

MAX_ANGULAR_SPEED_DPS = 36_000.0
"""Angular speed of a moving camera, degrees per second (100 turns a second)."""

MAX_ISO = 1.0e7
"""Sensor ISO (real cameras stop near 4e6)."""

MAX_SEED = 2**64 - 1
"""Seeds are 64-bit."""

MAX_ID = 2**63 - 1
"""Scene ids and other counts stored as signed 64-bit integers."""

MAX_SUPERSAMPLE = 8
"""Supersampling factor of a render: 8 x 8 the pixels of the image already costs 64 times the memory."""
