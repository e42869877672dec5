"""A failing forward-mode, Hessian-vector or per-example case as a script that needs
only NumPy and the framework: the network rebuilt with public functions, the
framework's transform of it (torch.func / jax), and the reference's values."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from harness.repro import _LOSS, _acts, _array, _scale

if TYPE_CHECKING:
    from harness.compare import Comparison
    from harness.selection import Variant
    from harness.strategies import Case

_TORCH = {
    "jvp": [
        "dP = [(T(W), T(b)) for W, b in tangent]; dX = T(tangent_x)",
        "(E, outs), (dE, douts) = torch.func.jvp(lambda P, x: E_of(P, x, Tt), (P, X), (dP, dX))",
        "print('dE', dE.item()); [print(f'layer {l}: da', d) for l, d in enumerate(douts, 1)]",
    ],
    "hvp": [
        "dP = [(T(W), T(b)) for W, b in vector]",
        "grad = torch.func.grad(lambda P: E_of(P, X, Tt)[0])",
        "_, Hv = torch.func.jvp(grad, (P,), (dP,))",
        "[print(f'layer {l}: HvW', hW, 'Hvb', hb, sep='\\n') for l, (hW, hb) in enumerate(Hv, 1)]",
    ],
    "per_example_grads": [
        "one = lambda P, xn, tn: E_of(P, xn[None], tn[None])[0]",
        "per = torch.func.vmap(torch.func.grad(one), in_dims=(None, 0, 0))(P, X, Tt)",
        "[print(f'layer {l}: dW per example', gW, 'db per example', gb, sep='\\n') for l, (gW, gb) in enumerate(per, 1)]",
    ],
}
_JAX = {
    "jvp": [
        "dP = [(T(W), T(b)) for W, b in tangent]; dX = T(tangent_x)",
        "(E, outs), (dE, douts) = jax.jvp(lambda P, x: E_of(P, x, Tt), (P, X), (dP, dX))",
        "print('dE', dE); [print(f'layer {l}: da', d) for l, d in enumerate(douts, 1)]",
    ],
    "hvp": [
        "dP = [(T(W), T(b)) for W, b in vector]",
        "_, Hv = jax.jvp(jax.grad(lambda P: E_of(P, X, Tt)[0]), (P,), (dP,))",
        "[print(f'layer {l}: HvW', hW, 'Hvb', hb, sep='\\n') for l, (hW, hb) in enumerate(Hv, 1)]",
    ],
    "per_example_grads": [
        "one = lambda P, xn, tn: E_of(P, xn[None], tn[None])[0]",
        "per = jax.vmap(jax.grad(one), in_axes=(None, 0, 0))(P, X, Tt)",
        "[print(f'layer {l}: dW per example', gW, 'db per example', gb, sep='\\n') for l, (gW, gb) in enumerate(per, 1)]",
    ],
}


def _pairs(name: str, pairs: Iterable[tuple[np.ndarray, np.ndarray]]) -> str:
    return f"{name} = [" + ", ".join(f"({_array(W)}, {_array(b)})" for W, b in pairs) + "]"


def transform_snippet(variant: Variant, case: Case, method: str, comparison: Comparison,
                      tangent: list[tuple[np.ndarray, np.ndarray]] | None = None, tangent_x: np.ndarray | None = None
                      ) -> str:
    """The script for ``method`` (jvp, hvp, per_example_grads) of ``case``; ``tangent`` (and, for
    jvp, ``tangent_x``) are the method's arguments, the vector for hvp."""
    head = ["import numpy as np", _pairs("params", case.params), f"x = {_array(case.x)}", f"t = {_array(case.t)}",
            f"scale = {_scale(case)!r}"]
    if method == "jvp":
        assert tangent is not None and tangent_x is not None, "jvp's script needs its tangent and tangent_x"
        head += [_pairs("tangent", tangent), f"tangent_x = {_array(tangent_x)}"]
    elif method == "hvp":
        assert tangent is not None, "hvp's script needs its vector"
        head.append(_pairs("vector", tangent))
    head += [f"# reference {comparison.quantity}:", f"expected = {_array(comparison.expected)}"]
    define = [
        "def E_of(P, x, t):",
        "    a, outs = x, []",
        "    for (W, b), g in zip(P, acts):",
        "        z = a @ W + b; a = g(z); outs.append(a)",
        f"    return scale * {_LOSS[case.network.loss]}, outs",
        "P = [(T(W), T(b)) for W, b in params]; X, Tt = T(x), T(t)",
    ]
    if variant.framework == "torch":
        body = ["import torch; import torch.nn.functional as F; L = torch",
                f"T = lambda v: torch.tensor(v, dtype=torch.{variant.dtype}, device={variant.device!r})",
                f"acts = {_acts('torch', case)}", *define, *_TORCH[method]]
    elif variant.framework == "jax":
        body = ["import jax; import jax.numpy as jnp; L = jnp", "jax.config.update('jax_enable_x64', True)",
                "jax.config.update('jax_default_matmul_precision', 'highest')",
                f"T = lambda v: jnp.asarray(v, jnp.{variant.dtype})",
                f"acts = {_acts('jax', case)}", *define, *_JAX[method]]
    else:
        body = [f"# {variant.framework}: no template; rebuild the network above and apply its {method}"]
    return "\n".join(["```python", *head, *body, "print('reference:', expected)", "```"])
