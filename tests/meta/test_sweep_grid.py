"""The range sweep's grid reaches what it promises (``sweep.py``): every activation
setting and loss, every kink with its representable neighbours, both exp edges of the
dtype, and one batch shape per network, so that a compiling framework compiles once."""

from __future__ import annotations

import math

import numpy as np
import pytest

import reference
from harness import sweep
from harness.error_model import Precision, numpy_dtype
from harness.strategies import LOSS_ORDER

DTYPES = ("float64", "float32", "float16", "bfloat16")


def _z_of(cases, name: str, params: dict) -> np.ndarray:
    """Every pre-activation of the first layer of the cases of one activation setting."""
    return np.concatenate([c.case.x[:, 0] for c in cases
                           if c.case.network.activations[0] == (name, params) and c.case.network.loss == "sse"
                           and c.case.network.n_layers == 1])


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_activation_setting_and_loss_has_sweep_cases(dtype):
    cases = sweep.sweep_cases(dtype)
    for name, params in sweep.activation_settings():
        for layers in (1, 2):
            assert any(c.case.network.activations[0] == (name, params) and c.case.network.n_layers == layers
                       and c.case.network.loss == "sse" for c in cases), (name, params, layers, dtype)
    for loss in LOSS_ORDER:
        for reduction in ("sum", "mean"):
            assert any(c.case.network.loss == loss and c.case.network.reduction == reduction
                       and c.case.network.sizes == (3, 3) for c in cases), (loss, reduction, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_kink_and_its_neighbours_are_on_the_grid(dtype):
    cases = sweep.sweep_cases(dtype)
    kind = numpy_dtype(dtype)
    for name, params in sweep.activation_settings():
        z = _z_of(cases, name, params)
        for kink in reference.ACTIVATIONS[name].kinks(**params):
            here = np.array([kink]).astype(kind)
            below = np.nextafter(here, np.array([-np.inf]).astype(kind)).astype(np.float64)[0]
            above = np.nextafter(here, np.array([np.inf]).astype(kind)).astype(np.float64)[0]
            for point in (float(here[0]), below, above):
                assert point in z, f"{name} {params}: {point!r} (kink {kink}) is not on the {dtype} grid"


@pytest.mark.parametrize("dtype", DTYPES)
def test_grid_reaches_past_both_exp_edges_in_each_tail(dtype):
    z = _z_of(sweep.sweep_cases(dtype), "tanh", {})
    edge = math.log(Precision.of(dtype).max)  # exp(z) overflows beyond
    assert z.max() > edge and z.min() < -edge, (dtype, z.min(), z.max())
    assert np.min(np.abs(z[z != 0])) <= max(1e-8, Precision.of(dtype).tiny) * 1.01


@pytest.mark.parametrize("dtype", DTYPES)
def test_each_network_has_one_batch_shape(dtype):
    shapes: dict = {}
    for c in sweep.sweep_cases(dtype):
        net = c.case.network
        key = (net.sizes, repr(net.activations), net.loss, net.reduction)
        shapes.setdefault(key, set()).add(c.case.x.shape)
    assert all(len(s) == 1 for s in shapes.values()), {k: s for k, s in shapes.items() if len(s) > 1}


def test_unknown_dtype_is_rejected():
    with pytest.raises(ValueError, match="float8.*expected one of"):
        sweep.sweep_cases("float8")
