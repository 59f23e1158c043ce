"""The add-on's version, read one way everywhere: the extension manifest, else the contract's release.

The add-on (inside Blender), the worker and the host all ask `addon_version`, so a plan hash, a
worker's hello and a dataset's provenance never disagree about which add-on rendered it.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

__all__ = ["ADDON_VERSION", "MANIFEST_NAME", "addon_version"]

ADDON_VERSION = "0.1.0"
"""The add-on release this contract ships with (blender_manifest.toml's `version`; a test keeps them
equal): the answer when no manifest is at hand (a non-editable host install)."""

MANIFEST_NAME = "blender_manifest.toml"
"""Blender's extension manifest: the zip's root holds it beside the package; a checkout one folder up."""


def addon_version(addon_dir: str | Path | None = None) -> str:
    """`version` of the manifest in `addon_dir` or its parent (the zip, a checkout), else ADDON_VERSION."""
    if addon_dir is not None:
        folder = Path(addon_dir)
        for path in (folder / MANIFEST_NAME, folder.parent / MANIFEST_NAME):
            if path.is_file():
                with path.open("rb") as handle:
                    version = tomllib.load(handle).get("version")
                if version is not None:
                    return str(version)
    return ADDON_VERSION
