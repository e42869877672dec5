"""A network whose forward pass turns to NaN must not break the device for the next one.

torch's CUDA binary_cross_entropy checks its input range with a device-side assert,
which leaves the CUDA context unusable for the rest of the process: every later test on
that pytest worker would fail.  The torch adapter checks the range on the host first and
raises the CPU kernel's error (the suite then sees an explained crash).  This test runs,
on every target and device, a bce network whose sigmoid input is NaN under torch
(softplus with no threshold overflows to inf, and inf - inf follows; jax's softplus
stays finite), then an ordinary network, which must come out finite.
"""

from __future__ import annotations

import numpy as np

from adapters.interface import Activation, NetworkSpec, Problem

OVERFLOWING = Problem(
    NetworkSpec((1, 2, 1), (Activation("softplus", {"beta": 1.0, "threshold": float("inf")}), Activation("sigmoid")),
                "bce"),
    [(np.array([[1000.0, 1000.0]]), np.zeros(2)), (np.array([[1.0], [-1.0]]), np.zeros(1))],
    np.array([[1.0]]),
    np.array([[1.0]]),
)
ORDINARY = Problem(
    NetworkSpec((1, 1), (Activation("sigmoid"),), "bce"),
    [(np.array([[0.5]]), np.array([0.25]))],
    np.array([[1.0]]),
    np.array([[1.0]]),
)


def test_a_nan_network_leaves_the_device_usable(target_device):
    variant = target_device
    on = dict(device=variant.device, dtype="float32", lr=0.1)
    try:  # jax's softplus (logaddexp) stays finite: it computes this network
        variant.adapter.compute(OVERFLOWING, **on)
    except RuntimeError as err:  # torch: the range check's error, on every device
        assert variant.framework == "torch" and "between 0 and 1" in str(err), err
    else:
        assert variant.framework != "torch", "torch's softplus(threshold=inf) no longer overflows here"
    result = variant.adapter.compute(ORDINARY, **on)
    assert np.isfinite(result.loss) and all(np.isfinite(d).all() for d in result.deltas)
