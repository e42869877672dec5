"""The error model: how far a correct dtype computation may sit from the reference.

A framework that computes the derivation in a dtype with unit roundoff u makes a
rounding error in every operation.  This module runs the same forward and backward
pass as ``reference/`` on *bounded values* (``tests/harness/bounded_arithmetic.py``) -- a
float64 value and an absolute error bound -- and propagates first-order error bounds operation by operation:

* a sum of n products (a matmul entry, a bias added) errs by
  ``n u sum |a_i w_i|`` plus the propagated input errors ``sum e(a_i) |w_i|``
  (the standard gamma_n bound; it grows with the accumulation length of *that
  entry*, never with the size of the array);
* an element-wise product or difference by ``u |result|`` plus the propagated errors;
* an activation (or its derivative) evaluated at z with error e(z) by the largest
  change of the function over ``z +- (e(z) + c u |z|)`` -- which covers a
  backward-stable evaluation and a kink within reach -- plus ``c u |g(z)|``;
* every operation may also lose up to the dtype's smallest normal number to
  underflow or flush-to-zero.

The result is, per entry of every quantity, the error a correct computation can
reach.  Tests allow ``SAFETY`` times that; the largest error / allowed ratio of a
run is printed so the model's tightness is visible.

Two variants: the *strict* model assumes every activation and derivative is
evaluated accurately relative to itself (as the reference does); the
*absolute-activation* model also allows each activation value an absolute error of
a few u (1 + |z|), each derivative 16u (1 + |g(z)|), plus the growth of a factor that
multiplies the output (``FROM_OUTPUT_SENSITIVITY``) (twice the
output error of XLA's float64 tanh near 1, from which 1 - y^2 is formed), and each log-loss term and
loss probability a few u, which is what common
implementations reach when they form a derivative from the rounded output y
(sigmoid' = y(1 - y), tanh' = 1 - y^2: total loss of relative accuracy in the
tails), as a difference of O(1) terms (autodiff of softsign's z / (1 + |z|)), or
through 1 + erf and 1 + tanh, which cancel for z << 0 (gelu).  Entry-wise verdicts
use the strict model; tensor-wise verdicts, and known-discrepancy entries marked
``activation_error = "absolute"``, the absolute-activation one.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

import reference
from harness.bounded_arithmetic import (  # noqa: F401  (re-exported: the error model's vocabulary)
    ACTIVATION_ULPS,
    Bounded,
    Precision,
    _Arith,
    numpy_dtype,
    round_to,
)
from reference import activations as acts
from reference import losses as ref_losses
from reference.activations import ACTIVATIONS, softmax

if TYPE_CHECKING:
    from harness.strategies import Case

Array = np.ndarray
SAFETY = 2.0  # covers the reference's own float64 rounding, of the same size in float64 tests
# The absolute-activation model's error of a derivative formed from the rounded output y
# (1 - y^2, y (1 - y)), in u (1 + |g|): 2 x the output's own error, which for XLA's float64
# tanh near +-1 is 3.5 ulp = 7u -- jax's mish'(19.94) = tanh(sp) + z (1 - tanh(sp)^2) s(z)
# errs by 268u (1 + |g| = 21), past 2 x 4u x 21 = 168u allowed with 4 ulps.
FROM_OUTPUT_ULPS = 16.0
# Derivatives that multiply the rounded output by a factor growing with |z|: the
# from-output error of the derivative is the output's error times |d g' / d y| on top of
# 1 + |g|.  gelu_tanh' = 0.5 (1 + y) + 0.5 z (1 - y^2) v'(z), y = tanh(v): |d g'/d y| <=
# 0.5 + |z| v'(z), so XLA's float64 tanh (7u near -1) makes jax's gelu_tanh'(-6) err by
# 38.6u (mpmath), past the 16u that 1 + |g| allowed; |z| v'(-6) = 27.9.
FROM_OUTPUT_SENSITIVITY = {
    "gelu_tanh": lambda z: np.abs(np.clip(z, -1e4, 1e4)) * math.sqrt(2.0 / math.pi)
    * (1.0 + 3 * 0.044715 * np.clip(z, -1e4, 1e4) ** 2),
}
# A known finding's relative errors of an activation: {name: rel} (of the value), or
# {name: (of the value, of the derivative, z from, z to)}.
ForwardErrors = dict[str, float | tuple[float, float, float, float]]
# Errors the parameters carry into a step, [(e(W), e(b)), ...] (a trajectory's earlier steps).
ParamErrors = Sequence[tuple[Array, Array]]


def _relative_error(spec: float | tuple[float, float, float, float], which: int, z: Array) -> Array | float:
    """The value's (``which`` = 0) or the derivative's (1) relative error where z lies in
    the finding's range."""
    if not isinstance(spec, tuple):
        return spec if which == 0 else 0.0
    return np.where((z >= spec[2]) & (z <= spec[3]), spec[which], 0.0)

