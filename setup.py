"""Puts the add-on's source into the wheel as package data: `render_tag/_addon/` (add-on + manifest).

Workers load the add-on from there after a non-editable install (render_tag.addon_source finds it);
a checkout or an editable install uses `addon/` itself. Everything else is in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".*", "tests")


class BuildPyWithAddon(build_py):
    """build_py, then a copy of addon/ and blender_manifest.toml into render_tag/_addon/."""

    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "render_tag" / "_addon"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(ROOT / "addon", target, ignore=IGNORE)
        shutil.copy2(ROOT / "blender_manifest.toml", target / "blender_manifest.toml")


setup(cmdclass={"build_py": BuildPyWithAddon})
