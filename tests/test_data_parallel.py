"""Data-parallel gradients: the batch split over several workers or devices and the
parts' gradients all-reduced is the single-device gradient, for every selected target
x device x dtype, cross-validated against the reference within the error model.

Each target's ``data_parallel_grads`` (adapters/interface.py ``HigherOrder``) splits
the batch, in order, into ``shards`` contiguous parts (``numpy.array_split``); torch
runs DistributedDataParallel (``torch``) or torch.func.grad plus all_reduce
(``torch-func``) on gloo ranks, jax shards the batch over host CPU devices (``jax``
op by op, ``jax-jit`` jitted).  Broken implementations (tests/broken_data_parallel_*.py)
prove the check can fail.

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

import importlib
import math

import numpy as np
import pytest
from compare import Comparison, Mismatch
from crossval import problem_of, rebuild_expression, run_hypothesis, run_or_reject
from deltacheck_plugin import example_budget
from error_model import SAFETY, Precision, both_bounds, fits_dtype
from hypothesis import assume, given, seed, settings
from hypothesis import strategies as st
from strategies import Case, build_case, cases

import reference
from adapters.interface import Unsupported, capability
from adapters.registry import load_target

SCALINGS = 4
SHARDS = (2, 3)
# A quarter of the plugin's per-target budget: all data-parallel tests share ~60 s on two
# cores under the ci profile, starting the gloo ranks and the jax worker included.
EXAMPLES_DIVISOR = 4


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


def data_parallel_comparisons(case: Case, shards: int, grads) -> list[Comparison]:
    """dE/dW and dE/db of every layer against the reference, within the error model
    plus the split sum's allowance."""
    net = case.network
    strict, loose = both_bounds(net, case.params, case.x, case.t, dtype=case.dtype, lr=case.lr)
    want = reference.gradients(net, case.params, case.x, case.t)
    extra = split_sum_allowance(case, shards)
    out = []
    for l in range(net.n_layers):
        n, last = l + 1, l + 1 == net.n_layers
        for i, key, what, eq in ((0, "dW", "dE/dW", 6 if last else 15), (1, "db", "dE/db", 8 if last else 18)):
            bound, lbound = (strict.dW, loose.dW) if i == 0 else (strict.db, loose.db)
            out.append(Comparison(
                f"data-parallel {what} of layer {n} (Eq. {eq}, batch split over {shards} shards, all-reduced)",
                f"{key}[{n}]", case.dtype, np.asarray(grads[l][i], np.float64), want[l][i],
                SAFETY * (bound[l] + extra[l][i]), SAFETY * (lbound[l] + extra[l][i])))
    return out


def failure_message(variant, case: Case, shards: int, failing, recorder) -> str:
    parts = [len(p) for p in np.array_split(np.arange(len(case.x)), shards)]
    lines = [f"{variant.id}: {len(failing)} data-parallel quantity(ies) disagree with the reference", ""]
    lines += [c.describe() for c in failing]
    lines += [
        "", f"case: {case!r}", f"shards: {shards} (parts of {parts} rows)", "",
        "reproduce (from the repository root, PYTHONPATH=.:tests):",
        "    import numpy as np, reference, strategies; from crossval import problem_of",
        "    from adapters.registry import load_target",
        f"    case = {rebuild_expression(case)}",
        f"    got = load_target({variant.target!r}).data_parallel_grads(problem_of(case), "
        f"device={variant.device!r}, dtype={variant.dtype!r}, shards={shards})",
        "    want = reference.gradients(case.network, case.params, case.x, case.t)",
        f"rerun exactly this test: {recorder.rerun_command()}",
        "(hypothesis also prints a @reproduce_failure blob below, which replays the shrunk case)",
    ]
    return "\n".join(lines)


def _grads_or_reject(method, variant, case: Case, shards: int, unsupported: list[str], recorder):
    def call():
        return method(problem_of(case), device=variant.device, dtype=variant.dtype, shards=shards)

    return run_or_reject(call, case, unsupported, recorder)


