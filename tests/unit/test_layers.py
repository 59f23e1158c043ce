"""The layering rules of the three packages, read from the source with `ast` (nothing is imported).

Every import counts, including the ones inside functions and under `if TYPE_CHECKING:`: a lazy
import hides a cycle from Python's import machinery, not from the design. The rules:

- no import cycle inside `addon/`, `host/render_tag/` or `shared/render_tag_shared/`;
- `addon/core` (what the headless worker runs) imports neither `addon/ui` nor the property and
  preference modules, so the function API works without the UI;
- `render_tag_shared` imports neither `bpy`, `cv2` nor `zmq`, and nothing of the host or add-on.

- the host's parts depend one way: cli → pipeline → qa / batch → compile / dataset / extension →
  io / addon_source; and only `cli/` prints or exits.

The `update=` trampoline (addon/callbacks.py) imports lazily, but down into `core`, so no upward edge
is left anywhere.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..builders import REPO_ROOT

PACKAGES: dict[str, Path] = {
    "addon": REPO_ROOT / "addon",
    "render_tag": REPO_ROOT / "host" / "render_tag",
    "render_tag_shared": REPO_ROOT / "shared" / "render_tag_shared",
}
"""Import name -> source folder of each package the rules cover."""

HOST_LAYERS = {
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
"""A part of the host may import only parts of a lower layer (and itself); its __init__ is exempt."""


def module_name(package: str, root: Path, path: Path) -> str:
    """`addon/core/scene.py` -> `addon.core.scene`; a package's `__init__.py` is the package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([package, *parts])


def package_modules(package: str) -> dict[str, Path]:
    """Every module of one package, by dotted name."""
    root = PACKAGES[package]
    return {module_name(package, root, path): path for path in sorted(root.rglob("*.py"))}


def imported_names(module: str, path: Path) -> Iterator[tuple[str, str | None]]:
    """(module, name) pairs this module imports, anywhere in its body, with relative names resolved.

    `import X.Y` gives (`X.Y`, None); `from X import y` gives (`X`, `y`).
    """
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                if not is_package:
                    base = base[:-1]
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            for alias in node.names:
                yield prefix, alias.name


def import_graph(package: str) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports.

    `from X import y` is an edge to `X.y` when that is a module, else to `X`; a parent package that
    Python initialises on the way is not an edge (every module would then close a cycle with it).
    """
    modules = package_modules(package)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for source, imported in imported_names(name, path):
            target = f"{source}.{imported}" if f"{source}.{imported}" in modules else source
            if target in modules and target != name:
                targets.add(target)
        graph[name] = targets
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan's algorithm)."""
    edges = graph
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return components


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_no_import_cycles(package: str) -> None:
    graph = import_graph(package)
    assert len(graph) > 3, f"{package}: found only {len(graph)} modules; is the path right?"
    cycles = find_cycles(graph)
    assert not cycles, f"{package}: import cycles (imports inside functions count): {cycles}"


def test_addon_core_never_imports_ui_or_properties() -> None:
    graph = import_graph("addon")
    core = [m for m in graph if m == "addon.core" or m.startswith("addon.core.")]
    assert core, "addon/core has no modules"
    forbidden = ("addon.ui", "addon.props", "addon.prefs", "addon.api")
    offending = {
        m: sorted(t for t in graph[m] if any(t == f or t.startswith(f + ".") for f in forbidden))
        for m in core
    }
    offending = {m: ts for m, ts in offending.items() if ts}
    assert not offending, f"addon/core imports the UI, the property modules or the API above it: {offending}"
    assert not [m for m in core if "addon" in graph[m]], "addon/core imports the add-on package itself"


def test_shared_stays_pure() -> None:
    """render_tag_shared loads in Blender, in the host and in any tool: no bpy, cv2, zmq, host or add-on."""
    banned = ("bpy", "cv2", "zmq", "mathutils", "render_tag", "addon")
    offending = []
    for name, path in package_modules("render_tag_shared").items():
        for source, _ in imported_names(name, path):
            if source.split(".")[0] in banned:
                offending.append(f"{name} imports {source}")
    assert not offending, offending


def test_the_checker_sees_a_cycle_through_a_lazy_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The graph counts imports inside functions: a cycle closed by one is found."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from . import b\n")
    (package / "b.py").write_text("def f():\n    from .a import g\n")
    monkeypatch.setitem(PACKAGES, "pkg", package)
    graph = import_graph("pkg")
    assert graph == {"pkg": set(), "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.a"}}
    assert find_cycles(graph) == [["pkg.a", "pkg.b"]]


def _host_part(module: str) -> str:
    """`render_tag.batch.pool` -> `batch`; the package itself -> ''."""
    return module.split(".")[1] if "." in module else ""


def test_host_dependencies_run_one_way() -> None:
    graph = import_graph("render_tag")
    assert {_host_part(m) for m in graph} - {""} == set(HOST_LAYERS), "a new part of the host needs a layer"
    wrong = sorted(
        f"{source} imports {target}"
        for source, targets in graph.items()
        for target in targets
        if _host_part(source)
        and _host_part(source) != _host_part(target)
        and HOST_LAYERS[_host_part(source)] <= HOST_LAYERS.get(_host_part(target), -1)
    )
    assert not wrong, wrong


def test_only_the_cli_prints_or_exits() -> None:
    """Commands say what they did in one place; the domain code returns results or raises typed errors."""
    found = []
    for name, path in package_modules("render_tag").items():
        if _host_part(name) == "cli":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                if called in ("print", "exit"):
                    found.append(f"{name}:{node.lineno} {called}()")
    assert not found, found
