"""deltacheck's reference: the backpropagation derivation as NumPy.

The oracle every cross-validation trusts.  It computes in float64, imports NumPy
only, and follows the equations of ``shared/derivation.md`` (Eq. 1 - Eq. 18)::

    import reference
    net = reference.Network(sizes=(2, 3, 1), activations=("tanh", "identity"), loss="sse")
    trace = reference.forward(net, params, x)      # Eqs. 2-4
    E = reference.loss(net, params, x, t)          # Eq. 1
    deltas = reference.deltas(net, params, x, t)   # Eqs. 5, 14
    grads = reference.gradients(net, params, x, t) # Eqs. 6, 8, 15, 18
    params = reference.sgd_step(params, grads, lr=0.1)   # Eq. 7
    dE, dzs, das = reference.jvp(net, params, x, t, tangent_params, tangent_x)  # forward mode
    per_n = reference.per_example_gradients(net, params, x, t)  # Eq. 15 before the sum
    Hv = reference.hvp(net, params, x, t, v_params)  # R-operator on Eqs. 5, 14, 15, 18
    steps = reference.schedule(len(x), lr=0.5, epochs=100, anneal=0.99, rng=rng)  # (n, lr) per Eq. 7 step
"""

from .activations import ACTIVATIONS, Activation
from .backprop import (
    Trace,
    backward,
    deltas,
    forward,
    gradients,
    hidden_delta,
    layer_gradients,
    loss,
    output_delta,
)
from .descent import schedule, sgd_step, train, train_online
from .forward_mode import jvp
from .network import LOSSES, OUTPUT_ACTIVATION_FOR_LOSS, REDUCTIONS, Network, Params
from .per_example import per_example_gradients
from .second_order import SECOND_DERIVATIVES, hvp

__all__ = [
    "ACTIVATIONS",
    "LOSSES",
    "OUTPUT_ACTIVATION_FOR_LOSS",
    "REDUCTIONS",
    "SECOND_DERIVATIVES",
    "Activation",
    "Network",
    "Params",
    "Trace",
    "backward",
    "deltas",
    "forward",
    "gradients",
    "hidden_delta",
    "hvp",
    "jvp",
    "layer_gradients",
    "loss",
    "output_delta",
    "per_example_gradients",
    "schedule",
    "sgd_step",
    "train",
    "train_online",
]
