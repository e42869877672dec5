"""The error model: how far a correct dtype computation may sit from the reference.

A framework that computes the derivation in a dtype with unit roundoff u makes a
rounding error in every operation.  This module runs the same forward and backward
pass as ``reference/`` on *bounded values* -- a float64 value and an absolute error
bound -- and propagates first-order error bounds operation by operation:

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
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import ml_dtypes
import numpy as np

import reference
from reference import losses as ref_losses
from reference.activations import ACTIVATIONS, softmax

Array = np.ndarray
SAFETY = 2.0  # covers the reference's own float64 rounding, of the same size in float64 tests
ACTIVATION_ULPS = 4.0  # libm-quality evaluation of exp, log, tanh, erf and friends

_NUMPY_DTYPES = {
    "float64": np.dtype(np.float64),
    "float32": np.dtype(np.float32),
    "float16": np.dtype(np.float16),
    "bfloat16": np.dtype(ml_dtypes.bfloat16),
}


@dataclass(frozen=True)
class Precision:
    """Unit roundoff ``u`` and smallest normal ``tiny`` of a dtype."""

    name: str
    u: float
    tiny: float
    max: float

    @classmethod
    def of(cls, dtype: str) -> "Precision":
        if dtype not in _NUMPY_DTYPES:
            raise ValueError(f"unknown dtype {dtype!r}; known dtypes: {', '.join(_NUMPY_DTYPES)}")
        info = ml_dtypes.finfo(_NUMPY_DTYPES[dtype])
        return cls(dtype, float(info.eps) / 2.0, float(info.tiny), float(info.max))


def numpy_dtype(dtype: str) -> np.dtype:
    return _NUMPY_DTYPES[dtype]


def round_to(array: Array, dtype: str) -> Array:
    """``array`` rounded to ``dtype`` and held in float64 (exactly representable)."""
    return np.asarray(array, np.float64).astype(_NUMPY_DTYPES[dtype]).astype(np.float64)


@dataclass(frozen=True)
class Bounded:
    """A value and a bound on the absolute error a dtype computation of it may carry."""

    v: Array
    e: Array


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


class _Arith:
    def __init__(self, p: Precision) -> None:
        self.p = p

    def exact(self, v: Array) -> Bounded:
        return Bounded(np.asarray(v, np.float64), np.zeros(np.shape(v)))

    def affine(self, a: Bounded, W: Array, b: Array | None = None) -> Bounded:
        """a @ W (+ b): n = accumulation length of each entry."""
        absW = np.abs(W)
        n = W.shape[0] + (b is not None)
        mag = np.abs(a.v) @ absW + (0.0 if b is None else np.abs(b))
        v = a.v @ W + (0.0 if b is None else b)
        return Bounded(v, a.e @ absW + n * self.p.u * mag + n * self.p.tiny)

    def outer_sum(self, a: Bounded, d: Bounded) -> Bounded:
        """a.T @ d, both carrying errors: the weight gradient of Eqs. 6 and 15."""
        n = a.v.shape[0]
        mag = np.abs(a.v).T @ np.abs(d.v)
        e = np.abs(a.v).T @ d.e + a.e.T @ np.abs(d.v) + a.e.T @ d.e
        return Bounded(a.v.T @ d.v, e + n * self.p.u * mag + n * self.p.tiny)

    def column_sum(self, d: Bounded) -> Bounded:
        n = d.v.shape[0]
        mag = np.abs(d.v).sum(axis=0)
        return Bounded(d.v.sum(axis=0), d.e.sum(axis=0) + n * self.p.u * mag + n * self.p.tiny)

    def mul(self, x: Bounded, y: Bounded) -> Bounded:
        v = x.v * y.v
        e = np.abs(x.v) * y.e + x.e * np.abs(y.v) + x.e * y.e
        return Bounded(v, e + self.p.u * np.abs(v) + self.p.tiny)

    def sub(self, x: Bounded, y: Bounded) -> Bounded:
        v = x.v - y.v
        return Bounded(v, x.e + y.e + self.p.u * np.abs(v) + self.p.tiny)

    def scale(self, x: Bounded, s: float) -> Bounded:
        v = x.v * s
        return Bounded(v, x.e * abs(s) + self.p.u * np.abs(v) + self.p.tiny)

    def apply(self, f, x: Bounded) -> Bounded:
        """f evaluated at x: the largest change of f over x +- (e + c u |x|), plus rounding."""
        v = f(x.v)
        reach = x.e + ACTIVATION_ULPS * self.p.u * np.abs(x.v)
        with np.errstate(invalid="ignore", over="ignore"):
            lo, hi = f(x.v - reach), f(x.v + reach)
            spread = np.maximum(np.abs(lo - v), np.abs(hi - v))
        spread = np.where(np.isfinite(spread), spread, np.inf)
        return Bounded(v, spread + ACTIVATION_ULPS * self.p.u * np.abs(v) + self.p.tiny)


def _activation(net: reference.Network, layer: int, derivative: bool):
    name, params = net.activations[layer]
    record = ACTIVATIONS[name]
    fn = record.grad if derivative else record.fn
    return lambda z: fn(z, **params)


def _softmax_bounded(ar: _Arith, z: Bounded) -> Bounded:
    """softmax_k changes by a_k |dz_k - sum_j a_j dz_j|; exp and the row sum round."""
    a = softmax(z.v)
    k = z.v.shape[-1]
    spread = a * (z.e + (a * z.e).sum(axis=-1, keepdims=True))
    return Bounded(a, spread + (k + 2) * ACTIVATION_ULPS * ar.p.u * a + ar.p.tiny)


def _forward(ar: _Arith, net: reference.Network, params, x: Array) -> tuple[list[Bounded], list[Bounded], list[Bounded]]:
    zs, acts, ins = [], [], []
    a = ar.exact(x)
    for layer, (W, b) in enumerate(params):
        ins.append(a)
        z = ar.affine(a, W, b)
        if net.activations[layer][0] == "softmax":
            a = _softmax_bounded(ar, z)
        else:
            a = ar.apply(_activation(net, layer, derivative=False), z)
        zs.append(z)
        acts.append(a)
    return zs, acts, ins


def _sum_all(ar: _Arith, terms: Bounded, scale: float) -> float:
    n = terms.v.size
    e = terms.e.sum() + n * ar.p.u * np.abs(terms.v).sum() + n * ar.p.tiny
    return float(abs(scale) * e + ar.p.u * abs(scale * terms.v.sum()))


def _weighted(weight: Array, e: Array) -> Array:
    """weight * e, where a zero weight removes its term whatever its error (0 * inf)."""
    return np.where(weight == 0, 0.0, weight * np.where(weight == 0, 0.0, e))


def _loss_bound(ar: _Arith, net: reference.Network, z: Bounded, a: Bounded, t: Array) -> float:
    scale = ref_losses.reduction_scale(net, t.shape[0])
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
    return _sum_all(ar, terms, scale)


def _output_delta(ar: _Arith, net: reference.Network, z: Bounded, a: Bounded, t: Array) -> Bounded:
    scale = ref_losses.reduction_scale(net, t.shape[0])
    T = ar.exact(t)
    if ref_losses.has_fused_delta(net):
        if net.loss in ("bce", "bce_logits"):
            p = ar.apply(reference.activations.sigmoid, z)
        elif net.loss in ("ce", "softmax_ce"):
            p = _softmax_bounded(ar, z)
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
    return ar.mul(grad_a, ar.apply(_activation(net, net.n_layers - 1, derivative=True), z))


def error_bounds(net: reference.Network, params, x: Array, t: Array, *, dtype: str, lr: float) -> Bounds:
    """Per-entry error bounds for a ``dtype`` computation of loss, deltas, dW, db and
    one SGD step of ``net`` on ``(params, x, t)`` -- values already in ``dtype``."""
    ar = _Arith(Precision.of(dtype))
    params = [(np.asarray(W, np.float64), np.asarray(b, np.float64)) for W, b in params]
    zs, acts, ins = _forward(ar, net, params, np.asarray(x, np.float64))
    t = np.asarray(t, np.float64)
    loss_e = _loss_bound(ar, net, zs[-1], acts[-1], t)
    ds = [_output_delta(ar, net, zs[-1], acts[-1], t)]
    for layer in range(net.n_layers - 2, -1, -1):
        back = ar.affine(ds[-1], params[layer + 1][0].T)
        ds.append(ar.mul(ar.apply(_activation(net, layer, derivative=True), zs[layer]), back))
    ds = ds[::-1]
    dW = [ar.outer_sum(a_in, d) for a_in, d in zip(ins, ds)]
    db = [ar.column_sum(d) for d in ds]
    u = ar.p.u
    stepped_W = [lr * g.e + u * (2 * lr * np.abs(g.v) + np.abs(W - lr * g.v)) for (W, _), g in zip(params, dW)]
    stepped_b = [lr * g.e + u * (2 * lr * np.abs(g.v) + np.abs(b - lr * g.v)) for (_, b), g in zip(params, db)]
    values = [q.v for q in (*zs, *acts, *ds, *dW, *db)]
    magnitude = max(float(np.max(np.abs(v), initial=0.0)) for v in values)
    return Bounds(loss_e, [d.e for d in ds], [g.e for g in dW], [g.e for g in db], stepped_W, stepped_b, magnitude)


def fits_dtype(bounds: Bounds, dtype: str, headroom: float = 16.0) -> bool:
    """Whether every intermediate stays ``headroom`` below the dtype's overflow."""
    return math.isfinite(bounds.max_magnitude) and bounds.max_magnitude * headroom < Precision.of(dtype).max
