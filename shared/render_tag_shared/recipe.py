"""The recipe contract: one scene with every random choice already made.

A `SceneRecipe` is what one worker renders. The host compiles recipes from a `GenConfig`; the add-on
exports them from an authored scene; both hand them to the same build-and-render code. Units: metres
for positions and plane sizes, millimetres for marker and board sizes, radians only in fields whose name
ends in `_rad`. Camera matrices use OpenCV's camera axes (x right, y down, z forward).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from .boards import BoardDefinition, keypoints_object_frame
from .devices import DeviceRequest
from .families import get_family, marker_identity
from .geometry import pose_matrix, unit_quaternion
from .lens import DistortionModel, expected_coeff_count
from .limits import (
    MAX_CAMERAS_PER_SCENE,
    MAX_DISTANCE_M,
    MAX_DISTORTION_COEFF,
    MAX_FOCAL_PX,
    MAX_ID,
    MAX_IMAGE_SIDE,
    MAX_ISO,
    MAX_LIGHT_ENERGY,
    MAX_LIGHTS,
    MAX_OBJECTS,
    MAX_PLANE_M,
    MAX_PRINCIPAL_POINT_PX,
    MAX_RENDER_SIDE,
    MAX_SCENES,
    MAX_SEED,
    MAX_SHUTTER_S,
    MAX_SIZE_MM,
    MAX_STRENGTH,
    MAX_SUPERSAMPLE,
)
from .overscan import equidistant_overscan, linear_overscan
from .seeds import spec_hash

SCHEMA_VERSION = "1.4.0"
"""Major.minor.patch of the recipe contract; a file with another major version is refused."""

ASSET_PATHS = (
    "a relative path is relative to the folder of the recipe file that holds it (recipes.json); "
    "an absolute path is used as it is"
)
"""The rule for asset paths in recipes (Hdri.path, World.background_texture, PlaneObject.texture)."""

BUILTIN_PREFIX = "builtin:"
"""An HDRI path `builtin:NAME` names one of the environment maps every Blender ships (CC0, Poly Haven,
in `datafiles/studiolights/world/`); the worker finds it in its own Blender, so the recipe stays portable
across machines and Blender versions."""

BUILTIN_HDRIS = (
    "city.exr",
    "courtyard.exr",
    "forest.exr",
    "interior.exr",
    "night.exr",
    "studio.exr",
    "sunrise.exr",
    "sunset.exr",
)
"""The studio-light worlds of Blender 2.80 and later (also inside the `bpy` wheel)."""


def is_builtin_asset(path: str | None) -> bool:
    """Whether an asset path names a Blender built-in (never a file relative to the recipe)."""
    return path is not None and path.startswith(BUILTIN_PREFIX)


# Numbers are strict: a bool (`true` is not 1) or a string ("0.1") where a number belongs is refused,
# and an int field takes no float (1e30 is not a count). An int is still a valid float.
FiniteFloat = Annotated[float, Field(allow_inf_nan=False, strict=True)]
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False, strict=True)]
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False, strict=True)]
UnitFloat = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False, strict=True)]
Vec3 = tuple[FiniteFloat, FiniteFloat, FiniteFloat]
Quaternion = tuple[FiniteFloat, FiniteFloat, FiniteFloat, FiniteFloat]
RGB = tuple[UnitFloat, UnitFloat, UnitFloat]


def _positive_resolution(value: tuple[int, int]) -> tuple[int, int]:
    if value[0] <= 0 or value[1] <= 0:
        raise ValueError(f"resolution must be positive, got {list(value)}")
    return value


ImageSide = Annotated[int, Field(strict=True, le=MAX_IMAGE_SIDE, description=f"at most {MAX_IMAGE_SIDE} px")]
Resolution = Annotated[tuple[ImageSide, ImageSide], AfterValidator(_positive_resolution)]
"""(width, height) in pixels, both positive, each at most MAX_IMAGE_SIDE."""
RenderSide = Annotated[int, Field(strict=True, ge=1, le=MAX_RENDER_SIDE)]
Seed = Annotated[int, Field(strict=True, ge=0, le=MAX_SEED)]
FocalPx = Annotated[float, Field(gt=0, le=MAX_FOCAL_PX, allow_inf_nan=False, strict=True)]
PrincipalPx = Annotated[
    float, Field(ge=-MAX_PRINCIPAL_POINT_PX, le=MAX_PRINCIPAL_POINT_PX, allow_inf_nan=False, strict=True)
]
DistortionCoeff = Annotated[
    float, Field(ge=-MAX_DISTORTION_COEFF, le=MAX_DISTORTION_COEFF, allow_inf_nan=False, strict=True)
]
SizeMm = Annotated[float, Field(gt=0, le=MAX_SIZE_MM, allow_inf_nan=False, strict=True)]


class StrictModel(BaseModel):
    """Every contract model refuses unknown fields: a typo must not silently become a default."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


