"""Forward pass, error signals and gradients: Eqs. 2-6, 8, 14, 15, 18.

Notation as in the derivation: layer l computes ``Z_l = A_{l-1} @ W_l + b_l`` and
``A_l = g_l(Z_l)``, with a batch of examples stacked as rows and ``W_l`` of shape
(n_in, n_out), the post's ``w_ij``.  ``delta_l`` is dE/dZ_l of the reduced loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import losses
from .activations import ACTIVATIONS, softmax_vjp
from .network import Network, Params, check_batch, check_params

Array = np.ndarray


@dataclass(frozen=True)
class Trace:
    """Every layer's pre-activation ``z[l]`` and activation ``a[l]``; ``a_in[l]`` is
    the activation entering layer l (``a_in[0]`` is x)."""

    z: list[Array]
    a: list[Array]
    a_in: list[Array]


def _g(net: Network, layer: int, z: Array) -> Array:
    name, params = net.activations[layer]
    return ACTIVATIONS[name].fn(z, **params)


def _g_prime(net: Network, layer: int, z: Array) -> Array:
    name, params = net.activations[layer]
    return ACTIVATIONS[name].grad(z, **params)


def forward(net: Network, params: Params, x: Array) -> Trace:
    """z_j = b_j + sum_i a_i w_ij, a_j = g_j(z_j) for every layer (Eqs. 2-4, and
    typo 2 corrected: the output pre-activation adds b_k, not b_j)."""
    x = np.asarray(x, dtype=np.float64)
    check_params(net, params)
    check_batch(net, x)
    zs, acts, ins = [], [], []
    a = x
    for layer, (W, b) in enumerate(params):
        ins.append(a)
        z = a @ np.asarray(W, np.float64) + np.asarray(b, np.float64)  # Eq. 3 / Eq. 10
        a = _g(net, layer, z)  # Eq. 4 / Eq. 9
        zs.append(z)
        acts.append(a)
    return Trace(zs, acts, ins)


def output_delta(net: Network, trace: Trace, t: Array, *, fused: bool = True) -> Array:
    """delta_k = (a_k - t_k) g_k'(z_k) -- Eq. 5, generalised to dE/da_k g_k'(z_k).

    With ``fused=True`` (the default) an output activation and loss that combine
    (identity + sse, sigmoid + bce, softmax + ce, and the from-logits losses) use
    the simplified ``a - t`` form, which stays exact where a saturates; otherwise the
    general chain is taken, and a softmax output backpropagates through its Jacobian.
    """
    z, a = trace.z[-1], trace.a[-1]
    if fused and losses.has_fused_delta(net):
        return losses.fused_output_delta(net, z, a, t)
    grad_a = losses.dE_da(net, z, a, t)
    if net.activations[-1][0] == "softmax":
        return softmax_vjp(a, grad_a)
    if net.loss in ("bce_logits", "softmax_ce"):
        return grad_a  # the activation is folded into the loss: dE/da is dE/dz
    return grad_a * _g_prime(net, net.n_layers - 1, z)  # Eq. 5


def hidden_delta(net: Network, layer: int, delta_next: Array, W_next: Array, z: Array) -> Array:
    """delta_j = g_j'(z_j) sum_k delta_k w_jk -- Eq. 14, for every row of the batch."""
    return _g_prime(net, layer, z) * (delta_next @ np.asarray(W_next, np.float64).T)  # Eq. 14


def backward(net: Network, params: Params, trace: Trace, t: Array, *, fused: bool = True) -> list[Array]:
    """Every layer's delta, from the output back to the first layer (Eqs. 5, 14)."""
    out = [output_delta(net, trace, t, fused=fused)]
    for layer in range(net.n_layers - 2, -1, -1):
        out.append(hidden_delta(net, layer, out[-1], params[layer + 1][0], trace.z[layer]))
    return out[::-1]


def layer_gradients(delta: Array, a_in: Array) -> tuple[Array, Array]:
    """dE/dw_ij = sum over the batch of delta_j a_i -- Eqs. 6, 15; dE/db_j = sum of
    delta_j -- Eqs. 8, 18 (typo 1 corrected: the sum runs over a_i, not z_i)."""
    return a_in.T @ delta, delta.sum(axis=0)  # Eq. 6 / Eq. 15, Eq. 8 / Eq. 18


def _prepare(net: Network, params: Params, x: Array, t: Array) -> tuple[Trace, Array]:
    trace = forward(net, params, x)
    t = np.asarray(t, dtype=np.float64)
    check_batch(net, trace.a_in[0], t)
    return trace, t


def loss(net: Network, params: Params, x: Array, t: Array) -> float:
    """E, the reduced loss of the batch (Eq. 1 for ``sse`` with ``"sum"``)."""
    trace, t = _prepare(net, params, x, t)
    return losses.loss_value(net, trace.z[-1], trace.a[-1], t)


def deltas(net: Network, params: Params, x: Array, t: Array, *, fused: bool = True) -> list[Array]:
    """dE/dz of every layer, each (batch, n_out): Eq. 5 for the output, Eq. 14 below."""
    trace, t = _prepare(net, params, x, t)
    return backward(net, params, trace, t, fused=fused)


def gradients(net: Network, params: Params, x: Array, t: Array, *, fused: bool = True) -> Params:
    """``[(dE/dW, dE/db), ...]`` per layer: Eqs. 6, 8 (output), 15, 18 (hidden)."""
    trace, t = _prepare(net, params, x, t)
    ds = backward(net, params, trace, t, fused=fused)
    return [layer_gradients(d, a_in) for d, a_in in zip(ds, trace.a_in)]
