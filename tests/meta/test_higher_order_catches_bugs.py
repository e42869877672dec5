"""Each higher-order check catches deliberately broken methods (``broken_higher_order``):
run through the same search (unshrunk, to keep it short), each must end in a failure
that names the method and the quantity, while the real method passes the same search
(the control)."""

from __future__ import annotations

import pytest
from broken_higher_order import BROKEN

from adapters.registry import load_target
from harness import results, state
from harness.compare import Mismatch
from harness.crossval_higher import check_method, method_strategy
from harness.selection import Variant

RUN_SEED = 0

BROKEN_EXAMPLES = 10


def _variant(target: str, adapter=None) -> Variant:
    try:
        base = load_target(target)
    except ImportError as exc:
        pytest.skip(f"target {target!r} cannot be loaded: {exc}")
    return Variant(target, "cpu", "float64", adapter(base) if adapter else base)


def _recorder(request, target: str) -> results.Recorder:
    """The run's known discrepancies, matched as for ``test_...[<target>-cpu-float64]``,
    so that the control passes where a framework property is listed; they explain only
    errors within the absolute-activation model (or a listed relative size), far below
    the planted bugs."""
    name = f"{request.node.originalname}[{_variant(target).id}]"
    return results.Recorder(results.Results(), request.node.nodeid, name, request.config.stash[state.KNOWN],
                            RUN_SEED, "ci")


# Ids start with the target, so that the known discrepancies' test patterns
# (``test_*[torch*]``) apply as they do to the property tests.
BROKEN_PARAMS = [pytest.param(target, method, broken, id=f"{target}-{method}-{broken.__name__}")
                 for target in ("torch-func", "jax-jit") for method, classes in BROKEN.items() for broken in classes]
CONTROL_PARAMS = [pytest.param(target, method, id=f"{target}-{method}")
                  for target in ("torch-func", "jax-jit") for method in BROKEN]


@pytest.mark.parametrize(("target", "method"), CONTROL_PARAMS)
def test_real_method_passes_the_broken_methods_search(request, target, method):
    """The control: the search that catches the broken methods passes the real one."""
    check_method(_variant(target), _recorder(request, target), RUN_SEED, BROKEN_EXAMPLES, method,
                 method_strategy(method, "float64"))


@pytest.mark.parametrize(("target", "method", "broken"), BROKEN_PARAMS)
def test_check_catches_a_broken_method(request, target, method, broken):
    strategy = method_strategy(method, "float64")
    with pytest.raises(Mismatch, match=f"{method}: ") as failure:
        check_method(_variant(target, broken), _recorder(request, target), RUN_SEED, BROKEN_EXAMPLES, method, strategy,
                     shrink=False)
    assert "rerun exactly this test" in str(failure.value) and "case: Case(" in str(failure.value)
