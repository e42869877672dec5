"""Each framework's defaults that change what a gradient means, pinned.

Adapters always pass parameters explicitly; users often don't.  These are the
defaults a user inherits: gelu's approximation, softplus' switch to the identity,
leaky_relu's slope.  docs/kink-conventions.md lists them.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import reference

Z = np.array([-3.0, -0.5, 0.7, 25.0])


def _torch():
    torch = pytest.importorskip("torch", reason="torch is not installed")
    return torch, torch.nn.functional


def _jax():
    jax = pytest.importorskip("jax", reason="jax is not installed")
    jax.config.update("jax_enable_x64", True)
    return jax, jax.numpy


def _ref(name: str, **params) -> np.ndarray:
    record = reference.ACTIVATIONS[name]
    return record.fn(Z, **{**record.defaults, **params})


def test_torch_gelu_defaults_to_the_exact_erf_form():
    torch, F = _torch()
    got = F.gelu(torch.tensor(Z, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(got, _ref("gelu"), rtol=1e-14)


def test_jax_gelu_defaults_to_the_tanh_approximation():
    jax, jnp = _jax()
    got = np.asarray(jax.nn.gelu(jnp.asarray(Z, jnp.float64)))
    # jax forms 1 + tanh(u), which cancels for z << 0 (4e-14 relative at z = -3); the
    # two forms differ by ~1e-4, so 1e-12 still tells them apart.
    np.testing.assert_allclose(got, _ref("gelu_tanh"), rtol=1e-12)
    assert not np.allclose(got, _ref("gelu"), rtol=1e-6)


def test_torch_softplus_defaults_to_identity_above_threshold_20():
    torch, F = _torch()
    z = torch.tensor(Z, dtype=torch.float64, requires_grad=True)
    F.softplus(z).sum().backward()
    assert z.grad[-1].item() == 1.0  # the identity branch; sigma(25) = 1 - 1.4e-11
    np.testing.assert_allclose(F.softplus(z).detach().numpy(), _ref("softplus", threshold=20.0), rtol=1e-14)


def test_jax_softplus_is_exact_with_no_threshold():
    jax, jnp = _jax()
    grad = jax.grad(lambda v: jax.nn.softplus(v))(jnp.float64(25.0))
    assert float(grad) == pytest.approx(1.0 - math.exp(-25.0), rel=1e-15)
    assert float(grad) != 1.0


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_leaky_relu_default_slope_is_0_01(framework):
    if framework == "torch":
        torch, F = _torch()
        got = F.leaky_relu(torch.tensor(Z, dtype=torch.float64)).numpy()
    else:
        jax, jnp = _jax()
        got = np.asarray(jax.nn.leaky_relu(jnp.asarray(Z, jnp.float64)))
    np.testing.assert_allclose(got, _ref("leaky_relu", slope=0.01), rtol=1e-15)
