"""Faults planted in the frameworks themselves, for the suite's self-tests and
``benchmarks/framework_faults.py``.

Each fault replaces a public function of torch or jax -- an activation, or the linear
layer -- by one whose forward is the original's, bit for bit, and whose derivative is
wrong on part of its range: torch through ``torch.autograd.Function``, jax through
``jax.custom_jvp``.  The adapters call the patched public function as they would the
real one; nothing in the suite knows.  ``Fault.install`` takes the function that sets
the attribute (``monkeypatch.setattr`` in a test, so that the fault is undone after it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Fault:
    name: str
    framework: str  # "torch" or "jax"
    what: str
    install: Callable[[Callable], None]  # install(setattr)


def _torch_activation(put: Callable, module, attr: str, wrong: Callable, applies: Callable = lambda kw: True,
                      names: tuple[str, ...] = ()) -> None:
    """Replace ``module.attr`` (an activation) by one whose backward is
    ``wrong(z, grad, right, kwargs)``, ``right`` being the original's backward; the
    forward calls the original.  ``names``: the original's positional parameters after z."""
    import torch

    original = getattr(module, attr)

    class Faulty(torch.autograd.Function):
        @staticmethod
        def forward(z, kwargs):
            return original(z, **kwargs)

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(inputs[0])
            ctx.kwargs = inputs[1]

        @staticmethod
        def backward(ctx, grad):
            (z,) = ctx.saved_tensors
            # torch.func.vjp, not autograd.grad: it also runs inside torch.func.grad (torch-func).
            vjp = torch.func.vjp(lambda zz: original(zz, **ctx.kwargs), z)[1]
            (right,) = vjp(grad)
            return wrong(z, grad, right, ctx.kwargs), None

    def patched(z, *args, **kwargs):
        kwargs = {**dict(zip(names, args)), **kwargs}
        return Faulty.apply(z, kwargs) if applies(kwargs) else original(z, **kwargs)

    put(module, attr, patched)


def _torch_linear(put: Callable, wrong_weight_grad: Callable) -> None:
    """F.linear whose weight gradient is ``wrong_weight_grad(grad, x, weight)``."""
    import torch
    import torch.nn.functional as F

    original = F.linear

    class Linear(torch.autograd.Function):
        @staticmethod
        def forward(x, weight, bias):
            return original(x, weight, bias)

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(inputs[0], inputs[1])

        @staticmethod
        def backward(ctx, grad):
            x, weight = ctx.saved_tensors
            return grad @ weight, wrong_weight_grad(grad, x, weight), grad.sum(0)

    put(F, "linear", lambda x, weight, bias=None: Linear.apply(x, weight, bias))


def _jax_activation(put: Callable, module, attr: str, wrong: Callable, applies: Callable = lambda kw: True) -> None:
    """Replace ``module.attr`` by a ``jax.custom_jvp`` whose tangent is
    ``wrong(z, dz, y, right)`` (``y``, ``right``: the original's value and tangent); the
    primal is the original's."""
    import functools

    import jax

    original = getattr(module, attr)

    def patched(z, **kwargs):
        if not applies(kwargs):
            return original(z, **kwargs)

        @jax.custom_jvp
        def f(z):
            return original(z, **kwargs)

        @f.defjvp
        def f_jvp(primals, tangents):
            y, right = jax.jvp(functools.partial(original, **kwargs), primals, tangents)
            return y, wrong(primals[0], tangents[0], y, right)

        return f(z)

    put(module, attr, patched)


def _jax_matmul(put: Callable, wrong_weight_tangent: Callable) -> None:
    """jnp.matmul whose tangent in the weights is ``wrong_weight_tangent(matmul, a, dw, precision)``
    (transposed by jax into dE/dW); the primal is the original's."""
    import jax
    import jax.numpy as jnp

    original = jnp.matmul

    def patched(a, w, precision=None, **kwargs):
        @jax.custom_jvp
        def f(a, w):
            return original(a, w, precision=precision, **kwargs)

        @f.defjvp
        def f_jvp(primals, tangents):
            (a, w), (da, dw) = primals, tangents
            return f(a, w), original(da, w, precision=precision) + wrong_weight_tangent(original, a, dw, precision)

        return f(a, w)

    put(jnp, "matmul", patched)


