"""The reference against exact arithmetic: mpmath at 60 significant digits.

The exact side is written here from the definitions -- each activation from its
formula, the losses from ``reference/losses.py``'s docstring, the backward pass
as the chain rule of Eqs. 5 and 14 (and the softmax Jacobian) with loops over
mpmath numbers -- and shares no code path with ``reference/``.  Inputs are
float64 numbers, exact in mpmath.  The exact formulas never form 1 - p where p
rounds to 1 even at 60 digits (log sigma(z) is -softplus(-z), 1 - sigma(z) is
sigma(-z), 1 - softmax_j is the sum of the other terms over the row sum), so 60
digits hold at every scale the strategies reach.
"""

from __future__ import annotations

import math
import warnings

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference
from harness.error_model import SAFETY, error_bounds
from harness.strategies import cases

mpf = mpmath.mpf
DIGITS = 60
ULPS = 8
EPS = 2.0**-52  # float64 spacing at 1
SUBNORMAL = 2.0**-1074  # float64 spacing below the normal range

SELU_SCALE = mpf("1.0507009873554804934193349852946")
SELU_ALPHA = mpf("1.6732632423543772848170429916717")
GELU_TANH_C = mpf("0.044715")


def _sigmoid(z):
    return 1 / (1 + mpmath.exp(-z))


def _softplus(z):
    return mpmath.log1p(mpmath.exp(z)) if z < 0 else z + mpmath.log1p(mpmath.exp(-z))


def _norm_cdf(z):
    return mpmath.erfc(-z / mpmath.sqrt(2)) / 2


def _norm_pdf(z):
    return mpmath.exp(-z * z / 2) / mpmath.sqrt(2 * mpmath.pi)


def _gelu_tanh_arg(z):  # 2 sqrt(2/pi) (z + c z^3), so that 1 + tanh(u) = 2 sigma(2u)
    return 2 * mpmath.sqrt(2 / mpmath.pi) * (z + GELU_TANH_C * z**3)


def _gelu_tanh_prime(z):
    v, dv = _gelu_tanh_arg(z), 2 * mpmath.sqrt(2 / mpmath.pi) * (1 + 3 * GELU_TANH_C * z * z)
    return _sigmoid(v) + z * _sigmoid(v) * _sigmoid(-v) * dv


def _step(cond) -> mpf:
    return mpf(1) if cond else mpf(0)


# name -> (g(z, **params), g'(z, **params)).  Exactly at a kink g' here is one of
# the one-sided derivatives, whichever the record's kink_convention picks: the
# grid skips kinks, and in a network the error model's reach spans the jump.
EXACT = {
    "identity": (lambda z: z, lambda z: mpf(1)),
    "sigmoid": (_sigmoid, lambda z: _sigmoid(z) * _sigmoid(-z)),
    "tanh": (mpmath.tanh, lambda z: mpmath.sech(z) ** 2),
    "relu": (lambda z: max(z, 0), lambda z: _step(z > 0)),
    "leaky_relu": (lambda z, slope: z if z >= 0 else slope * z, lambda z, slope: mpf(1) if z > 0 else mpf(slope)),
    "elu": (lambda z, alpha: z if z > 0 else alpha * mpmath.expm1(z),
            lambda z, alpha: mpf(1) if z > 0 else alpha * mpmath.exp(z)),
    "selu": (lambda z: SELU_SCALE * (z if z > 0 else SELU_ALPHA * mpmath.expm1(z)),
             lambda z: SELU_SCALE * (1 if z > 0 else SELU_ALPHA * mpmath.exp(z))),
    "celu": (lambda z, alpha: z if z > 0 else alpha * mpmath.expm1(z / alpha),
             lambda z, alpha: mpf(1) if z > 0 else mpmath.exp(z / alpha)),
    "softplus": (lambda z, beta, threshold: z if beta * z > threshold else _softplus(beta * z) / beta,
                 lambda z, beta, threshold: mpf(1) if beta * z > threshold else _sigmoid(beta * z)),
    "gelu": (lambda z: z * _norm_cdf(z), lambda z: _norm_cdf(z) + z * _norm_pdf(z)),
    "gelu_tanh": (lambda z: z * _sigmoid(_gelu_tanh_arg(z)), _gelu_tanh_prime),
    "silu": (lambda z: z * _sigmoid(z), lambda z: _sigmoid(z) * (1 + z * _sigmoid(-z))),
    "mish": (lambda z: z * mpmath.tanh(_softplus(z)),
             lambda z: mpmath.tanh(_softplus(z)) + z * mpmath.sech(_softplus(z)) ** 2 * _sigmoid(z)),
    "softsign": (lambda z: z / (1 + abs(z)), lambda z: 1 / (1 + abs(z)) ** 2),
    "hardtanh": (lambda z, min_val, max_val: min(max(z, mpf(min_val)), mpf(max_val)),
                 lambda z, min_val, max_val: _step(min_val < z < max_val)),
    "relu6": (lambda z: min(max(z, 0), 6), lambda z: _step(0 < z < 6)),
    "hardsigmoid": (lambda z: min(max(z + 3, 0), 6) / mpf(6), lambda z: _step(-3 < z < 3) / 6),
    "hardswish": (lambda z: z * min(max(z + 3, 0), 6) / mpf(6),
                  lambda z: mpf(0) if z <= -3 else (z / 3 + mpf(1) / 2 if z < 3 else mpf(1))),
    "log_sigmoid": (lambda z: -_softplus(-z), lambda z: _sigmoid(-z)),
}

