"""GenConfig: the high-level job config (ranges, families, counts) that the host compiles into recipes.

Units, as everywhere in a config: millimetres for marker and board sizes, metres for distances,
degrees for angles. Older configs used metres for sizes (`size_meters`, `marker_size`,
`square_size`); they are migrated on load.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from .boards import BoardDefinition
from .devices import DeviceRequest
from .errors import InputError, input_error_from_validation
from .families import get_family
from .inputs import MAX_CONFIG_BYTES, parse_json, parse_yaml, read_input_text
from .lens import DistortionModel, expected_coeff_count
from .limits import (
    MAX_ANGULAR_SPEED_DPS,
    MAX_CAMERAS_PER_SCENE,
    MAX_DISTANCE_M,
    MAX_IMAGE_SIDE,
    MAX_ISO,
    MAX_LIGHT_ENERGY,
    MAX_LIGHTS,
    MAX_SCENES,
    MAX_SEED,
    MAX_SHUTTER_S,
    MAX_SIZE_MM,
    MAX_SPEED_MPS,
    MAX_SUPERSAMPLE,
    MAX_TAGS_PER_SCENE,
)
from .recipe import (
    BUILTIN_HDRIS,
    MIN_PRINT_CONTRAST,
    DistortionCoeff,
    FiniteFloat,
    FocalPx,
    NonNegativeFloat,
    OutputKind,
    PositiveFloat,
    PrincipalPx,
    Resolution,
    SizeMm,
    StrictModel,
    UnitFloat,
)


def _ordered(low: float, high: float, low_name: str, high_name: str) -> None:
    if high < low:
        raise ValueError(f"{low_name} ({low}) must not exceed {high_name} ({high})")


AngleDeg = Annotated[float, Field(ge=-360, le=360, allow_inf_nan=False, strict=True)]
TagCount = Annotated[int, Field(strict=True, le=MAX_TAGS_PER_SCENE)]
LightCount = Annotated[int, Field(strict=True, le=MAX_LIGHTS)]
Distance = Annotated[float, Field(gt=0, le=MAX_DISTANCE_M, allow_inf_nan=False, strict=True)]
Watts = Annotated[float, Field(gt=0, le=MAX_LIGHT_ENERGY, allow_inf_nan=False, strict=True)]
Pixels = Annotated[float, Field(ge=0, le=MAX_IMAGE_SIDE, allow_inf_nan=False, strict=True)]
Iso = Annotated[float, Field(gt=0, le=MAX_ISO, allow_inf_nan=False, strict=True)]


class DatasetSection(StrictModel):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    num_scenes: int = Field(ge=1, le=MAX_SCENES, strict=True, description=f"at most {MAX_SCENES}")
    seed: int = Field(0, ge=0, le=MAX_SEED, strict=True)


class TagsSubject(StrictModel):
    """Loose tags in front of a background."""

    type: Literal["TAGS"] = "TAGS"
    tag_families: list[str] = Field(min_length=1)
    size_mm: SizeMm = 100.0
    tags_per_scene: tuple[TagCount, TagCount] = Field(
        (1, 1), description=f"[min, max] tags per scene, at most {MAX_TAGS_PER_SCENE}"
    )
    margin_modules: NonNegativeFloat = Field(1.0, le=100)

    @field_validator("tag_families")
    @classmethod
    def _families(cls, value: list[str]) -> list[str]:
        return [get_family(name).name for name in value]  # canonical names, as in recipes

    @field_validator("tags_per_scene")
    @classmethod
    def _range(cls, value: tuple[int, int]) -> tuple[int, int]:
        low, high = value
        if low < 1 or high < low:
            raise ValueError(f"must be [min, max] with 1 <= min <= max, got {list(value)}")
        return value


class BoardSubject(BoardDefinition):
    """A calibration board: the BoardDefinition fields plus the subject tag."""

    type: Literal["BOARD"] = "BOARD"
    margin_mm: NonNegativeFloat = Field(0.0, le=MAX_SIZE_MM)


Subject = Annotated[TagsSubject | BoardSubject, Field(discriminator="type")]


class ScenarioSection(StrictModel):
    sampling_mode: Literal["random", "distance", "angle"] = "random"
    subject: Subject


class IntrinsicsSection(StrictModel):
    """Either fx, fy, cx, cy or a horizontal `fov` in degrees."""

    fx: FocalPx | None = None
    fy: FocalPx | None = None
    cx: PrincipalPx | None = None
    cy: PrincipalPx | None = None
    fov: Annotated[float, Field(gt=0, lt=180, strict=True)] | None = None
    distortion_model: DistortionModel = "none"
    distortion_coeffs: list[DistortionCoeff] = Field(default_factory=list)

    @model_validator(mode="after")
    def _complete(self) -> IntrinsicsSection:
        given = [v is not None for v in (self.fx, self.fy, self.cx, self.cy)]
        if self.fov is not None and any(given):
            raise ValueError("give either fov or fx, fy, cx, cy, not both")
        if self.fov is None and not all(given):
            raise ValueError("give fx, fy, cx and cy (or fov instead)")
        expected = expected_coeff_count(self.distortion_model)
        if len(self.distortion_coeffs) != expected:
            raise ValueError(
                f"distortion_coeffs: {self.distortion_model} takes {expected} coefficients, "
                f"got {len(self.distortion_coeffs)}"
            )
        return self

    def k_matrix(self, resolution: tuple[int, int]) -> list[list[float]]:
        if self.fov is not None:
            f = (resolution[0] / 2.0) / math.tan(math.radians(self.fov) / 2.0)
            return [[f, 0.0, (resolution[0] - 1) / 2.0], [0.0, f, (resolution[1] - 1) / 2.0], [0, 0, 1.0]]
        assert self.fx is not None and self.fy is not None and self.cx is not None and self.cy is not None
        return [[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]]


class CameraSection(StrictModel):
    resolution: Resolution = (640, 480)
    intrinsics: IntrinsicsSection = IntrinsicsSection(fov=60.0)
    samples_per_scene: int = Field(
        1,
        ge=1,
        le=MAX_CAMERAS_PER_SCENE,
        strict=True,
        description=f"cameras per scene, at most {MAX_CAMERAS_PER_SCENE}",
    )
    min_distance: Distance = 0.5
    max_distance: Distance = 2.0
    min_elevation: float = Field(25.0, ge=0, le=90, allow_inf_nan=False, strict=True)
    max_elevation: float = Field(90.0, ge=0, le=90, allow_inf_nan=False, strict=True)
    min_roll: AngleDeg = -180.0
    max_roll: AngleDeg = 180.0
    min_azimuth: AngleDeg = Field(0.0, description="the camera's bearing around the subject's normal")
    max_azimuth: AngleDeg = 360.0
    eval_margin_px: Pixels = 0.0
    min_pixel_area: NonNegativeFloat = Field(
        0.0, le=float(MAX_IMAGE_SIDE) ** 2, description="smallest subject area in the image, px²"
    )
    max_pixel_area: PositiveFloat | None = Field(None, le=float(MAX_IMAGE_SIDE) ** 2)
    ppm_min: Pixels | None = Field(None, description="pixels per module, lower bound")
    ppm_max: PositiveFloat | None = Field(None, le=MAX_IMAGE_SIDE)
    iso_min: Iso | None = None
    iso_max: Iso | None = None

    @model_validator(mode="after")
    def _ranges(self) -> CameraSection:
        _ordered(self.min_distance, self.max_distance, "min_distance", "max_distance")
        _ordered(self.min_elevation, self.max_elevation, "min_elevation", "max_elevation")
        _ordered(self.min_roll, self.max_roll, "min_roll", "max_roll")
        _ordered(self.min_azimuth, self.max_azimuth, "min_azimuth", "max_azimuth")
        if self.max_pixel_area is not None:
            _ordered(self.min_pixel_area, self.max_pixel_area, "min_pixel_area", "max_pixel_area")
        if self.ppm_min is not None and self.ppm_max is not None:
            _ordered(self.ppm_min, self.ppm_max, "ppm_min", "ppm_max")
        if (self.iso_min is None) != (self.iso_max is None):
            raise ValueError("give both iso_min and iso_max, or neither")
        if self.iso_min is not None and self.iso_max is not None:
            _ordered(self.iso_min, self.iso_max, "iso_min", "iso_max")
        return self


def _check_range(value: tuple[float, float] | None) -> tuple[float, float] | None:
    """A [min, max] range of a config: min must not exceed max (the field is named by its location)."""
    if value is not None and value[1] < value[0]:
        raise ValueError(f"must be [min, max] with min <= max, got {list(value)}")
    return value


Range = tuple[FiniteFloat, FiniteFloat]
NonNegativeRange = tuple[NonNegativeFloat, NonNegativeFloat]
PositiveRange = tuple[PositiveFloat, PositiveFloat]
UnitRange = tuple[UnitFloat, UnitFloat]
Gamma = Annotated[float, Field(gt=0, le=10, allow_inf_nan=False, strict=True)]
Stops = Annotated[float, Field(ge=-30, le=30, allow_inf_nan=False, strict=True)]


LightType = Literal["POINT", "AREA", "SPOT", "SUN"]


def _default_light_types() -> list[LightType]:
    return ["POINT", "AREA", "SPOT"]


class LightingSection(StrictModel):
    """Lights around the subject (a type drawn uniformly per light) and the world: HDRIs from Blender's
    built-in set (`builtin_hdris`) and/or the user's `hdri_folder`, one drawn per scene from both."""

    intensity_min: Watts = Field(
        100.0, description=f"POINT, AREA and SPOT power, watts, at most {MAX_LIGHT_ENERGY:g}"
    )
    intensity_max: Watts = 800.0
    lights_per_scene: tuple[LightCount, LightCount] = Field(
        (1, 2), description=f"[min, max] lights per scene, at most {MAX_LIGHTS}"
    )
    light_types: list[LightType] = Field(default_factory=_default_light_types, min_length=1)
    sun_strength: PositiveRange = Field((2.0, 6.0), description="SUN strength, W/m²")
    sun_angle_deg: tuple[
        Annotated[float, Field(ge=0, le=180, allow_inf_nan=False)],
        Annotated[float, Field(ge=0, le=180, allow_inf_nan=False)],
    ] = Field((0.5, 5.0), description="SUN angular diameter (soft shadows), degrees")
    light_radius_m: NonNegativeRange = Field(
        (0.05, 0.5), description="POINT and SPOT radius, AREA edge: the softness of shadows, metres"
    )
    color_temperature_k: (
        tuple[
            Annotated[float, Field(ge=1000, le=40000, allow_inf_nan=False)],
            Annotated[float, Field(ge=1000, le=40000, allow_inf_nan=False)],
        ]
        | None
    ) = Field(None, description="black-body colour of the lights, kelvin; None: white")
    hdri_folder: str | None = None
    builtin_hdris: list[str] = Field(
        default_factory=list,
        description="Blender's own CC0 HDRIs by name (" + ", ".join(BUILTIN_HDRIS) + ") or `all`",
    )
    hdri_strength: NonNegativeRange = (0.5, 1.5)
    hdri_rotation_deg: Range = (0.0, 360.0)
    background_folder: str | None = None

    _check = field_validator(
        "sun_strength",
        "sun_angle_deg",
        "light_radius_m",
        "color_temperature_k",
        "hdri_strength",
        "hdri_rotation_deg",
    )(_check_range)

    @field_validator("builtin_hdris")
    @classmethod
    def _builtins(cls, value: list[str]) -> list[str]:
        names: list[str] = []
        for name in value:
            if name == "all":
                names += BUILTIN_HDRIS
                continue
            full = name if name.endswith(".exr") else name + ".exr"
            if full not in BUILTIN_HDRIS:
                raise ValueError(f"unknown built-in HDRI {name!r}; Blender ships {', '.join(BUILTIN_HDRIS)}")
            names.append(full)
        return list(dict.fromkeys(names))

    @model_validator(mode="after")
    def _ranges(self) -> LightingSection:
        _ordered(self.intensity_min, self.intensity_max, "intensity_min", "intensity_max")
        low, high = self.lights_per_scene
        if low < 0 or high < low:
            raise ValueError(f"lights_per_scene must be [min, max] with 0 <= min <= max, got {[low, high]}")
        return self


