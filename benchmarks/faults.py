"""A pytest plugin that plants one framework fault (``tests/harness/planted_faults.py``).

    DELTACHECK_FAULT=torch-gelu-left-tail-zeroed python -m pytest -p faults ...

(with ``benchmarks/`` on ``PYTHONPATH``).  At ``pytest_configure`` it installs the fault
named by ``DELTACHECK_FAULT`` for the whole session; empty or unset, it does nothing.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from harness.planted_faults import Fault, faults  # noqa: E402, F401  (re-exported for framework_faults.py)


def pytest_configure(config) -> None:
    """Install the fault named by ``DELTACHECK_FAULT`` (none: a control run)."""
    name = os.environ.get("DELTACHECK_FAULT")
    if not name:
        return
    framework = name.split("-")[0]
    table = faults(framework if framework in ("torch", "jax") else None)
    if name not in table:
        raise ValueError(f"DELTACHECK_FAULT={name!r}; known faults: {', '.join(table)}")
    table[name].install(setattr)
