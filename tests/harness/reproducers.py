"""Each known discrepancy's reproducer: its minimal case as data, run on a target.

An entry's ``[discrepancy.reproducer]`` table gives the network and either its arrays or
the seed that fills them (``strategies.build_case``)::

    [discrepancy.reproducer]
    network = { sizes = [1, 1], activations = ["tanh"], loss = "sse", reduction = "sum" }
    dtype = "float32"
    x = [[12.0]]                      # explicit arrays (rounded to the dtype) ...
    params = [[[[1.0]], [0.0]]]       # [[W, b], ...]
    t = [[0.0]]
    # ... or: batch = 4, seed = 3, scales = [1.0, 3.0], targets = "hard"
    lr = 0.1                          # optional (default 0.1)
    device = "cpu"                    # the device kind (default cpu)
    method = "compute"                # or jvp, hvp, per_example_grads (with tangent_seed)
    tangent_seed = 0

``verdict`` runs it the way the suite's tests do and says whether the finding shows and
is explained by its entry and by no other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

import reference
from harness.bounded_arithmetic import round_to
from harness.compare import comparisons
from harness.crossval import expected_result, problem_of
from harness.error_model import both_bounds
from harness.strategies import Case, build_case

KEYS = ("network", "dtype", "x", "params", "t", "lr", "batch", "seed", "scales", "targets", "device",
        "method", "tangent_seed")
METHODS = ("compute", "jvp", "hvp", "per_example_grads")
# The suite's test whose comparisons a reproducer's method makes, for entries scoped by test.
TEST_OF_METHOD = {"compute": "test_every_quantity_matches_reference", "jvp": "test_forward_mode_matches_reference",
                  "hvp": "test_hessian_vector_product_matches_reference",
                  "per_example_grads": "test_per_example_gradients_match_reference"}


def check_reproducer(raw: Any, where: str) -> Mapping[str, Any]:
    """The reproducer table, checked: a ``KnownFileError`` naming what is wrong."""
    from harness.known import KnownFileError

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


@dataclass(frozen=True)
class Verdict:
    shows: bool  # some quantity the entry covers disagrees with the reference
    explained: bool  # ... each explained by the entry alone, and every other failure by another entry
    others: tuple[str, ...]  # other entries that also explain a failure the entry covers
    message: str


def verdict(entry, variant, raw: Mapping[str, Any], known: Sequence, crash: BaseException | None, result) -> Verdict:
    """Whether ``result`` (the target's answer to the reproducer, or the exception it
    raised) shows the entry's finding, explained by the entry and by no other.  Failures
    in quantities the entry does not cover (a reproducer's loss finding beside its
    gradient finding) must be explained by some other entry."""
    case = case_of(raw)
    test = TEST_OF_METHOD[raw.get("method", "compute")]
    if crash is not None:
        ok = entry.raises is not None and entry.raises.matches(crash)
        return Verdict(True, ok, (), f"raised {type(crash).__name__}: {crash}")
    failing = [c for c in _comparisons(case, raw, result) if c.failed]
    mine = [c for c in failing if entry.covers(c.key)]
    if not mine:
        return Verdict(False, False, (), "every quantity it covers agrees with the reference")
    applicable = [d for d in known if d.id != entry.id and d.applies(variant.target, variant.device, variant.dtype, test, case)]
    rest = [c for c in failing if not entry.covers(c.key) and not any(d.explains(c, case) for d in applicable)]
    alone = all(entry.explains(c, case) for c in mine) and not rest
    others = tuple(sorted({d.id for d in applicable for c in mine if d.covers(c.key) and d.explains(c, case)}))
    worst = max(mine + rest, key=lambda c: c.entry_ratio)
    return Verdict(True, alone, others, f"{len(mine)} quantity(ies) it covers off, {len(rest)} other(s) "
                                        f"unexplained; worst {worst.key} at error/allowed {worst.entry_ratio:.3g}\n"
                                        f"{worst.describe()}")


def run(variant, raw: Mapping[str, Any]):
    """The target's answer to the reproducer: (result, None) or (None, the exception)."""
    case = case_of(raw)
    method = raw.get("method", "compute")
    try:
        if method == "compute":
            return variant.adapter.compute(problem_of(case), device=variant.device, dtype=variant.dtype, lr=case.lr), None
        from harness.crossval_higher import METHODS as HIGHER

        args = HIGHER[method].arguments(case, int(raw.get("tangent_seed", 0)))
        return getattr(variant.adapter, method)(problem_of(case), *args, device=variant.device, dtype=variant.dtype), None
    except Exception as exc:  # noqa: BLE001 -- a crash is what a raises entry names
        from adapters.interface import Unsupported

        if isinstance(exc, Unsupported):
            raise
        return None, exc


def _comparisons(case: Case, raw: Mapping[str, Any], result) -> list:
    method = raw.get("method", "compute")
    if method == "compute":
        bounds, loose = both_bounds(case.network, case.params, case.x, case.t, dtype=case.dtype, lr=case.lr)
        return comparisons(case, result, expected_result(case), bounds, loose)
    from harness.crossval_higher import METHODS as HIGHER

    args = HIGHER[method].arguments(case, int(raw.get("tangent_seed", 0)))
    return HIGHER[method].comparisons(case, result, *args)