@dataclass(frozen=True)
class Bounds:
    """Per-entry error bounds of every quantity the suite compares."""

    loss: float
    deltas: list[Array]
    dW: list[Array]
    db: list[Array]
    stepped_W: list[Array]
    stepped_b: list[Array]
    max_magnitude: float  # largest intermediate magnitude, to reject cases that overflow

    def of(self, key: str, layer: int) -> Array:
        """The bound of quantity ``key`` (loss, delta, dW, db, W_step, b_step) of a layer."""
        if key == "loss":
            return np.asarray(self.loss)
        table = {"delta": self.deltas, "dW": self.dW, "db": self.db,
                 "W_step": self.stepped_W, "b_step": self.stepped_b}
        return table[key][layer]


def trajectory_bounds(net: reference.Network, params: reference.Params, x: Array, t: Array, *, dtype: str, lr: float,
                      steps: int, absolute: bool | frozenset[str] = False, forward_errors: ForwardErrors | None = None,
) -> list[tuple[list[Array], list[Array]]]:
    """Per-entry bounds on how far a dtype computation of ``steps`` full-batch steps
    may drift from the exact trajectory: each step's bound takes the previous step's
    parameter errors as input errors of the forward and backward pass, so the bound
    grows with the step count by exactly the error model's own propagation."""
    history: list[tuple[list[Array], list[Array]]] = []
    errors: ParamErrors | None = None
    for _ in range(steps):
        b = error_bounds(net, params, x, t, dtype=dtype, lr=lr, absolute=absolute, param_errors=errors,
                         forward_errors=forward_errors)
        errors = list(zip(b.stepped_W, b.stepped_b))
        history.append((b.stepped_W, b.stepped_b))
        params = reference.sgd_step(params, reference.gradients(net, params, x, t), lr)
    return history


def both_bounds(net: reference.Network, params: reference.Params, x: Array, t: Array, *, dtype: str, lr: float) -> tuple[Bounds, Bounds]:
    """The strict and the absolute-activation bounds of the same case, equal to
    ``error_bounds(...)`` and ``error_bounds(..., absolute=True)``, bit for bit.  One pass
    computes both: every error carries a leading axis of 2 (strict, absolute), so each
    value, and each array operation on the small arrays of a case, is done once."""
    strict, loose = _bounds(_Arith(Precision.of(dtype), both=True), net, params, x, t, lr, None)
    return strict, loose


_GRID = np.linspace(-4.0, 4.0, 33)


def _landmarks(net: reference.Network, layer: int) -> Array:
    name, params = net.activations[layer]
    return _landmarks_of(name, tuple(sorted(params.items())))


@functools.lru_cache(maxsize=256)
def _landmarks_of(name: str, params: tuple[tuple[str, float], ...]) -> Array:
    kinks = np.array(ACTIVATIONS[name].kinks(**dict(params)), dtype=np.float64)
    side = 1e-9 * np.maximum(1.0, np.abs(kinks))
    landmarks = np.concatenate([_GRID, kinks - side, kinks + side])
    landmarks.flags.writeable = False  # shared between calls
    return landmarks


