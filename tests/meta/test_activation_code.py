"""Each adapter's activation table pairs the call it runs with that call's source text,
which the reproducer scripts print (``tests/repro.py``).  The text must compute what the
call does: the same values and the same derivative, bit for bit, at the kinks too -- a
script that rounds or breaks a tie differently does not reproduce what was checked
(``jnp.clip`` and ``jax.nn.hard_tanh`` differ exactly there)."""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import numpy as np
import pytest

import reference
from adapters.interface import ACTIVATIONS

# Parameters other than the defaults, where a table picks another call by their values.
OTHER_PARAMS = {
    "leaky_relu": {"slope": 0.2}, "elu": {"alpha": 0.5}, "celu": {"alpha": 2.0},
    "softplus": {"beta": 2.0, "threshold": 1.0}, "hardtanh": {"min_val": -0.5, "max_val": 2.0},
}
CASES = [(name, dict(defaults)) for name, defaults in ACTIVATIONS.items()] + [
    (name, {**ACTIVATIONS[name], **params}) for name, params in OTHER_PARAMS.items()
]
IDS = [f"{name}-{'-'.join(f'{k}={v:g}' for k, v in params.items()) or 'defaults'}" for name, params in CASES]


def _points(name: str, params: dict[str, float]) -> np.ndarray:
    """Ordinary points and every kink of the activation, one row of a batch of two."""
    kinks = list(reference.ACTIVATIONS[name].kinks(**params))
    values = [-4.0, -1.5, -0.25, 0.0, 0.5, 1.0, 3.5, *kinks, *(np.nextafter(k, np.inf) for k in kinks)]
    row = np.array(values, dtype=np.float64)
    return np.stack([row, row[::-1] * 0.5])


def _weights(shape: tuple[int, ...]) -> np.ndarray:
    """Output weights, so that the derivative of a softmax is not that of a constant."""
    return np.linspace(-1.0, 2.0, num=int(np.prod(shape))).reshape(shape)


def _torch(code, z: np.ndarray) -> tuple[np.ndarray, ...]:
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    from_text = eval(f"lambda z: {code.source}", {"torch": torch, "F": F})
    results = []
    for fn in (code.fn, from_text):
        zt = torch.tensor(z, requires_grad=True)
        out = fn(zt)
        (grad,) = torch.autograd.grad((out * torch.tensor(_weights(z.shape))).sum(), zt)
        results += [out.detach().numpy(), grad.numpy()]
    return tuple(results)


def _jax(code, z: np.ndarray) -> tuple[np.ndarray, ...]:
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    from_text = eval(f"lambda z: {code.source}", {"jax": jax, "jnp": jnp})
    results = []
    for fn in (code.fn, from_text):
        weighted = lambda z, fn=fn: jnp.sum(fn(z) * _weights(z.shape))
        results += [np.asarray(fn(jnp.asarray(z))), np.asarray(jax.grad(weighted)(jnp.asarray(z)))]
    return tuple(results)


@pytest.mark.parametrize("framework", ["torch", "jax"])
@pytest.mark.parametrize(("name", "params"), CASES, ids=IDS)
def test_an_activation_s_source_text_computes_what_the_adapter_runs(framework: str, name: str, params) -> None:
    pytest.importorskip(framework)
    common = importlib.import_module(f"adapters.{framework}_common")
    code = common.activation_code(name, params)
    z = _points(name, params)
    value, grad, text_value, text_grad = (_torch if framework == "torch" else _jax)(code, z)
    assert np.array_equal(value, text_value, equal_nan=True), f"{framework} {name}: {code.source!r} has other values"
    assert np.array_equal(grad, text_grad, equal_nan=True), (
        f"{framework} {name}: {code.source!r} has another derivative at z = {z[grad != text_grad]}"
    )


@pytest.mark.parametrize(
    ("framework", "expected"), [("jax", "jax.nn.hard_tanh(z)"), ("torch", "F.hardtanh(z, -1.0, 1.0)")]
)
def test_the_reproducer_prints_the_hardtanh_call_the_adapter_runs(framework: str, expected: str) -> None:
    pytest.importorskip(framework)
    from harness import repro

    case = SimpleNamespace(network=SimpleNamespace(activations=(("hardtanh", dict(ACTIVATIONS["hardtanh"])),)))
    assert repro._acts(framework, case) == f"[lambda z: {expected}]"
