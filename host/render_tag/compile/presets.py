"""Presets: named partial configs (a camera, a lighting rig, a board) composed over a base config.

A preset is a mapping in the shape of a `GenConfig`; presets are deep-merged in order over the raw
config data before it is validated, so the result is checked like any hand-written config. The names
applied are appended to the config's `presets` field, which puts them in the config hash and therefore
in the job id. A preset may also be a YAML or JSON file.

Merge rules: mappings merge key by key; anything else (lists, scalars) replaces. A mapping whose
`type` or `board_type` differs from the one it lands on (a BOARD subject over a TAGS one, a ChArUco
board over an AprilGrid) replaces it whole, since the fields of one kind mean nothing to the other.
`null` clears a field, so a camera preset given as fx..cy can set `fov: null` over a base that used
`fov`.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from render_tag_shared.config import RendererSection, read_config_data
from render_tag_shared.errors import InputError, suggestion

__all__ = ["PRESETS", "RENDER_PRESETS", "RENDER_QUALITY", "compose_config", "deep_merge", "resolve_preset"]

_KIND_KEYS = ("type", "board_type")
"""Keys that say what kind of thing a mapping is: a different kind replaces rather than merges."""

_PINHOLE_RESET: dict[str, Any] = {"fov": None, "distortion_model": "none", "distortion_coeffs": []}

RENDER_QUALITY = ("mode", "samples", "marker_samples", "denoise", "noise_threshold", "max_bounces",
                  "supersample", "light_tree", "filter_type", "filter_width_px")  # fmt: skip
"""The `renderer` fields a render preset sets, all of them, so that it means the same over any config."""

_BALANCED: dict[str, Any] = RendererSection().model_dump(include=set(RENDER_QUALITY))

RENDER_PRESETS: dict[str, dict[str, Any]] = {
    "fast": {**_BALANCED, "mode": "workbench", "marker_samples": None, "supersample": 3},
    "balanced": _BALANCED,
    "exact": {**_BALANCED, "samples": 64, "marker_samples": None, "filter_type": "blackman_harris",
              "filter_width_px": 1.5},
}  # fmt: skip
"""The renderer presets, measured in the README ("Render cost and accuracy"; `make bench` prints them).

balanced is the config's own default: 2 samples for the frame, 16 for the markers' rectangles, where
the truth lives (`renderer.marker_samples`: a second render of the markers alone). fast is Workbench
(flat texture colours, no lighting) at 3 x 3 the pixels with one sample at each centre, box-reduced: its
own anti-aliasing would shift corners by 0.1 px. exact has 64 samples everywhere, 4 times balanced's at
the markers (noise at edges falls as 1/sqrt(samples)), over Blackman-Harris 1.5 px, whose softer edges
give saddle points less pixel locking than a box."""

REALISTIC: dict[str, Any] = {
    "lighting": {
        "light_types": ["SUN", "AREA", "POINT", "SPOT"],
        "lights_per_scene": [1, 2],
        "sun_strength": [1.5, 5.0],
        "sun_angle_deg": [0.5, 8.0],
        "light_radius_m": [0.05, 0.6],
        "color_temperature_k": [3500.0, 7500.0],
        "builtin_hdris": ["all"],
        "hdri_strength": [0.3, 1.2],
    },
    "background": {
        "procedural": ["noise", "voronoi", "wave", "brick", "checker", "magic", "gradient"],
        "rotation_deg": [0.0, 360.0],
        "size_m": [1.5, 6.0],
    },
    "clutter": {"distractors_per_scene": [2, 5], "size_m": [0.05, 0.3], "may_occlude": False},
    "paper": {
        "paper_brightness": [0.8, 1.0],
        "paper_tint": 0.05,
        "ink_level": [0.02, 0.1],
        "roughness": [0.35, 0.9],
    },
    "tone_mapping": {"curves": ["srgb", "agx"]},
    "dynamic_range": {"sensor_db": [45.0, 70.0]},
}
"""Built-in realism with nothing to download: Blender's own HDRIs, procedural floors (a finite mat, so
the world shows past it), distractors that keep clear of the markers, SUN and coloured lights, printed
paper, AgX or sRGB, a sensor's dynamic range. Geometry and labels are as exact as without it."""

