"""A known discrepancy's reproducer table: its keys, its check, and the case it builds.

The table's format is described in ``reproducers``, which runs it on a target; reading
a known-discrepancies file (``known``) needs only the check, and the search machinery
stays out of that path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

import reference
from harness.bounded_arithmetic import round_to
from harness.known_errors import KnownFileError
from harness.strategies import Case, build_case

KEYS = ("network", "dtype", "x", "params", "t", "lr", "batch", "seed", "scales", "targets", "device",
        "method", "tangent_seed")
METHODS = ("compute", "jvp", "hvp", "per_example_grads")


def check_reproducer(raw: Any, where: str) -> Mapping[str, Any]:
    """The reproducer table, checked: a ``KnownFileError`` naming what is wrong."""
    if not isinstance(raw, dict):
        raise KnownFileError(f"{where}: reproducer must be a table ([discrepancy.reproducer])")
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise KnownFileError(f"{where}: reproducer has unknown key(s) {', '.join(unknown)}; allowed: {', '.join(KEYS)}")
    explicit, seeded = {"x", "params", "t"}, {"batch", "seed", "scales"}
    if not ({"network", "dtype"} <= set(raw) and (explicit <= set(raw) or seeded <= set(raw))):
        raise KnownFileError(f"{where}: reproducer needs network, dtype and either x, params and t or "
                             "batch, seed and scales")
    if raw.get("method", "compute") not in METHODS:
        raise KnownFileError(f"{where}: reproducer method = {raw['method']!r}; allowed: {', '.join(METHODS)}")
    try:
        case_of(raw)
    except (TypeError, ValueError, KeyError) as exc:
        raise KnownFileError(f"{where}: reproducer does not build: {exc}") from None
    return raw


def case_of(raw: Mapping[str, Any]) -> Case:
    """The reproducer's case, with every array rounded to its dtype."""
    n = raw["network"]
    acts = tuple(a if isinstance(a, str) else (a[0], dict(a[1])) for a in n["activations"])
    net = reference.Network(tuple(n["sizes"]), acts, loss=n.get("loss", "sse"), reduction=n.get("reduction", "sum"))
    dtype, lr = raw["dtype"], float(raw.get("lr", 0.1))
    if "x" not in raw:
        return build_case(net, batch=raw["batch"], dtype=dtype, lr=lr, seed=raw["seed"],
                          scales=tuple(raw["scales"]), targets=raw.get("targets", "hard"))
    params = [(round_to(np.asarray(W, np.float64), dtype), round_to(np.asarray(b, np.float64), dtype))
              for W, b in raw["params"]]
    x, t = (round_to(np.asarray(raw[k], np.float64), dtype) for k in ("x", "t"))
    return Case(net, params, x, t, dtype, lr, 0, tuple(1.0 for _ in net.sizes), "explicit")