class Pose(StrictModel):
    """Where an object sits in the world: position in metres, rotation as a unit quaternion (w, x, y, z)."""

    position: Vec3 = (0.0, 0.0, 0.0)
    rotation_quaternion: Quaternion = (1.0, 0.0, 0.0, 0.0)

    @field_validator("rotation_quaternion")
    @classmethod
    def _normalised(cls, value: Quaternion) -> Quaternion:
        # Idempotent: a recipe read back from its file keeps its quaternions, and so its hash.
        return unit_quaternion(value)

    def matrix(self) -> np.ndarray:
        """The 4x4 object-to-world transform."""
        return pose_matrix(self.position, self.rotation_quaternion)


class TagObject(StrictModel):
    """A single marker on a plane. Its frame is OpenCV's single-marker frame: origin at the centre, x
    right, y up, z out of the marker; corners TL (-s/2, s/2), TR (s/2, s/2), BR (s/2, -s/2), BL."""

    type: Literal["TAG"] = "TAG"
    name: str = Field(min_length=1)
    pose: Pose = Pose()
    tag_family: str
    tag_id: int = Field(ge=0, le=MAX_ID, strict=True)
    size_mm: SizeMm = Field(description="edge of the black border, as OpenCV measures a marker")
    border_bits: int = Field(1, ge=1, le=4, strict=True)
    margin_modules: NonNegativeFloat = Field(
        1.0, le=100, description="white quiet zone around the black border (at most 100 modules)"
    )
    roughness: UnitFloat = 0.9
    paper_color: RGB = Field((1.0, 1.0, 1.0), description="reflectance of the white modules (the paper)")
    ink_color: RGB = Field((0.0, 0.0, 0.0), description="reflectance of the black modules (the ink)")
    keypoints_3d: list[Vec3] | None = Field(
        None, description="the four corners in the object frame (metres); derived when omitted"
    )

    @field_validator("tag_family")
    @classmethod
    def _known_family(cls, value: str) -> str:
        return get_family(value).name  # canonical: OpenCV's "DICT_APRILTAG_36h11" becomes "tag36h11"

    @model_validator(mode="after")
    def _id_and_keypoints(self) -> TagObject:
        family = get_family(self.tag_family)
        if self.tag_id >= family.num_ids:
            raise ValueError(
                f"tag_id {self.tag_id} is outside {self.tag_family} (ids 0..{family.num_ids - 1})"
            )
        _check_or_fill_keypoints(self, tag_corners(self.size_mm))
        _check_print_contrast(self.paper_color, self.ink_color)
        return self

    @property
    def side_m(self) -> float:
        return self.size_mm / 1000.0


class BoardObject(StrictModel):
    """A calibration board (ChArUco or AprilGrid) in the same centred frame as a tag (z out, y up)."""

    type: Literal["BOARD"] = "BOARD"
    name: str = Field(min_length=1)
    pose: Pose = Pose()
    board: BoardDefinition
    margin_mm: NonNegativeFloat = Field(
        0.0, le=MAX_SIZE_MM, description="white border printed around the pattern"
    )
    roughness: UnitFloat = 0.9
    paper_color: RGB = Field((1.0, 1.0, 1.0), description="reflectance of the white squares (the paper)")
    ink_color: RGB = Field((0.0, 0.0, 0.0), description="reflectance of the black squares (the ink)")
    keypoints_3d: list[Vec3] | None = Field(
        None, description="board keypoints in the object frame (metres), library corner-id order"
    )

    @model_validator(mode="after")
    def _keypoints(self) -> BoardObject:
        derived = [(x, y, z) for x, y, z in keypoints_object_frame(self.board).tolist()]
        _check_or_fill_keypoints(self, derived)
        _check_print_contrast(self.paper_color, self.ink_color)
        return self


PlaneSide = Annotated[float, Field(gt=0, le=MAX_PLANE_M, allow_inf_nan=False, strict=True)]


MIN_PRINT_CONTRAST = 0.3
"""Paper minus ink luminance (Rec. 709) a printed marker must keep: below it detectors lose markers,
and the image would no longer show what the labels say is there."""


