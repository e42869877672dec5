"""The fused output deltas agree with the general chain of Eq. 5.

``reference.deltas`` by default forms the output delta in the simplified form
where activation and loss combine (identity + sse: a - t; sigmoid + bce:
sigma(z) - t; softmax + ce: softmax(z) sum t - t); ``fused=False`` takes the
general chain dE/da * g'(z), through the softmax Jacobian for a softmax output.
On networks that do not saturate the two are the same numbers up to rounding.

Tolerance, entry by entry.  At the output each path rounds a handful of times
(at most 8) in forming terms no larger than M_out = s (1 + |a| + |t| + a sum|t|)
(s the reduction scale): 16 u M_out for the two together.  Eq. 14 then carries
a difference through |W|^T and |g'| and adds each path's rounding of a sum of n
products and one multiply, (n + 2) u M each, where M propagates M_out the same
way.  identity + sse must agree exactly (the same arithmetic).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference
from harness.strategies import cases
from reference import losses

U = 2.0**-53
HIDDEN = ("identity", "tanh", "sigmoid", "softplus", "gelu", "silu", "mish", "softsign", "elu")
PAIRS = [("identity", "sse"), ("sigmoid", "bce"), ("softmax", "ce")]


@st.composite
def unsaturated(draw, output: str, loss: str):
    """(network, params, x, t): sizes, hidden activations, targets and reduction
    from ``strategies.cases``; output layer ``output`` with ``loss``; parameters
    and x redrawn from the case's seed at unit scale, so |z| stays in single digits."""
    case = draw(cases(depth=(1, 4), width=(2, 5), batch=(1, 4), activations=HIDDEN, losses=(loss,)),
                label="case")
    sizes = case.network.sizes
    hidden = [name if not p else (name, dict(p)) for name, p in case.network.activations[:-1]]
    net = reference.Network(sizes, [*hidden, output], loss=loss, reduction=case.network.reduction)
    rng = np.random.default_rng(case.seed)
    params = [(rng.standard_normal((m, n)) / math.sqrt(m), 0.1 * rng.standard_normal(n))
              for m, n in zip(sizes[:-1], sizes[1:])]
    return net, params, rng.standard_normal(case.x.shape), case.t


def _tolerances(net: reference.Network, params, x: np.ndarray, t: np.ndarray) -> list[np.ndarray]:
    trace = reference.forward(net, params, x)
    a = trace.a[-1]
    s = losses.reduction_scale(net, len(x))
    magnitude = s * (1 + np.abs(a) + np.abs(t) + a * np.abs(t).sum(axis=-1, keepdims=True))
    tol = 16 * U * magnitude
    out = [tol]
    for layer in range(net.n_layers - 2, -1, -1):
        name, p = net.activations[layer]
        g_prime = np.abs(reference.ACTIVATIONS[name].grad(trace.z[layer], **p))
        W = np.abs(params[layer + 1][0])
        magnitude = g_prime * (magnitude @ W.T)
        tol = g_prime * (tol @ W.T) + 2 * (W.shape[1] + 2) * U * magnitude
        out.insert(0, tol)
    return out


@pytest.mark.parametrize(("output", "loss"), PAIRS, ids=[f"{o}+{lo}" for o, lo in PAIRS])
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_fused_output_delta_agrees_with_the_general_chain(output: str, loss: str, data) -> None:
    """deltas(fused=True) and deltas(fused=False) agree within the module
    docstring's tolerance in every layer; identity + sse bit for bit."""
    net, params, x, t = data.draw(unsaturated(output, loss), label="problem")
    fused = reference.deltas(net, params, x, t)
    chain = reference.deltas(net, params, x, t, fused=False)
    for layer, (f, c, tol) in enumerate(zip(fused, chain, _tolerances(net, params, x, t)), 1):
        if loss == "sse":
            tol = np.zeros_like(tol)
        bad = np.abs(f - c) > tol
        assert not bad.any(), (
            f"delta of layer {layer} (Eq. {5 if layer == net.n_layers else 14}), {output} + {loss}: "
            f"{int(bad.sum())} of {bad.size} entries differ by more than the tolerance; worst "
            f"|fused - chain| {np.max(np.abs(f - c) - tol):.3g} above it\n"
            f"sizes={net.sizes}, activations={net.activations}, reduction={net.reduction!r}"
        )
