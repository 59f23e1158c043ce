"""Runs INSIDE a windowed Blender (`blender --python ui_agent.py`): a tiny file channel for the UI tests.

Why a file channel: the test drives Blender from outside with real X events (xdotool) and must read
back what Blender thinks happened (the active object, where the sidebar is) without touching the
UI itself. A timer in Blender's main loop, every 0.2 s:

- writes `state.json` (atomically): a heartbeat count, the active object, the objects, and the
  window, 3D view and sidebar geometry in window pixels;
- runs each `cmd-<n>.py` found in the folder (Python, with `bpy` and `result` (a dict) in scope,
  under a context override of the 3D view) and answers in `res-<n>.json` with `result` or the error.

The folder is $RENDER_TAG_UI_AGENT_DIR. The test owns Blender's lifetime (it kills the process).
"""

from __future__ import annotations

import json
import os
import traceback
from pathlib import Path
from typing import Any

import bpy

AGENT_DIR = Path(os.environ["RENDER_TAG_UI_AGENT_DIR"])
INTERVAL_S = 0.2
_beat = {"n": 0}


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    """Atomic: the test never reads half a file."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=1, default=str))
    os.replace(tmp, path)


def _view3d() -> tuple[Any, Any, Any, Any] | None:
    """(window, area, WINDOW region, UI region) of the first 3D view, or None."""
    wm = bpy.context.window_manager
    for window in wm.windows:
        for area in window.screen.areas:
            if area.type != "VIEW_3D":
                continue
            regions = {r.type: r for r in area.regions}
            return window, area, regions.get("WINDOW"), regions.get("UI")
    return None


def _rect(thing: Any) -> dict[str, int]:
    return {"x": thing.x, "y": thing.y, "width": thing.width, "height": thing.height}


def state() -> dict[str, Any]:
    """What the tests poll: all geometry in Blender window pixels (origin bottom-left)."""
    view_layer = bpy.context.view_layer
    active = view_layer.objects.active if view_layer is not None else None
    out: dict[str, Any] = {
        "beat": _beat["n"],
        "blender": bpy.app.version_string,
        "active": active.name if active is not None else None,
        "active_kind": getattr(getattr(active, "render_tag", None), "kind", None) if active else None,
        "selected": sorted(o.name for o in bpy.context.selected_objects)
        if hasattr(bpy.context, "selected_objects")
        else [],
        "objects": sorted(o.name for o in bpy.data.objects),
        "has_render_tag_ops": hasattr(bpy.ops, "render_tag") and hasattr(bpy.ops.render_tag, "add_tag"),
    }
    found = _view3d()
    if found is not None:
        window, area, region, ui = found
        space = area.spaces.active
        out["window"] = _rect(window)
        out["area"] = _rect(area)
        out["view_region"] = _rect(region) if region else None
        out["sidebar"] = _rect(ui) if ui else None
        out["sidebar_shown"] = bool(space.show_region_ui)
        out["sidebar_category"] = getattr(ui, "active_panel_category", None) if ui else None
        out["view_perspective"] = space.region_3d.view_perspective
        out["ui_scale"] = bpy.context.preferences.system.ui_scale
    return out


def _run_command(path: Path) -> None:
    number = path.stem.removeprefix("cmd-")
    answer: dict[str, Any] = {}
    try:
        code = path.read_text()
        result: dict[str, Any] = {}
        found = _view3d()
        scope = {"bpy": bpy, "result": result, "__name__": "render_tag_ui_command"}
        if found is not None and found[2] is not None:
            window, area, region, _ui = found
            with bpy.context.temp_override(window=window, area=area, region=region, screen=window.screen):
                exec(compile(code, str(path), "exec"), scope)
        else:
            exec(compile(code, str(path), "exec"), scope)
        answer = {"ok": True, "result": result}
    except Exception:
        answer = {"ok": False, "error": traceback.format_exc()}
    path.unlink(missing_ok=True)
    _write_json(AGENT_DIR / f"res-{number}.json", answer)


def tick() -> float:
    """The timer: answer commands, then publish the state. Never raises (a dead timer hangs tests)."""
    _beat["n"] += 1
    try:
        for path in sorted(AGENT_DIR.glob("cmd-*.py")):
            _run_command(path)
        _write_json(AGENT_DIR / "state.json", state())
    except Exception:
        _write_json(AGENT_DIR / "agent-error.json", {"error": traceback.format_exc()})
    return INTERVAL_S


bpy.app.timers.register(tick, first_interval=INTERVAL_S, persistent=True)
