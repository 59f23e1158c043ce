"""The add-on's version is read one way (render_tag_shared.versions.addon_version)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from render_tag_shared.versions import ADDON_VERSION, MANIFEST_NAME, addon_version

from ..builders import REPO_ROOT


def test_checkout_zip_and_bare_install(tmp_path: Path) -> None:
    with (REPO_ROOT / MANIFEST_NAME).open("rb") as handle:
        assert addon_version(REPO_ROOT / "addon") == tomllib.load(handle)["version"]  # a checkout
    assert addon_version(tmp_path) == addon_version() == ADDON_VERSION  # no manifest anywhere
    (tmp_path / MANIFEST_NAME).write_text('version = "9.8.7"\n', encoding="utf-8")
    assert addon_version(tmp_path) == "9.8.7"  # the zip's root: the manifest beside the package
