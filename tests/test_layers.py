"""Features call down, never up: the import graph of the service follows its layers.

The layers are described in docs/architecture.md; this test is their definition. A
module may import a module of its own layer or of a lower one, never of a higher one;
no module imports a project module inside a function (the way cycles get dodged),
except the command-line modules, which import late to start fast; and there is no
import cycle. Pure: reads the source, imports nothing of the service.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Most specific prefix wins. 0 is the bottom.
LAYERS: dict[str, int] = {
    # 0: settings, the database session, shared formatting and time zones.
    "dunning": 0,
    "dunning.settings": 0,
    "dunning.db": 0,
    "dunning.timezones": 0,
    "dunning.formatting": 0,
    "dunning.templates": 0,
    "dunning.embedded": 0,
    "dunning.migrate": 0,
    # 1: the schema (every models module) and pure logic with no I/O.
    "dunning.models": 1,
    "dunning.migrations": 1,
    "dunning.policy.engine": 1,  # the pure engine, its rules and value types
    "dunning.policy.declines": 1,
    "dunning.policy.network_rules": 1,
    "dunning.policy.timing": 1,
    "dunning.policy.preview": 1,
    "dunning.policy.records": 1,
    "dunning.policy.tables": 1,
    "dunning.processors.stripe_objects": 1,
    "dunning.admin.actors": 1,
    # 2: the ledger, adapters, the scheduler and the building blocks of the features.
    "dunning.ledger": 2,
    "dunning.processors": 2,
    "dunning.scheduler": 2,
    "dunning.queue": 2,
    "dunning.admin": 2,
    "dunning.policy": 2,  # storing, choosing and previewing policy versions
    "dunning.links.tokens": 2,
    "dunning.notify": 2,
    # 3: what the emails say and when they go.
    "dunning.notify.compose": 3,
    "dunning.notify.sequence": 3,
    "dunning.notify.delivery": 3,
    "dunning.notify.reminders": 3,
    # 4: dunning cases: state, planner, ops, charge actions; the card updater's
    # planning and action (its provider is a building block).
    "dunning.cases": 4,
    "dunning.card_updater": 4,
    "dunning.card_updater.provider": 2,
    # 5: the inputs: processor events, the customer's self-serve page.
    "dunning.events": 5,
    "dunning.links": 5,
    # 6: entry points and leaf features nobody below imports.
    "dunning.app": 6,
    "dunning.cli": 6,
    "dunning.actions": 6,
    "dunning.demo": 6,
    "dunning.sandbox": 6,
    "dunning.startup": 6,
    "dunning.reports": 6,
    "dunning.backtest": 6,
    "dunning.console": 6,
    "dunning.alerts": 6,
    "workers": 6,
}
ENTRY_SUFFIXES = ("routes", "cli", "dashboard")
TOP = 6
SCHEMA = 1  # every ``models`` module: tables only, importable by every layer above


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer(module: str) -> int:
    """The layer of a module: entry modules by name, else the longest matching prefix."""
    last = module.rsplit(".", 1)[-1]
    if last in ENTRY_SUFFIXES:
        return TOP
    if last == "models":
        return SCHEMA
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        if prefix in LAYERS:
            return LAYERS[prefix]
    raise AssertionError(f"{module} is in no layer: add it to LAYERS in {__file__}")


def _sources() -> Iterator[tuple[str, Path]]:
    for package in ("dunning", "workers"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts and "versions" in path.parts:
                continue
            yield _module_name(path), path


def _project_imports(tree: ast.AST, module: str) -> Iterator[tuple[str, ast.stmt, bool]]:
    """(imported module, statement, inside a function?) for each project import."""
    package = module.rsplit(".", 1)[0]

    def visit(node: ast.AST, in_function: bool) -> Iterator[tuple[str, ast.stmt, bool]]:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield alias.name, child, in_function
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    base = ".".join(
                        [*package.split(".")[: len(package.split(".")) - child.level + 1], base]
                    ).rstrip(".")
                for alias in child.names:
                    yield f"{base}.{alias.name}", child, in_function
            else:
                yield from visit(child, nested)

    for name, stmt, inside in visit(tree, False):
        if name.split(".")[0] in ("dunning", "workers"):
            yield name, stmt, inside


def _resolve(name: str, modules: set[str]) -> str:
    """``from a.b import c`` names module ``a.b.c`` or attribute ``c`` of ``a.b``."""
    return name if name in modules else name.rsplit(".", 1)[0]


def _graph() -> tuple[dict[str, set[str]], list[str], list[str]]:
    sources = dict(_sources())
    modules = set(sources)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    upward: list[str] = []
    late: list[str] = []
    for module, path in sources.items():
        tree = ast.parse(path.read_text(), str(path))
        for name, stmt, inside in _project_imports(tree, module):
            target = _resolve(name, modules)
            if target == module:
                continue
            where = f"{path.relative_to(ROOT)}:{stmt.lineno} imports {target}"
            if inside and module.rsplit(".", 1)[-1] != "cli":
                late.append(where)
            if not inside:
                graph[module].add(target)
            if layer(target) > layer(module):
                upward.append(f"{where} (layer {layer(module)} -> {layer(target)})")
    return graph, upward, late


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := walk(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := walk(node)):
            return found
    return None


def test_no_module_imports_a_layer_above_its_own() -> None:
    _, upward, _ = _graph()
    assert upward == []


def test_no_project_import_hides_inside_a_function() -> None:
    _, _, late = _graph()
    assert late == []


def test_the_import_graph_has_no_cycle() -> None:
    graph, _, _ = _graph()
    assert _cycle(graph) is None


def test_the_checker_sees_an_upward_import() -> None:
    """The check itself can fail: the ledger importing the cases is caught."""
    tree = ast.parse("from dunning.cases import service as cases\n")
    [(name, _, inside)] = list(_project_imports(tree, "dunning.ledger.apply"))
    assert not inside and layer(_resolve(name, {"dunning.cases.service"})) > layer(
        "dunning.ledger.apply"
    )
    assert _cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
