"""Quality gates of `audit` and thresholds of `verify`: one pydantic model each, one loader for both.

Limits come from a dict or a YAML/JSON file (at the top level or under the command's section, such as
`audit: {gates: ...}` or `verify: {thresholds: ...}`), over the defaults; the command line's values
override the file's. A name that is not a limit, or a value that is not a number, is bad input naming
the file and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from render_tag_shared.config import read_config_data
from render_tag_shared.errors import InputError, suggestion

__all__ = ["AuditGates", "Limits", "VerifyThresholds"]

Number = int | float
Range = Annotated[list[Number], Field(min_length=2, max_length=2)]
"""[low, high]: a list, as YAML and JSON give it."""


class Limits(BaseModel):
    """Named numeric limits; subclasses list them with their defaults."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    SECTIONS: ClassVar[tuple[str, ...]] = ()
    """Keys a file may nest the limits under (`audit`, then `gates`)."""
    WHAT: ClassVar[str] = "limit"

    @classmethod
    def load(cls, source: str | Path | dict[str, Any] | None = None, **overrides: Any) -> Self:
        """The limits of `source` over the defaults, then `overrides` that are not None."""
        name = f"{cls.WHAT}s"
        given: Any = {}
        if isinstance(source, dict):
            given = source
        elif source is not None:
            name = str(source)
            given = read_config_data(source) or {}
        if not isinstance(given, dict):
            raise InputError(name, "", f"must be a mapping of {cls.WHAT} names to numbers")
        while section := next((k for k in cls.SECTIONS if isinstance(given.get(k), dict)), None):
            given = given[section]
        data = {**given, **{key: value for key, value in overrides.items() if value is not None}}
        try:
            return cls(**data)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            field = str(first["loc"][0]) if first["loc"] else ""
            if first["type"] == "extra_forbidden":
                known = ", ".join(cls.model_fields)
                hint = suggestion(field, list(cls.model_fields))
                raise InputError(name, field, f"unknown {cls.WHAT}{hint or ';'} known: {known}") from None
            shape = "[low, high]" if "range" in field else "a number"
            raise InputError(name, field, f"must be {shape}, got {first.get('input')!r}") from None


class AuditGates(Limits):
    """Gates of `render-tag audit`; None switches a gate off. `anchor_tolerance_px` is the tolerance of
    the anchor check, not a gate."""

    SECTIONS: ClassVar[tuple[str, ...]] = ("audit", "gates")
    WHAT: ClassVar[str] = "gate"

    min_score: Number | None = 90.0
    min_images: Number | None = 1
    max_missing_images: Number | None = 0
    max_unreadable_images: Number | None = 0
    max_skipped_labels: Number | None = 0
    max_incomplete: Number | None = 0
    max_structure_errors: Number | None = 0
    max_chirality_failures: Number | None = 0
    max_anchor_failures: Number | None = 0
    max_margin_inconsistencies: Number | None = 0
    anchor_tolerance_px: Number = 0.05
    min_distance_m: Number | None = None
    max_distance_m: Number | None = None
    max_angle_of_incidence_deg: Number | None = None
    min_ppm: Number | None = None
    # Coverage and balance (qa/coverage.py): `min_*` fails, `warn_*` warns; None switches either off.
    # Coverage is the fraction of COVERAGE_BINS equal bins of a range that hold at least one record;
    # the range is the config's (`run`), else `*_range_*` here, else the data's own.
    distance_range_m: Range | None = None
    angle_range_deg: Range | None = None
    ppm_range: Range | None = None
    min_distance_coverage: Number | None = None
    warn_distance_coverage: Number | None = 0.6
    min_angle_coverage: Number | None = None
    warn_angle_coverage: Number | None = 0.6
    min_ppm_coverage: Number | None = None
    warn_ppm_coverage: Number | None = 0.6
    max_bin_share: Number | None = None
    """The largest share of records in any one bin of distance, angle or ppm (a collapsed distribution)."""
    warn_bin_share: Number | None = 0.5
    min_id_coverage: Number | None = None
    """Distinct tag ids labelled / ids of the families used (1.0: every id of every family seen)."""
    warn_id_coverage: Number | None = None
    # Lighting (qa/lighting.py), per image, in [0, 1] of the 8-bit range; an image outside is quarantined.
    min_brightness: Number = 0.03
    max_brightness: Number = 0.97
    min_contrast: Number = 0.02
    max_quarantined_images: Number | None = None
    warn_quarantined_images: Number | None = 0


class VerifyThresholds(Limits):
    """Thresholds of `render-tag verify`, per family: detection rate of fully visible tags (or visible
    board keypoints), |mean signed offset| in x and in y, median and p95 of the corner error, and for
    tags the median error of the tag's centre (the mean of its four corners); per ChArUco camera: fx, fy
    relative error and cx, cy error of cv2.calibrateCamera. ArUco's sub-pixel refinement pulls convex
    corners ~0.3-0.7 px inwards on rendered images, a bias that cancels in the mean and in the centre:
    hence the loose corner median against the tight mean offset and centre error, which catch a shifted
    or flipped ground truth."""

    SECTIONS: ClassVar[tuple[str, ...]] = ("verify", "thresholds")
    WHAT: ClassVar[str] = "threshold"

    min_detection_rate: float = 0.95
    max_mean_offset_px: float = 0.15
    max_median_centre_error_px: float = 0.25
    max_median_error_px: float = 1.0
    max_p95_error_px: float = 2.0
    max_focal_error_rel: float = 0.005
    max_principal_point_error_px: float = 2.0