def _luminance(color: tuple[float, float, float]) -> float:
    return 0.2126 * color[0] + 0.7152 * color[1] + 0.0722 * color[2]


def _check_print_contrast(paper: tuple[float, float, float], ink: tuple[float, float, float]) -> None:
    contrast = _luminance(paper) - _luminance(ink)
    if contrast < MIN_PRINT_CONTRAST:
        raise ValueError(
            f"paper_color and ink_color differ by {contrast:.3f} in luminance; a printed marker needs "
            f"at least {MIN_PRINT_CONTRAST}"
        )


ProceduralKind = Literal["noise", "voronoi", "wave", "brick", "checker", "magic", "gradient"]
"""Blender's own texture nodes (Noise, Voronoi, Wave, Brick, Checker, Magic, Gradient)."""


class ProceduralTexture(StrictModel):
    """A procedural pattern of Blender's texture nodes, blended between two colours. Coordinates are the
    object's own (metres), turned by `rotation_rad` about its z axis and multiplied by `scale`."""

    kind: ProceduralKind
    color_a: RGB
    color_b: RGB
    scale: PositiveFloat = Field(description="pattern frequency: features per metre, about")
    rotation_rad: FiniteFloat = 0.0
    detail: Annotated[float, Field(ge=0, le=15, allow_inf_nan=False, strict=True)] = 2.0
    distortion: Annotated[float, Field(ge=0, le=10, allow_inf_nan=False, strict=True)] = 0.0


class PlaneObject(StrictModel):
    """A plain or textured rectangle (background, distractor, occluder), centred, normal +z."""

    type: Literal["PLANE"] = "PLANE"
    name: str = Field(min_length=1)
    pose: Pose = Pose()
    size_m: tuple[PlaneSide, PlaneSide]
    color: RGB = (0.5, 0.5, 0.5)
    texture: str | None = Field(None, description="image file, tiled `texture_repeat` times; " + ASSET_PATHS)
    texture_repeat: PositiveFloat = Field(1.0, le=MAX_PLANE_M)
    procedural: ProceduralTexture | None = Field(None, description="a pattern instead of colour/texture")
    roughness: UnitFloat = 0.8


class OccluderObject(StrictModel):
    """An opaque box in front of (or on) the subject: its edges are `size_m` along its x, y, z, centred
    on its pose. The recipe's rectangles are judged by the pure ground truth; a box only by the ray
    casts the add-on makes into the built scene, so its labels need the render."""

    type: Literal["OCCLUDER"] = "OCCLUDER"
    name: str = Field(min_length=1)
    pose: Pose = Pose()
    size_m: tuple[PositiveFloat, PositiveFloat, PositiveFloat]
    color: RGB = (0.2, 0.2, 0.2)
    roughness: UnitFloat = 0.6


PrimitiveShape = Literal["CUBE", "SPHERE", "CYLINDER", "CONE"]


class PrimitiveObject(StrictModel):
    """A solid distractor (clutter): a box, ellipsoid, cylinder or cone fitting `size_m` (x, y, z),
    centred on its pose, with a flat colour or a procedural material. It casts shadows like any object.
    It is no subject: nothing of it is labelled."""

    type: Literal["PRIMITIVE"] = "PRIMITIVE"
    name: str = Field(min_length=1)
    pose: Pose = Pose()
    shape: PrimitiveShape
    size_m: tuple[PositiveFloat, PositiveFloat, PositiveFloat]
    color: RGB = (0.5, 0.5, 0.5)
    procedural: ProceduralTexture | None = None
    roughness: UnitFloat = 0.5
    metallic: UnitFloat = 0.0


AnyObject = TagObject | BoardObject | PlaneObject | OccluderObject | PrimitiveObject
"""Any object of a recipe's `objects` (SceneObject without the discriminator)."""

SceneObject = Annotated[AnyObject, Field(discriminator="type")]


def tag_corners(size_mm: float) -> list[tuple[float, float, float]]:
    """TL, TR, BR, BL of a marker's black border in its object frame (metres)."""
    h = size_mm / 2000.0
    return [(-h, h, 0.0), (h, h, 0.0), (h, -h, 0.0), (-h, -h, 0.0)]


def tag_corners_object_frame(size_mm: float) -> np.ndarray:
    return np.array(tag_corners(size_mm))


