"""Data-parallel gradients against the reference: the comparisons and their failure message.

The tolerance.  dE/dW of a layer (Eqs. 6, 15) is a sum over the N examples of products
a_i delta_j, and dE/db (Eqs. 8, 18) a sum of deltas.  The error model allows each entry
N u sum_n |a_i delta_j| for the sum (the gamma_N bound: N roundings per term, the
product's and N - 1 additions), plus the propagated errors of a and delta, which a split
does not change: every example's row is computed as it is on one device.  The gamma
bound holds for any order of the additions, but a split sum can put more roundings on a
term than N:

* the part's own sum: its product and n_r - 1 additions, n_r <= ceil(N / R) terms;
* the all-reduce: R - 1 additions of the parts' sums, in any order;
* scalings: a weight on a part's loss (its conversion to the dtype and one product:
  torch's ``mean`` over unequal parts), DDP's multiplication by 1/R before the
  all-reduce (the same two) and the x R that undoes it for a ``sum``: at most
  ``SCALINGS`` = 4 on any term (jax's sharded E needs none: its ``mean`` seed is the
  single device's).  A weight on a loss scales the whole backward pass of its part,
  linearly, so to first order -- the model's order -- each such rounding errs by u
  times the sum of the part's term magnitudes.

So a term carries at most k = ceil(N / R) + R - 1 + SCALINGS roundings, and each entry
is allowed max(0, k - N) u sum_n |a_i delta_j| (sum_n |delta_j| for db) on top of the
model's bound -- e.g. 4 u sum |terms| for N = 2 over R = 2, 1 u for N = 8 over R = 2,
none from N = 10 over R = 2 -- plus SCALINGS x R x the dtype's smallest normal for a
scaled part sum that underflows (a part's sum flushed by the 1/R is at most R tiny
after the x R).  The total is taken times SAFETY, entry-wise under the strict model and
tensor-wise under the absolute-activation one (``compare.Comparison``); the magnitudes
come from the reference's float64 a and delta.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

import reference
from harness.compare import Comparison, Mismatch, scoped_bounds
from harness.crossval import rebuild_expression
from harness.error_model import SAFETY, Bounds, Precision, both_bounds
from harness.strategies import Case

if TYPE_CHECKING:
    from harness.results import Recorder
    from harness.selection import Variant

SCALINGS = 4
SHARDS = (2, 3)


def split_sum_allowance(case: Case, shards: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per layer, the extra error (dW, db) a split and all-reduced sum may add to the
    error model's bound: max(0, k - N) u sum |terms| + SCALINGS R tiny (module docstring)."""
    n = len(case.x)
    extra = max(0, math.ceil(n / shards) + shards - 1 + SCALINGS - n)
    p = Precision.of(case.dtype)
    trace = reference.forward(case.network, case.params, case.x)
    deltas = reference.backward(case.network, case.params, trace, case.t)
    floor = SCALINGS * shards * p.tiny
    return [
        (extra * p.u * (np.abs(a_in).T @ np.abs(d)) + floor, extra * p.u * np.abs(d).sum(axis=0) + floor)
        for d, a_in in zip(deltas, trace.a_in)
    ]


def data_parallel_comparisons(case: Case, shards: int, grads: reference.Params) -> list[Comparison]:
    """dE/dW and dE/db of every layer against the reference, within the error model
    plus the split sum's allowance."""
    net = case.network
    strict, loose = both_bounds(net, case.params, case.x, case.t, dtype=case.dtype, lr=case.lr)
    want = reference.gradients(net, case.params, case.x, case.t)
    extra = split_sum_allowance(case, shards)
    scoped = scoped_bounds(case)
    out: list[Comparison] = []
    for l in range(net.n_layers):
        n, last = l + 1, l + 1 == net.n_layers
        for i, key, what, eq in ((0, "dW", "dE/dW", 6 if last else 15), (1, "db", "dE/db", 8 if last else 18)):
            bound, lbound = (strict.dW, loose.dW) if i == 0 else (strict.db, loose.db)
            out.append(Comparison(
                f"data-parallel {what} of layer {n} (Eq. {eq}, batch split over {shards} shards, all-reduced)",
                f"{key}[{n}]", case.dtype, np.asarray(grads[l][i], np.float64), want[l][i],
                SAFETY * (bound[l] + extra[l][i]), SAFETY * (lbound[l] + extra[l][i]),
                scoped=_scoped_allowance(scoped, key, l, extra[l][i])))
    return out


def _scoped_allowance(scoped: Callable[[frozenset[str], tuple], Bounds], key: str, layer: int, extra: np.ndarray
                      ) -> Callable[[frozenset[str], tuple], np.ndarray]:
    """A quantity's allowance under a scoped error model (``Comparison.scoped``), plus the split sum's."""
    return lambda scope, forward: SAFETY * (scoped(scope, forward).of(key, layer) + extra)


def failure_message(variant: Variant, case: Case, shards: int, failing: list[Comparison], recorder: Recorder) -> str:
    parts = [len(p) for p in np.array_split(np.arange(len(case.x)), shards)]
    lines = [f"{variant.id}: {len(failing)} data-parallel quantity(ies) disagree with the reference", ""]
    lines += [c.describe() for c in failing]
    lines += [
        "", f"case: {case!r}", f"shards: {shards} (parts of {parts} rows)", "",
        "reproduce (from the repository root, PYTHONPATH=.:tests):",
        "    import numpy as np, reference; from harness import strategies; from harness.crossval import problem_of",
        "    from adapters.registry import load_target",
        f"    case = {rebuild_expression(case)}",
        f"    got = load_target({variant.target!r}).data_parallel_grads(problem_of(case), "
        f"device={variant.device!r}, dtype={variant.dtype!r}, shards={shards})",
        "    want = reference.gradients(case.network, case.params, case.x, case.t)",
        f"rerun exactly this test: {recorder.rerun_command()}",
        "(hypothesis also prints a @reproduce_failure blob below, which replays the shrunk case)",
    ]
    return "\n".join(lines)


def check_data_parallel(case: Case, shards: int, grads: reference.Params) -> None:
    """Raise ``Mismatch`` unless every data-parallel quantity is within its allowance
    (no known discrepancies: for planted bugs on cases free of findings)."""
    failing = [c for c in data_parallel_comparisons(case, shards, grads) if c.failed]
    if failing:
        raise Mismatch("\n".join(c.describe() for c in failing) + f"\ncase: {case!r}, shards: {shards}")
