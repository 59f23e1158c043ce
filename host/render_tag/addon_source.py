"""Where the add-on's source is, and its version: the one place the host looks for either.

Workers load the add-on from its source folder, and the extension zip is staged from it. A wheel
install carries it as package data (`render_tag/_addon/`, with blender_manifest.toml, copied there by
setup.py at build time); a checkout or an editable install has it at `addon/` beside `host/`, with
the manifest at the repository root. $RENDER_TAG_ADDON_DIR overrides both.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from render_tag_shared.recipe import ADDON_VERSION

__all__ = ["ADDON_DIR_ENV", "MANIFEST_NAME", "addon_dir", "addon_manifest", "addon_version"]

ADDON_DIR_ENV = "RENDER_TAG_ADDON_DIR"
MANIFEST_NAME = "blender_manifest.toml"


def addon_dir() -> Path:
    """The add-on package folder: $RENDER_TAG_ADDON_DIR, else the wheel's copy, else the checkout's."""
    override = os.environ.get(ADDON_DIR_ENV)
    if override:
        return Path(override).resolve()
    here = Path(__file__).resolve()
    packaged = here.parent / "_addon"  # a wheel install (package data)
    if (packaged / "__init__.py").is_file():
        return packaged
    return here.parents[2] / "addon"  # host/render_tag/ -> the repository's addon/


def addon_manifest(folder: Path | None = None) -> Path | None:
    """blender_manifest.toml of the add-on in `folder`: inside it (wheel, installed extension) or
    beside it (a checkout keeps it at the repository root); None when neither exists."""
    folder = addon_dir() if folder is None else folder
    for path in (folder / MANIFEST_NAME, folder.parent / MANIFEST_NAME):
        if path.is_file():
            return path
    return None


def addon_version(folder: Path | None = None) -> str:
    """The add-on's version from its manifest; `render_tag_shared.recipe.ADDON_VERSION` (the release the
    installed contract belongs to, kept equal by a test) when no manifest is found."""
    path = addon_manifest(folder)
    if path is not None:
        with path.open("rb") as handle:
            version = tomllib.load(handle).get("version")
        if version is not None:
            return str(version)
    return ADDON_VERSION