def _check_or_fill_keypoints(obj: TagObject | BoardObject, derived: list[tuple[float, float, float]]) -> None:
    """keypoints_3d is derived data: fill it in, or refuse a value that disagrees with the geometry."""
    if obj.keypoints_3d is None:
        object.__setattr__(obj, "keypoints_3d", derived)
        return
    given = obj.keypoints_3d
    if given == derived:  # exactly the derived points (pydantic re-runs this on every parent validation)
        return
    if len(given) != len(derived) or any(
        abs(a - b) > 1e-9 for p, q in zip(given, derived, strict=True) for a, b in zip(p, q, strict=True)
    ):
        raise ValueError(
            f"keypoints_3d disagrees with the object's geometry ({len(derived)} points expected); "
            "omit it to have it derived"
        )


class Light(StrictModel):
    """A Blender light. Direction lights (SUN, SPOT, AREA) shine along their local -z, as in Blender."""

    type: Literal["POINT", "SUN", "SPOT", "AREA"]
    pose: Pose = Pose()
    energy: PositiveFloat = Field(
        le=MAX_LIGHT_ENERGY, description="watts (POINT, SPOT, AREA) or W/m² (SUN strength)"
    )
    color: RGB = (1.0, 1.0, 1.0)
    radius_m: NonNegativeFloat = Field(
        0.1, le=MAX_DISTANCE_M, description="soft-shadow size: radius, or edge for AREA"
    )
    angle_rad: NonNegativeFloat = Field(0.01, le=math.pi, description="SUN: angular diameter")
    spot_size_rad: PositiveFloat = Field(math.radians(45.0), le=math.pi)


class Hdri(StrictModel):
    path: str = Field(
        min_length=1,
        description="environment map (.hdr/.exr); " + ASSET_PATHS + "; `builtin:NAME` is one of "
        "Blender's own (" + ", ".join(BUILTIN_HDRIS) + ")",
    )
    strength: NonNegativeFloat = Field(1.0, le=MAX_STRENGTH)
    rotation_z_rad: FiniteFloat = 0.0

    @field_validator("path")
    @classmethod
    def _builtin_known(cls, value: str) -> str:
        if is_builtin_asset(value) and value[len(BUILTIN_PREFIX) :] not in BUILTIN_HDRIS:
            raise ValueError(f"unknown built-in HDRI {value!r}; Blender ships {', '.join(BUILTIN_HDRIS)}")
        return value


class World(StrictModel):
    lights: list[Light] = Field(default_factory=list, max_length=MAX_LIGHTS)
    hdri: Hdri | None = None
    background_color: RGB = (0.05, 0.05, 0.05)
    background_strength: NonNegativeFloat = Field(1.0, le=MAX_STRENGTH)
    background_texture: str | None = Field(
        None,
        description="image seen by camera rays behind everything (it does not light the scene); "
        + ASSET_PATHS,
    )


OutputKind = Literal["masks", "depth", "normals"]
OUTPUT_KINDS: tuple[OutputKind, ...] = ("masks", "depth", "normals")


