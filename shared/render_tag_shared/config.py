"""GenConfig: the high-level job config (ranges, families, counts) that the host compiles into recipes.

Units, as everywhere in a config: millimetres for marker and board sizes, metres for distances,
degrees for angles. Older configs used metres for sizes (`size_meters`, `marker_size`,
`square_size`); they are migrated on load.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from .boards import BoardDefinition
from .errors import InputError, input_error_from_validation
from .families import get_family
from .projection import expected_coeff_count
from .recipe import (
    DistortionModel,
    FiniteFloat,
    NonNegativeFloat,
    PositiveFloat,
    Resolution,
    StrictModel,
    UnitFloat,
)


def _ordered(low: float, high: float, low_name: str, high_name: str) -> None:
    if high < low:
        raise ValueError(f"{low_name} ({low}) must not exceed {high_name} ({high})")


AngleDeg = Annotated[float, Field(ge=-360, le=360, allow_inf_nan=False)]


class DatasetSection(StrictModel):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    num_scenes: int = Field(ge=1)
    seed: int = Field(0, ge=0)


class TagsSubject(StrictModel):
    """Loose tags in front of a background."""

    type: Literal["TAGS"] = "TAGS"
    tag_families: list[str] = Field(min_length=1)
    size_mm: PositiveFloat = 100.0
    tags_per_scene: tuple[int, int] = (1, 1)
    margin_modules: NonNegativeFloat = 1.0

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
    margin_mm: NonNegativeFloat = 0.0


Subject = Annotated[TagsSubject | BoardSubject, Field(discriminator="type")]


class ScenarioSection(StrictModel):
    sampling_mode: Literal["random", "distance", "angle"] = "random"
    subject: Subject


class IntrinsicsSection(StrictModel):
    """Either fx, fy, cx, cy or a horizontal `fov` in degrees."""

    fx: PositiveFloat | None = None
    fy: PositiveFloat | None = None
    cx: FiniteFloat | None = None
    cy: FiniteFloat | None = None
    fov: Annotated[float, Field(gt=0, lt=180)] | None = None
    distortion_model: DistortionModel = "none"
    distortion_coeffs: list[FiniteFloat] = Field(default_factory=list)

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
    samples_per_scene: int = Field(1, ge=1)
    min_distance: PositiveFloat = 0.5
    max_distance: PositiveFloat = 2.0
    min_elevation: float = Field(25.0, ge=0, le=90, allow_inf_nan=False)
    max_elevation: float = Field(90.0, ge=0, le=90, allow_inf_nan=False)
    min_roll: AngleDeg = -180.0
    max_roll: AngleDeg = 180.0
    eval_margin_px: NonNegativeFloat = 0.0
    min_pixel_area: NonNegativeFloat = Field(0.0, description="smallest subject area in the image, px²")
    max_pixel_area: PositiveFloat | None = None
    ppm_min: NonNegativeFloat | None = Field(None, description="pixels per module, lower bound")
    ppm_max: PositiveFloat | None = None
    iso_min: PositiveFloat | None = None
    iso_max: PositiveFloat | None = None

    @model_validator(mode="after")
    def _ranges(self) -> CameraSection:
        _ordered(self.min_distance, self.max_distance, "min_distance", "max_distance")
        _ordered(self.min_elevation, self.max_elevation, "min_elevation", "max_elevation")
        _ordered(self.min_roll, self.max_roll, "min_roll", "max_roll")
        if self.max_pixel_area is not None:
            _ordered(self.min_pixel_area, self.max_pixel_area, "min_pixel_area", "max_pixel_area")
        if self.ppm_min is not None and self.ppm_max is not None:
            _ordered(self.ppm_min, self.ppm_max, "ppm_min", "ppm_max")
        if (self.iso_min is None) != (self.iso_max is None):
            raise ValueError("give both iso_min and iso_max, or neither")
        if self.iso_min is not None and self.iso_max is not None:
            _ordered(self.iso_min, self.iso_max, "iso_min", "iso_max")
        return self


class LightingSection(StrictModel):
    intensity_min: PositiveFloat = 100.0
    intensity_max: PositiveFloat = 800.0
    lights_per_scene: tuple[int, int] = (1, 2)
    hdri_folder: str | None = None
    background_folder: str | None = None

    @model_validator(mode="after")
    def _ranges(self) -> LightingSection:
        _ordered(self.intensity_min, self.intensity_max, "intensity_min", "intensity_max")
        low, high = self.lights_per_scene
        if low < 0 or high < low:
            raise ValueError(f"lights_per_scene must be [min, max] with 0 <= min <= max, got {[low, high]}")
        return self


class RendererSection(StrictModel):
    mode: Literal["cycles", "eevee", "workbench"] = "cycles"
    samples: int = Field(32, ge=1, le=65536)
    denoise: bool = False
    noise_threshold: PositiveFloat | None = None
    max_bounces: int = Field(4, ge=0)


class NoiseSection(StrictModel):
    gaussian_sigma: tuple[NonNegativeFloat, NonNegativeFloat] = (0.0, 0.0)
    salt_pepper: UnitFloat = 0.0


class GenConfig(StrictModel):
    """The job config of DESIGN.md. Load it with `load_config` to get file-and-field error messages."""

    dataset: DatasetSection
    scenario: ScenarioSection
    camera: CameraSection = CameraSection()
    lighting: LightingSection = LightingSection()
    renderer: RendererSection = RendererSection()
    noise: NoiseSection = NoiseSection()
    presets: list[str] = Field(default_factory=list, description="presets applied, in order (recorded)")

    @model_validator(mode="before")
    @classmethod
    def _migrate(cls, data: Any) -> Any:
        return migrate_legacy(data) if isinstance(data, dict) else data


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
                subject[new] = value * 1000.0 if isinstance(value, int | float) else value
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
        raise input_error_from_validation(source, exc, data=_migrated_or_raw(data)) from exc
    except ValueError as exc:  # raised by the migration step
        raise InputError(source, "scenario.subject", str(exc)) from exc


def read_config_data(path: str | Path) -> Any:
    """The raw mapping of a YAML or JSON config file (YAML needs PyYAML, the `yaml` extra)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(str(path), "", f"cannot read: {exc.strerror}") from exc
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(str(path), "", f"not valid JSON: {exc}") from exc
    import yaml  # optional dependency: only YAML configs need it

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(str(path), "", f"not valid YAML: {exc}") from exc


def load_config(path: str | Path) -> GenConfig:
    """Loads a YAML or JSON config; bad input raises InputError naming the file and the field."""
    data = read_config_data(path)
    if not isinstance(data, dict):
        raise InputError(str(path), "", "the config must be a mapping with `dataset` and `scenario`")
    return parse_config(data, str(path))