PRESETS: dict[str, dict[str, Any]] = {
    **{name: {"renderer": dict(renderer)} for name, renderer in RENDER_PRESETS.items()},
    "hd-camera": {
        "camera": {
            "resolution": [1280, 720],
            "intrinsics": {**_PINHOLE_RESET, "fx": 1000.0, "fy": 1000.0, "cx": 639.5, "cy": 359.5},
        }
    },
    "vga-camera": {
        "camera": {
            "resolution": [640, 480],
            "intrinsics": {**_PINHOLE_RESET, "fx": 600.0, "fy": 600.0, "cx": 319.5, "cy": 239.5},
        }
    },
    "brown-conrady": {
        "camera": {
            "intrinsics": {
                "distortion_model": "brown_conrady",
                "distortion_coeffs": [-0.12, 0.05, 0.0005, -0.0003, 0.0],
            }
        }
    },
    "fisheye": {
        "camera": {
            "resolution": [640, 480],
            "intrinsics": {
                "fov": None,
                "fx": 260.0,
                "fy": 260.0,
                "cx": 319.5,
                "cy": 239.5,
                "distortion_model": "kannala_brandt",
                "distortion_coeffs": [0.02, -0.005, 0.001, -0.0002],
            },
        }
    },
    "studio-lighting": {
        "lighting": {"intensity_min": 300.0, "intensity_max": 900.0, "lights_per_scene": [2, 3]},
    },
    "dim-lighting": {
        "lighting": {"intensity_min": 20.0, "intensity_max": 80.0, "lights_per_scene": [1, 1]},
    },
    "charuco-5x7": {
        "scenario": {
            "subject": {
                "type": "BOARD",
                "board_type": "charuco",
                "rows": 5,
                "cols": 7,
                "square_size_mm": 40.0,
                "marker_size_mm": 30.0,
                "dictionary": "DICT_5X5_100",
            }
        }
    },
    "aprilgrid-6x6": {
        "scenario": {
            "subject": {
                "type": "BOARD",
                "board_type": "aprilgrid",
                "rows": 6,
                "cols": 6,
                "marker_size_mm": 50.0,
                "spacing_ratio": 0.3,
                "dictionary": "tag36h11",
            }
        }
    },
    "realistic": REALISTIC,
    "noisy-sensor": {
        "noise": {"gaussian_sigma": [0.005, 0.02], "salt_pepper": 0.0005},
        "camera": {"iso_min": 100.0, "iso_max": 1600.0},
    },
}
"""The built-in presets, by name."""


def deep_merge(base: Any, override: Any) -> Any:
    """`override` over `base` by the rules in the module docstring; neither argument is modified."""
    if not isinstance(base, dict) or not isinstance(override, dict):
        return copy.deepcopy(override)
    if any(key in override and override[key] != base.get(key) for key in _KIND_KEYS):
        return copy.deepcopy(override)
    merged = dict(base)
    for key, value in override.items():
        merged[key] = deep_merge(base[key], value) if key in base else copy.deepcopy(value)
    return merged


def resolve_preset(name: str) -> dict[str, Any]:
    """A built-in preset by name, or the mapping in a YAML/JSON file; InputError names `--preset`."""
    if name in PRESETS:
        return copy.deepcopy(PRESETS[name])
    path = Path(name)
    if path.suffix.lower() in (".yaml", ".yml", ".json") or path.exists():
        data = read_config_data(path)
        if not isinstance(data, dict):
            raise InputError(str(path), "", "a preset file must hold a mapping of config sections")
        return data
    hint = suggestion(name, list(PRESETS))
    raise InputError(
        "--preset", "", f"unknown preset {name!r}{hint or ';'} built-in presets: {', '.join(sorted(PRESETS))}"
    )


def compose_config(data: dict[str, Any], presets: list[str]) -> dict[str, Any]:
    """The config data with `presets` merged over it in order and their names appended to `presets`."""
    composed: dict[str, Any] = copy.deepcopy(data)
    if not presets:
        return composed
    applied = list(composed.get("presets") or [])
    for name in presets:
        preset = resolve_preset(name)
        preset.pop("presets", None)  # a preset does not rewrite the record of presets
        composed = deep_merge(composed, preset)
        applied.append(name)
    composed["presets"] = applied
    return composed
