"""Hessian-vector products by Pearlmutter's R-operator on the backward pass.

R{q} is the directional derivative of q along a parameter tangent ``v = (V_l, v_l)``.
Forward, R{z_l} and R{a_l} are the tangents of ``reference.forward_mode`` (with no
input tangent).  Backward, Eqs. 5, 14, 15 and 18 are differentiated once more:

    R{delta_l} = g_l''(z_l) R{z_l} (delta_{l+1} W_{l+1}^T)
                 + g_l'(z_l) (R{delta_{l+1}} W_{l+1}^T + delta_{l+1} V_{l+1}^T)   (Eq. 14)
    R{dE/dW_l} = R{a_{l-1}}^T delta_l + a_{l-1}^T R{delta_l}                     (Eq. 15)
    R{dE/db_l} = sum_n R{delta_l}                                               (Eq. 18)

and R{delta_L} differentiates the output delta of Eq. 5: the fused forms
(sigma(z) - t, softmax(z) sum_k t_k - t, a - t for identity + sse) along R{z_L}, or
the general chain dE/da g'(z) with dE/da = c (a - t), c = 1 (sse) or 2 (mse).  The
result ``[(R{dE/dW_l}, R{dE/db_l}), ...]`` is H v.

This needs g'': ``SECOND_DERIVATIVES`` holds it for the smooth activations, as
functions of z.  Any other activation has a kink where g'' is a Dirac delta, and is
rejected.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from . import losses
from .activations import ACTIVATIONS, norm_pdf, sigmoid_prime, softmax
from .backprop import _prepare, backward
from .forward_mode import _check_tangents, activation_tangent, tangents
from .network import Network, Params

Array = np.ndarray


def _tanh_second(z: Array) -> Array:
    """-2 tanh(z) sech^2(z)."""
    return -2.0 * np.tanh(z) * ACTIVATIONS["tanh"].grad(z)


def _sigmoid_second(z: Array) -> Array:
    """sigma'(z) (1 - 2 sigma(z)) = -sigma'(z) tanh(z / 2): no cancellation near 0."""
    return -sigmoid_prime(z) * np.tanh(0.5 * z)


def _softplus_second(z: Array, beta: float, threshold: float) -> Array:
    if not math.isinf(threshold):
        raise ValueError(
            f"softplus with threshold={threshold!r} has a jump in g' at beta z = threshold, so no "
            "g'' there; only threshold=inf (the smooth softplus) has a second derivative"
        )
    return beta * sigmoid_prime(beta * z)


SECOND_DERIVATIVES: dict[str, Callable[..., Array]] = {
    "identity": lambda z: np.zeros_like(z),
    "sigmoid": _sigmoid_second,
    "tanh": _tanh_second,
    "softplus": _softplus_second,
    "gelu": lambda z: norm_pdf(z) * (2.0 - np.clip(z, -1e4, 1e4) ** 2),  # (z Phi)'' = phi (2 - z^2)
    "silu": lambda z: sigmoid_prime(z) * (2.0 - z * np.tanh(0.5 * z)),  # 2 s' + z s''
    "log_sigmoid": lambda z: -sigmoid_prime(z),  # (sigma(-z))' = -sigma'(z)
}


def _g_second(net: Network, layer: int, z: Array) -> Array:
    name, p = net.activations[layer]
    if name not in SECOND_DERIVATIVES:
        raise ValueError(
            f"activation {name!r} of layer {layer + 1} has no second derivative here; "
            f"hvp supports {', '.join(SECOND_DERIVATIVES)} (and softmax on the output)"
        )
    return SECOND_DERIVATIVES[name](z, **p)


def _r_output_delta(net: Network, z: Array, a: Array, t: Array, rz: Array, ra: Array) -> Array:
    """R{delta_L}: the output delta of Eq. 5 differentiated along R{z_L}."""
    scale = losses.reduction_scale(net, z.shape[0])
    if losses.has_fused_delta(net):
        if net.loss in ("bce", "bce_logits"):
            return sigmoid_prime(z) * rz * scale
        if net.loss in ("ce", "softmax_ce"):
            p = softmax(z)
            return p * (rz - (p * rz).sum(-1, keepdims=True)) * t.sum(-1, keepdims=True) * scale
        return rz * scale  # identity + sse
    c = scale * (2.0 if net.loss == "mse" else 1.0)
    grad_a, r_grad_a = c * (a - t), c * ra
    last = net.n_layers - 1
    if net.activations[-1][0] == "softmax":  # delta = a (g - <g, a>)
        inner = (grad_a * a).sum(-1, keepdims=True)
        r_inner = (r_grad_a * a + grad_a * ra).sum(-1, keepdims=True)
        return ra * (grad_a - inner) + a * (r_grad_a - r_inner)
    name, params = net.activations[last]
    return r_grad_a * ACTIVATIONS[name].grad(z, **params) + grad_a * _g_second(net, last, z) * rz  # Eq. 5


def hvp(net: Network, params: Params, x: Array, t: Array, v_params: Params) -> Params:
    """``[(HvW_l, Hvb_l), ...]``: the Hessian of E in the parameters times ``v_params``,
    by the R-operator on Eqs. 5, 14, 15 and 18 (see the module docstring)."""
    for layer in range(net.n_layers):
        if net.activations[layer][0] != "softmax":
            _g_second(net, layer, np.zeros(1))
    trace, t = _prepare(net, params, x, t)
    zero_x = np.zeros_like(trace.a_in[0])
    _check_tangents(net, params, v_params, trace.a_in[0], zero_x)
    rzs, ras = tangents(net, params, trace, v_params, zero_x)
    ds = backward(net, params, trace, t)
    rd = _r_output_delta(net, trace.z[-1], trace.a[-1], t, rzs[-1], ras[-1])
    rds = [rd]
    for layer in range(net.n_layers - 2, -1, -1):
        W_next, V_next = np.asarray(params[layer + 1][0], np.float64), np.asarray(v_params[layer + 1][0], np.float64)
        back = ds[layer + 1] @ W_next.T
        r_back = rds[-1] @ W_next.T + ds[layer + 1] @ V_next.T
        z = trace.z[layer]
        g1 = activation_tangent(net, layer, z, trace.a[layer], np.ones_like(z))
        rds.append(_g_second(net, layer, z) * rzs[layer] * back + g1 * r_back)  # Eq. 14
    rds = rds[::-1]
    r_ins = [zero_x, *ras[:-1]]
    return [
        (r_in.T @ d + a_in.T @ rdl, rdl.sum(axis=0))  # Eq. 15, Eq. 18
        for d, rdl, a_in, r_in in zip(ds, rds, trace.a_in, r_ins)
    ]
