"""The reference's gradients against central finite differences of its own loss.

For a parameter theta (an entry of some W or b) the check compares dE/dtheta of
``reference.gradients`` with

    D(h) = (E(theta + h) - E(theta - h)) / ((theta + h) - (theta - h)),
    h = 1e-6 * max(1, |theta|),

where the denominator is taken from the two representable perturbed values, so
the step itself carries no rounding.  D(h) errs by

* truncation, h^2 E'''/6 + O(h^4): estimated from the step-doubled D(2h), since
  D(2h) - D(h) = 3 h^2 E'''/6 + O(h^4), so |D(2h) - D(h)| bounds it with room;
* rounding: each evaluation of E errs by at most eps_E = SAFETY x the error
  model's float64 bound on E (of order u |E| / cancellation-free), so the
  difference quotient errs by at most 2 eps_E / 2h = eps_E / h -- allowed twice,
  for D(2h)'s share in the truncation estimate;

plus the reference gradient's own error bound.  Tolerance:
``|D(2h) - D(h)| + 2 eps_E / h + SAFETY x bound(dE/dtheta)``.  With h ~ 1e-6 and
|E| ~ 1 that is ~1e-9: a wrong formula is off by O(|dE/dtheta|), a wrong factor in
a reduction by a factor of N or K.

FD needs E smooth within 2h of theta: the parameters are drawn at moderate
scales (W ~ N(0, 1/n_in), b ~ N(0, 0.01), x ~ N(0, 1)), and a case is rejected
when any pre-activation lies within 1e-3 (1 + |kink|) of a kink of its
activation, or of a jump of g'' (softsign at 0).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import reference
from harness.error_model import SAFETY, error_bounds
from harness.strategies import Case, cases
from reference import losses

STEP = 1e-6
KINK_MARGIN = 1e-3
SECOND_DERIVATIVE_JUMPS = {"softsign": (0.0,)}


@st.composite
def moderate_cases(draw) -> Case:
    """A case from ``strategies.cases`` (every activation, loss and reduction; at
    most 3 layers of width 5, batch 4) with parameters and x redrawn from its seed
    at unit scale; ``scales`` reads (1.0, ...) to say so."""
    case = draw(cases(depth=(1, 3), width=(1, 5), batch=(1, 4)), label="case")
    rng = np.random.default_rng(case.seed)
    sizes = case.network.sizes
    params = [(rng.standard_normal((m, n)) / math.sqrt(m), 0.1 * rng.standard_normal(n))
              for m, n in zip(sizes[:-1], sizes[1:])]
    x = rng.standard_normal(case.x.shape)
    return dataclasses.replace(case, params=params, x=x, scales=(1.0,) * len(sizes))


def _away_from_kinks(case: Case) -> bool:
    trace = reference.forward(case.network, case.params, case.x)
    for z, (name, p) in zip(trace.z, case.network.activations):
        for k in reference.ACTIVATIONS[name].kinks(**p) + SECOND_DERIVATIVE_JUMPS.get(name, ()):
            if (np.abs(z - k) <= KINK_MARGIN * (1 + abs(k))).any():
                return False
    return True


def _difference_quotient(E, params, layer: int, which: int, index: tuple, h: float) -> float:
    """(E(theta + h) - E(theta - h)) / (exact distance between the two thetas)."""
    values = []
    for sign in (1.0, -1.0):
        moved = [(W.copy(), b.copy()) for W, b in params]
        moved[layer][which][index] += sign * h
        values.append((E(moved), moved[layer][which][index]))
    (e_plus, up), (e_minus, down) = values
    return (e_plus - e_minus) / (up - down)


def _check_against_fd(what: str, E, params, layer: int, which: int, index: tuple,
                      analytic: float, eps_E: float, analytic_bound: float) -> None:
    theta = params[layer][which][index]
    h = STEP * max(1.0, abs(theta))
    d1 = _difference_quotient(E, params, layer, which, index, h)
    d2 = _difference_quotient(E, params, layer, which, index, 2 * h)
    tol = abs(d2 - d1) + 2 * eps_E / h + SAFETY * analytic_bound
    assert abs(analytic - d1) <= tol, (
        f"{what}{index}: reference {analytic!r}, central difference {d1!r} (h={h:.3g}), "
        f"|difference| {abs(analytic - d1):.3g} > tolerance {tol:.3g} "
        f"(truncation estimate {abs(d2 - d1):.3g}, rounding {2 * eps_E / h:.3g})"
    )


@settings(max_examples=150, deadline=None)
@given(case=moderate_cases())
def test_weight_and_bias_gradients_match_central_differences(case: Case) -> None:
    """dE/dW (Eqs. 6, 15) and dE/db (Eqs. 8, 18) of every entry match central
    differences of reference.loss, within the tolerance of the module docstring."""
    assume(_away_from_kinks(case))
    net, x, t = case.network, case.x, case.t
    grads = reference.gradients(net, case.params, x, t)
    bounds = error_bounds(net, case.params, x, t, dtype="float64", lr=case.lr)
    eps_E = SAFETY * bounds.loss

    def E(params):
        return reference.loss(net, params, x, t)

    for layer, (W, b) in enumerate(case.params):
        for which, array, name, eb in ((0, W, "dE/dW", bounds.dW), (1, b, "dE/db", bounds.db)):
            for index in np.ndindex(array.shape):
                _check_against_fd(f"{name} of layer {layer + 1}", E, case.params, layer, which, index,
                                  grads[layer][which][index], eps_E, eb[layer][index])


@settings(max_examples=100, deadline=None)
@given(case=moderate_cases())
def test_deltas_match_central_differences_example_by_example(case: Case) -> None:
    """Row n of every layer's delta (Eqs. 5, 14) is dE/dz for example n: with the
    batch cut to example n alone, dE_n/db = delta_n (Eq. 18), and the batch's
    reduction scales it by scale(N) / scale(1) -- 1 for "sum", 1/N for "mean".
    Checked against central differences in b of the one-example loss."""
    assume(_away_from_kinks(case))
    net, x, t = case.network, case.x, case.t
    deltas = reference.deltas(net, case.params, x, t)
    bounds = error_bounds(net, case.params, x, t, dtype="float64", lr=case.lr)
    ratio = losses.reduction_scale(net, len(x)) / losses.reduction_scale(net, 1)
    for n in range(len(x)):
        xn, tn = x[n : n + 1], t[n : n + 1]
        eps_E = SAFETY * error_bounds(net, case.params, xn, tn, dtype="float64", lr=case.lr).loss

        def E(params):
            return reference.loss(net, params, xn, tn)

        for layer in range(net.n_layers):
            for j in range(net.sizes[layer + 1]):
                _check_against_fd(f"delta of layer {layer + 1} / {ratio:g}, example {n}, unit", E,
                                  case.params, layer, 1, (j,), deltas[layer][n, j] / ratio, eps_E,
                                  bounds.deltas[layer][n, j] / ratio)
