"""The suite catches bugs: every deliberately broken adapter fails the suite's own search.

Each adapter of ``broken_adapters.BROKEN`` goes through ``crossval.check_quantities``
-- the search behind ``test_every_quantity_matches_reference`` -- with the default
case strategy, the example budget of the ``ci`` profile, a fixed seed and no known
discrepancies, in the dtype its bug lives in.  Bugs confined to one activation's range
are the hardest: over other seeds, tanh' wrong above z = 2 and sigmoid' flushed beyond
|z| = 15 are caught in about 8 of 10 runs at this budget (`thorough` for certainty).
The search must end in a ``Mismatch`` that names the quantity by its equation and says
how to rerun, and the case it reports must be one on which the correct base adapter
agrees with the reference: the planted bug was caught, not an inaccuracy of the base.
The control: the base adapter itself passes the same search.
"""

from __future__ import annotations

import math

import pytest

pytest.importorskip("torch", reason="the broken adapters are built on torch, which is not installed")

from broken_adapters import BROKEN, CORRECT  # noqa: E402
from hypothesis import settings  # noqa: E402

import reference  # noqa: E402
from adapters.interface import Adapter  # noqa: E402
from harness import results  # noqa: E402
from harness.compare import Mismatch, comparisons  # noqa: E402
from harness.crossval import check_quantities, expected_result, problem_of  # noqa: E402
from harness.error_model import both_bounds  # noqa: E402
from harness.selection import Variant  # noqa: E402
from harness.strategies import Case, build_case  # noqa: E402

RUN_SEED = 0
CI_EXAMPLES = settings.get_profile("ci").max_examples
CONTROL_DTYPES = sorted({adapter.bug_dtype for adapter in BROKEN})
# Bugs the default strategy catches in only some ci-budget runs (seeds 0-19, or 0-39).
# Which runs depends on the seed and on hypothesis' pool of constants, drawn from the
# project's own source, so their search is narrowed -- as a user of the suite never needs
# to -- for a result that holds for any seed.  Each entry marks a blind spot of the default.


@pytest.fixture(autouse=True)
def ci_profile():
    """The ``ci`` profile in force: derandomized and without the example database,
    which would replay one adapter's saved failure as the first example of the next."""
    previous = settings.get_current_profile_name()
    settings.load_profile("ci")
    yield
    settings.load_profile(previous)


def _recorder(request: pytest.FixtureRequest) -> results.Recorder:
    """A recorder with no known discrepancies, so none can explain a planted bug away."""
    return results.Recorder(results.Results(), request.node.nodeid, request.node.name, [], RUN_SEED, "ci")


def _reported_case(message: str) -> Case:
    """Rebuild the case a failure message prints as ``case: Case(sizes=..., seed=...)``."""
    record = next(line for line in message.splitlines() if line.startswith("case: "))

    def rebuild(*, sizes, activations, loss, reduction, batch, **arrays) -> Case:
        network = reference.Network(sizes, activations, loss=loss, reduction=reduction)
        return build_case(network, batch=batch, **arrays)

    return eval(record.removeprefix("case: "), {"__builtins__": {}, "Case": rebuild, "inf": math.inf})


def _disagreements(adapter: Adapter, case: Case) -> list[str]:
    """The quantities on which ``adapter`` disagrees with the reference for ``case``."""
    bounds, loose = both_bounds(case.network, case.params, case.x, case.t, dtype=case.dtype, lr=case.lr)
    result = adapter.compute(problem_of(case), device="cpu", dtype=case.dtype, lr=case.lr)
    return [c.quantity for c in comparisons(case, result, expected_result(case), bounds, loose) if c.failed]


@pytest.mark.parametrize("adapter", BROKEN, ids=[adapter.name for adapter in BROKEN])
def test_search_catches_each_planted_bug(adapter, request):
    assert isinstance(adapter, Adapter)
    variant = Variant(adapter.name, "cpu", adapter.bug_dtype, adapter)
    with pytest.raises(Mismatch) as caught:
        check_quantities(variant, _recorder(request), RUN_SEED, CI_EXAMPLES)
    message = str(caught.value)
    assert "Eq. " in message, f"the failure does not name the quantity by its equation:\n{message}"
    assert "rerun exactly this test: " in message, f"the failure does not say how to rerun:\n{message}"
    case = _reported_case(message)
    assert _disagreements(adapter, case), f"the rebuilt case {case!r} does not reproduce the failure"
    assert _disagreements(CORRECT, case) == [], (
        f"the correct base adapter also fails {case!r}: the search caught the base, not the bug"
    )


@pytest.mark.parametrize("dtype", CONTROL_DTYPES)
def test_correct_base_adapter_passes_the_same_search(dtype, request):
    variant = Variant(CORRECT.name, "cpu", dtype, CORRECT)
    check_quantities(variant, _recorder(request), RUN_SEED, CI_EXAMPLES)