def _torch_faults() -> list[Fault]:
    import torch
    import torch.nn.functional as F

    def elu_from_output(z, grad, right, kw):  # y + alpha, which cancels for z << 0
        alpha = kw.get("alpha", 1.0)
        return torch.where(z > 0, grad, grad * (alpha * torch.expm1(z) + alpha))

    def softplus_float32(z, grad, right, kw):  # sigmoid(beta z) formed in float32
        bz = kw.get("beta", 1.0) * z
        return torch.where(bz > kw.get("threshold", 20.0), right, grad * torch.sigmoid(bz.float()).to(z.dtype))

    def gelu_tanh_constant(z, grad, right, kw):  # 0.0447 for 0.044715 in the derivative
        c, k = 0.0447, math.sqrt(2.0 / math.pi)
        u = k * (z + c * z**3)
        th = torch.tanh(u)
        return grad * (0.5 * (1 + th) + 0.5 * z * (1 - th**2) * k * (1 + 3 * c * z**2))

    return [
        Fault("torch-gelu-left-tail-zeroed", "torch", "F.gelu (exact): gelu'(z) = 0 for z < -3",
              lambda put: _torch_activation(put, F, "gelu", lambda z, g, r, kw: torch.where(z < -3, 0 * r, r),
                                        lambda kw: kw.get("approximate", "none") == "none")),
        Fault("torch-tanh-relative-1e-7", "torch", "torch.tanh: tanh'(z) x (1 + 1e-7) for z > 0.5",
              lambda put: _torch_activation(put, torch, "tanh", lambda z, g, r, kw: torch.where(z > 0.5, r * (1 + 1e-7), r))),
        Fault("torch-elu-from-output", "torch", "F.elu: elu'(z) = y + alpha for z < 0 (from the output)",
              lambda put: _torch_activation(put, F, "elu", elu_from_output)),
        Fault("torch-softplus-float32-inside", "torch", "F.softplus: softplus' = sigmoid(beta z) in float32",
              lambda put: _torch_activation(put, F, "softplus", softplus_float32, names=("beta", "threshold"))),
        Fault("torch-gelu-tanh-constant", "torch", "F.gelu (tanh): 0.0447 for 0.044715 in the derivative",
              lambda put: _torch_activation(put, F, "gelu", gelu_tanh_constant, lambda kw: kw.get("approximate") == "tanh")),
        Fault("torch-linear-dW-scale", "torch", "F.linear: dE/dW x (1 + 1e-6)",
              lambda put: _torch_linear(put, lambda g, x, w: (g.T @ x) * (1 + 1e-6))),
        Fault("torch-linear-dW-bfloat16", "torch", "F.linear: dE/dW accumulated in bfloat16",
              lambda put: _torch_linear(put, lambda g, x, w: (g.T.bfloat16() @ x.bfloat16()).to(w.dtype))),
    ]


def _jax_faults() -> list[Fault]:
    import jax
    import jax.numpy as jnp

    def softplus_from_output(z, dz, y, right):  # 1 - exp(-y): 0 once y < u (z << 0)
        return dz * (1.0 - jnp.exp(-y))

    def sigmoid_float32(z, dz, y, right):  # s (1 - s) formed in float32
        s = jax.nn.sigmoid(z.astype(jnp.float32)) if z.dtype == jnp.float64 else y
        return dz * (s * (1 - s)).astype(z.dtype)

    def gelu_tanh_constant(z, dz, y, right):  # 0.0447 for 0.044715
        c, k = 0.0447, math.sqrt(2.0 / math.pi)
        th = jnp.tanh(k * (z + c * z**3))
        return dz * (0.5 * (1 + th) + 0.5 * z * (1 - th**2) * k * (1 + 3 * c * z**2))

    exact = lambda kw: kw.get("approximate", True) is False
    return [
        Fault("jax-gelu-left-tail-zeroed", "jax", "jax.nn.gelu (exact): gelu'(z) = 0 for z < -3",
              lambda put: _jax_activation(put, jax.nn, "gelu", lambda z, dz, y, r: jnp.where(z < -3, 0 * r, r), exact)),
        Fault("jax-tanh-relative-1e-7", "jax", "jnp.tanh: tanh'(z) x (1 + 1e-7) for z > 0.5",
              lambda put: _jax_activation(put, jnp, "tanh", lambda z, dz, y, r: jnp.where(z > 0.5, r * (1 + 1e-7), r))),
        Fault("jax-softplus-from-output", "jax", "jax.nn.softplus: softplus' = 1 - exp(-y) (from the output)",
              lambda put: _jax_activation(put, jax.nn, "softplus", softplus_from_output)),
        Fault("jax-sigmoid-float32-inside", "jax", "jax.nn.sigmoid: s (1 - s) in float32",
              lambda put: _jax_activation(put, jax.nn, "sigmoid", sigmoid_float32)),
        Fault("jax-gelu-tanh-constant", "jax", "jax.nn.gelu (tanh): 0.0447 for 0.044715 in the derivative",
              lambda put: _jax_activation(put, jax.nn, "gelu", gelu_tanh_constant, lambda kw: not exact(kw))),
        Fault("jax-matmul-dW-scale", "jax", "jnp.matmul: dE/dW x (1 + 1e-6)",
              lambda put: _jax_matmul(put, lambda mm, a, dw, p: mm(a, dw, precision=p) * (1 + 1e-6))),
        Fault("jax-matmul-dW-bfloat16", "jax", "jnp.matmul: dE/dW accumulated in bfloat16",
              lambda put: _jax_matmul(put, lambda mm, a, dw, p: mm(a.astype(jnp.bfloat16), dw.astype(jnp.bfloat16),
                                                          precision=p).astype(a.dtype))),
    ]


def faults(framework: str | None = None) -> dict[str, Fault]:
    """Every fault by name (importing torch and jax as needed), or one framework's."""
    out = {}
    for wanted, build in (("torch", _torch_faults), ("jax", _jax_faults)):
        if framework in (None, wanted):
            out.update({f.name: f for f in build()})
    return out
