"""Suite-wide hooks: the tiers, and what plain `pytest` collects.

The folders are the tiers, and each test is marked with its folder's tier, so `-m` selects them:
`unit` (pure Python, no Blender: seconds), `blender` (the real `bpy` module: scene building,
rendering, operators, extension install), `e2e` (the CLI and the worker pool end to end, also on the
`bpy` module, so also marked `blender`) and `binary` (a real Blender binary with its UI, in a Debian
chroot: `make test-blender`, which sets RENDER_TAG_BINARY_TIER=1; plain `pytest` does not collect it).

pytest-blender stays opt-in (pyproject disables it): plain `pytest` always runs against the `bpy` module.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

BINARY_TIER_ENV = "RENDER_TAG_BINARY_TIER"
HERE = Path(__file__).resolve().parent
TIER_MARKERS = {"unit": ("unit",), "blender": ("blender",), "e2e": ("e2e", "blender"), "binary": ("binary",)}
"""Tier folder -> the markers its tests carry."""

collect_ignore = [] if os.environ.get(BINARY_TIER_ENV) == "1" else ["binary"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with its folder's tier; a test outside the tier folders is a mistake."""
    for item in items:
        relative = Path(str(item.path)).resolve().relative_to(HERE)
        tier = relative.parts[0]
        if tier not in TIER_MARKERS:
            raise pytest.UsageError(f"{relative}: tests live in one of {sorted(TIER_MARKERS)}/")
        for marker in TIER_MARKERS[tier]:
            item.add_marker(marker)