ProceduralName = Literal["noise", "voronoi", "wave", "brick", "checker", "magic", "gradient"]


class BackgroundSection(StrictModel):
    """The floor under the subject. Each scene draws one of the `procedural` patterns (Blender's texture
    nodes, two colours of random hue) or, with `lighting.background_folder`, one of its images, each
    choice equally likely; with neither, a plain grey floor. `size_m` makes the floor a finite mat so
    the world (an HDRI) shows past its edge; None: a floor that fills every view."""

    procedural: list[ProceduralName] = Field(default_factory=list)
    scale: PositiveRange = Field((2.0, 20.0), description="pattern features per metre")
    rotation_deg: Range = Field((0.0, 0.0), description="turn of the pattern or image about the normal")
    tiles_per_m: PositiveRange | None = Field(None, description="image repeats per metre; None: 1")
    brightness: UnitRange = Field((0.15, 0.85), description="HSV value of the two pattern colours")
    saturation: UnitRange = (0.0, 0.6)
    size_m: PositiveRange | None = None

    _check = field_validator("scale", "rotation_deg", "tiles_per_m", "brightness", "saturation", "size_m")(
        _check_range
    )


PrimitiveName = Literal["CUBE", "SPHERE", "CYLINDER", "CONE"]


def _all_shapes() -> list[PrimitiveName]:
    return ["CUBE", "SPHERE", "CYLINDER", "CONE"]


