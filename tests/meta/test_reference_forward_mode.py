"""reference.jvp (tangent propagation) against its two oracles.

* The transpose identity: forward and reverse mode are transposes of one linear map,
  so dE = sum_l <dE/dW_l, dW_l> + <dE/db_l, db_l> + <dE/dx, dx> with the gradients of
  Eqs. 6, 8, 15, 18 and dE/dx = delta_1 W_1^T (Eq. 14 one layer further).  Allowed:
  ``jvp_error_bound`` below, taken twice (both sides are float64 computations).
* Central differences of reference.loss along the tangent, with the step-doubling
  truncation estimate and rounding allowance of test_reference_finite_differences,
  for smooth activations (no kink within reach of the step).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import reference
from harness.error_model import SAFETY, Precision, error_bounds
from harness.strategies import Case, cases

SMOOTH = ("identity", "tanh", "sigmoid", "softplus", "gelu", "silu", "log_sigmoid")
STEP = 1e-6


def tangent_of(case: Case, seed: int, *, with_x: bool = True):
    """A tangent with entries of the parameters' own scale, drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    tp = [(rng.standard_normal(W.shape) * (np.abs(W) + 1e-3), rng.standard_normal(b.shape) * (np.abs(b) + 1e-3))
          for W, b in case.params]
    tx = rng.standard_normal(case.x.shape) * (np.abs(case.x) + 1e-3) if with_x else np.zeros_like(case.x)
    return tp, tx


def jvp_error_bound(case: Case, tangent_params, *, dtype: str, absolute: bool = False) -> float:
    """The error of dE = sum <grad, tangent> computed in ``dtype`` from gradients within
    the error model: sum |tangent| x (bound of dE/dW, dE/db), plus the dot product's own
    rounding, P u sum |grad tangent| over its P terms.  The error model's gradient
    bounds are first-order sums over the same products and accumulations that tangent
    propagation performs in transposed order."""
    b = error_bounds(case.network, case.params, case.x, case.t, dtype=dtype, lr=case.lr, absolute=absolute)
    grads = reference.gradients(case.network, case.params, case.x, case.t)
    u = Precision.of(dtype).u
    count = sum(W.size + c.size for W, c in case.params)
    total = 0.0
    for l, ((gW, gb), (tW, tb)) in enumerate(zip(grads, tangent_params)):
        total += float((np.abs(tW) * b.dW[l]).sum() + (np.abs(tb) * b.db[l]).sum())
        total += count * u * float((np.abs(gW * tW)).sum() + np.abs(gb * tb).sum())
    return total


def _dot_with_gradient(case: Case, tp, tx) -> tuple[float, float]:
    """sum <grad, tangent> including dE/dx = delta_1 W_1^T, and sum of |terms|."""
    net = case.network
    grads = reference.gradients(net, case.params, case.x, case.t)
    dx = reference.deltas(net, case.params, case.x, case.t)[0] @ case.params[0][0].T  # Eq. 14, one layer on
    terms = [gW * tW for (gW, _), (tW, _) in zip(grads, tp)] + [gb * tb for (_, gb), (_, tb) in zip(grads, tp)]
    terms.append(dx * tx)
    return float(sum(t.sum() for t in terms)), float(sum(np.abs(t).sum() for t in terms))


@settings(max_examples=40, deadline=None)
@given(case=cases(dtype="float64", depth=(1, 3), width=(1, 6), batch=(1, 4)), seed=st.integers(0, 2**16).map(int))
def test_loss_tangent_equals_gradient_dotted_with_tangent(case: Case, seed: int) -> None:
    """dE of reference.jvp equals <dE/dparams, tangent> + <dE/dx, dx> (every activation
    and loss) within twice the float64 error bound of that dot product."""
    tp, tx = tangent_of(case, seed)
    dE, _, _ = reference.jvp(case.network, case.params, case.x, case.t, tp, tx)
    dot, magnitude = _dot_with_gradient(case, tp, tx)
    bound = error_bounds(case.network, case.params, case.x, case.t, dtype="float64", lr=case.lr)
    dx_bound = float(np.abs(tx).sum()) * float(np.max(bound.deltas[0], initial=0.0)) * float(np.abs(case.params[0][0]).sum())
    tol = 2 * SAFETY * (jvp_error_bound(case, tp, dtype="float64") + dx_bound) + 64 * Precision.of("float64").u * magnitude
    assert abs(dE - dot) <= tol, f"loss tangent dE {dE!r} != <grad, tangent> {dot!r}; |diff| {abs(dE - dot):.3g} > {tol:.3g}"


