"""Forward mode: tangent propagation, the forward counterpart of Eqs. 2-18.

For a tangent ``(dW_l, db_l)`` on every layer's parameters and ``dx`` on the input,
differentiating Eqs. 3-4 (``z = a_prev W + b``, ``a = g(z)``) along the tangent gives

    dz_l = da_{l-1} W_l + a_{l-1} dW_l + db_l        (product rule on Eq. 3 / Eq. 10)
    da_l = g_l'(z_l) dz_l                            (chain rule on Eq. 4 / Eq. 9)

with ``da_0 = dx``; a softmax output takes its Jacobian, ``da = a (dz - sum_k a_k dz_k)``.
The loss changes by ``dE = <dE/dz_L, dz_L>``, summed over the batch and the output
units, where dE/dz_L is the output delta of Eq. 5 (in its fused form where the loss and
the output activation combine, as ``reference.output_delta`` takes it).  Since the
deltas of Eqs. 5 and 14 are the transposed map of these tangents, ``dE`` equals
``sum_l <dE/dW_l, dW_l> + <dE/db_l, db_l> + <dE/dx, dx>`` -- the identity the tests
hold it to.
"""

from __future__ import annotations

import numpy as np

from .activations import ACTIVATIONS
from .backprop import Trace, _prepare, output_delta
from .network import Network, Params

Array = np.ndarray


def _check_tangents(net: Network, params: Params, tangent_params: Params, x: Array, tangent_x: Array) -> None:
    if len(tangent_params) != len(params):
        raise ValueError(
            f"tangent_params has {len(tangent_params)} layers but the network has {len(params)}; "
            "give one (dW, db) pair per layer"
        )
    for layer, ((W, b), (tW, tb)) in enumerate(zip(params, tangent_params), 1):
        if np.shape(tW) != np.shape(W) or np.shape(tb) != np.shape(b):
            raise ValueError(
                f"tangent of layer {layer} has dW of shape {np.shape(tW)} and db of shape "
                f"{np.shape(tb)}; the parameters need {np.shape(W)} and {np.shape(b)}"
            )
    if np.shape(tangent_x) != np.shape(x):
        raise ValueError(f"tangent_x has shape {np.shape(tangent_x)}; x has {np.shape(x)}, give the same")


def activation_tangent(net: Network, layer: int, z: Array, a: Array, dz: Array) -> Array:
    """da = g'(z) dz (Eq. 4 differentiated); a softmax output takes its Jacobian."""
    name, p = net.activations[layer]
    if name == "softmax":
        return a * (dz - (a * dz).sum(axis=-1, keepdims=True))
    return ACTIVATIONS[name].grad(z, **p) * dz


def tangents(net: Network, params: Params, trace: Trace, tangent_params: Params,
             tangent_x: Array) -> tuple[list[Array], list[Array]]:
    """Every layer's dz and da along the tangent, from the input forward."""
    dzs, das = [], []
    da = np.asarray(tangent_x, np.float64)
    for layer, ((W, _), (tW, tb)) in enumerate(zip(params, tangent_params)):
        a_prev = trace.a_in[layer]
        dz = da @ np.asarray(W, np.float64) + a_prev @ np.asarray(tW, np.float64) + np.asarray(tb, np.float64)
        da = activation_tangent(net, layer, trace.z[layer], trace.a[layer], dz)
        dzs.append(dz)
        das.append(da)
    return dzs, das


def jvp(net: Network, params: Params, x: Array, t: Array, tangent_params: Params,
        tangent_x: Array) -> tuple[float, list[Array], list[Array]]:
    """``(dE, [dz_l], [da_l])``: the directional derivative of the loss (Eq. 1) and of
    every layer's pre-activation and activation along ``(tangent_params, tangent_x)``.

    dz_l = da_{l-1} W_l + a_{l-1} dW_l + db_l, da_l = g'(z_l) dz_l, and
    dE = <delta_L, dz_L> with delta_L the output delta of Eq. 5."""
    trace, t = _prepare(net, params, x, t)
    _check_tangents(net, params, tangent_params, trace.a_in[0], tangent_x)
    dzs, das = tangents(net, params, trace, tangent_params, tangent_x)
    dE = float((output_delta(net, trace, t) * dzs[-1]).sum())
    return dE, dzs, das