class ClutterSection(StrictModel):
    """Distractor solids on the floor around the subject (procedural materials, casting shadows).

    `may_occlude: false` (the default) keeps every distractor off the subject as each camera of the
    scene sees it (its projected box never meets a tag's or board's printed outline), so the labels
    stay exact. `true` lets them cover parts of markers: only for labels that account for occlusion."""

    distractors_per_scene: tuple[int, int] = (0, 0)
    size_m: PositiveRange = Field((0.05, 0.3), description="edge of a distractor's box, metres")
    shapes: list[PrimitiveName] = Field(default_factory=_all_shapes, min_length=1)
    spread_m: PositiveFloat = Field(1.0, description="how far beyond the subject they may stand")
    may_occlude: bool = False

    _check = field_validator("size_m")(_check_range)

    @field_validator("distractors_per_scene")
    @classmethod
    def _count(cls, value: tuple[int, int]) -> tuple[int, int]:
        if value[0] < 0 or value[1] < value[0]:
            raise ValueError(f"must be [min, max] with 0 <= min <= max, got {list(value)}")
        return value


class PaperSection(StrictModel):
    """How the targets are printed: paper reflectance (and a warm/cool tint), ink that is not perfectly
    black, matte to semi-gloss finish. The geometry is exact whatever the print looks like."""

    paper_brightness: UnitRange = (1.0, 1.0)
    paper_tint: Annotated[float, Field(ge=0, le=0.2, allow_inf_nan=False)] = Field(
        0.0, description="largest shift of one channel from grey (warm or cool paper)"
    )
    ink_level: UnitRange = Field((0.0, 0.0), description="reflectance of the ink")
    roughness: UnitRange = (0.9, 0.9)

    _check = field_validator("paper_brightness", "ink_level", "roughness")(_check_range)

    @model_validator(mode="after")
    def _contrast(self) -> PaperSection:
        """The worst print drawn must still keep the recipe's minimum paper-ink contrast."""
        darkest = self.paper_brightness[0] * (1.0 - self.paper_tint)
        if darkest - self.ink_level[1] < MIN_PRINT_CONTRAST:
            raise ValueError(
                f"paper.ink_level: the darkest paper ({darkest:.3f}) and the lightest ink "
                f"({self.ink_level[1]}) are less than {MIN_PRINT_CONTRAST} apart; detectors lose such markers"
            )
        return self

    @property
    def varies(self) -> bool:
        return self != PaperSection()


