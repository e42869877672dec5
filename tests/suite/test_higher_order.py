"""Beyond the single gradient, for every target x device x dtype: forward-mode tangents
(``jvp``: the loss's and every layer output's), Hessian-vector products (``hvp``) and
per-example gradients (``per_example_grads``) equal the reference's ``reference.jvp``,
``reference.hvp`` and ``reference.per_example_gradients`` within their error models
(``harness.error_model_higher``); see ``harness.crossval_higher`` for the search and
the failure output.  A target that lacks a method skips, naming it.

``tests/meta/test_higher_order_catches_bugs.py`` shows that each check catches
deliberately broken methods.
"""

from __future__ import annotations

from harness.crossval_higher import check_method, method_strategy
from harness.plugin import example_budget

EXAMPLES_PER_BUDGET = 3  # three searches share the gradient test's example budget


def _budget(pytestconfig, target: str) -> int:
    return max(2, example_budget(pytestconfig, target) // EXAMPLES_PER_BUDGET)


def test_forward_mode_matches_reference(variant, recorder, run_seed, pytestconfig):
    check_method(variant, recorder, run_seed, _budget(pytestconfig, variant.target), "jvp",
                 method_strategy("jvp", variant.dtype))


def test_hessian_vector_product_matches_reference(variant, recorder, run_seed, pytestconfig):
    check_method(variant, recorder, run_seed, _budget(pytestconfig, variant.target), "hvp",
                 method_strategy("hvp", variant.dtype))


def test_per_example_gradients_match_reference(variant, recorder, run_seed, pytestconfig):
    check_method(variant, recorder, run_seed, _budget(pytestconfig, variant.target), "per_example_grads",
                 method_strategy("per_example_grads", variant.dtype))
