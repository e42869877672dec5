"""Error bounds beyond the single gradient: forward-mode tangents (``reference.jvp``)
and Hessian-vector products (``reference.hvp``).

The same running first-order analysis as ``tests/harness/error_model.py``, on the same
bounded values (a float64 value and an absolute error bound per entry), continued
through the forward counterpart of Eqs. 3-4 and through Pearlmutter's R-operator on
Eqs. 5, 14, 15 and 18:

* a tangent ``dz = da_prev W + a_prev dW + db`` is a sum of ``2 n_in + 1`` products
  formed as two matmuls and two additions: ``(n_in + 2) u`` times the sum of the
  products' magnitudes, plus the propagated errors ``e(da_prev) |W| + e(a_prev) |dW|``;
* ``da = g'(z) dz`` and every other element-wise product or difference: ``u |result|``
  plus the propagated errors, with g'(z) bounded as in the gradient's model (the change
  of g' over z's error interval, cancellation in its formula, underflow);
* g''(z), which the R-operator needs: likewise, with ``SECOND_TERMS`` giving the sum of
  the magnitudes of the terms its formula adds where they cancel (sigma'' =
  sigma' (1 - 2 sigma) near 0, gelu'' = phi (2 - z^2) near sqrt 2, ...);
* the loss tangent ``dE = sum delta_L dz_L`` over all entries, and ``R{dW} = R{a}^T
  delta + a^T R{delta}``, ``R{db} = sum_n R{delta}``: the gamma_n bound of each sum.

* the output's R{delta_L} of a log-loss: the probabilities and their slope carry the
  relative error u (1 + |z|) of autodiff in the log domain, as the delta's do; and the
  Hessian of a log-loss on probabilities (bce, ce) forms t / a^2 and (1 - t) / (1 - a)^2,
  so a case where those (or gelu''s z^2) overflow the dtype is not computable there
  (``hessian_computable``).

These are sums over the same products whatever order a framework evaluates them in
(forward over reverse, reverse over reverse), so the bound does not depend on it.  The
absolute-activation variant also allows g'' an absolute error of 4u (1 + |z|)(1 + |g'|):
formed from the rounded output y (tanh'' = -2 y (1 - y^2)), it moves by a few times the
error the model allows y itself, 4u (1 + |z|).  (XLA's float64 tanh errs by up to 7u near
+-1, and jax's tanh'' by 10.5u at |z| in [1, 3), 16.5u in [3, 6), 28u at |z| = 20.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import reference
from harness.error_model import (
    ACTIVATION_ULPS,
    Bounded,
    Precision,
    _Arith,
    _deltas,
    _derivative,
    _forward,
    _from_log_domain,
    _landmarks,
    _output_delta,
    _softmax_bounded,
    _sum_all,
    _underflow_floor,
    error_bounds,
    round_to,
)
from reference import activations as acts
from reference import losses as ref_losses

Array = np.ndarray

# Second derivatives that are sums of cancelling terms: the sum of their magnitudes.
SECOND_TERMS = {
    "sigmoid": lambda z: acts.sigmoid_prime(z) * (1.0 + 2.0 * acts.sigmoid(z)),
    "gelu": lambda z: acts.norm_pdf(z) * (2.0 + np.clip(z, -1e4, 1e4) ** 2),
    "silu": lambda z: acts.sigmoid_prime(z) * (2.0 + np.abs(z) * (1.0 + 2.0 * acts.sigmoid(z))),
}


@dataclass(frozen=True)
class TangentBounds:
    """Bounds of the loss tangent dE and of every layer's output tangent da_l."""

    loss: float
    outputs: list[Array]


def _add(ar: _Arith, x: Bounded, y: Bounded) -> Bounded:
    v = x.v + y.v
    return Bounded(v, x.e + y.e + ar.p.u * np.abs(v) + ar.p.tiny)


def _row_sum(ar: _Arith, x: Bounded) -> Bounded:
    k = x.v.shape[-1]
    mag = np.abs(x.v).sum(-1, keepdims=True)
    return Bounded(x.v.sum(-1, keepdims=True), x.e.sum(-1, keepdims=True) + k * ar.p.u * mag + k * ar.p.tiny)