# Every record but softmax, and the non-default parameters the strategies draw.
SPECS = [(name, dict(record.defaults)) for name, record in reference.ACTIVATIONS.items() if name != "softmax"]
SPECS += [
    ("leaky_relu", {"slope": 0.2}), ("leaky_relu", {"slope": 1.5}),
    ("elu", {"alpha": 0.5}), ("elu", {"alpha": 2.0}), ("celu", {"alpha": 0.5}), ("celu", {"alpha": 2.0}),
    ("softplus", {"beta": 2.0, "threshold": 20.0}), ("softplus", {"beta": 0.5, "threshold": math.inf}),
    ("hardtanh", {"min_val": -2.0, "max_val": 0.5}),
]
SPEC_IDS = [name + "".join(f"-{k}={v}" for k, v in p.items() if v != reference.ACTIVATIONS[name].defaults[k])
            for name, p in SPECS]
GRID = (0.0, 1e-8, -1e-8, 0.5, -0.5, 3.0, -3.0, 10.0, -10.0, 40.0, -40.0, 700.0, -700.0)
# Quantities whose float64 evaluation must round an inner argument that the
# function then amplifies (z / sqrt 2 and z^2 in gelu, z + 0.044715 z^3 in
# gelu_tanh: condition number ~z^2 for z << 0), or that cross zero at a root of g'
# (gelu', gelu_tanh', silu', mish', hardswish').  There they are held to ULPS of
# the condition-based scale |f| + |z f'| instead of |f|.
CONDITION_SCALED = {("gelu", "g"), ("gelu", "g'"), ("gelu_tanh", "g"), ("gelu_tanh", "g'"),
                    ("silu", "g'"), ("mish", "g'"), ("hardswish", "g'")}


def _evaluate(name: str, params: dict, z: float) -> dict[str, tuple[float, mpf, mpf]]:
    """{"g": (reference, exact, scale), "g'": ...} at z, the reference under -W error."""
    record, (g, g_prime) = reference.ACTIVATIONS[name], EXACT[name]
    out = {}
    for label, ref_fn, exact_fn in (("g", record.fn, g), ("g'", record.grad, g_prime)):
        with warnings.catch_warnings(), np.errstate(divide="raise", over="raise", invalid="raise"):
            warnings.simplefilter("error")
            ref = float(ref_fn(np.array([z]), **params)[0])
        zz = mpf(z)
        exact = exact_fn(zz, **params)
        scale = abs(exact)
        if (name, label) in CONDITION_SCALED:
            scale += abs(zz * mpmath.diff(lambda v: exact_fn(v, **params), zz))
        out[label] = (ref, exact, scale)
    return out


