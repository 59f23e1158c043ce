"""Quality gates of `audit` and thresholds of `verify`: one pydantic model each, one loader for both.

Limits come from a dict or a YAML/JSON file (at the top level or under the command's section, such as
`audit: {gates: ...}` or `verify: {thresholds: ...}`), over the defaults; the command line's values
override the file's. A name that is not a limit, or a value that is not a number, is bad input naming
the file and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from render_tag_shared.config import read_config_data
from render_tag_shared.errors import InputError

__all__ = ["AuditGates", "Limits", "VerifyThresholds"]

Number = int | float


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
                raise InputError(name, field, f"unknown {cls.WHAT}; known: {known}") from None
            raise InputError(name, field, f"must be a number, got {first.get('input')!r}") from None


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
