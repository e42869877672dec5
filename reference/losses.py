"""Losses (Eq. 1 and the frameworks' common ones), their gradient dE/da and the
fused output deltas.

Every loss is a sum of per-element terms (per element of the (batch, n_out) output)
times a reduction scale:

* ``sse``  -- Eq. 1: 1/2 (a - t)^2.  ``"mean"`` divides by the batch size N.
* ``mse``  -- (a - t)^2, no 1/2, as frameworks define it.  ``"mean"``: / (N K).
* ``bce``  -- -[t log a + (1 - t) log(1 - a)] on sigmoid outputs.  ``"mean"``: / (N K).
* ``bce_logits`` -- the same with a = sigmoid(z) folded into the loss.  ``"mean"``: / (N K).
* ``ce``   -- -t log a on softmax outputs (one-hot or probability targets).  ``"mean"``: / N.
* ``softmax_ce`` -- -t log softmax(z) from logits.  ``"mean"``: / N.

``"sum"`` is the post's sum over examples.  The log-losses are evaluated from z
(log sigma(z) = -softplus(-z), log softmax by the shifted log-sum-exp), so the value
is accurate even where a rounds to 0 or 1.
"""

from __future__ import annotations

import numpy as np

from .activations import sigmoid, softmax, softplus
from .network import Network

Array = np.ndarray
_ELEMENTWISE_MEAN = ("mse", "bce", "bce_logits")


def reduction_scale(net: Network, batch: int) -> float:
    """The factor that turns the sum of terms into E: 1, 1/N or 1/(N K)."""
    if net.reduction == "sum":
        return 1.0
    if net.loss in _ELEMENTWISE_MEAN:
        return 1.0 / (batch * net.sizes[-1])
    return 1.0 / batch


def _log_softmax(z: Array) -> Array:
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def loss_terms(net: Network, z: Array, a: Array, t: Array) -> Array:
    """Per-element loss terms, shape (batch, n_out), before the reduction (Eq. 1)."""
    if net.loss == "sse":
        return 0.5 * (a - t) ** 2  # Eq. 1
    if net.loss == "mse":
        return (a - t) ** 2
    if net.loss in ("bce", "bce_logits"):
        # -log sigma(z) = softplus(-z) and -log(1 - sigma(z)) = softplus(z).
        return t * softplus(-z) + (1.0 - t) * softplus(z)
    return -t * _log_softmax(z)


def loss_value(net: Network, z: Array, a: Array, t: Array) -> float:
    """E: the loss terms summed and scaled by the reduction."""
    return float(loss_terms(net, z, a, t).sum() * reduction_scale(net, z.shape[0]))


def dE_da(net: Network, z: Array, a: Array, t: Array) -> Array:
    """dE/da of the output activation, for the general chain of Eq. 5.

    For ``bce`` and ``ce`` this divides by a (and 1 - a, computed as sigma(-z)):
    defined while neither has underflowed to 0 (|z| below ~700).
    """
    scale = reduction_scale(net, z.shape[0])
    if net.loss == "sse":
        return (a - t) * scale
    if net.loss == "mse":
        return 2.0 * (a - t) * scale
    if net.loss == "bce":
        return (-t / a + (1.0 - t) / sigmoid(-z)) * scale
    if net.loss == "ce":
        return -t / a * scale
    return fused_output_delta(net, z, a, t)  # bce_logits, softmax_ce: a is z


def fused_output_delta(net: Network, z: Array, a: Array, t: Array) -> Array:
    """Output delta where activation and loss combine so that dE/dz simplifies.

    identity + sse: a - t (Eq. 5 with g' = 1); sigmoid + bce and bce_logits:
    sigma(z) - t; softmax + ce and softmax_ce: softmax(z) sum_k t_k - t, which is
    a - t when each target row sums to 1.
    """
    scale = reduction_scale(net, z.shape[0])
    if net.loss in ("bce", "bce_logits"):
        return (sigmoid(z) - t) * scale
    if net.loss in ("ce", "softmax_ce"):
        return (softmax(z) * t.sum(axis=-1, keepdims=True) - t) * scale
    if net.loss == "sse" and net.activations[-1][0] == "identity":
        return (a - t) * scale
    raise ValueError(
        f"loss {net.loss!r} with output activation {net.activations[-1][0]!r} has no "
        "fused output delta; use the general chain of Eq. 5"
    )


def has_fused_delta(net: Network) -> bool:
    """Whether ``fused_output_delta`` applies to this network's output layer."""
    return net.loss != "mse" and (net.loss != "sse" or net.activations[-1][0] == "identity")