def _assert_few_ulps(name: str, params: dict, z: float) -> None:
    with mpmath.workdps(DIGITS):
        for label, (ref, exact, scale) in _evaluate(name, params, z).items():
            # An intermediate below the normal range (exp(z) for z < -708) is held
            # to the subnormal spacing, which the outer product scales by up to |z|.
            unit = max(EPS * scale, (1 + abs(mpf(z))) * mpf(SUBNORMAL))
            ulps = abs(mpf(ref) - exact) / unit
            assert ulps <= ULPS, (
                f"{label} of {name}{params or ''} at z={z!r}: reference {ref!r}, exact "
                f"{mpmath.nstr(exact, 20)}, {float(ulps):.1f} ulps of "
                f"{'|f| + |z f_prime|' if (name, label) in CONDITION_SCALED else '|f|'} > {ULPS}"
            )


@pytest.mark.parametrize(("name", "params"), SPECS, ids=SPEC_IDS)
def test_activations_match_exact_arithmetic_on_a_grid_reaching_the_tails(name: str, params: dict) -> None:
    """g and g' agree with the exact value within ULPS = 8 ulps relative to it, at
    z = 0, +-1e-8, +-0.5, +-3, +-10, +-40, +-700 (kinks skipped), with no NumPy
    warning (underflow to a correctly tiny 0 is not one).

    This reaches sigmoid'(+-40) and (+-700) (where the post's g(1 - g) is 0),
    tanh' beyond |z| ~ 19, softplus and log_sigmoid for large |z|, elu/selu/celu
    for z << 0 and gelu for z << 0.  For CONDITION_SCALED quantities the ulps are
    of |f| + |z f'|: that is the change of f under a relative change of z by one
    ulp, so the bound says the reference returns f exactly at some input within
    8 ulps of z (the backward stability the error model's ACTIVATION_ULPS
    assumes).  Near a root of g' (gelu' at z ~ -0.75, silu' ~ -1.28, mish' ~
    -1.19, hardswish' at -1.5) |g'| -> 0 while |z g''| does not; in gelu's and
    gelu_tanh's left tail the inner argument's rounding is amplified ~z^2 times
    (gelu(-37) is ~800 ulps from exact), so no float64 formula without extended
    precision does better.
    """
    kinks = reference.ACTIVATIONS[name].kinks(**params)
    for z in GRID:
        if z not in kinks:
            _assert_few_ulps(name, params, z)


@pytest.mark.parametrize(("name", "params"), SPECS, ids=SPEC_IDS)
@settings(max_examples=60, deadline=None)
@given(z=st.floats(-745.0, 745.0))
def test_activations_match_exact_arithmetic_at_any_finite_z(name: str, params: dict, z: float) -> None:
    """The grid's ULPS bound at hypothesis-drawn z anywhere in the range where
    exp(-|z|) is nonzero (shrinks toward z = 0; kinks skipped).  Past z ~ -708
    exp(z) is subnormal: there one ulp is (1 + |z|) times the subnormal spacing,
    the most an outer product z * (subnormal intermediate) can carry."""
    if z not in reference.ACTIVATIONS[name].kinks(**params):
        _assert_few_ulps(name, params, z)


def test_exact_derivatives_are_the_derivatives_of_the_exact_functions() -> None:
    """The hand-written exact g' of every record equals mpmath's numerical
    derivative of the exact g to 30 digits (away from kinks), so the oracle's
    derivative table is itself checked."""
    with mpmath.workdps(DIGITS):
        for name, params in SPECS:
            g, g_prime = EXACT[name]
            for z in (-3.7, -0.9, -1e-3, 0.3, 2.2, 8.5):
                if any(abs(z - k) < 1e-2 for k in reference.ACTIVATIONS[name].kinks(**params)):
                    continue
                numeric = mpmath.diff(lambda v: g(v, **params), mpf(z))
                assert abs(numeric - g_prime(mpf(z), **params)) <= mpf(10) ** -30 * (1 + abs(numeric)), (name, z)


