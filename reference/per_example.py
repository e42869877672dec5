"""Per-example gradients: the terms of Eqs. 6, 8, 15 and 18 before the batch sum.

Eq. 15 for a batch is ``dE/dw_ij = sum_n delta_j[n] a_i[n]``: one outer product per
example, summed.  ``per_example_gradients`` returns those outer products unsummed,
``dW[n] = a_in[n] (x) delta[n]`` and ``db[n] = delta[n]``, where delta carries the
batch's reduction scale (1, 1/N or 1/(N K)), so that the sum over n is exactly
``reference.gradients``.
"""

from __future__ import annotations

import numpy as np

from .backprop import _prepare, backward
from .network import Network

Array = np.ndarray


def per_example_gradients(net: Network, params: list[tuple[Array, Array]], x: Array,
                          t: Array) -> list[tuple[Array, Array]]:
    """``[(dW (batch, n_in, n_out), db (batch, n_out)), ...]`` per layer: example n's
    term ``delta_j[n] a_i[n]`` of Eqs. 6 / 15 and ``delta_j[n]`` of Eqs. 8 / 18."""
    trace, t = _prepare(net, params, x, t)
    ds = backward(net, params, trace, t)
    return [
        (np.einsum("ni,nj->nij", a_in, d), d.copy())  # Eq. 15 / Eq. 18 before the sum over n
        for d, a_in in zip(ds, trace.a_in)
    ]
