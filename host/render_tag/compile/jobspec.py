"""The job spec: what makes a dataset reproducible (config hash, presets, seeds, versions, assets)."""

from __future__ import annotations

import hashlib
import importlib.metadata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from render_tag_shared.config import GenConfig
from render_tag_shared.recipe import SCHEMA_VERSION
from render_tag_shared.seeds import spec_hash

from ..addon_source import addon_version

__all__ = ["assets_sha256", "job_spec"]


def _distribution_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def assets_sha256(files: Sequence[str]) -> str:
    """SHA-256 over the asset files' names and bytes, in sorted order (paths themselves do not count,
    so the same assets in another folder hash the same)."""
    digest = hashlib.sha256()
    for name in sorted(files, key=lambda p: (Path(p).name, p)):
        digest.update(Path(name).name.encode() + b"\0")
        with open(name, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def job_spec(config: GenConfig, presets: Sequence[str], asset_files: Sequence[str]) -> dict[str, Any]:
    """What makes a dataset reproducible; `seeds.job_id` of it is the job id, and compiled recipe files
    carry it as `job_spec`. `versions.blender` is the `bpy` module's version on the compiling host (None
    without one); the Blender that rendered is recorded by the render in manifest.json and provenance.json."""
    return {
        "config_sha256": spec_hash(config.model_dump(mode="json")),
        "presets": list(presets),
        "seeds": {"job": config.dataset.seed, "scene": 'derive_seed(job, "scene", N)'},
        "num_scenes": config.dataset.num_scenes,
        "schema_version": SCHEMA_VERSION,
        "versions": {
            "render_tag": _distribution_version("render-tag"),
            "render_tag_shared": _distribution_version("render-tag-shared"),
            "addon": addon_version(),
            "blender": _distribution_version("bpy"),
        },
        "assets_sha256": assets_sha256(asset_files),
    }