class RendererSettings(StrictModel):
    mode: Literal["cycles", "eevee", "workbench"] = "cycles"
    samples: int = Field(32, ge=1, le=65536, strict=True)
    denoise: bool = False
    noise_threshold: PositiveFloat | None = Field(None, description="adaptive sampling; None turns it off")
    max_bounces: int = Field(4, ge=0, le=1024, strict=True)
    device: DeviceRequest = Field(
        "auto",
        description="Cycles' device: cpu; gpu (an error when Blender reports no GPU); auto (a GPU when "
        "there is one, else the CPU with a warning). The label's render_environment says what was used. "
        "Recipes of contract 1.1 wrote CPU or GPU: read as cpu and gpu",
    )
    seed: int = Field(0, ge=0, lt=2**31, strict=True, description="Cycles' sampling seed (32-bit in Blender)")
    filter_width_px: PositiveFloat = Field(1.5, le=10.0)
    filter_type: Literal["blackman_harris", "gaussian", "box"] = Field(
        "blackman_harris",
        description="Cycles' pixel filter; box over 1 px is a sensor's pixel area and, with Cycles' "
        "stratified samples, the least noisy edge at a given sample count",
    )
    light_tree: bool | None = Field(
        None,
        description="Cycles' light tree: None decides by the number of lights (on from 8, as before 1.3); on "
        "it samples the lights that matter at each point, which lowers the noise at marker edges",
    )
    marker_samples: int | None = Field(
        None,
        ge=1,
        le=65536,
        strict=True,
        description="Cycles samples inside the tags' and boards' rectangles (their paper), where the ground "
        "truth lives; the rest of the frame gets `samples`. A second render of only that region, pasted "
        "over the first: the markers' edges are as clean as at this count, the frame costs little more than "
        "`samples`. None (or not above `samples`): one render at `samples`",
    )
    supersample: int = Field(
        1,
        ge=1,
        le=MAX_SUPERSAMPLE,
        strict=True,
        description="render at this many times the resolution and average each s x s block (exact pixel "
        "centres: OpenCV's u = (u_s + 0.5) / s - 0.5); Workbench and EEVEE then sample each pixel once, at "
        "its centre, not with their own anti-aliasing pattern, whose sub-pixel offset would bias corners",
    )
    outputs: list[OutputKind] = Field(
        default_factory=list,
        description="per-image files besides the picture: masks/ (16-bit instance ids), depth/ (16-bit "
        "millimetres), normals/ (16-bit RGB); each from one extra point-sampled Cycles pass",
    )

    @property
    def region_samples(self) -> int | None:
        """Samples of the second render over the markers' rectangles; None when there is none (another
        engine, or `marker_samples` not above `samples`)."""
        extra = self.marker_samples
        return extra if self.mode == "cycles" and extra is not None and extra > self.samples else None

    @field_validator("outputs")
    @classmethod
    def _unique_outputs(cls, value: list[OutputKind]) -> list[OutputKind]:
        return [kind for kind in OUTPUT_KINDS if kind in value]  # one order, so recipes hash the same

    @model_serializer(mode="wrap")
    def _without_unset_extras(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """No outputs and no marker samples asked: the recipe's JSON (and hash) is what it was before
        those fields existed."""
        data: dict[str, Any] = handler(self)
        if not data.get("outputs"):
            data.pop("outputs", None)
        if data.get("marker_samples") is None:
            data.pop("marker_samples", None)
        return data

    @field_validator("device", mode="before")
    @classmethod
    def _device_case(cls, value: Any) -> Any:
        """Contract 1.1 wrote `CPU` / `GPU`; those files still load (and `GPU` now means gpu, strictly)."""
        return value.lower() if isinstance(value, str) and value in ("CPU", "GPU") else value


class OverscanTarget(StrictModel):
    """What Blender actually renders for a distorted camera; the image is then warped to the target."""

    projection: Literal["perspective", "equidistant"]
    k_matrix: list[list[FiniteFloat]]
    resolution: tuple[RenderSide, RenderSide]
    fov_rad: PositiveFloat | None = Field(None, description="equidistant: field of view across the width")

    @field_validator("k_matrix")
    @classmethod
    def _k(cls, value: list[list[float]]) -> list[list[float]]:
        return _validate_k(value)


class CameraIntrinsics(StrictModel):
    """K, resolution and lens distortion, with OpenCV's meaning and OpenCV's pixel-centre convention."""

    k_matrix: list[list[FiniteFloat]]
    resolution: Resolution = Field(description="(width, height) in pixels")
    distortion_model: DistortionModel = "none"
    distortion_coeffs: list[DistortionCoeff] = Field(default_factory=list)
    overscan: OverscanTarget | None = Field(
        None, description="derived from K and the coefficients when omitted for a distorted camera"
    )
    eval_margin_px: NonNegativeFloat = Field(0.0, le=MAX_IMAGE_SIDE)

    @field_validator("k_matrix")
    @classmethod
    def _k(cls, value: list[list[float]]) -> list[list[float]]:
        return _validate_k(value)

    @model_validator(mode="after")
    def _coefficients(self) -> CameraIntrinsics:
        expected = expected_coeff_count(self.distortion_model)
        if len(self.distortion_coeffs) != expected:
            raise ValueError(
                f"distortion_coeffs: {self.distortion_model} takes {expected} coefficients, "
                f"got {len(self.distortion_coeffs)}"
            )
        if self.distortion_model != "none" and self.overscan is None:
            object.__setattr__(self, "overscan", derive_overscan(self))
        return self

    @property
    def k(self) -> np.ndarray:
        return np.asarray(self.k_matrix, dtype=float)

    @property
    def width(self) -> int:
        return self.resolution[0]

    @property
    def height(self) -> int:
        return self.resolution[1]

    @classmethod
    def from_fov(cls, fov_deg: float, resolution: tuple[int, int], **kwargs: object) -> CameraIntrinsics:
        """Square pixels, centred principal point, `fov_deg` across the width."""
        width, height = resolution
        if not 0 < fov_deg < 180:
            raise ValueError(f"fov must be in (0, 180) degrees, got {fov_deg}")
        f = (width / 2.0) / math.tan(math.radians(fov_deg) / 2.0)
        k = [[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]]
        return cls.model_validate({"k_matrix": k, "resolution": resolution, **kwargs})


def derive_overscan(intrinsics: CameraIntrinsics) -> OverscanTarget | None:
    """The render target that covers every ray of a distorted image (None when there is no distortion)."""
    if intrinsics.distortion_model == "none":
        return None
    if intrinsics.distortion_model == "brown_conrady":
        k_over, res = linear_overscan(intrinsics.k, intrinsics.resolution, intrinsics.distortion_coeffs)
        return OverscanTarget(
            projection="perspective", k_matrix=np.asarray(k_over).tolist(), resolution=(res[0], res[1])
        )
    fov, side, k_equi = equidistant_overscan(
        intrinsics.k, intrinsics.resolution, intrinsics.distortion_coeffs
    )
    return OverscanTarget(
        projection="equidistant",
        k_matrix=np.asarray(k_equi).tolist(),
        resolution=(int(side), int(side)),
        fov_rad=float(fov),
    )


def _validate_k(value: list[list[float]]) -> list[list[float]]:
    k = np.asarray(value, dtype=float)
    if k.shape != (3, 3):
        raise ValueError(f"must be a 3x3 matrix, got shape {list(k.shape)}")
    if not np.allclose(k[2], [0.0, 0.0, 1.0]):
        raise ValueError(f"the last row must be [0, 0, 1], got {k[2].tolist()}")
    if k[0, 0] <= 0 or k[1, 1] <= 0:
        raise ValueError(f"fx and fy must be positive, got fx={k[0, 0]}, fy={k[1, 1]}")
    if max(k[0, 0], k[1, 1]) > MAX_FOCAL_PX:
        raise ValueError(f"fx and fy must be at most {MAX_FOCAL_PX:g} px, got fx={k[0, 0]}, fy={k[1, 1]}")
    if max(abs(k[0, 2]), abs(k[1, 2])) > MAX_PRINCIPAL_POINT_PX:
        raise ValueError(
            f"|cx| and |cy| must be at most {MAX_PRINCIPAL_POINT_PX:g} px, got cx={k[0, 2]}, cy={k[1, 2]}"
        )
    if k[0, 1] != 0 or k[1, 0] != 0:
        raise ValueError("skew is not supported (Blender cannot render it): K[0][1] and K[1][0] must be 0")
    return [[float(c) for c in row] for row in value]


class GaussianNoise(StrictModel):
    """Read noise: additive, signal-independent; sigma in linear units (1.0 = white)."""

    type: Literal["gaussian"] = "gaussian"
    sigma: NonNegativeFloat


class PoissonNoise(StrictModel):
    """Shot noise: photon counting with `photons_at_white` photons for a linear value of 1.0."""

    type: Literal["poisson"] = "poisson"
    photons_at_white: PositiveFloat


class SaltPepperNoise(StrictModel):
    """Dead and hot pixels: this fraction of pixels is forced to black or white."""

    type: Literal["salt_pepper"] = "salt_pepper"
    amount: UnitFloat


NoiseLayer = Annotated[GaussianNoise | PoissonNoise | SaltPepperNoise, Field(discriminator="type")]


class SensorNoise(StrictModel):
    """Noise layers applied in order to the linear image; `seed` makes them reproducible."""

    seed: Seed
    iso: PositiveFloat | None = Field(
        None, le=MAX_ISO, description="recorded for reference: layers are already scaled"
    )
    layers: list[NoiseLayer] = Field(default_factory=list, max_length=16)


class Dynamics(StrictModel):
    """Camera motion during the exposure. The camera's `cam_to_world` is the pose at mid-exposure, so
    the ground truth is where each point is half way through the shutter (for rolling shutter: half
    way through the exposure of the image's middle row)."""

    velocity_mps: Vec3 = Field((0.0, 0.0, 0.0), description="the camera centre's velocity, world frame")
    angular_velocity_radps: Vec3 = Field(
        (0.0, 0.0, 0.0),
        description="rotation rate in the camera's own frame (OpenCV axes), as a gyro reads it",
    )
    shutter_s: NonNegativeFloat = Field(0.0, le=MAX_SHUTTER_S, description="exposure time, seconds")
    rolling_shutter_s: NonNegativeFloat = Field(
        0.0, le=MAX_SHUTTER_S, description="readout time from first to last row"
    )


class ToneMapping(StrictModel):
    """How the linear render becomes display values, applied in numpy after rendering."""

    curve: Literal["linear", "srgb", "gamma", "agx"] = Field(
        "srgb", description="agx: Blender's AgX base curve (log encoding, sigmoid), for sRGB displays"
    )
    gamma: PositiveFloat = Field(2.2, le=10.0)
    metering: Literal["none", "auto"] = Field(
        "auto",
        description="auto: scale the linear render so that its 99th-percentile luminance becomes "
        "`metering_target` (a camera's auto exposure, so light power never blows out the image); "
        "none: the render's values as Blender computed them",
    )
    metering_target: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = 0.8
    exposure_ev: FiniteFloat = Field(0.0, ge=-30, le=30, description="compensation in stops, after metering")


class DynamicRange(StrictModel):
    """Output levels: a display value v in [0, 1] becomes black + (white - black) * v before quantising."""

    black_level: UnitFloat = 0.0
    white_level: UnitFloat = 1.0
    bit_depth: Literal[8, 16] = Field(8, description="PNG sample depth: 8, or 16 bits per channel")
    sensor_db: PositiveFloat | None = Field(
        None,
        description="sensor dynamic range in dB (20 log10 of full well over noise floor): linear light "
        "below white / 10 ** (dB / 20) is lost in the floor; None: unlimited",
    )

    @model_validator(mode="after")
    def _ordered(self) -> DynamicRange:
        if self.white_level <= self.black_level:
            raise ValueError(
                f"white_level ({self.white_level}) must be above black_level ({self.black_level})"
            )
        return self


class DepthOfField(StrictModel):
    """Thin-lens depth of field. The blur follows from the f-number, the focus distance and a 36 mm
    wide sensor (the add-on's camera maps K onto a 36 mm sensor), as in Blender's own camera."""

    focus_distance_m: PositiveFloat = Field(le=MAX_DISTANCE_M)
    fstop: PositiveFloat = Field(le=1000.0)


class CameraRecipe(StrictModel):
    name: str = Field("cam0", min_length=1)
    cam_to_world: list[list[FiniteFloat]] = Field(
        description="4x4 rigid transform from OpenCV camera axes (x right, y down, z forward) to world"
    )
    intrinsics: CameraIntrinsics
    sensor_noise: SensorNoise | None = None
    dynamics: Dynamics | None = None
    tone_mapping: ToneMapping = ToneMapping()
    dynamic_range: DynamicRange = DynamicRange()
    depth_of_field: DepthOfField | None = None

    @field_validator("cam_to_world")
    @classmethod
    def _rigid(cls, value: list[list[float]]) -> list[list[float]]:
        if _clearly_rigid(value):  # the compiler validates thousands a second: skip numpy when obvious
            return value
        m = np.asarray(value, dtype=float)
        if m.shape != (4, 4):
            raise ValueError(f"must be a 4x4 matrix, got shape {list(m.shape)}")
        if np.abs(m[3] - (0.0, 0.0, 0.0, 1.0)).max() > 1e-9:
            raise ValueError(f"the last row must be [0, 0, 0, 1], got {m[3].tolist()}")
        rotation = m[:3, :3]
        if np.abs(rotation @ rotation.T - np.eye(3)).max() > 1e-6 or np.linalg.det(rotation) < 0:
            raise ValueError("the rotation part must be orthonormal with determinant +1")
        return value

    @property
    def matrix(self) -> np.ndarray:
        return np.asarray(self.cam_to_world, dtype=float)


def _clearly_rigid(value: list[list[float]]) -> bool:
    """True only when CameraRecipe's rigid-matrix rule certainly holds, in plain Python.

    The last row is checked exactly as the rule does; orthonormality to 1e-7 (the rule allows 1e-6,
    so rounding differences from numpy's products cannot matter) and a determinant near +1. Anything
    else (other shapes, near misses) goes to the rule itself, which also words the error.
    """
    if len(value) != 4 or any(len(row) != 4 for row in value):
        return False
    last = value[3]
    if max(abs(last[0]), abs(last[1]), abs(last[2]), abs(last[3] - 1.0)) > 1e-9:
        return False
    (a, b, c, _), (d, e, f, _), (g, h, i, _) = value[0], value[1], value[2]
    rows = ((a, b, c), (d, e, f), (g, h, i))
    for r in range(3):
        for k in range(3):
            dot = rows[r][0] * rows[k][0] + rows[r][1] * rows[k][1] + rows[r][2] * rows[k][2]
            if not abs(dot - (1.0 if r == k else 0.0)) <= 1e-7:
                return False
    det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)
    return det > 0.5