class RendererSection(StrictModel):
    """The defaults are the `balanced` preset (README, "Render cost and accuracy"): 2 Cycles samples for the
    frame and 16 for the markers' rectangles (a second render of the markers alone), over a 1 px box
    filter with the light tree, keep tag centres and ChArUco corners as close to the truth as 16 samples
    everywhere over Blackman-Harris 1.5 px did, at under a third of the CPU time."""

    mode: Literal["cycles", "eevee", "workbench"] = "cycles"
    samples: int = Field(2, ge=1, le=65536, strict=True, description="Cycles samples per pixel of the frame")
    marker_samples: int | None = Field(
        16,
        ge=1,
        le=65536,
        strict=True,
        description="Cycles samples inside the tags' and boards' rectangles, where the ground truth lives (a "
        "second render of the markers alone, laid over the frame); null, or not above `samples`: the whole "
        "frame at `samples`",
    )
    denoise: bool = False
    noise_threshold: PositiveFloat | None = None
    max_bounces: int = Field(4, ge=0, le=1024, strict=True)
    supersample: int = Field(1, ge=1, le=MAX_SUPERSAMPLE, strict=True)
    light_tree: bool | None = True
    filter_type: Literal["blackman_harris", "gaussian", "box"] = "box"
    filter_width_px: PositiveFloat = Field(1.0, le=10.0)
    device: DeviceRequest = Field(
        "auto",
        description="cpu; gpu (exit 2 before rendering when Blender reports no GPU); auto (a GPU when there "
        "is one, else the CPU with a warning in the log and the labels' render_environment)",
    )
    outputs: list[OutputKind] = Field(
        default_factory=list,
        description="per-image files besides the picture: masks (OUT/masks/, 16-bit instance ids), "
        "depth (OUT/depth/, 16-bit millimetres), normals (OUT/normals/, 16-bit RGB); default none",
    )