def _along(case: Case, tp, tx, s: float):
    params = [(W + s * tW, b + s * tb) for (W, b), (tW, tb) in zip(case.params, tp)]
    return params, case.x + s * tx


def _central(f, h: float):
    return (f(h) - f(-h)) / (2 * h)


@settings(max_examples=30, deadline=None)
@given(case=cases(dtype="float64", depth=(1, 3), width=(1, 6), batch=(1, 4), activations=SMOOTH),
       seed=st.integers(0, 2**16).map(int))
def test_tangents_match_central_differences_along_the_tangent(case: Case, seed: int) -> None:
    """dE, every dz_l and every da_l of reference.jvp match central differences of
    reference.loss / reference.forward along the tangent (smooth activations)."""
    net = case.network
    assume(all(p.get("threshold", np.inf) == np.inf for _, p in net.activations))
    tp, tx = tangent_of(case, seed)
    dE, dzs, das = reference.jvp(net, case.params, case.x, case.t, tp, tx)
    scale = 1.0 + sum(float(np.abs(W).max()) for W, _ in case.params) + float(np.abs(case.x).max())
    h = STEP * scale
    eps_E = SAFETY * error_bounds(net, case.params, case.x, case.t, dtype="float64", lr=case.lr).loss

    def E(s):
        return reference.loss(net, *_along(case, tp, tx, s), case.t)

    def trace(s):
        return reference.forward(net, *_along(case, tp, tx, s))

    d1, d2 = _central(E, h), _central(E, 2 * h)
    tol = abs(d2 - d1) + 2 * eps_E / h + 1e-9 * (1 + abs(dE))
    assert abs(dE - d1) <= tol, f"loss tangent dE: jvp {dE!r}, central difference {d1!r}, tolerance {tol:.3g}"
    plus, minus, plus2, minus2 = trace(h), trace(-h), trace(2 * h), trace(-2 * h)
    for l in range(net.n_layers):
        for name, got, get in (("dz", dzs[l], lambda tr: tr.z[l]), ("da", das[l], lambda tr: tr.a[l])):
            f1 = (get(plus) - get(minus)) / (2 * h)
            f2 = (get(plus2) - get(minus2)) / (4 * h)
            eps = 8 * Precision.of("float64").u * (np.abs(get(plus)) + scale) / h
            tol = np.abs(f2 - f1) + eps + 1e-9 * (1 + np.abs(got))
            bad = np.abs(got - f1) > tol
            assert not bad.any(), f"{name} of layer {l + 1} (tangent of Eq. 3/4): jvp {got[bad]}, central difference {f1[bad]}"


def test_tangent_of_the_wrong_shape_is_rejected() -> None:
    net = reference.Network((2, 1), ("identity",))
    params = [(np.ones((2, 1)), np.zeros(1))]
    x, t = np.ones((1, 2)), np.ones((1, 1))
    with pytest.raises(ValueError, match=r"tangent of layer 1 has dW of shape \(1, 2\)"):
        reference.jvp(net, params, x, t, [(np.ones((1, 2)), np.zeros(1))], np.zeros((1, 2)))
    with pytest.raises(ValueError, match="tangent_params has 2 layers"):
        reference.jvp(net, params, x, t, params * 2, np.zeros((1, 2)))
    with pytest.raises(ValueError, match=r"tangent_x has shape \(2,\)"):
        reference.jvp(net, params, x, t, params, np.zeros(2))
