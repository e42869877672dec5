"""Each framework's derivative at every kink, pinned for the installed version.

At a kink the derivative is a convention, not a fact; frameworks differ, and a
release can change theirs.  For each target and kink the test runs the adapter on a
one-weight network (W = 1, b = 0, x = the kink, sse with t = g(kink) - 1), whose
output delta is g'(kink) (a - t), divides it by the framework's own a - t = sqrt(2 E), and
compares the quotient with the table below: the
reference's own convention (``reference.ACTIVATIONS[name].kink_convention``) unless
the framework is listed with another value.  docs/kink-conventions.md's table is this data.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import reference
from adapters.interface import Activation, NetworkSpec, Problem
from harness.error_model import Precision, round_to

# (activation, parameters): every kinked activation, with non-default parameters where
# they move the kink or the value there.
KINKED = (
    ("relu", {}),
    ("leaky_relu", {"slope": 0.2}),
    ("elu", {"alpha": 0.5}),
    ("selu", {}),
    ("celu", {"alpha": 2.0}),
    ("softplus", {"beta": 1.0, "threshold": 20.0}),
    ("hardtanh", {"min_val": -1.0, "max_val": 1.0}),
    ("hardtanh", {"min_val": -2.0, "max_val": 0.5}),
    ("relu6", {}),
    ("hardsigmoid", {}),
    ("hardswish", {}),
)
# Where a framework's convention differs from the reference's: {(name, kink): g'}.
FRAMEWORK_CONVENTIONS = {
    "torch": {},
    "jax": {
        ("leaky_relu", 0.0): 1.0,  # where(z >= 0, z, slope z): the right derivative
        ("hardtanh", -1.0): 1.0,  # jax.nn.hard_tanh passes the gradient at both bounds
        ("hardtanh", 1.0): 1.0,
        ("hardtanh", -2.0): 0.5,  # jnp.clip (other bounds): max/min split a tie's gradient
        ("hardtanh", 0.5): 0.5,
    },
}
KINK_DTYPES = ("float64", "float32")


def _kinks():
    for name, params in KINKED:
        record = reference.ACTIVATIONS[name]
        full = {**record.defaults, **params}
        for kink in record.kinks(**full):
            label = "".join(f",{k}={v:g}" for k, v in params.items())
            yield pytest.param(name, full, kink, id=f"{name}{label}@{kink:g}")


def expected_derivative(framework: str, name: str, params: dict, kink: float) -> float:
    table = FRAMEWORK_CONVENTIONS.get(framework, {})
    if (name, kink) in table:
        return table[(name, kink)]
    return float(reference.ACTIVATIONS[name].grad(np.array(kink), **params))


def measured_derivative(variant, name: str, params: dict, kink: float, dtype: str) -> float:
    g = float(reference.ACTIVATIONS[name].fn(np.array(kink), **params))
    spec = NetworkSpec((1, 1), (Activation(name, params),), "sse", "sum")
    problem = Problem(spec, [(np.ones((1, 1)), np.zeros(1))], np.array([[kink]]), np.array([[g - 1.0]]))
    result = variant.adapter.compute(problem, device=variant.device, dtype=dtype, lr=0.1)
    # delta = g'(kink) (a - t) with a - t = 1 up to the framework's error in g(kink), which
    # is not the convention's business (torch's CUDA hardswish errs by 3e-8 in float64):
    # divide by the framework's own a - t, recovered from its loss E = (a - t)^2 / 2.
    return float(result.deltas[0][0, 0]) / math.sqrt(2.0 * result.loss)


@pytest.mark.parametrize("dtype", KINK_DTYPES)
@pytest.mark.parametrize(("name", "params", "kink"), list(_kinks()))
def test_kink_convention_is_pinned(target_device, name, params, kink, dtype):
    variant = target_device
    want = float(round_to(np.array(expected_derivative(variant.framework, name, params, kink)), dtype))
    got = measured_derivative(variant, name, params, kink, dtype)
    # A few ulps: the value at a kink is a constant (slope, alpha, scale * alpha, 1/6)
    # or sigma(threshold), which autodiff may form as exp(z - softplus(z)): u |z| more.
    tolerance = (4 + abs(kink)) * Precision.of(dtype).u * max(1.0, abs(want))
    assert math.isfinite(got) and abs(got - want) <= tolerance, (
        f"{variant.target} on {variant.device}: {name}'({kink:g}) with {params} is {got!r} in {dtype}; "
        f"the pinned convention is {want!r} "
        f"({'framework table' if (name, kink) in FRAMEWORK_CONVENTIONS.get(variant.framework, {}) else 'the reference: ' + reference.ACTIVATIONS[name].kink_convention}). "
        "A changed convention belongs in FRAMEWORK_CONVENTIONS and docs/kink-conventions.md's table."
    )