class SceneRecipe(StrictModel):
    scene_id: int = Field(ge=0, le=MAX_ID, strict=True)
    random_seed: Seed
    world: World = World()
    renderer: RendererSettings = RendererSettings()
    objects: list[SceneObject] = Field(default_factory=list, max_length=MAX_OBJECTS)
    cameras: list[CameraRecipe] = Field(min_length=1, max_length=MAX_CAMERAS_PER_SCENE)

    @model_validator(mode="after")
    def _unique(self) -> SceneRecipe:
        _require_unique([o.name for o in self.objects], "objects", "name")
        _require_unique([c.name for c in self.cameras], "cameras", "name")
        seen: dict[tuple[str, int], int] = {}
        for index, obj in enumerate(self.objects):
            for family, tag_id in _markers(obj):
                key = marker_identity(family, tag_id)
                if key in seen:
                    raise ValueError(
                        f"objects[{index}]: {family} id {tag_id} is already used by objects[{seen[key]}]; "
                        "a detector could not tell them apart"
                    )
                seen[key] = index
        return self

    @model_validator(mode="after")
    def _renderer_can_render_the_cameras(self) -> SceneRecipe:
        """Features only Cycles renders: anything else would give pixels that disagree with the labels."""
        mode = self.renderer.mode
        for index, camera in enumerate(self.cameras):
            if camera.intrinsics.distortion_model == "kannala_brandt" and mode != "cycles":
                raise ValueError(
                    f"cameras[{index}].intrinsics.distortion_model: a kannala_brandt lens renders through "
                    f"Cycles' panoramic camera; renderer.mode is {mode!r}"
                )
            dynamics = camera.dynamics
            if dynamics is not None and dynamics.rolling_shutter_s > 0 and mode != "cycles":
                raise ValueError(
                    f"cameras[{index}].dynamics.rolling_shutter_s: rolling shutter is Cycles-only; "
                    f"renderer.mode is {mode!r}"
                )
            if dynamics is not None and dynamics.shutter_s > 0 and mode == "workbench":
                raise ValueError(
                    f"cameras[{index}].dynamics.shutter_s: Workbench renders no motion blur; "
                    "use cycles or eevee"
                )
        return self

    def image_id(self, camera_index: int) -> str:
        return image_id(self.scene_id, camera_index)