def _sigmoid_terms(z: Array) -> Array:
    return acts.sigmoid(z) * (1.0 + np.abs(z) * acts.sigmoid(-z))


def _gelu_tanh_terms(z: Array) -> Array:
    zc = np.clip(z, -1e4, 1e4)
    v = 2.0 * math.sqrt(2.0 / math.pi) * (zc + 0.044715 * zc**3)
    dv = 2.0 * math.sqrt(2.0 / math.pi) * (1.0 + 3 * 0.044715 * zc * zc)
    return acts.sigmoid(v) + np.abs(zc) * acts.sigmoid_prime(v) * dv


def _mish_terms(z: Array) -> Array:
    sp = acts.softplus(z)
    return np.tanh(sp) + np.abs(z) * (1.0 - np.tanh(sp) ** 2) * acts.sigmoid(z)


# Derivatives that are sums of terms which cancel near a root of g' (gelu' = 0 at
# z ~ -0.75, silu' at ~ -1.28, ...): any evaluation of the formula errs by u times the
# sum of the terms' magnitudes, not by u |g'|.  Values: that sum.
DERIVATIVE_TERMS = {
    "gelu": lambda z: acts.norm_cdf(z) + np.abs(z) * acts.norm_pdf(z),
    "gelu_tanh": _gelu_tanh_terms,
    "silu": _sigmoid_terms,
    "mish": _mish_terms,
    "hardswish": lambda z: np.where(np.abs(z) < 3.0, np.abs(z) / 3.0 + 0.5, 1.0),
}


def _derivative(ar: _Arith, net: reference.Network, layer: int, z: Bounded,
                forward_errors: ForwardErrors | None = None) -> Bounded:
    """g'(z) as a bounded value.  A factor of g' (sigmoid(z) in silu') may underflow
    to 0 although g' itself is representable, and the incoming gradient then scales
    that loss: the floor rides on g' so that the product below carries it.  The
    absolute-activation model adds a few u absolute error; a known finding's relative
    error of the derivative (``forward_errors``) adds its share."""
    d = ar.apply(
        _activation(net, layer, derivative=True), z, DERIVATIVE_TERMS.get(net.activations[layer][0]),
        _landmarks(net, layer),
    )
    d = Bounded(d.v, d.e + _underflow_floor(ar, z))
    name = net.activations[layer][0]
    if forward_errors and name in forward_errors:
        d = Bounded(d.v, d.e + _relative_error(forward_errors[name], 1, z.v) * np.abs(d.v))
    if not ar.loose_for(name):
        return d
    g = np.abs(_activation(net, layer, derivative=False)(z.v))
    sensitivity = FROM_OUTPUT_SENSITIVITY[name](z.v) if name in FROM_OUTPUT_SENSITIVITY else 0.0
    return Bounded(d.v, ar.loosen(d.e, FROM_OUTPUT_ULPS * ar.p.u * (1.0 + g + sensitivity), name))


def _activation(net: reference.Network, layer: int, derivative: bool) -> Callable[[Array], Array]:
    name, params = net.activations[layer]
    record = ACTIVATIONS[name]
    fn = record.grad if derivative else record.fn
    return lambda z: fn(z, **params)


def _softmax_bounded(ar: _Arith, z: Bounded) -> Bounded:
    """softmax_k = exp(z_k - lse(z)) moves by at most a_k expm1(e_k + |d lse|), with
    |d lse| <= sum_j a_j e_j + e_max^2 / 2 (lse's Hessian is at most 1 in the largest
    direction) and <= e_max; and never by more than 1.  For small errors this is the
    first-order a_k (e_k + sum_j a_j e_j); it stays a bound when e(z) is O(1) or more
    (bfloat16 logits of 1e5 carry errors of 1e6, where the first-order form gave 1e-6
    for a probability that can be anything).  exp and the row sum round."""
    a = softmax(z.v)
    k = z.v.shape[-1]
    e_max = z.e.max(axis=-1, keepdims=True)
    d_lse = np.minimum(e_max, (a * z.e).sum(axis=-1, keepdims=True) + 0.5 * e_max**2)
    reach = z.e + d_lse
    shifted = z.v - z.v.max(axis=-1, keepdims=True)
    log_a = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))  # a may underflow; log a not
    with np.errstate(over="ignore", invalid="ignore"):
        far = np.exp(np.minimum(log_a + reach, 0.0))  # a exp(reach) >= a expm1(reach), in the log domain
        spread = np.minimum(1.0, np.where(reach < 1.0, a * np.expm1(np.minimum(reach, 1.0)), far))
    return Bounded(a, spread + (k + 2) * ACTIVATION_ULPS * ar.p.u * a + ar.p.tiny)


