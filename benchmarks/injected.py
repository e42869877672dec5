"""One planted bug, three ways: tanh'(z) off by a relative ``eps`` where z > 0.5.

* ``InjectedTorch`` -- the real ``torch`` target with every tanh layer replaced by a
  ``torch.autograd.Function`` whose backward is ``grad * tanh'(z) * (1 + eps [z > 0.5])``,
  formed in float64 (tanh'(z) = 4 e / (1 + e)^2, e = exp(-2|z|): accurate from z, no
  1 - y^2) and rounded once to the dtype under test; every other layer, the loss and
  the step are the torch target's own.  With ``eps = 0`` it is a correct adapter.
* ``torch_loss`` -- the same tanh in a plain float64 loss, for ``torch.autograd.gradcheck``.
* ``jax_loss`` -- the same derivative through ``jax.custom_jvp``, for
  ``jax.test_util.check_grads``.
"""

from __future__ import annotations

import numpy as np
import torch

from adapters.registry import load_target

THRESHOLD = 0.5


def _tanh_prime64(z: torch.Tensor, eps: float) -> torch.Tensor:
    z = z.double()
    e = torch.exp(-2.0 * z.abs())
    exact = 4.0 * e / (1.0 + e) ** 2
    return torch.where(z > THRESHOLD, exact * (1.0 + eps), exact)


class _Tanh(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z, eps: float):
        ctx.save_for_backward(z)
        ctx.eps = eps
        return torch.tanh(z)

    @staticmethod
    def backward(ctx, grad):
        (z,) = ctx.saved_tensors
        return (grad.double() * _tanh_prime64(z, ctx.eps)).to(grad.dtype), None


class InjectedTorch(type(load_target("torch"))):
    """The ``torch`` target, its tanh derivative off by ``eps`` for z > 0.5."""

    def __init__(self, eps: float) -> None:
        self.eps = eps

    def _activate(self, z, act):
        return _Tanh.apply(z, self.eps) if act.name == "tanh" else super()._activate(z, act)


def peer_problem(seed: int) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """A small tanh network for the peers: 1-3 tanh layers of width 2-16, a linear
    output, batch 1-8, weights of scale 1/sqrt(fan-in), inputs of scale 1."""
    rng = np.random.default_rng(seed)
    sizes = list(rng.integers(2, 17, size=int(rng.integers(3, 6))))
    batch = int(rng.integers(1, 9))
    params = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        params += [rng.standard_normal((a, b)) / np.sqrt(a), rng.standard_normal(b)]
    return params, rng.standard_normal((batch, sizes[0])), rng.standard_normal((batch, sizes[-1]))


def torch_loss(x: np.ndarray, t: np.ndarray, eps: float):
    xt, tt = torch.tensor(x), torch.tensor(t)

    def loss(*params):
        a = xt
        n = len(params) // 2
        for i in range(n):
            z = a @ params[2 * i] + params[2 * i + 1]
            a = _Tanh.apply(z, eps) if i < n - 1 else z
        return 0.5 * ((a - tt) ** 2).sum()

    return loss


def jax_loss(x: np.ndarray, t: np.ndarray, eps: float):
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)

    @jax.custom_jvp
    def tanh(z):
        return jnp.tanh(z)

    @tanh.defjvp
    def tanh_jvp(primals, tangents):
        (z,), (dz,) = primals, tangents
        e = jnp.exp(-2.0 * jnp.abs(z))
        exact = 4.0 * e / (1.0 + e) ** 2
        return jnp.tanh(z), dz * jnp.where(z > THRESHOLD, exact * (1.0 + eps), exact)

    xj, tj = jnp.asarray(x), jnp.asarray(t)

    def loss(params):
        a = xj
        n = len(params) // 2
        for i in range(n):
            z = a @ params[2 * i] + params[2 * i + 1]
            a = tanh(z) if i < n - 1 else z
        return 0.5 * jnp.sum((a - tj) ** 2)

    return loss
