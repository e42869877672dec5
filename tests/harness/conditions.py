"""Named conditions and predictions that known-discrepancy entries refer to.

A condition (``when = "..."``) narrows an entry to the cases where a finding can show; a
prediction (``predicted = "..."``) is an entry's bound: the relative error the finding's
mechanism predicts for the case.  Both are functions of a ``strategies.Case``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

import reference
from harness.bounded_arithmetic import Precision, round_to

if TYPE_CHECKING:
    from harness.strategies import Case


def _bce_saturated(case: Case) -> bool:
    """A sigmoid output with a (1 - a) below 1e-12, or a rounding to 0 or 1 in the dtype."""
    if case.network.loss != "bce":
        return False
    z = reference.forward(case.network, case.params, case.x).z[-1]
    a = round_to(reference.activations.sigmoid(z), case.dtype)
    return bool(np.any(reference.activations.sigmoid_prime(z) < 1e-12) or np.any((a == 0) | (a == 1)))


def _softplus_exp_overflows(case: Case) -> bool:
    """A softplus layer asked for the exact function (threshold = inf) whose exp(beta z)
    -- or its backward's dE/da exp(beta z), formed before the division by 1 + exp(beta z)
    -- overflows the dtype (torch float32: 86 exp(85) = inf although exp(85) is finite)."""
    limit = np.log(Precision.of(case.dtype).max)
    trace = reference.forward(case.network, case.params, case.x)
    deltas = reference.deltas(case.network, case.params, case.x, case.t)
    for (name, p), z, delta in zip(case.network.activations, trace.z, deltas):
        if name != "softplus" or not np.isinf(p["threshold"]):
            continue
        # 0 / 0 where sigmoid(beta z) underflows under a zero delta: NaN, never "overflows"
        # (exp(beta z) is tiny there).
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            grad_a = np.abs(delta) / reference.activations.sigmoid(p["beta"] * z)  # dE/da = delta / g'(z)
            log_grad = np.log(np.maximum(grad_a, 1.0))
        if np.any(p["beta"] * z + log_grad > limit - 1.0) or np.any(p["beta"] * z > limit - 1.0):
            return True
    return False


def _bce_hessian_relative_error(case: Case) -> float:
    """The relative error 2e-12 / (a (1 - a))^2 that the 1e-12 added to the probabilities
    in torch's binary_cross_entropy double backward causes in d2E/dz2, at its largest over
    the batch (0 for another loss)."""
    if case.network.loss != "bce":
        return 0.0
    z = reference.forward(case.network, case.params, case.x).z[-1]
    with np.errstate(divide="ignore", over="ignore"):
        return float(np.max(2e-12 / reference.activations.sigmoid_prime(z) ** 2))


def _bce_hessian_eps(case: Case) -> bool:
    """That relative error exceeds the dtype's unit roundoff (always in float64; in
    float32 once |z| > ~5)."""
    return _bce_hessian_relative_error(case) > Precision.of(case.dtype).u


def _gelu_tanh_square_overflows(case: Case) -> bool:
    """A gelu_tanh layer with a pre-activation whose 3 z^2 -- a factor of the tanh
    argument's derivative -- overflows the dtype (float16: |z| >= 148)."""
    trace = reference.forward(case.network, case.params, case.x)
    top = Precision.of(case.dtype).max
    return any(name == "gelu_tanh" and bool(np.any(3.0 * z.astype(np.float64) ** 2 > top))
               for (name, _), z in zip(case.network.activations, trace.z))


CONDITIONS: dict[str, Callable[[Case], bool]] = {
    "bce_saturated": _bce_saturated,
    "softplus_exp_overflows": _softplus_exp_overflows,
    "bce_hessian_eps": _bce_hessian_eps,
    "gelu_tanh_square_overflows": _gelu_tanh_square_overflows,
}
PREDICTIONS: dict[str, Callable[[Case], float]] = {
    "bce_hessian_eps": _bce_hessian_relative_error,
}