def _forward(ar: _Arith, net: reference.Network, params, x: Array, perr,
             forward_errors: ForwardErrors | None = None) -> tuple[list[Bounded], list[Bounded], list[Bounded]]:
    zs, acts, ins = [], [], []
    a = ar.exact(x)
    for layer, (W, b) in enumerate(params):
        ins.append(a)
        z = ar.affine(a, W, b, *perr[layer])
        if net.activations[layer][0] == "softmax":
            a = _softmax_bounded(ar, z)
        else:
            a = ar.apply(_activation(net, layer, derivative=False), z, landmarks=_landmarks(net, layer))
            # A factor of g (sigmoid(z) in silu = z sigmoid(z)) may underflow although g is
            # representable: 0 for silu(-89) = -2e-37 in float32.
            a = Bounded(a.v, a.e + _underflow_floor(ar, z))
            name = net.activations[layer][0]
            a = Bounded(a.v, ar.loosen(a.e, ACTIVATION_ULPS * ar.p.u * (1.0 + np.abs(z.v)), name))
            if forward_errors and name in forward_errors:
                # A known finding's own relative error of the activation's value.
                a = Bounded(a.v, a.e + _relative_error(forward_errors[name], 0, z.v) * np.abs(a.v))
        zs.append(z)
        acts.append(a)
    return zs, acts, ins


def _sum_all(ar: _Arith, terms: Bounded, scale: float):
    """The bound of the sum of all (batch, n_out) terms times ``scale``: a float (both
    models: a pair); for a stack of networks, an array of one per network."""
    n = terms.v.shape[-2] * terms.v.shape[-1]
    mag = n * ar.p.u * _network_sum(np.abs(terms.v))
    rounding = ar.p.u * np.abs(scale * _network_sum(terms.v))
    sums = [_network_sum(e) for e in terms.e] if ar.both else [_network_sum(terms.e)]
    bounds = tuple(_scalar(abs(scale) * (e + mag + n * ar.p.tiny) + rounding) for e in sums)
    return bounds if ar.both else bounds[0]


def _network_sum(x: Array) -> Array:
    """The sum over a network's (batch, n_out) entries: one per network of a stack."""
    return x.reshape(*x.shape[:-2], -1).sum(axis=-1)


def _scalar(x: Array) -> float | Array:
    return float(x) if np.ndim(x) == 0 else x


def _weighted(weight: Array, e: Array) -> Array:
    """weight * e; an infinite error stays infinite even under a zero weight, since
    autodiff of t log(a) at a = 0 gives 0 * inf = NaN (with xlogy too)."""
    return np.where(np.isinf(e), np.inf, weight * np.where(np.isinf(e), 0.0, e))


