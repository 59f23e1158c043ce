"""The host's layout holds: no import cycle, dependencies one way, and only cli/ prints or exits.

Imports are read with `ast` (imports inside functions count too), so a cycle cannot hide behind a
lazy import.
"""

from __future__ import annotations

import ast
from pathlib import Path

from .blender_helpers import REPO_ROOT

HOST = REPO_ROOT / "host" / "render_tag"
LAYERS = {
    "io": 0,
    "addon_source": 0,
    "compile": 1,
    "dataset": 1,
    "extension": 1,
    "batch": 2,
    "qa": 2,
    "pipeline": 3,
    "cli": 4,
}
"""A part may import only parts of a lower layer (and itself); the package's __init__ is exempt."""


def _modules() -> dict[str, Path]:
    found = {}
    for path in HOST.rglob("*.py"):
        parts = ["render_tag", *path.relative_to(HOST).with_suffix("").parts]
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            candidates = [module, *(f"{module}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        for candidate in candidates:
            while candidate and candidate not in modules:
                candidate = candidate.rpartition(".")[0]
            if candidate and candidate != name:
                targets.add(candidate)
    return targets


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _part(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def test_no_import_cycle_in_the_host() -> None:
    graph = _graph()
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycle = [*path[path.index(target) :], target]
                raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
            if target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_dependencies_run_one_way() -> None:
    graph = _graph()
    assert {_part(m) for m in graph} - {""} == set(LAYERS), "a new part of the host needs a layer"
    wrong = sorted(
        f"{source} imports {target}"
        for source, targets in graph.items()
        for target in targets
        if _part(source) and _part(source) != _part(target) and LAYERS[_part(source)] <= LAYERS[_part(target)]
    )
    assert not wrong, wrong


def test_only_the_cli_prints_or_exits() -> None:
    found = []
    for name, path in _modules().items():
        if _part(name) == "cli":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                if called in ("print", "exit"):
                    found.append(f"{name}:{node.lineno} {called}()")
    assert not found, found
