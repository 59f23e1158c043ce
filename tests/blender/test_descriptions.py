"""Every tooltip says what the field or operator does, and a float says its unit.

Walks the registered RNA of the add-on (its PropertyGroups, its preferences and every operator of
`ui/operators.py`), so a field added later is checked too. A float's unit is read from its identifier
(`_mm`, `_px`, `_m`), its label (`(mm)`, `(px)`, `(m)`) or its subtype (PIXEL, DISTANCE, ANGLE); a float
with none of those must still name its unit in words, or say it is unitless.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from ..blender_helpers import import_addon

UNIT_WORDS = {
    "mm": "millimetres",
    "px": "pixels",
    "m": "metres",
    "deg": "degrees",
}
ANY_UNIT = (*UNIT_WORDS.values(), "radians", "modules", "unitless")
_SUBTYPE_UNITS = {"PIXEL": "px", "DISTANCE": "m", "ANGLE": "deg"}


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def expected_unit(prop: Any) -> str | None:
    """The unit a float property carries by its identifier, label or subtype (None: not inferable)."""
    for suffix in ("mm", "px", "m"):
        if prop.identifier.endswith(f"_{suffix}") or f"({suffix})" in prop.name:
            return suffix
    return _SUBTYPE_UNITS.get(prop.subtype)


def description_problems(owner: str, description: str, label: str, props: Any) -> Iterator[str]:
    """What is wrong with one struct's tooltips (its own description and each visible property's)."""
    if not description.strip():
        yield f"{owner}: no description"
    elif _norm(description) == _norm(label):
        yield f"{owner}: the description repeats the label {label!r}"
    for prop in props:
        where = f"{owner}.{prop.identifier}"
        text = prop.description
        if not text.strip():
            yield f"{where}: no description"
            continue
        if _norm(text) == _norm(prop.name):
            yield f"{where}: the description repeats the label {prop.name!r}"
        if prop.type == "FLOAT" and prop.subtype != "COLOR_GAMMA":
            unit = expected_unit(prop)
            lowered = text.lower()
            if unit is not None and UNIT_WORDS[unit] not in lowered:
                yield f"{where}: a float in {unit} whose description does not say {UNIT_WORDS[unit]!r}"
            elif unit is None and not any(word in lowered for word in ANY_UNIT):
                yield f"{where}: a float whose description names no unit (or 'unitless')"
        if prop.type == "ENUM":
            for item in prop.enum_items:
                if not item.description.strip() or _norm(item.description) == _norm(item.name):
                    yield f"{where}[{item.identifier}]: the item's description is empty or repeats its name"


def _own(rna: Any, base: Any) -> list[Any]:
    """The struct's visible properties that are not inherited from Blender's base type."""
    inherited = {p.identifier for p in base.bl_rna.properties}
    return [p for p in rna.properties if p.identifier not in inherited and not p.is_hidden]


@pytest.fixture(scope="module")
def addon() -> Iterator[Any]:
    package = import_addon()
    package.register()
    try:
        yield package
    finally:
        package.unregister()


def test_every_property_and_operator_has_a_real_description(addon: Any) -> None:
    import bpy

    problems: list[str] = []
    checked = 0
    for cls in (addon.props.RenderTagObjectSettings, addon.props.RenderTagSceneSettings):
        props = _own(cls.bl_rna, bpy.types.PropertyGroup)
        checked += len(props)
        problems += description_problems(cls.__name__, cls.__doc__ or "", cls.__name__, props)
    prefs = addon.RenderTagPreferences
    props = _own(prefs.bl_rna, bpy.types.AddonPreferences)
    checked += len(props)
    problems += description_problems("preferences", prefs.__doc__ or "", "", props)
    for cls in addon.ui.operators.CLASSES:
        group, name = cls.bl_idname.split(".")
        rna = getattr(getattr(bpy.ops, group), name).get_rna_type()
        props = [p for p in rna.properties if p.identifier != "rna_type" and not p.is_hidden]
        checked += len(props)
        problems += description_problems(cls.bl_idname, rna.description, rna.name, props)
    assert checked >= 50, f"only {checked} properties walked: is the add-on registered?"
    assert not problems, "\n".join(problems)


def test_the_check_finds_what_it_is_for(addon: Any) -> None:
    """A property group with each fault: every one of them is reported."""
    import bpy
    from bpy.props import EnumProperty, FloatProperty, IntProperty

    class RENDER_TAG_PG_bad(bpy.types.PropertyGroup):
        """Bad"""

        __annotations__ = {
            "empty": IntProperty(name="Empty"),
            "echo": IntProperty(name="Echo", description="echo."),
            "width_mm": FloatProperty(name="Width", description="How wide it is"),
            "gap": FloatProperty(name="Gap (px)", description="Gap between things, in millimetres"),
            "blend": FloatProperty(name="Blend", description="How much of it"),
            "pick": EnumProperty(name="Pick", description="Which one", items=[("A", "A", "")]),
        }

    bpy.utils.register_class(RENDER_TAG_PG_bad)
    try:
        props = _own(RENDER_TAG_PG_bad.bl_rna, bpy.types.PropertyGroup)
        found = "\n".join(description_problems("bad", "bad", "Bad", props))
    finally:
        bpy.utils.unregister_class(RENDER_TAG_PG_bad)
    assert "bad: the description repeats the label" in found
    for fault in (
        "bad.empty: no description",
        "bad.echo: the description repeats",
        "bad.width_mm: a float in mm",
        "bad.gap: a float in px",
        "bad.blend: a float whose description names no unit",
        "bad.pick[A]:",
    ):
        assert fault in found, found