def _loss_bound(ar: _Arith, net: reference.Network, z: Bounded, a: Bounded, t: Array) -> float:
    scale = ref_losses.reduction_scale(net, t.shape[-2])
    T = ar.exact(t)
    if net.loss in ("sse", "mse"):
        d = ar.sub(a, T)
        return _sum_all(ar, ar.mul(d, d), scale * (0.5 if net.loss == "sse" else 1.0))
    if net.loss == "bce":
        one_minus = Bounded(reference.activations.sigmoid(-z.v), a.e + ar.p.u)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_a, log_1ma = ar.apply(np.log, a), ar.apply(np.log, one_minus)
        terms = Bounded(
            ref_losses.loss_terms(net, z.v, a.v, t), _weighted(t, log_a.e) + _weighted(1 - t, log_1ma.e)
        )
    elif net.loss == "bce_logits":
        sp = reference.activations.softplus
        pos, neg = ar.apply(sp, z), ar.apply(lambda v: sp(-v), z)
        terms = Bounded(ref_losses.loss_terms(net, z.v, a.v, t), t * neg.e + (1 - t) * pos.e)
    elif net.loss == "ce":
        with np.errstate(divide="ignore", invalid="ignore"):
            log_a = ar.apply(np.log, a)
        terms = Bounded(ref_losses.loss_terms(net, z.v, a.v, t), _weighted(t, log_a.e))
    else:  # softmax_ce: log softmax by the shifted log-sum-exp
        k = z.v.shape[-1]
        shift = z.v - z.v.max(axis=-1, keepdims=True)
        lse = np.log(np.exp(shift).sum(axis=-1, keepdims=True))
        e_lsm = z.e + z.e.max(axis=-1, keepdims=True) + (k + 2) * ar.p.u * (np.abs(shift) + lse)
        terms = Bounded(ref_losses.loss_terms(net, z.v, a.v, t), t * e_lsm)
    terms = Bounded(terms.v, terms.e + 2 * ar.p.u * np.abs(terms.v) + ar.p.tiny)
    # log(1 + e) through log rather than log1p: a few u absolute.  On logits, the term
    # formed as (1 - t) z + (max(-z, 0) + log(...)) -- torch's bce_with_logits -- rounds
    # at the scale of |z| before z cancels: ulp(32.4) = 7.1e-15 for 8.49e-15 at z = -32.4,
    # t = 0 in float64, an absolute error of u |z| as an activation's.
    extra = ACTIVATION_ULPS * ar.p.u * ((1.0 + np.abs(z.v)) if net.loss == "bce_logits" else 1.0)
    terms = Bounded(terms.v, ar.loosen(terms.e, extra, net.loss))
    return _sum_all(ar, terms, scale)


def _from_log_domain(ar: _Arith, p: Bounded, z: Array, t: Array, loss: str) -> Bounded:
    """A probability that autodiff of a log-loss forms as exp(z - lse) (or through the
    JVP of logaddexp): the difference is rounded with an absolute error of about
    u (1 + |z|), so p -- and 1 - p, which the loss's gradient may form instead --
    carry that relative error."""
    extra = ACTIVATION_ULPS * ar.p.u * (1.0 + np.abs(z)) * (np.abs(p.v) + np.abs(t))
    loose = extra + ACTIVATION_ULPS * ar.p.u  # formed as 1 - (1 - p): a few u absolute
    if ar.both:
        e = p.e + extra
        e[1] = p.e[1] + loose
        return Bounded(p.v, e)
    return Bounded(p.v, p.e + (loose if ar.loose_for(loss) else extra))


def _underflow_floor(ar: _Arith, z: Bounded) -> Array:
    """A product of the incoming gradient with a factor of g' (sigmoid(z) in silu')
    may underflow before the rest of g' (up to |z| in size) multiplies it in."""
    return ACTIVATION_ULPS * ar.p.tiny * (1.0 + np.abs(z.v))