def _tangent_affine(ar: _Arith, da: Bounded, W: Array, a: Bounded, dW: Array, db: Array) -> Bounded:
    """dz = da W + a dW + db, with W, dW and db exact in the dtype."""
    n = W.shape[0]
    absW, absdW = np.abs(W), np.abs(dW)
    mag = np.abs(da.v) @ absW + np.abs(a.v) @ absdW + np.abs(db)
    e = da.e @ absW + a.e @ absdW + (n + 2) * ar.p.u * mag + (2 * n + 1) * ar.p.tiny
    return Bounded(da.v @ W + a.v @ dW + db, e)


def _two_matmuls(ar: _Arith, A: Bounded, W: Array, B: Bounded, V: Array) -> Bounded:
    """A W + B V with W and V exact: R{delta_{l+1} W^T} of Eq. 14."""
    n = W.shape[0]
    mag = np.abs(A.v) @ np.abs(W) + np.abs(B.v) @ np.abs(V)
    e = A.e @ np.abs(W) + B.e @ np.abs(V) + (n + 1) * ar.p.u * mag + 2 * n * ar.p.tiny
    return Bounded(A.v @ W + B.v @ V, e)


def _outer_pair(ar: _Arith, ra: Bounded, d: Bounded, a: Bounded, rd: Bounded) -> Bounded:
    """R{dE/dW} = R{a}^T delta + a^T R{delta} (Eq. 15 differentiated): 2N products."""
    n = a.v.shape[0]
    mag = np.abs(ra.v).T @ np.abs(d.v) + np.abs(a.v).T @ np.abs(rd.v)
    e = (np.abs(ra.v).T @ d.e + ra.e.T @ np.abs(d.v) + ra.e.T @ d.e
         + np.abs(a.v).T @ rd.e + a.e.T @ np.abs(rd.v) + a.e.T @ rd.e)
    return Bounded(ra.v.T @ d.v + a.v.T @ rd.v, e + 2 * n * ar.p.u * mag + 2 * n * ar.p.tiny)


def _activation_tangent(ar: _Arith, net: reference.Network, layer: int, z: Bounded, a: Bounded,
                        dz: Bounded) -> Bounded:
    """da = g'(z) dz; a softmax output takes its Jacobian a (dz - sum_k a_k dz_k)."""
    if net.activations[layer][0] == "softmax":
        return ar.mul(a, ar.sub(dz, _row_sum(ar, ar.mul(a, dz))))
    d = ar.mul(_derivative(ar, net, layer, z), dz)
    return Bounded(d.v, d.e + _underflow_floor(ar, z))


def _tangents(ar: _Arith, net: reference.Network, params, zs, acts_, ins, tangent, tangent_x):
    da = ar.exact(tangent_x)
    dzs, das = [], []
    for layer, ((W, _), (dW, db)) in enumerate(zip(params, tangent)):
        dz = _tangent_affine(ar, da, W, ins[layer], np.asarray(dW, np.float64), np.asarray(db, np.float64))
        da = _activation_tangent(ar, net, layer, zs[layer], acts_[layer], dz)
        dzs.append(dz)
        das.append(da)
    return dzs, das


def _start(net, params, x, dtype: str, absolute: bool | frozenset[str]):
    ar = _Arith(Precision.of(dtype), absolute)
    params = [(np.asarray(W, np.float64), np.asarray(b, np.float64)) for W, b in params]
    zs, acts_, ins = _forward(ar, net, params, np.asarray(x, np.float64), [(None, None)] * len(params))
    return ar, params, zs, acts_, ins


def tangent_bounds(net: reference.Network, params: reference.Params, x: Array, t: Array, tangent: reference.Params,
                   tangent_x: Array, *,
                   dtype: str, absolute: bool | frozenset[str] = False) -> TangentBounds:
    """Per-entry bounds of a ``dtype`` computation of ``reference.jvp``'s dE and da_l."""
    ar, params, zs, acts_, ins = _start(net, params, x, dtype, absolute)
    dzs, das = _tangents(ar, net, params, zs, acts_, ins, tangent, tangent_x)
    delta = _output_delta(ar, net, zs[-1], acts_[-1], np.asarray(t, np.float64))
    loss = _sum_all(ar, ar.mul(delta, dzs[-1]), 1.0)
    return TangentBounds(loss, [d.e for d in das])


