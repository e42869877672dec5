"""The harness's modules import one another without cycles.

Every import counts: at the top of a module, inside a function (an import deferred to
call time still ties the two modules together), and under ``TYPE_CHECKING`` (the type
checker follows it).  A cycle is reported as the chain of modules that closes it.
"""

from __future__ import annotations

import ast
from pathlib import Path

HARNESS = Path(__file__).resolve().parents[1] / "harness"
PACKAGE = "harness"


def _modules() -> dict[str, Path]:
    return {f"{PACKAGE}.{p.stem}" if p.stem != "__init__" else PACKAGE: p for p in sorted(HARNESS.glob("*.py"))}


def _imported(tree: ast.Module, module: str, known: set[str]) -> set[str]:
    """The harness modules that ``module`` imports anywhere in its source."""
    package = module if module == PACKAGE else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x, from .x import y
                parent = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*parent, base] if base else parent)
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}  # from harness import known
    return {name for name in found if name in known and name != module}


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imported(ast.parse(path.read_text(), str(path)), name, set(modules))
            for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as ``[a, b, ..., a]``, or None."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return path[path.index(node):] + [node]
        if node in done:
            return None
        for nxt in sorted(graph[node]):
            cycle = visit(nxt, [*path, node])
            if cycle:
                return cycle
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start, [])
        if cycle:
            return cycle
    return None


def test_harness_modules_import_each_other_without_cycles():
    graph = {name: deps - {PACKAGE} for name, deps in import_graph().items()}
    cycle = find_cycle(graph)
    assert cycle is None, "harness modules import each other in a cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_sees_a_deferred_import():
    """The check itself: an import inside a function closes a cycle as one at the top does."""
    top = ast.parse("from harness import b\n")
    deferred = ast.parse("def f():\n    from harness.a import thing\n")
    known = {"harness.a", "harness.b"}
    graph = {"harness.a": _imported(top, "harness.a", known), "harness.b": _imported(deferred, "harness.b", known)}
    assert find_cycle(graph) == ["harness.a", "harness.b", "harness.a"]