def test_data_parallel_gradients_match_reference(variant, recorder, run_seed, pytestconfig):
    try:
        method = capability(variant.adapter, "data_parallel_grads")
    except Unsupported as exc:
        pytest.skip(str(exc))
    unsupported: list[str] = []

    @settings(max_examples=max(2, example_budget(pytestconfig, variant.target) // EXAMPLES_DIVISOR))
    @seed(run_seed)
    @given(case=cases(dtype=variant.dtype, depth=(1, 3), width=(1, 16), batch=(2, 8)), data=st.data())
    def check(case, data):
        shards = data.draw(st.sampled_from(SHARDS), label="shards")
        bounds, _ = both_bounds(case.network, case.params, case.x, case.t, dtype=case.dtype, lr=case.lr)
        assume(fits_dtype(bounds, case.dtype))
        grads = _grads_or_reject(method, variant, case, shards, unsupported, recorder)
        failing = recorder.check(variant, case, data_parallel_comparisons(case, shards, grads))
        if failing:
            raise Mismatch(failure_message(variant, case, shards, failing, recorder))

    run_hypothesis(check, unsupported)


# --- the check catches broken data-parallel gradients --------------------------------------

def _fixed_case() -> Case:
    """Five rows over two shards (parts of 3 and 2; jax pads the second), a sum loss; relu,
    whose derivative every framework forms exactly (tanh' is a known entry-wise finding)."""
    net = reference.Network((3, 4, 2), ("relu", "identity"), loss="sse", reduction="sum")
    return build_case(net, batch=5, dtype="float64", lr=0.1, seed=1, scales=(1.0, 1.0, 1.0))


def check_data_parallel(case: Case, shards: int, grads) -> None:
    failing = [c for c in data_parallel_comparisons(case, shards, grads) if c.failed]
    if failing:
        raise Mismatch("\n".join(c.describe() for c in failing) + f"\ncase: {case!r}, shards: {shards}")


def _framework_runner(framework: str):
    """(target name, the correct call, a runner of a broken function) for ``framework``."""
    if framework == "torch":
        pytest.importorskip("torch")
        from adapters import torch_distributed as dp

        return "torch", lambda fn, problem, shards: dp.on_ranks(fn, problem, "float64", shards)[0]
    pytest.importorskip("jax")
    from adapters import jax_sharded as js

    return "jax-jit", lambda fn, problem, shards: js.on_devices(fn, problem, "float64", shards, True)


# Names in tests/broken_data_parallel_{framework}.py, imported only when their test runs.
BROKEN = [
    ("torch", "ddp_without_all_reduce"), ("torch", "ddp_average_of_sums"), ("torch", "ddp_overlapping_parts"),
    ("jax", "shard_map_without_psum"), ("jax", "shard_map_pmean"), ("jax", "padding_rows_counted"),
]


@pytest.mark.parametrize(("framework", "name"), BROKEN, ids=[f"{f}-{n}" for f, n in BROKEN])
def test_data_parallel_check_catches_a_broken_split_or_all_reduce(framework: str, name: str) -> None:
    target, run = _framework_runner(framework)
    broken = getattr(importlib.import_module(f"broken_data_parallel_{framework}"), name)
    case, shards = _fixed_case(), 2
    try:
        correct = load_target(target).data_parallel_grads(problem_of(case), device="cpu", dtype="float64", shards=shards)
    except Unsupported as exc:
        pytest.skip(str(exc))
    check_data_parallel(case, shards, correct)  # the control passes
    with pytest.raises(Mismatch, match=r"data-parallel dE/d[Wb] of layer \d \(Eq\. \d+, batch split over 2 shards"):
        check_data_parallel(case, shards, run(broken, problem_of(case), shards))


@pytest.mark.parametrize("target", ["torch", "torch-func", "jax", "jax-jit"])
@pytest.mark.parametrize("shards", [0, -1, 2.0, True])
def test_a_shard_count_that_is_not_a_positive_integer_is_rejected(target: str, shards) -> None:
    pytest.importorskip("torch" if target.startswith("torch") else "jax")
    with pytest.raises(ValueError, match=rf"shards must be a positive integer .*got {shards!r}"):
        load_target(target).data_parallel_grads(problem_of(_fixed_case()), device="cpu", dtype="float64", shards=shards)