def _exact_softmax(z: list) -> tuple[list, list, mpf]:
    """p = softmax(z), q = 1 - p and log of the shifted row sum, each as a sum of
    positive terms: no cancellation where p rounds to 1 even at 60 digits."""
    m = max(z)
    e = [mpmath.exp(v - m) for v in z]
    total = mpmath.fsum(e)
    top = z.index(m)
    log_total = mpmath.log1p(mpmath.fsum(v for i, v in enumerate(e) if i != top))
    q = [mpmath.fsum(v for i, v in enumerate(e) if i != j) / total for j in range(len(z))]
    return [v / total for v in e], q, log_total


def _exact_forward(net: reference.Network, params, x: np.ndarray) -> tuple[list, list, list]:
    """z_j = b_j + sum_i a_i w_ij and a_j = g(z_j), example by example (Eqs. 2-4)."""
    zs, acts, ins = [], [], []
    a = [[mpf(v) for v in row] for row in x]
    for (W, b), (name, p) in zip(params, net.activations):
        ins.append(a)
        z = [[mpf(b[j]) + mpmath.fsum(row[i] * mpf(W[i, j]) for i in range(W.shape[0]))
              for j in range(W.shape[1])] for row in a]
        a = [_exact_softmax(r)[0] if name == "softmax" else [EXACT[name][0](v, **p) for v in r] for r in z]
        zs.append(z)
        acts.append(a)
    return zs, acts, ins


def _exact_scale(net: reference.Network, batch: int) -> mpf:
    if net.reduction == "sum":
        return mpf(1)
    return mpf(1) / (batch * net.sizes[-1] if net.loss in ("mse", "bce", "bce_logits") else batch)


def _exact_output(net: reference.Network, z: list, a: list, t: np.ndarray) -> tuple[mpf, list]:
    """E and dE/dz of the output layer for one example row, unscaled."""
    t = [mpf(v) for v in t]
    k = range(len(z))
    if net.loss in ("sse", "mse"):
        c = mpf(1) / 2 if net.loss == "sse" else mpf(1)
        E = c * mpmath.fsum((a[i] - t[i]) ** 2 for i in k)
        dE_da = [2 * c * (a[i] - t[i]) for i in k]
    elif net.loss in ("bce", "bce_logits"):
        # log sigma(z) = -softplus(-z); 1 - sigma(z) = sigma(-z); a = sigma(z) in both.
        E = mpmath.fsum(t[i] * _softplus(-z[i]) + (1 - t[i]) * _softplus(z[i]) for i in k)
        if net.loss == "bce_logits":
            return E, [-t[i] * _sigmoid(-z[i]) + (1 - t[i]) * _sigmoid(z[i]) for i in k]
        dE_da = [-t[i] / a[i] + (1 - t[i]) / _sigmoid(-z[i]) for i in k]
    else:
        p, q, log_total = _exact_softmax(z)
        E = -mpmath.fsum(t[i] * (z[i] - max(z) - log_total) for i in k)  # -t log p
        # d(-sum_i t_i log p_i)/dz_j = -t_j (1 - p_j) + p_j sum_{i != j} t_i, for ce and softmax_ce.
        return E, [-t[j] * q[j] + p[j] * mpmath.fsum(t[i] for i in k if i != j) for j in k]
    name, params = net.activations[-1]
    if name == "softmax":  # the Jacobian: dE/dz_j = a_j (dE/da_j (1 - a_j) - sum_{i != j} dE/da_i a_i)
        _, q, _ = _exact_softmax(z)
        return E, [a[j] * (dE_da[j] * q[j] - mpmath.fsum(dE_da[i] * a[i] for i in k if i != j)) for j in k]
    return E, [dE_da[i] * EXACT[name][1](z[i], **params) for i in k]  # Eq. 5