def _output_delta(ar: _Arith, net: reference.Network, z: Bounded, a: Bounded, t: Array,
                  forward_errors: ForwardErrors | None = None) -> Bounded:
    scale = ref_losses.reduction_scale(net, t.shape[-2])
    T = ar.exact(t)
    if ref_losses.has_fused_delta(net):
        if net.loss in ("bce", "bce_logits"):
            p = _from_log_domain(ar, ar.apply(reference.activations.sigmoid, z), z.v, t, net.loss)
        elif net.loss in ("ce", "softmax_ce"):
            shift = np.abs(z.v - z.v.max(axis=-1, keepdims=True))
            p = _from_log_domain(ar, _softmax_bounded(ar, z), shift, t, net.loss)
            p = ar.mul(p, ar.exact(t.sum(axis=-1, keepdims=True)))
        else:
            p = a
        return ar.scale(ar.sub(p, T), scale)
    grad_a = ar.scale(ar.sub(a, T), scale * (2.0 if net.loss == "mse" else 1.0))
    if net.activations[-1][0] == "softmax":
        ga = ar.mul(grad_a, a)
        k = a.v.shape[-1]
        s = Bounded(ga.v.sum(-1, keepdims=True), ga.e.sum(-1, keepdims=True) + k * ar.p.u * np.abs(ga.v).sum(-1, keepdims=True))
        return ar.mul(a, ar.sub(grad_a, s))
    d = ar.mul(grad_a, _derivative(ar, net, net.n_layers - 1, z, forward_errors))
    return Bounded(d.v, d.e + _underflow_floor(ar, z))


def _deltas(ar: _Arith, net: reference.Network, params, zs: list[Bounded], acts: list[Bounded], t: Array,
            perr, forward_errors: ForwardErrors | None = None) -> list[Bounded]:
    """Every layer's delta as a bounded value: Eq. 5, then Eq. 14 layer by layer."""
    ds = [_output_delta(ar, net, zs[-1], acts[-1], t, forward_errors)]
    for layer in range(net.n_layers - 2, -1, -1):
        eW_next = perr[layer + 1][0]
        back = ar.affine(ds[-1], np.swapaxes(params[layer + 1][0], -1, -2), eW=None if eW_next is None else eW_next.T)
        d = ar.mul(_derivative(ar, net, layer, zs[layer], forward_errors), back)
        ds.append(Bounded(d.v, d.e + _underflow_floor(ar, zs[layer])))
    return ds[::-1]


def error_bounds(
    net: reference.Network, params: reference.Params, x: Array, t: Array, *, dtype: str, lr: float,
    absolute: bool | frozenset[str] = False, param_errors: ParamErrors | None = None, forward_errors: ForwardErrors | None = None,
) -> Bounds:
    """Per-entry error bounds for a ``dtype`` computation of loss, deltas, dW, db and
    one SGD step of ``net`` on ``(params, x, t)`` -- values already in ``dtype``.
    ``absolute`` selects the absolute-activation model (see the module docstring), for
    every activation and loss or for the set of names given; ``forward_errors`` gives
    activations relative errors of their own ({name: relative error of the value} or
    {name: (of the value, of the derivative, z from, z to)}), for a known finding such as
    a float32 constant in float64."""
    (bounds,) = _bounds(_Arith(Precision.of(dtype), absolute), net, params, x, t, lr, param_errors, forward_errors)
    return bounds


