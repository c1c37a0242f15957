"""The floors of ARCHITECTURE.md, checked on the source: every ``import``/``from`` statement of
every module in ``pyhbnode`` (those inside functions too, relative ones resolved) must go to a
floor its own floor may use, and no chain of imports between modules may come back to where it
started."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "pyhbnode"

# floor -> what it is; the same table as ARCHITECTURE.md.
FLOORS = {
    "pyhbnode.checks": 0,
    "pyhbnode.contracts": 0,
    "pyhbnode.fields": 1,
    "pyhbnode.solving": 2,
    "pyhbnode.layers": 3,
    "pyhbnode.data": 4,
    "pyhbnode.zoo": 5,
    "pyhbnode.training": 6,
    "pyhbnode.experiments": 7,
    "pyhbnode.cli": 8,
}
# floor -> the floors it may import (besides its own).
MAY_IMPORT = {
    0: set(),
    1: {0},
    2: {0, 1},  # the julia backend translates the fields it is given
    3: {0, 1, 2},
    4: {0},  # data loaders stand apart from the model floors
    5: {0, 1, 2, 3},
    6: {0, 1, 2, 3},  # nn.Modules and their solving layers; not zoo, data or the app
    7: {0, 1, 2, 3, 4, 5, 6},
    8: {0, 1, 2, 3, 4, 5, 6, 7},
}
# The package's front door re-exports the floors; it and ``python -m pyhbnode`` sit outside them,
# and only the app (which nothing imports) may use it.
EXEMPT = {"pyhbnode", "pyhbnode.__main__"}
FRONT_DOOR_USERS = {8}
def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _target(name: str) -> str | None:
    """The pyhbnode module ``name`` refers to (its longest known prefix), or ``None``."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _type_checking(node: ast.AST) -> bool:
    """``if TYPE_CHECKING:``: imports for the type checker, never run."""
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _statements(tree: ast.AST):
    """Every node of ``tree`` except those under ``if TYPE_CHECKING:`` (function bodies included)."""
    for child in ast.iter_child_nodes(tree):
        if _type_checking(child):
            for other in child.orelse:
                yield other
                yield from _statements(other)
            continue
        yield child
        yield from _statements(child)


def imports_of(module: str) -> dict[str, int]:
    """The pyhbnode modules ``module`` imports when it runs (at its top or in a function), each
    with the line of its first import."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: dict[str, int] = {}
    for node in _statements(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, path.name == "__init__.py", node)
            # ``from pkg import x`` takes the module pkg.x when there is one, else a name of pkg
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        for name in names:
            target = _target(name)
            if target is not None and target != module:
                found.setdefault(target, node.lineno)
    return found


GRAPH = {m: imports_of(m) for m in MODULES}


def floor_of(module: str) -> int | None:
    for prefix, floor in FLOORS.items():
        if module == prefix or module.startswith(prefix + "."):
            return floor
    return None


def test_every_module_has_a_floor():
    homeless = [m for m in MODULES if m not in EXEMPT and floor_of(m) is None]
    assert not homeless, f"modules on no floor of ARCHITECTURE.md: {homeless}"


def test_each_floor_imports_only_the_floors_it_may():
    wrong = []
    for module, targets in GRAPH.items():
        if module in EXEMPT:
            continue
        floor = floor_of(module)
        for target, line in targets.items():
            other = floor_of(target)
            if target in EXEMPT and floor not in FRONT_DOOR_USERS:
                wrong.append(f"{MODULES[module].relative_to(PACKAGE.parent)}:{line} imports {target} (the front door)")
            elif target not in EXEMPT and other != floor and other not in MAY_IMPORT[floor]:
                wrong.append(f"{MODULES[module].relative_to(PACKAGE.parent)}:{line} (floor {floor}) imports "
                             f"{target} (floor {other})")
    assert not wrong, "imports against the floors:\n" + "\n".join(wrong)


def _cycles() -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each as its
    members, sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in GRAPH:
        if v not in index:
            visit(v)
    return found


def _one_cycle(component: list[str]) -> list[str]:
    """A path ``a -> b -> ... -> a`` inside ``component`` (for the message)."""
    members = set(component)
    start = component[0]
    path, seen = [start], {start}
    while True:
        nxt = next((w for w in GRAPH[path[-1]] if w in members and (w == start or w not in seen)), None)
        if nxt is None or nxt == start:
            return path + [start]
        path.append(nxt)
        seen.add(nxt)


def test_no_import_cycles():
    cycles = [_one_cycle(c) + [f"(modules in the cycle: {', '.join(c)})"] for c in _cycles()]
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_cycle_finder_reports_a_cycle(monkeypatch):
    monkeypatch.setitem(GRAPH, "pyhbnode.zoo.specs", {**GRAPH["pyhbnode.zoo.specs"], "pyhbnode.zoo": 1})
    found = [c for c in _cycles()]
    assert any("pyhbnode.zoo.specs" in c and "pyhbnode.zoo" in c for c in found)


@pytest.mark.parametrize("source, expected", [
    ("from ..solving import SolverOptions", {"pyhbnode.solving"}),
    ("from ..solving import odeint", {"pyhbnode.solving.odeint"}),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..zoo import build\n", set()),
    ("from .. import zoo", {"pyhbnode.zoo"}),
    ("def f():\n    from ..data import make_pointcloud\n", {"pyhbnode.data"}),
])
def test_the_scanner_resolves_relative_and_function_level_imports(tmp_path, source, expected, monkeypatch):
    module = "pyhbnode.training.probe"
    path = PACKAGE / "training" / "probe.py"
    monkeypatch.setitem(MODULES, module, tmp_path / "probe.py")
    (tmp_path / "probe.py").write_text(source)
    assert set(imports_of(module)) == expected
    assert path  # the probe's name places it on the training floor
