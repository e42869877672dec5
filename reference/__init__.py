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
from .descent import sgd_step, train, train_online
from .network import LOSSES, OUTPUT_ACTIVATION_FOR_LOSS, REDUCTIONS, Network, Params

__all__ = [
    "ACTIVATIONS",
    "LOSSES",
    "OUTPUT_ACTIVATION_FOR_LOSS",
    "REDUCTIONS",
    "Activation",
    "Network",
    "Params",
    "Trace",
    "backward",
    "deltas",
    "forward",
    "gradients",
    "hidden_delta",
    "layer_gradients",
    "loss",
    "output_delta",
    "sgd_step",
    "train",
    "train_online",
]