def _second_derivative(ar: _Arith, net: reference.Network, layer: int, z: Bounded) -> Bounded:
    name, p = net.activations[layer]
    second = reference.SECOND_DERIVATIVES[name]
    d = ar.apply(lambda v: second(v, **p), z, SECOND_TERMS.get(name), _landmarks(net, layer))
    d = Bounded(d.v, d.e + _underflow_floor(ar, z))
    if not ar.loose_for(name):
        return d
    # Formed from the rounded output y, whose absolute error the model allows as
    # 4u (1 + |z|): tanh'' = -2 y (1 - y^2) moves by up to 4 e(y).
    first = np.abs(reference.ACTIVATIONS[name].grad(z.v, **p))
    return Bounded(d.v, d.e + ACTIVATION_ULPS * ar.p.u * (1.0 + np.abs(z.v)) * (1.0 + first))


def _r_output_delta(ar: _Arith, net: reference.Network, z: Bounded, a: Bounded, t: Array, rz: Bounded,
                    ra: Bounded) -> Bounded:
    """R{delta_L}, the bounded counterpart of ``reference.second_order._r_output_delta``."""
    scale = ref_losses.reduction_scale(net, t.shape[0])
    # Autodiff of a log-loss forms the probabilities, and their slope, in the log domain:
    # the relative error u (1 + |z|) of ``error_model._from_log_domain``, as for the delta.
    if ref_losses.has_fused_delta(net):
        if net.loss in ("bce", "bce_logits"):
            slope = ar.apply(acts.sigmoid_prime, z, landmarks=np.linspace(-4.0, 4.0, 33))
            slope = _from_log_domain(ar, slope, z.v, t, net.loss)
            return ar.scale(ar.mul(slope, rz), scale)
        if net.loss in ("ce", "softmax_ce"):
            p = _from_log_domain(ar, _softmax_bounded(ar, z), np.abs(z.v - z.v.max(axis=-1, keepdims=True)), t, net.loss)
            r = ar.mul(p, ar.sub(rz, _row_sum(ar, ar.mul(p, rz))))
            return ar.scale(ar.mul(r, ar.exact(t.sum(-1, keepdims=True))), scale)
        return ar.scale(rz, scale)
    c = scale * (2.0 if net.loss == "mse" else 1.0)
    grad_a, r_grad_a = ar.scale(ar.sub(a, ar.exact(t)), c), ar.scale(ra, c)
    last = net.n_layers - 1
    if net.activations[-1][0] == "softmax":
        inner = _row_sum(ar, ar.mul(grad_a, a))
        r_inner = _row_sum(ar, _add(ar, ar.mul(r_grad_a, a), ar.mul(grad_a, ra)))
        return _add(ar, ar.mul(ra, ar.sub(grad_a, inner)), ar.mul(a, ar.sub(r_grad_a, r_inner)))
    first = ar.mul(r_grad_a, _derivative(ar, net, last, z))
    return _add(ar, first, ar.mul(ar.mul(grad_a, _second_derivative(ar, net, last, z)), rz))