def _markers(obj: AnyObject) -> list[tuple[str, int]]:
    if isinstance(obj, TagObject):
        return [(obj.tag_family, obj.tag_id)]
    if isinstance(obj, BoardObject):
        return [(obj.board.dictionary, int(i)) for i in obj.board.resolved_marker_ids()]
    return []


def _require_unique(values: list[str], collection: str, field: str) -> None:
    seen: set[str] = set()
    for index, value in enumerate(values):
        if value in seen:
            raise ValueError(f"{collection}[{index}].{field}: {value!r} is used twice")
        seen.add(value)


def recipe_hash(recipe: SceneRecipe) -> str:
    """SHA-256 of the recipe's canonical JSON: what ties an image and its labels to the recipe."""
    return spec_hash(recipe.model_dump(mode="json"))


def image_id(scene_id: int, camera_index: int) -> str:
    """The dataset-wide image id: file stem of the PNG and its label file."""
    return f"scene{scene_id:06d}_cam{camera_index:02d}"


class RecipeFile(StrictModel):
    """recipes.json: what a job renders. Carries the contract version it was written with."""

    schema_version: str = SCHEMA_VERSION
    job_id: str | None = None
    job_spec: dict[str, Any] | None = Field(
        None,
        description="what made the recipes (the compiler's job spec, whose hash is `job_id`): config hash, "
        "presets, seeds, versions of render-tag, the add-on and Blender, a hash of the assets used",
    )
    recipes: list[SceneRecipe] = Field(default_factory=list, max_length=MAX_SCENES)

    @field_validator("schema_version")
    @classmethod
    def _compatible(cls, value: str) -> str:
        if value.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
            raise ValueError(f"schema_version {value} is not compatible with {SCHEMA_VERSION}")
        return value

    @model_validator(mode="after")
    def _unique_scenes(self) -> RecipeFile:
        require_unique_scene_ids(self.recipes)
        return self


def require_unique_scene_ids(recipes: list[SceneRecipe]) -> None:
    """RecipeFile's own rule: no scene id twice (ValueError naming the second use)."""
    _require_unique([str(r.scene_id) for r in recipes], "recipes", "scene_id")