def _bounds(ar: _Arith, net: reference.Network, params: reference.Params, x: Array, t: Array, lr: float,
            param_errors: ParamErrors | None,
            forward_errors: ForwardErrors | None = None) -> list[Bounds]:
    """``error_bounds`` under ``ar``'s model, or under both models (``ar.both``).  The
    arrays may carry a leading axis of networks (``set_bounds``): every operation acts
    on a network's trailing axes, and the reductions below go per network."""
    params = [(np.asarray(W, np.float64), np.asarray(b, np.float64)) for W, b in params]
    perr: Sequence[tuple[Array | None, Array | None]] = param_errors or [(None, None)] * len(params)
    zs, acts, ins = _forward(ar, net, params, np.asarray(x, np.float64), perr, forward_errors)
    t = np.asarray(t, np.float64)
    # The loss bound and the magnitude are floats for one network, arrays of one per network
    # for a stack (``_network`` takes them apart), and the loss bound a pair under both models.
    loss_e: Any = _loss_bound(ar, net, zs[-1], acts[-1], t)
    unreduced = _network_sum(np.abs(ref_losses.loss_terms(net, zs[-1].v, acts[-1].v, t)))
    ds = _deltas(ar, net, params, zs, acts, t, perr, forward_errors)
    dW = [ar.outer_sum(a_in, d) for a_in, d in zip(ins, ds)]
    db = [ar.column_sum(d) for d in ds]
    u = ar.p.u
    stepped_W = [lr * g.e + u * (2 * lr * np.abs(g.v) + np.abs(W - lr * g.v)) for (W, _), g in zip(params, dW)]
    stepped_b = [lr * g.e + u * (2 * lr * np.abs(g.v) + np.abs(b - lr * g.v)) for (_, b), g in zip(params, db)]
    if param_errors is not None:  # the parameters' own errors carry into the step
        stepped_W = [s + e for s, (e, _) in zip(stepped_W, param_errors)]
        stepped_b = [s + e for s, (_, e) in zip(stepped_b, param_errors)]
    stack = x.shape[:-2]  # () for one network, (S,) for a stack
    values = [q.v for q in (*zs, *acts, *ds, *dW, *db)]
    magnitude = functools.reduce(np.maximum, (np.max(np.abs(v).reshape(*stack, -1), axis=-1, initial=0.0) for v in values),
                                 unreduced)
    scalar_magnitude: Any = _scalar(magnitude)
    deltas_e, dW_e, db_e = [d.e for d in ds], [g.e for g in dW], [g.e for g in db]
    if not ar.both:
        return [Bounds(loss_e, deltas_e, dW_e, db_e, stepped_W, stepped_b, scalar_magnitude)]
    return [Bounds(loss_e[i], _at(deltas_e, i), _at(dW_e, i), _at(db_e, i), _at(stepped_W, i), _at(stepped_b, i),
                   scalar_magnitude) for i in (0, 1)]


def _at(arrays: list[Array], i: int) -> list[Array]:
    """Entry ``i`` of each array's leading axis: a model's errors (0 strict, 1 absolute-activation)
    where they are held side by side, or a network's of a stack."""
    return [a[i] for a in arrays]


def set_bounds(cases: Sequence[Case]) -> list[tuple[Bounds, Bounds]]:
    """``both_bounds`` of every case of a set -- one network architecture, batch, dtype
    and learning rate, as ``strategies.case_sets`` draws -- in one pass over the cases
    stacked on a leading axis: each NumPy call does the work of the whole set, which
    for the small arrays of a case costs about what one case's call does."""
    first = cases[0]
    net, dtype, lr = first.network, first.dtype, first.lr
    if any((c.network, c.dtype, c.lr, c.x.shape) != (net, dtype, lr, first.x.shape) for c in cases):
        raise ValueError("set_bounds takes cases of one network, batch, dtype and learning rate")
    params = [(np.stack([c.params[l][0] for c in cases]), np.stack([c.params[l][1] for c in cases]))
              for l in range(net.n_layers)]
    x, t = np.stack([c.x for c in cases]), np.stack([c.t for c in cases])
    strict, loose = _bounds(_Arith(Precision.of(dtype), both=True), net, params, x, t, lr, None)
    return [(_network(strict, i), _network(loose, i)) for i in range(len(cases))]


def _network(stacked: Bounds, i: int) -> Bounds:
    return Bounds(float(np.asarray(stacked.loss)[i]), _at(stacked.deltas, i), _at(stacked.dW, i), _at(stacked.db, i),
                  _at(stacked.stepped_W, i), _at(stacked.stepped_b, i), float(np.asarray(stacked.max_magnitude)[i]))


def fits_dtype(bounds: Bounds, dtype: str, headroom: float = 16.0) -> bool:
    """Whether the dtype can compute the case at all: every intermediate stays
    ``headroom`` below overflow, and no bound is infinite (as when a probability that
    a log-loss takes the log of rounds to 0 in the dtype)."""
    if not (math.isfinite(bounds.max_magnitude) and bounds.max_magnitude * headroom < Precision.of(dtype).max):
        return False
    arrays = (*bounds.deltas, *bounds.dW, *bounds.db, *bounds.stepped_W, *bounds.stepped_b)
    return math.isfinite(bounds.loss) and all(np.isfinite(a).all() for a in arrays)