class NoiseSection(StrictModel):
    """Sensor noise per camera. Ranges are [min, max], drawn uniformly per camera. With
    `camera.iso_min/iso_max` the noise follows the drawn ISO (ISO 100 is the reference): read noise
    sigma grows with ISO / 100, photons at white shrink by it (a higher gain needs fewer photons)."""

    gaussian_sigma: NonNegativeRange = Field(
        (0.0, 0.0), description="read noise sigma in linear units (1.0 = white)"
    )
    salt_pepper: UnitFloat = 0.0
    photons_at_white: PositiveRange | None = Field(
        None, description="Poisson shot noise: photons for a linear value of 1.0 at ISO 100; None: off"
    )

    _ranges = field_validator("gaussian_sigma", "photons_at_white")(_check_range)


ToneCurve = Literal["linear", "srgb", "gamma", "agx"]


def _srgb_only() -> list[ToneCurve]:
    return ["srgb"]


class ToneMappingSection(StrictModel):
    """How each camera's linear render becomes display values (recipe ToneMapping), drawn per camera."""

    curves: list[ToneCurve] = Field(
        default_factory=_srgb_only, min_length=1, description="a curve is chosen uniformly"
    )
    gamma: tuple[Gamma, Gamma] = Field((2.2, 2.2), description="the exponent range of the `gamma` curve")
    metering: Literal["none", "auto"] = "auto"
    exposure_ev: tuple[Stops, Stops] = Field(
        (0.0, 0.0), description="exposure compensation in stops, after metering"
    )

    _ranges = field_validator("gamma", "exposure_ev")(_check_range)


