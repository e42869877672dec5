"""reference.hvp (Pearlmutter's R-operator) against central differences of
reference.gradients along the direction, and its table of second derivatives against
central differences of g'.

Hv is compared with D(h) = (grad(p + h v) - grad(p - h v)) / 2h, where v is replaced by
the direction actually taken, ((p + h v) - (p - h v)) / 2h computed exactly from the two
representable points, so the step carries no rounding.  D(h) errs by truncation,
estimated from the step-doubled D(2h), and by rounding, 2 eps_g / 2h with eps_g =
SAFETY x the error model's float64 bound of each gradient entry.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from test_reference_forward_mode import SMOOTH, tangent_of

import reference
from harness.error_model import SAFETY, Precision, error_bounds
from harness.strategies import Case, cases

STEP = 1e-5


def smooth(case: Case) -> bool:
    """Every activation has a second derivative (softplus only without its threshold)."""
    return all(name in (*SMOOTH, "softmax") and p.get("threshold", np.inf) == np.inf
               for name, p in case.network.activations)


def _difference_quotient(case: Case, v, h: float):
    plus = [(W + h * vW, b + h * vb) for (W, b), (vW, vb) in zip(case.params, v)]
    minus = [(W - h * vW, b - h * vb) for (W, b), (vW, vb) in zip(case.params, v)]
    taken = [((Wp - Wm) / (2 * h), (bp - bm) / (2 * h)) for (Wp, bp), (Wm, bm) in zip(plus, minus)]
    gp, gm = (reference.gradients(case.network, p, case.x, case.t) for p in (plus, minus))
    return [((a - c) / (2 * h), (b - d) / (2 * h)) for (a, b), (c, d) in zip(gp, gm)], taken


@settings(max_examples=30, deadline=None)
@given(case=cases(dtype="float64", depth=(1, 3), width=(1, 6), batch=(1, 4), activations=SMOOTH),
       seed=st.integers(0, 2**16).map(int))
def test_hessian_vector_product_matches_central_differences_of_the_gradient(case: Case, seed: int) -> None:
    """H v from the R-operator matches central differences of dE/dW and dE/db along v."""
    assume(smooth(case))
    v, _ = tangent_of(case, seed, with_x=False)
    h = STEP
    d1, taken = _difference_quotient(case, v, h)
    d2, taken2 = _difference_quotient(case, v, 2 * h)
    hv = reference.hvp(case.network, case.params, case.x, case.t, taken)
    b = error_bounds(case.network, case.params, case.x, case.t, dtype="float64", lr=case.lr)
    for l in range(case.network.n_layers):
        for i, what, eps in ((0, "dW", b.dW[l]), (1, "db", b.db[l])):
            tol = np.abs(d2[l][i] - d1[l][i]) + 2 * SAFETY * eps / h + 1e-7 * np.abs(hv[l][i]) + 1e-12
            diff = np.abs(hv[l][i] - d1[l][i])
            assert (diff <= tol).all(), (
                f"Hessian-vector product, d(dE/{what[1:]})/dv of layer {l + 1} (R-operator on Eqs. 5, 14, 15): "
                f"R-op {hv[l][i][diff > tol]}, central difference {d1[l][i][diff > tol]}"
            )


@pytest.mark.parametrize("name", sorted(reference.SECOND_DERIVATIVES))
def test_second_derivatives_match_central_differences_of_the_first(name: str) -> None:
    """g'' of the table against (g'(z + h) - g'(z - h)) / 2h on [-8, 8]: truncation
    estimated by step doubling, rounding 2 x 4 u (|g'| + 1) / 2h (g' to a few ulps)."""
    record = reference.ACTIVATIONS[name]
    p = dict(record.defaults)
    z = np.linspace(-8.0, 8.0, 161)
    h = 1e-5
    fd1 = (record.grad(z + h, **p) - record.grad(z - h, **p)) / (2 * h)
    fd2 = (record.grad(z + 2 * h, **p) - record.grad(z - 2 * h, **p)) / (4 * h)
    got = reference.SECOND_DERIVATIVES[name](z, **p)
    tol = np.abs(fd2 - fd1) + 8 * Precision.of("float64").u * (np.abs(record.grad(z, **p)) + 1) / h
    bad = np.abs(got - fd1) > tol
    assert not bad.any(), f"g'' of {name} at z = {z[bad]}: table {got[bad]}, central difference {fd1[bad]}"


@pytest.mark.parametrize("activation", ["relu", "elu", "softsign", ("softplus", {"threshold": 20.0})])
def test_hvp_of_a_non_smooth_activation_is_rejected(activation) -> None:
    net = reference.Network((1, 1), (activation,))
    params = [(np.ones((1, 1)), np.zeros(1))]
    name = activation if isinstance(activation, str) else activation[0]
    with pytest.raises(ValueError, match=name):
        reference.hvp(net, params, np.ones((1, 1)), np.ones((1, 1)), params)
