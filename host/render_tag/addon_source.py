"""Where the add-on's source is, and its version: the one place the host looks for either.

Workers load the add-on from its source folder, and the extension zip is staged from it. A wheel
install carries it as package data (`render_tag/_addon/`, with blender_manifest.toml, copied there by
setup.py at build time); a checkout or an editable install has it at `addon/` beside `host/`, with
the manifest at the repository root. $RENDER_TAG_ADDON_DIR overrides both.
"""

from __future__ import annotations

import os
from pathlib import Path

from render_tag_shared.versions import addon_version as shared_addon_version

__all__ = ["ADDON_DIR_ENV", "addon_dir", "addon_version"]

ADDON_DIR_ENV = "RENDER_TAG_ADDON_DIR"


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


def addon_version(folder: Path | None = None) -> str:
    """The version of the add-on in `folder` (default: the one workers load), read the one shared way."""
    return shared_addon_version(addon_dir() if folder is None else folder)
