"""The add-on's and shared's imports run one way: no cycles, and `addon/core` never reaches up.

Parsed with `ast`, imports inside functions included (they are how cycles hid before). The one
upward edge Blender forces, the `update=` trampoline in addon/callbacks.py, points down into core.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _module_name(path: Path, root: Path, package: str) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([package, *parts])


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Module → the modules of the same package it imports (absolute or relative, at any depth)."""
    modules = {_module_name(p, root, package): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_pkg = path.name == "__init__.py"
        base = name.split(".") if is_pkg else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    anchor = base[: len(base) - node.level + 1]
                    module = ".".join(anchor + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                # `from pkg import mod` depends on pkg.mod only; `from mod import name` on mod
                submodules = [f"{module}.{alias.name}" for alias in node.names]
                targets = [t for t in submodules if t in modules] or [module]
            for target in targets:
                if target in modules and target != name:
                    graph[name].add(target)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


@pytest.mark.parametrize(
    ("folder", "package"), [("addon", "addon"), ("shared/render_tag_shared", "render_tag_shared")]
)
def test_no_import_cycles(folder: str, package: str) -> None:
    graph = import_graph(REPO_ROOT / folder, package)
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_core_never_imports_the_ui_or_the_properties() -> None:
    graph = import_graph(REPO_ROOT / "addon", "addon")
    upward = ("addon.ui", "addon.props", "addon.prefs", "addon.api")
    bad = {
        (module, target)
        for module, targets in graph.items()
        if module.startswith("addon.core")
        for target in targets
        if target == "addon" or target.startswith(upward)
    }
    assert not bad


def test_operators_take_their_fields_from_the_properties() -> None:
    """One definition per field: the operator dialogs and the N-panel cannot drift apart."""
    import importlib

    from .blender_helpers import import_addon

    import_addon()
    props = importlib.import_module("addon.props")
    operators = importlib.import_module("addon.ui.operators")

    def spec(deferred: object) -> tuple[object, dict[str, object]]:
        keywords = dict(getattr(deferred, "keywords", {}))
        keywords.pop("update", None)
        keywords.pop("attr", None)  # Blender adds the field name on registration
        return getattr(deferred, "function", None), keywords

    settings = props.RenderTagObjectSettings.__annotations__
    tag = operators.RENDER_TAG_OT_add_tag.__annotations__
    for key in ("family", "tag_id", "size_mm", "border_bits", "margin_modules"):
        assert spec(tag[key]) == spec(settings[key]), key
    assert tag["size_mm"].keywords["min"] == 1.0
    board = operators.RENDER_TAG_OT_add_board.__annotations__
    assert spec(board["margin_mm"]) == spec(settings["board_margin_mm"])
    scene = props.RenderTagSceneSettings.__annotations__
    camera = operators.RENDER_TAG_OT_set_camera_intrinsics.__annotations__
    for key in ("distortion_model", "distortion_coeffs", "eval_margin_px"):
        assert spec(camera[key]) == spec(scene[key]), key
