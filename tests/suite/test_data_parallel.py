"""Data-parallel gradients: the batch split over several workers or devices and the
parts' gradients all-reduced is the single-device gradient, for every selected target
x device x dtype, cross-validated against the reference within the error model.

Each target's ``data_parallel_grads`` (adapters/interface.py ``HigherOrder``) splits
the batch, in order, into ``shards`` contiguous parts (``numpy.array_split``); torch
runs DistributedDataParallel (``torch``) or torch.func.grad plus all_reduce
(``torch-func``) on gloo ranks, jax shards the batch over host CPU devices (``jax``
op by op, ``jax-jit`` jitted).  Broken implementations
(tests/meta/broken_data_parallel_*.py, tests/meta/test_data_parallel_catches_bugs.py) prove
the check can fail.

The tolerance is ``harness.data_parallel``'s: the error model plus what a split and
all-reduced sum may add.
"""

from __future__ import annotations

import pytest
from hypothesis import assume, given, seed, settings
from hypothesis import strategies as st

from adapters.interface import Unsupported, capability
from harness.compare import Mismatch
from harness.crossval import problem_of, run_hypothesis, run_or_reject
from harness.data_parallel import SHARDS, data_parallel_comparisons, failure_message
from harness.error_model import both_bounds, fits_dtype
from harness.plugin import example_budget
from harness.strategies import Case, cases

# A quarter of the plugin's per-target budget: all data-parallel tests share ~60 s on two
# cores under the ci profile, starting the gloo ranks and the jax worker included.
EXAMPLES_DIVISOR = 4


def _grads_or_reject(method, variant, case: Case, shards: int, unsupported: list[str], recorder):
    def call():
        return method(problem_of(case), device=variant.device, dtype=variant.dtype, shards=shards)

    return run_or_reject(call, variant, case, unsupported, recorder)


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
