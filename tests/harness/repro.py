"""A failing case as a script that needs only NumPy and the framework.

The script rebuilds the network with the framework's public functions (no
deltacheck import), prints the framework's value of the failing quantity and the
reference's, so a framework author can run it anywhere.
"""

from __future__ import annotations

import numpy as np

_TORCH_ACT = {
    "identity": "z", "sigmoid": "torch.sigmoid(z)", "tanh": "torch.tanh(z)", "relu": "F.relu(z)",
    "leaky_relu": "F.leaky_relu(z, {slope})", "elu": "F.elu(z, {alpha})", "selu": "F.selu(z)",
    "celu": "F.celu(z, {alpha})", "softplus": "F.softplus(z, {beta}, {threshold})",
    "gelu": "F.gelu(z)", "gelu_tanh": "F.gelu(z, approximate='tanh')", "silu": "F.silu(z)",
    "mish": "F.mish(z)", "softsign": "F.softsign(z)", "hardtanh": "F.hardtanh(z, {min_val}, {max_val})",
    "relu6": "F.relu6(z)", "hardsigmoid": "F.hardsigmoid(z)", "hardswish": "F.hardswish(z)",
    "log_sigmoid": "F.logsigmoid(z)", "softmax": "F.softmax(z, dim=-1)",
}
_JAX_ACT = {
    "identity": "z", "sigmoid": "jax.nn.sigmoid(z)", "tanh": "jnp.tanh(z)", "relu": "jax.nn.relu(z)",
    "leaky_relu": "jax.nn.leaky_relu(z, {slope})", "elu": "jax.nn.elu(z, {alpha})", "selu": "jax.nn.selu(z)",
    "celu": "jax.nn.celu(z, {alpha})",
    "softplus": "jnp.where({beta} * z > {threshold}, z, jax.nn.softplus({beta} * z) / {beta})",
    "gelu": "jax.nn.gelu(z, approximate=False)", "gelu_tanh": "jax.nn.gelu(z, approximate=True)",
    "silu": "jax.nn.silu(z)", "mish": "jax.nn.mish(z)", "softsign": "jax.nn.soft_sign(z)",
    "hardtanh": "jnp.clip(z, {min_val}, {max_val})", "relu6": "jax.nn.relu6(z)",
    "hardsigmoid": "jax.nn.hard_sigmoid(z)", "hardswish": "jax.nn.hard_swish(z)",
    "log_sigmoid": "jax.nn.log_sigmoid(z)", "softmax": "jax.nn.softmax(z, axis=-1)",
}
# Sum of per-element terms; the reduction scale is applied separately.
_LOSS = {
    "sse": "0.5 * ((a - t) ** 2).sum()", "mse": "((a - t) ** 2).sum()",
    "bce": "-(t * L.log(a) + (1 - t) * L.log(1 - a)).sum()",
    "bce_logits": "(L.maximum(z, 0) - t * z + L.log1p(L.exp(-abs(z)))).sum()",
    "ce": "-(t * L.log(a)).sum()",
    "softmax_ce": "-(t * (z - L.log(L.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True)) - z.max(-1, keepdims=True))).sum()",
}


def _array(a: np.ndarray) -> str:
    return f"np.array({np.asarray(a, np.float64).tolist()!r})"


def _scale(case) -> float:
    net, n = case.network, case.x.shape[0]
    if net.reduction == "sum":
        return 1.0
    return 1.0 / (n * net.sizes[-1]) if net.loss in ("mse", "bce", "bce_logits") else 1.0 / n


def _acts(table: dict[str, str], case) -> str:
    fmt = lambda p: {k: repr(float(v)).replace("inf", "float('inf')") for k, v in p.items()}
    return "[" + ", ".join(f"lambda z: {table[n].format(**fmt(p))}" for n, p in case.network.activations) + "]"


def snippet(variant, case, comparison) -> str:
    framework = variant.framework
    head = [
        "import numpy as np",
        "params = [" + ", ".join(
            f"({_array(W)}, {_array(b)})" for W, b in case.params) + "]",
        f"x = {_array(case.x)}",
        f"t = {_array(case.t)}",
        f"scale, lr = {_scale(case)!r}, {case.lr!r}",
        f"# reference {comparison.quantity}:",
        f"expected = {_array(comparison.expected)}",
    ]
    loss = _LOSS[case.network.loss]
    if framework == "torch":
        body = [
            "import torch; import torch.nn.functional as F; L = torch",
            f"dtype, device = torch.{variant.dtype}, {variant.device!r}",
            "P = [(torch.tensor(W, dtype=dtype, device=device, requires_grad=True), "
            "torch.tensor(b, dtype=dtype, device=device, requires_grad=True)) for W, b in params]",
            "a = torch.tensor(x, dtype=dtype, device=device); t = torch.tensor(t, dtype=dtype, device=device); zs = []",
            f"for (W, b), g in zip(P, {_acts(_TORCH_ACT, case)}):",
            "    z = a @ W + b; z.retain_grad(); zs.append(z); a = g(z)",
            f"E = scale * {loss}",
            "E.backward()",
            "print('E', E.item())",
            "for l, (z, (W, b)) in enumerate(zip(zs, P), 1): print(f'layer {l}: dE/dz', z.grad, 'dE/dW', W.grad, 'dE/db', b.grad, sep='\\n')",
        ]
    elif framework == "jax":
        body = [
            "import jax; import jax.numpy as jnp; L = jnp",
            "jax.config.update('jax_enable_x64', True)",
            f"dtype = jnp.{variant.dtype}",
            f"acts = {_acts(_JAX_ACT, case)}",
            "def E_of(P, eps, x, t):",
            "    a = x",
            "    for (W, b), e, g in zip(P, eps, acts):",
            "        z = a @ W + b + e; a = g(z)",
            f"    return scale * {loss}",
            "P = [(jnp.asarray(W, dtype), jnp.asarray(b, dtype)) for W, b in params]",
            "eps = [jnp.zeros((x.shape[0], W.shape[1]), dtype) for W, _ in params]",
            "with jax.default_matmul_precision('highest'):",
            "    E, (dP, deltas) = jax.value_and_grad(E_of, argnums=(0, 1))(P, eps, jnp.asarray(x, dtype), jnp.asarray(t, dtype))",
            "print('E', E)",
            "for l, (d, (dW, db)) in enumerate(zip(deltas, dP), 1): print(f'layer {l}: dE/dz', d, 'dE/dW', dW, 'dE/db', db, sep='\\n')",
        ]
    else:
        body = [f"# {framework}: no template; rebuild the network above in {framework} and compare"]
    body.append("print('reference:', expected)")
    return "\n".join(["```python", *head, *body, "```"])
