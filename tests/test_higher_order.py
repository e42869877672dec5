"""Beyond the single gradient, for every target x device x dtype: forward-mode tangents
(``jvp``: the loss's and every layer output's), Hessian-vector products (``hvp``) and
per-example gradients (``per_example_grads``) equal the reference's ``reference.jvp``,
``reference.hvp`` and ``reference.per_example_gradients`` within their error models
(``tests/error_model_higher.py``); see ``tests/crossval_higher.py`` for the search and
the failure output.  A target that lacks a method skips, naming it.

Each check also catches deliberately broken methods (``tests/broken_higher_order.py``):
run through the same search (unshrunk, to keep it short), each must end in a failure
that names the method and the quantity, while the real method passes the same search
(the control).
"""

from __future__ import annotations

import pytest
import results
from broken_higher_order import BROKEN
from compare import Mismatch
from crossval_higher import METHODS, check_method
from deltacheck_plugin import example_budget
from selection import Variant
from strategies import cases

from adapters.registry import load_target

RUN_SEED = 0
EXAMPLES_PER_BUDGET = 3  # three searches share the gradient test's example budget


def _strategy(method: str, dtype: str):
    acts = METHODS[method].activations
    kw = {} if acts is None else {"activations": acts}
    return cases(dtype=dtype, depth=(1, 3), width=(1, 8), batch=(1, 6), **kw)


def _budget(pytestconfig, target: str) -> int:
    return max(2, example_budget(pytestconfig, target) // EXAMPLES_PER_BUDGET)


def test_forward_mode_matches_reference(variant, recorder, run_seed, pytestconfig):
    check_method(variant, recorder, run_seed, _budget(pytestconfig, variant.target), "jvp",
                 _strategy("jvp", variant.dtype))


def test_hessian_vector_product_matches_reference(variant, recorder, run_seed, pytestconfig):
    check_method(variant, recorder, run_seed, _budget(pytestconfig, variant.target), "hvp",
                 _strategy("hvp", variant.dtype))


def test_per_example_gradients_match_reference(variant, recorder, run_seed, pytestconfig):
    check_method(variant, recorder, run_seed, _budget(pytestconfig, variant.target), "per_example_grads",
                 _strategy("per_example_grads", variant.dtype))


# --- the checks catch broken methods ------------------------------------------------------

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
    return results.Recorder(results.Results(), request.node.nodeid, name, request.config._deltacheck_known,
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
                 _strategy(method, "float64"))


@pytest.mark.parametrize(("target", "method", "broken"), BROKEN_PARAMS)
def test_check_catches_a_broken_method(request, target, method, broken):
    strategy = _strategy(method, "float64")
    with pytest.raises(Mismatch, match=f"{method}: ") as failure:
        check_method(_variant(target, broken), _recorder(request, target), RUN_SEED, BROKEN_EXAMPLES, method, strategy,
                     shrink=False)
    assert "rerun exactly this test" in str(failure.value) and "case: Case(" in str(failure.value)