class DynamicRangeSection(StrictModel):
    """Output levels per camera: black and white levels drawn from their ranges (0..1)."""

    black_level: UnitRange = (0.0, 0.0)
    white_level: UnitRange = (1.0, 1.0)
    sensor_db: PositiveRange | None = Field(
        None, description="sensor dynamic range in dB (full well over noise floor); None: unlimited"
    )
    bit_depth: Literal[8, 16] = Field(8, description="PNG bits per channel")

    _ranges = field_validator("black_level", "white_level", "sensor_db")(_check_range)

    @model_validator(mode="after")
    def _apart(self) -> DynamicRangeSection:
        if self.white_level[0] <= self.black_level[1]:
            raise ValueError(
                f"white_level (min {self.white_level[0]}) must be above black_level "
                f"(max {self.black_level[1]})"
            )
        return self


Speed = Annotated[float, Field(ge=0, le=MAX_SPEED_MPS, allow_inf_nan=False, strict=True)]
AngularSpeed = Annotated[float, Field(ge=0, le=MAX_ANGULAR_SPEED_DPS, allow_inf_nan=False, strict=True)]
Seconds = Annotated[float, Field(ge=0, le=MAX_SHUTTER_S, allow_inf_nan=False, strict=True)]


class DynamicsSection(StrictModel):
    """Camera motion during the exposure, drawn per camera: speeds from their ranges in uniformly random
    directions (velocity in the world frame, rotation about an axis in the camera frame)."""

    speed_mps: tuple[Speed, Speed] = Field((0.0, 0.0), description="linear speed, metres per second")
    angular_speed_dps: tuple[AngularSpeed, AngularSpeed] = Field((0.0, 0.0), description="degrees per second")
    shutter_s: tuple[Seconds, Seconds] = Field(
        (0.0, 0.0), description=f"exposure time, seconds (at most {MAX_SHUTTER_S:g})"
    )
    rolling_shutter_s: tuple[Seconds, Seconds] = Field(
        (0.0, 0.0), description="readout time from first to last row, seconds (Cycles only)"
    )

    _ranges = field_validator("speed_mps", "angular_speed_dps", "shutter_s", "rolling_shutter_s")(
        _check_range
    )

    @property
    def enabled(self) -> bool:
        return self.shutter_s[1] > 0 or self.rolling_shutter_s[1] > 0


FStop = Annotated[float, Field(gt=0, le=1000, allow_inf_nan=False, strict=True)]


class DepthOfFieldSection(StrictModel):
    """Thin-lens depth of field per camera, focused on the subject centre's depth plus a jitter."""

    fstop: tuple[FStop, FStop] = Field(description="f-number range")
    focus_jitter_m: NonNegativeFloat = Field(
        0.0,
        le=MAX_DISTANCE_M,
        description="the focus distance is the subject's depth +- up to this many metres",
    )

    _ranges = field_validator("fstop")(_check_range)


