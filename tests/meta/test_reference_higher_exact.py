"""reference.jvp and reference.hvp against exact arithmetic (mpmath, 60 digits).

The exact directional derivatives are central differences of the exact forward and
backward pass of ``test_reference_exact`` with a step of 1e-20, at a working precision
of 60 digits plus as many as the derivative is smaller than the function (tanh'(-43) =
5e-37 next to tanh = -1 needs 37 more): their truncation (~h^2) and rounding errors stay
near 1e-40 relative, far below float64's, so they stand in for the exact values.  The reference must sit within
SAFETY x the float64 bounds of ``tests/harness/error_model_higher.py``, entry by entry.
"""

from __future__ import annotations

import mpmath
import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from test_reference_exact import DIGITS, _exact_forward, assert_within_bound, exact_backprop

import reference
from harness.crossval_higher import SMOOTH_ACTIVATIONS, tangent_for
from harness.error_model_higher import hessian_computable, hvp_bounds, tangent_bounds
from harness.strategies import Case, cases

H = mpmath.mpf(10) ** -20


def _moved(params, tangent, s):
    return [(W + s * tW, b + s * tb) for (W, b), (tW, tb) in zip(_exact(params), _exact(tangent))]


def _exact(pairs):
    return [(np.array(W, dtype=object) * mpmath.mpf(1), np.array(b, dtype=object) * mpmath.mpf(1)) for W, b in pairs]


def _central(f, tangent_params, tangent_x, case: Case):
    """(f(+h) - f(-h)) / 2h along the tangent, entry by entry of f's nested lists."""
    x = np.array(case.x, dtype=object) * mpmath.mpf(1)
    tx = np.array(tangent_x, dtype=object) * mpmath.mpf(1)
    plus = f(_moved(case.params, tangent_params, H), x + H * tx)
    minus = f(_moved(case.params, tangent_params, -H), x - H * tx)
    return _difference(plus, minus)


def _digits(function_values, derivative_values) -> int:
    """60 digits plus the decades by which the smallest nonzero derivative entry lies
    below the largest function value (the central difference cancels that much)."""
    big = max(float(np.max(np.abs(v), initial=0.0)) for v in function_values)
    small = [float(np.min(np.abs(v)[np.abs(v) > 0], initial=np.inf)) for v in derivative_values]
    smallest = min(small, default=np.inf)
    decades = np.log10(big) - np.log10(smallest) if np.isfinite(smallest) and big > 0 else 0.0
    return DIGITS + 40 + min(2000, max(0, int(np.ceil(decades))))


def _difference(p, m):
    if isinstance(p, (list, tuple)):
        return [_difference(a, b) for a, b in zip(p, m)]
    return (p - m) / (2 * H)


@settings(max_examples=40, deadline=None)
@given(case=cases(depth=(1, 3), width=(1, 5), batch=(1, 3)), seed=st.integers(0, 2**16))
def test_forward_mode_matches_exact_arithmetic(case: Case, seed: int) -> None:
    """dE and every layer's da of reference.jvp (every activation and loss) sit within
    SAFETY x the float64 forward-mode bound of the exact directional derivatives."""
    net = case.network
    tp, tx = tangent_for(case, seed)
    dE, _, das = reference.jvp(net, case.params, case.x, case.t, tp, tx)
    bound = tangent_bounds(net, case.params, case.x, case.t, tp, tx, dtype="float64")
    trace = reference.forward(net, case.params, case.x)
    digits = _digits([*trace.a, np.asarray(reference.loss(net, case.params, case.x, case.t))], [*das, np.asarray(dE)])
    with mpmath.workdps(digits):
        exact_dE = _central(lambda p, x: exact_backprop(net, p, x, case.t)[0], tp, tx, case)
        exact_das = _central(lambda p, x: _exact_forward(net, p, x)[1], tp, tx, case)
        assert_within_bound("loss tangent dE", dE, exact_dE, bound.loss, case)
        for layer, (da, exact, e) in enumerate(zip(das, exact_das, bound.outputs), 1):
            assert_within_bound(f"output tangent da of layer {layer}", da, exact, e, case)


@settings(max_examples=40, deadline=None)
@given(case=cases(depth=(1, 3), width=(1, 5), batch=(1, 3), activations=SMOOTH_ACTIVATIONS),
       seed=st.integers(0, 2**16))
def test_hessian_vector_product_matches_exact_arithmetic(case: Case, seed: int) -> None:
    """reference.hvp sits within SAFETY x the float64 R-operator bound of the exact
    derivative of the exact gradient along v, entry by entry."""
    net = case.network
    assume(all(p.get("threshold", np.inf) == np.inf for _, p in net.activations))
    assume(hessian_computable(net, case.params, case.x, case.t, dtype="float64"))
    v = tangent_for(case, seed, with_x=False)[0]
    Hv = reference.hvp(net, case.params, case.x, case.t, v)
    bounds = hvp_bounds(net, case.params, case.x, case.t, v, dtype="float64")
    grads = [g for pair in reference.gradients(net, case.params, case.x, case.t) for g in pair]
    with mpmath.workdps(_digits(grads, [h for pair in Hv for h in pair])):
        exact = _central(lambda p, x: list(exact_backprop(net, p, x, case.t)[2:]), v, np.zeros_like(case.x), case)
        for layer in range(net.n_layers):
            n = layer + 1
            assert_within_bound(f"Hv for W of layer {n}", Hv[layer][0], exact[0][layer], bounds[layer][0], case)
            assert_within_bound(f"Hv for b of layer {n}", Hv[layer][1], exact[1][layer], bounds[layer][1], case)