def exact_backprop(net: reference.Network, params, x: np.ndarray, t: np.ndarray) -> tuple:
    """(E, deltas, dW, db) in exact arithmetic; call inside mpmath.workdps."""
    zs, acts, ins = _exact_forward(net, params, x)
    scale = _exact_scale(net, len(x))
    outputs = [_exact_output(net, z, a, row) for z, a, row in zip(zs[-1], acts[-1], t)]
    E = scale * mpmath.fsum(e for e, _ in outputs)
    deltas = [[[scale * d for d in ds] for _, ds in outputs]]
    for layer in range(net.n_layers - 2, -1, -1):
        name, p = net.activations[layer]
        W = params[layer + 1][0]
        deltas.insert(0, [
            [EXACT[name][1](zs[layer][n][j], **p) * mpmath.fsum(d[k] * mpf(W[j, k]) for k in range(W.shape[1]))
             for j in range(W.shape[0])]  # Eq. 14
            for n, d in enumerate(deltas[0])
        ])
    dW = [[[mpmath.fsum(a_in[n][i] * d[n][j] for n in range(len(x))) for j in range(len(d[0]))]
           for i in range(len(a_in[0]))] for a_in, d in zip(ins, deltas)]  # Eq. 6 / Eq. 15
    db = [[mpmath.fsum(row[j] for row in d) for j in range(len(d[0]))] for d in deltas]  # Eq. 8 / Eq. 18
    return E, deltas, dW, db


def assert_within_bound(what: str, ref, exact, bound, case) -> None:
    """Entry-wise |ref - exact| <= SAFETY * bound, with the worst entry named."""
    ref, bound = np.atleast_1d(np.asarray(ref, np.float64)), np.atleast_1d(np.asarray(bound, np.float64))
    exact = np.atleast_1d(np.array(exact, dtype=object))
    err = np.array([float(abs(mpf(r) - e)) for r, e in zip(ref.ravel(), exact.ravel())]).reshape(ref.shape)
    ratio = err / (SAFETY * bound)
    bad = ratio > 1
    if bad.any():
        i = np.unravel_index(np.argmax(ratio), ratio.shape)
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {ratio.size} entries exceed SAFETY={SAFETY} x the "
            f"error_model float64 bound; worst at {tuple(map(int, i))}: reference {float(ref[i])!r}, exact "
            f"{mpmath.nstr(exact[i], 20)}, |error| {err[i]:.3g} > {SAFETY * bound[i]:.3g} "
            f"({ratio[i]:.3g} x)\n{case!r}"
        )


@settings(max_examples=300, deadline=None)
@given(case=cases(depth=(1, 4), width=(1, 6), batch=(1, 4)))
def test_reference_matches_exact_arithmetic(case) -> None:
    """loss (Eq. 1), deltas (Eqs. 5, 14), dW (Eqs. 6, 15) and db (Eqs. 8, 18) of
    the reference sit within SAFETY x error_model's float64 bound of the exact
    values, entry by entry -- entries that cancel to ~0 included, no absolute
    floor beyond the model's own -- for every activation, loss and reduction, at
    the strategies' scales (pre-activations in the tens and beyond)."""
    net, params, x, t = case.network, case.params, case.x, case.t
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        E = reference.loss(net, params, x, t)
        deltas = reference.deltas(net, params, x, t)
        grads = reference.gradients(net, params, x, t)
    bounds = error_bounds(net, params, x, t, dtype="float64", lr=case.lr)
    with mpmath.workdps(DIGITS):
        E_x, deltas_x, dW_x, db_x = exact_backprop(net, params, x, t)
        assert_within_bound("E (Eq. 1)", E, E_x, bounds.loss, case)
        for layer in range(net.n_layers):
            eq = ("5, 6, 8" if layer == net.n_layers - 1 else "14, 15, 18").split(", ")
            n = layer + 1
            assert_within_bound(f"delta of layer {n} (Eq. {eq[0]})", deltas[layer], deltas_x[layer],
                                bounds.deltas[layer], case)
            assert_within_bound(f"dE/dW of layer {n} (Eq. {eq[1]})", grads[layer][0], dW_x[layer],
                                bounds.dW[layer], case)
            assert_within_bound(f"dE/db of layer {n} (Eq. {eq[2]})", grads[layer][1], db_x[layer],
                                bounds.db[layer], case)