class GenConfig(StrictModel):
    """The job config of DESIGN.md. Load it with `load_config` to get file-and-field error messages."""

    dataset: DatasetSection
    scenario: ScenarioSection
    camera: CameraSection = CameraSection()
    lighting: LightingSection = LightingSection()
    renderer: RendererSection = RendererSection()
    noise: NoiseSection = NoiseSection()
    tone_mapping: ToneMappingSection = ToneMappingSection()
    dynamic_range: DynamicRangeSection = DynamicRangeSection()
    dynamics: DynamicsSection = DynamicsSection()
    depth_of_field: DepthOfFieldSection | None = None
    background: BackgroundSection = BackgroundSection()
    clutter: ClutterSection = ClutterSection()
    paper: PaperSection = PaperSection()
    presets: list[str] = Field(default_factory=list, description="presets applied, in order (recorded)")

    @model_validator(mode="before")
    @classmethod
    def _migrate(cls, data: Any) -> Any:
        return migrate_legacy(data) if isinstance(data, dict) else data

    @model_validator(mode="after")
    def _renderer_can_render(self) -> GenConfig:
        """Motion the renderer cannot show would give pixels that disagree with the labels."""
        mode = self.renderer.mode
        if self.dynamics.rolling_shutter_s[1] > 0 and mode != "cycles":
            raise ValueError(
                "dynamics.rolling_shutter_s: rolling shutter renders only with renderer.mode cycles, "
                f"not {mode}"
            )
        if self.dynamics.shutter_s[1] > 0 and mode == "workbench":
            raise ValueError("dynamics.shutter_s: Workbench renders no motion blur; use renderer.mode cycles")
        return self


_LEGACY_METRE_FIELDS = {
    "size_meters": "size_mm",
    "marker_size": "marker_size_mm",
    "square_size": "square_size_mm",
    "tag_size": "size_mm",
}


def migrate_legacy(data: dict[str, Any]) -> dict[str, Any]:
    """Rewrites fields of older configs (sizes in metres) to today's names and units; returns a copy."""
    data = dict(data)
    scenario = data.get("scenario")
    if isinstance(scenario, dict) and isinstance(scenario.get("subject"), dict):
        subject = dict(scenario["subject"])
        for old, new in _LEGACY_METRE_FIELDS.items():
            if old in subject:
                if new in subject:
                    raise ValueError(f"scenario.subject: give {new} or the legacy {old}, not both")
                value = subject.pop(old)
                if isinstance(value, bool) or not isinstance(value, int | float):
                    # a string such as "0.1" would otherwise pass on unconverted, as 0.1 mm
                    raise ValueError(f"scenario.subject.{old}: must be a number of metres, got {value!r}")
                subject[new] = value * 1000.0
        data["scenario"] = {**scenario, "subject": subject}
    return data


def _migrated_or_raw(data: Any) -> Any:
    """The input as the models saw it, to name fields in an error (raw when it cannot be migrated)."""
    try:
        return migrate_legacy(data) if isinstance(data, dict) else data
    except ValueError:
        return data


def parse_config(data: Any, source: str) -> GenConfig:
    try:
        return GenConfig.model_validate(data)
    except ValidationError as exc:
        error = input_error_from_validation(source, exc, data=_migrated_or_raw(data), model=GenConfig)
        named = re.match(r"([a-z_]+\.[a-z_.]+): (.*)", error.message, re.DOTALL) if not error.field else None
        if named:  # a rule across sections names its field first: lead with it
            error = InputError(source, named.group(1), named.group(2), details=error.details)
        raise error from exc
    except ValueError as exc:  # raised by the migration step
        raise InputError(source, "scenario.subject", str(exc)) from exc


def read_config_data(path: str | Path) -> Any:
    """The raw mapping of a YAML or JSON config file (YAML needs PyYAML, the `yaml` extra), read and
    parsed strictly (`inputs`): a regular UTF-8 file of at most MAX_CONFIG_BYTES, no key twice."""
    text = read_input_text(path, max_bytes=MAX_CONFIG_BYTES)
    if Path(path).suffix.lower() == ".json":
        return parse_json(text, str(path))
    return parse_yaml(text, str(path))


def load_config(path: str | Path) -> GenConfig:
    """Loads a YAML or JSON config; bad input raises InputError naming the file and the field."""
    data = read_config_data(path)
    if not isinstance(data, dict):
        raise InputError(str(path), "", "the config must be a mapping with `dataset` and `scenario`")
    return parse_config(data, str(path))