def hvp_bounds(net: reference.Network, params: reference.Params, x: Array, t: Array, vector: reference.Params, *,
               dtype: str,
               absolute: bool | frozenset[str] = False) -> list[tuple[Array, Array]]:
    """Per-entry bounds ``[(e(HvW_l), e(Hvb_l)), ...]`` of a ``dtype`` computation of
    ``reference.hvp``: the R-forward tangents, then Eq. 14 differentiated,
    ``R{delta_l} = g''(z) R{z} (delta_{l+1} W^T) + g'(z) (R{delta_{l+1}} W^T + delta_{l+1} V^T)``."""
    ar, params, zs, acts_, ins = _start(net, params, x, dtype, absolute)
    t = np.asarray(t, np.float64)
    vector = [(np.asarray(V, np.float64), np.asarray(v, np.float64)) for V, v in vector]
    rzs, ras = _tangents(ar, net, params, zs, acts_, ins, vector, np.zeros_like(ins[0].v))
    ds = _deltas(ar, net, params, zs, acts_, t, [(None, None)] * len(params))
    rds = [_r_output_delta(ar, net, zs[-1], acts_[-1], t, rzs[-1], ras[-1])]
    for layer in range(net.n_layers - 2, -1, -1):
        W_next, V_next = params[layer + 1][0], vector[layer + 1][0]
        back = ar.affine(ds[layer + 1], W_next.T)
        r_back = _two_matmuls(ar, rds[-1], W_next.T, ds[layer + 1], V_next.T)
        curvature = ar.mul(ar.mul(_second_derivative(ar, net, layer, zs[layer]), rzs[layer]), back)
        rd = _add(ar, curvature, ar.mul(_derivative(ar, net, layer, zs[layer]), r_back))
        rds.append(Bounded(rd.v, rd.e + _underflow_floor(ar, zs[layer])))
    rds = rds[::-1]
    r_ins = [ar.exact(np.zeros_like(ins[0].v)), *ras[:-1]]
    return [(_outer_pair(ar, ra, d, a, rd).e, ar.column_sum(rd).e)
            for ra, d, a, rd in zip(r_ins, ds, ins, rds)]


def per_example_bounds(net: reference.Network, params: reference.Params, x: Array, t: Array, *, dtype: str,
                       absolute: bool | frozenset[str] = False) -> list[tuple[Array, Array]]:
    """Per entry of every per-example dW (batch, n_in, n_out) and db (batch, n_out): the
    gradient model's bound for example n alone (a one-row batch, where Eq. 15's sum is
    the single product delta_j a_i) under reduction "sum", times the batch's reduction
    scale, plus u |value| for that scaling."""
    alone = reference.Network(net.sizes, net.activations, loss=net.loss, reduction="sum")
    scale = ref_losses.reduction_scale(net, len(x))
    u = Precision.of(dtype).u
    rows = [error_bounds(alone, params, x[n : n + 1], t[n : n + 1], dtype=dtype, lr=0.0, absolute=absolute)
            for n in range(len(x))]
    values = reference.per_example_gradients(net, params, x, t)
    return [(np.stack([r.dW[l] for r in rows]) * scale + u * np.abs(dW),
             np.stack([r.db[l] for r in rows]) * scale + u * np.abs(db))
            for l, (dW, db) in enumerate(values)]


def hessian_computable(net: reference.Network, params: reference.Params, x: Array, t: Array, *, dtype: str,
                       headroom: float = 16.0, first_order: float | None = None) -> bool:
    """Whether the Hessian's intermediates stay finite in ``dtype`` (cases where they do
    not are ones the dtype cannot compute, not findings): a loss on probabilities (bce on
    a sigmoid, ce on a softmax) forms t / a^2 and (1 - t) / (1 - a)^2, which overflow
    float16 once a < 2^-8; gelu'' forms z^2, which overflows float16 at |z| = 256; and
    every second-order term is a product of two first-order intermediates (the largest
    of them ``first_order``, ``Bounds.max_magnitude``: computed here unless given)."""
    trace = reference.forward(net, params, x)
    limit = Precision.of(dtype).max / headroom
    # Second-order terms multiply two first-order intermediates (a_i a_j sigma'' in the
    # Gauss-Newton part, a^T R{delta}): 298^2 overflows float16 although 298 does not.
    if first_order is None:
        first_order = error_bounds(net, params, x, t, dtype=dtype, lr=0.0).max_magnitude
    if not first_order**2 < limit:
        return False
    for (name, _), z in zip(net.activations, trace.z):  # gelu'' = phi(z) (2 - z^2) forms z^2
        if name == "gelu" and np.max(np.abs(z), initial=0.0) ** 2 >= limit:
            return False
    if net.loss not in ("bce", "ce"):
        return True
    # Every entry: autodiff of t log(a) forms t / a^2 even where t = 0 (0 * inf = NaN).
    a = round_to(trace.a[-1], dtype)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        terms = 1.0 / a**2
        if net.loss == "bce":
            terms = np.maximum(terms, 1.0 / (1 - a) ** 2)
    return bool(np.all(np.isfinite(terms)) and np.max(terms, initial=0.0) * headroom < Precision.of(dtype).max)
