"""A failing case as a script that needs only NumPy and the framework.

The script rebuilds the network with the framework's public functions (no
deltacheck import), prints the framework's value of the failing quantity and the
reference's, so a framework author can run it anywhere.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from harness.compare import Comparison
    from harness.selection import Variant
    from harness.strategies import Case

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


def _scale(case: Case) -> float:
    net, n = case.network, case.x.shape[0]
    if net.reduction == "sum":
        return 1.0
    return 1.0 / (n * net.sizes[-1]) if net.loss in ("mse", "bce", "bce_logits") else 1.0 / n


def _acts(framework: str, case: Case) -> str:
    """The case's activations as a list of lambdas, in the very text of the table the
    framework's adapter runs (``adapters.<framework>_common.activation_code``), so the
    script computes what was checked -- the same derivative at every kink."""
    common = importlib.import_module(f"adapters.{framework}_common")
    sources = [common.activation_code(name, params).source for name, params in case.network.activations]
    return "[" + ", ".join(f"lambda z: {source}" for source in sources) + "]"


def snippet(variant: Variant, case: Case, comparison: Comparison) -> str:
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
            f"for (W, b), g in zip(P, {_acts('torch', case)}):",
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
            f"acts = {_acts('jax', case)}",
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
