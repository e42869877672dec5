"""The adapters' modules import one another without cycles, and each keeps to its side of
the boundaries: no adapter imports ``reference/``, the framework-neutral modules import no
framework, and one framework's modules import nothing of the other's.

Read from the source with ``ast`` (every import, at module level or inside a function),
so the check needs neither torch nor jax installed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ADAPTERS = Path(__file__).resolve().parents[2] / "adapters"
MODULES = sorted(path.stem for path in ADAPTERS.glob("*.py") if path.stem != "__init__")
NEUTRAL = ("interface", "common", "registry")  # shared by every framework
FRAMEWORKS = ("torch", "jax")


def _imported(module: str) -> set[str]:
    """Every top-level name ``module`` imports, with ``adapters.x`` as ``adapters.x``."""
    found = set()
    for node in ast.walk(ast.parse((ADAPTERS / f"{module}.py").read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "adapters":
                found.update(f"adapters.{alias.name}" for alias in node.names)
            else:
                found.add(node.module)
    return found


def _adapter_imports(module: str) -> set[str]:
    """The modules of adapters/ that ``module`` imports."""
    return {name.split(".")[1] for name in _imported(module) if name.startswith("adapters.")}


def _cycle_through(start: str) -> list[str] | None:
    """A chain of imports leading from ``start`` back to ``start``, if there is one."""
    stack, seen = [[start]], set()
    while stack:
        path = stack.pop()
        for nxt in sorted(_adapter_imports(path[-1])):
            if nxt == start:
                return [*path, start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append([*path, nxt])
    return None


@pytest.mark.parametrize("module", MODULES)
def test_no_adapter_module_imports_one_that_imports_it_back(module: str) -> None:
    cycle = _cycle_through(module)
    assert cycle is None, f"adapters/{module}.py imports itself back: {' -> '.join(cycle or [])}"


@pytest.mark.parametrize("module", MODULES)
def test_no_adapter_module_imports_the_reference(module: str) -> None:
    found = sorted(name for name in _imported(module) if name.split(".")[0] == "reference")
    assert not found, f"adapters/{module}.py imports {found}; tests are where reference and adapters meet"


@pytest.mark.parametrize("module", NEUTRAL)
def test_the_framework_neutral_modules_import_no_framework(module: str) -> None:
    found = sorted(name for name in _imported(module) if name.split(".")[0] in (*FRAMEWORKS, "optax", "jaxlib"))
    assert not found, f"adapters/{module}.py imports {found}; it must load with no framework installed"


@pytest.mark.parametrize("module", [m for m in MODULES if m.split("_")[0] in FRAMEWORKS])
def test_a_framework_s_modules_import_nothing_of_the_other_framework(module: str) -> None:
    own = module.split("_")[0]
    other = next(f for f in FRAMEWORKS if f != own)
    found = sorted(
        name for name in _imported(module)
        if name.split(".")[0] == other or (name.startswith("adapters.") and name.split(".")[1].startswith(other))
    )
    assert not found, f"adapters/{module}.py is a {own} module but imports {found}"


@pytest.mark.parametrize("module", [m for m in MODULES if m.endswith("_common")])
def test_a_common_module_imports_only_the_neutral_modules_of_adapters(module: str) -> None:
    found = sorted(_adapter_imports(module) - set(NEUTRAL))
    assert not found, f"adapters/{module}.py imports {found}; the per-framework modules import it, not the reverse"
