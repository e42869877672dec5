"""The error model's growing bound for the post's online loop.

``error_model.trajectory_bounds`` bounds a full-batch trajectory; here every step
is Eq. 7 on one example with its own learning rate, as a schedule of
``(example index, lr)`` pairs lists them.  Each step's bound takes the previous
step's parameter errors as input errors of the forward and backward pass on that
example (``param_errors``), so the bound after k steps is the error model's own
propagation through those k steps -- it grows with k and with no tolerance added.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

import reference
from harness.error_model import error_bounds, fits_dtype

Array = np.ndarray


def online_trajectory(
    net: reference.Network, params: reference.Params, x: Array, t: Array, schedule: Sequence[tuple[int, float]]
) -> list[reference.Params]:
    """The reference's parameters after each step of ``schedule``, in float64."""
    history = []
    for n, lr in schedule:
        params = reference.sgd_step(params, reference.gradients(net, params, x[n:n + 1], t[n:n + 1]), lr)
        history.append(params)
    return history


def online_trajectory_bounds(
    net: reference.Network, params: reference.Params, x: Array, t: Array, *, dtype: str, schedule: Sequence[tuple[int, float]],
    absolute: bool = False,
) -> list[tuple[list[Array], list[Array]]]:
    """Per-entry bounds ``(W bounds, b bounds)`` after each step of ``schedule`` on how
    far a ``dtype`` computation of the online loop from ``params`` may drift from the
    exact trajectory.  The history stops early at the first step whose bounds are not
    finite or whose values the dtype cannot hold (``fits_dtype``): from there on the
    drift cannot be bounded."""
    history, errors = [], None
    for n, lr in schedule:
        row_x, row_t = x[n:n + 1], t[n:n + 1]
        with np.errstate(over="ignore", invalid="ignore"):
            b = error_bounds(net, params, row_x, row_t, dtype=dtype, lr=lr, absolute=absolute, param_errors=errors)
        if not fits_dtype(b, dtype):
            break
        errors = list(zip(b.stepped_W, b.stepped_b))
        history.append((b.stepped_W, b.stepped_b))
        params = reference.sgd_step(params, reference.gradients(net, params, row_x, row_t), lr)
    return history
