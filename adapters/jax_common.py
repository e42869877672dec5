"""What every JAX path shares: the dtype table, the activations as code and as source
text, the one forward pass, the loss terms, the devices, and the bound on compiled
programs.

The targets (``jax_adapter``), their higher-order methods (``jax_transforms``) and the
sharded data-parallel worker (``jax_sharded``) import this module and nothing of each
other, so the network is written once: ``network_terms`` builds Eqs. 3-4 and the loss's
terms for one network, and every path reduces, weights or differentiates those.

Importing it turns on 64-bit types: JAX keeps them off by default and would then quietly
run a float64 request in float32.  The flag is process-wide; every input is cast
explicitly to the requested dtype, so it makes nothing here upcast to float64.

Public APIs exercised: jax.config.update("jax_enable_x64"), jax.lax.Precision.HIGHEST,
jax.errors.JaxRuntimeError, jax.devices, jax.default_backend, jax.clear_caches,
jax.numpy.{matmul(precision=), tanh, log, where, clip, sum, mean, argmax}, jax.nn.{sigmoid,
relu, leaky_relu, elu, selu, celu, softplus, gelu, silu, mish, soft_sign, hard_tanh,
relu6, hard_sigmoid, hard_swish, log_sigmoid, softmax}, optax.{l2_loss, squared_error,
sigmoid_binary_cross_entropy, softmax_cross_entropy,
softmax_cross_entropy_with_integer_labels}.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from adapters.common import ActivationCode
from adapters.interface import ACTIVATIONS, NetworkSpec, Unsupported

jax.config.update("jax_enable_x64", True)

DTYPES = {name: np.dtype(getattr(jnp, name)) for name in ("float64", "float32", "float16", "bfloat16")}
PRECISION = jax.lax.Precision.HIGHEST
# XLA's runtime error: jax.errors.JaxRuntimeError in current jax, jaxlib's XlaRuntimeError
# in older releases (0.4.30, the oldest pyproject allows).
RUNTIME_ERROR: type[Exception] = getattr(jax.errors, "JaxRuntimeError", None) or importlib.import_module(
    "jaxlib.xla_extension"
).XlaRuntimeError


def _code(template: str, fn: Callable) -> Callable[[Mapping[str, float]], ActivationCode]:
    return lambda p: ActivationCode(template, p, fn)


def _softplus(p: Mapping[str, float]) -> ActivationCode:
    beta, threshold = p["beta"], p["threshold"]
    if math.isinf(threshold):  # the exact function; skip a select that can never pick z
        return ActivationCode("jax.nn.softplus({beta} * z) / {beta}", p, lambda z: jax.nn.softplus(beta * z) / beta)
    return ActivationCode(
        "jnp.where({beta} * z > {threshold}, z, jax.nn.softplus({beta} * z) / {beta})", p,
        lambda z: jnp.where(beta * z > threshold, z, jax.nn.softplus(beta * z) / beta),
    )


def _hardtanh(p: Mapping[str, float]) -> ActivationCode:
    # jax.nn.hard_tanh has fixed bounds; any other bounds go through jnp.clip, whose
    # gradient at a bound is 1/2 (lax.max/min split ties), not hard_tanh's 1.
    lo, hi = p["min_val"], p["max_val"]
    if (lo, hi) == (-1.0, 1.0):
        return ActivationCode("jax.nn.hard_tanh(z)", p, lambda z: jax.nn.hard_tanh(z))
    return ActivationCode("jnp.clip(z, {min_val}, {max_val})", p, lambda z: jnp.clip(z, lo, hi))


# Each activation's jax call and its text, side by side; tests/meta/test_activation_code.py
# checks that the text computes what the call does, derivatives at the kinks included.  The
# calls look the public function up when they run, so a patched jax function (a planted
# fault, a user's own fix) is the one checked.
_CODE: dict[str, Callable[[Mapping[str, float]], ActivationCode]] = {
    "identity": _code("z", lambda z: z),
    "sigmoid": _code("jax.nn.sigmoid(z)", lambda z: jax.nn.sigmoid(z)),
    "tanh": _code("jnp.tanh(z)", lambda z: jnp.tanh(z)),
    "relu": _code("jax.nn.relu(z)", lambda z: jax.nn.relu(z)),
    "leaky_relu": lambda p: ActivationCode(
        "jax.nn.leaky_relu(z, negative_slope={slope})", p,
        lambda z: jax.nn.leaky_relu(z, negative_slope=p["slope"])),
    "elu": lambda p: ActivationCode("jax.nn.elu(z, alpha={alpha})", p, lambda z: jax.nn.elu(z, alpha=p["alpha"])),
    "selu": _code("jax.nn.selu(z)", lambda z: jax.nn.selu(z)),
    "celu": lambda p: ActivationCode(
        "jax.nn.celu(z, alpha={alpha})", p, lambda z: jax.nn.celu(z, alpha=p["alpha"])),
    "softplus": _softplus,
    "gelu": _code("jax.nn.gelu(z, approximate=False)", lambda z: jax.nn.gelu(z, approximate=False)),
    "gelu_tanh": _code("jax.nn.gelu(z, approximate=True)", lambda z: jax.nn.gelu(z, approximate=True)),
    "silu": _code("jax.nn.silu(z)", lambda z: jax.nn.silu(z)),
    "mish": _code("jax.nn.mish(z)", lambda z: jax.nn.mish(z)),
    "softsign": _code("jax.nn.soft_sign(z)", lambda z: jax.nn.soft_sign(z)),
    "hardtanh": _hardtanh,
    "relu6": _code("jax.nn.relu6(z)", lambda z: jax.nn.relu6(z)),
    "hardsigmoid": _code("jax.nn.hard_sigmoid(z)", lambda z: jax.nn.hard_sigmoid(z)),
    "hardswish": _code("jax.nn.hard_swish(z)", lambda z: jax.nn.hard_swish(z)),
    "log_sigmoid": _code("jax.nn.log_sigmoid(z)", lambda z: jax.nn.log_sigmoid(z)),
    "softmax": _code("jax.nn.softmax(z, axis=-1)", lambda z: jax.nn.softmax(z, axis=-1)),
}


def activation_code(name: str, params: Mapping[str, float]) -> ActivationCode:
    """The activation ``name`` with every parameter in ``params`` as the jax targets run
    it; its ``source`` uses the names ``jax``, ``jnp`` (jax.numpy) and ``z``."""
    return _CODE[name](params)


class NetworkKey(NamedTuple):
    """A hashable description of a network but its shapes: what a built function
    depends on.  ``activations`` holds (name, ((parameter, value), ...)) per layer,
    every parameter filled in."""

    activations: tuple[tuple[str, tuple[tuple[str, float], ...]], ...]
    loss: str
    reduction: str


def network_key(spec: NetworkSpec) -> NetworkKey:
    acts = tuple((a.name, tuple((k, a.param(k)) for k in ACTIVATIONS[a.name])) for a in spec.activations)
    return NetworkKey(acts, spec.loss, spec.reduction)


def is_onehot(t: np.ndarray) -> bool:
    """Every row of t one-hot: softmax_ce then takes integer labels."""
    return bool(np.all((t == 0) | (t == 1)) and np.all(t.sum(axis=1) == 1))


def loss_terms(loss: str, onehot: bool, a: Any, z: Any, t: Any) -> Any:
    """Per-example terms (sse, ce, softmax_ce) or element-wise terms (the others), so
    that jnp.mean divides by N or by N*K as each loss's framework default does."""
    if loss == "sse":
        return jnp.sum(optax.l2_loss(a, t), axis=1)
    if loss == "mse":
        return optax.squared_error(a, t)
    if loss == "bce":
        return -(t * jnp.log(a) + (1 - t) * jnp.log(1 - a))
    if loss == "bce_logits":
        return optax.sigmoid_binary_cross_entropy(z, t)
    if loss == "ce":
        return -jnp.sum(t * jnp.log(a), axis=1)
    if onehot:
        return optax.softmax_cross_entropy_with_integer_labels(z, jnp.argmax(t, axis=1))
    return optax.softmax_cross_entropy(z, t)


def network_terms(key: NetworkKey, onehot: bool) -> Callable:
    """``(params, x, t, perturbations=None) -> (terms, [a_l])``: Eqs. 3-4 through every
    layer, each matmul at ``PRECISION``, and the loss's unreduced terms.  A
    perturbation, when given, is added to each z_l (a zero whose gradient is the delta)."""
    acts = [activation_code(name, dict(params)).fn for name, params in key.activations]

    def terms(params: Sequence, x: Any, t: Any, perturbations: Sequence | None = None) -> tuple[Any, list]:
        a = z = x
        outputs = []
        for layer, (act, (w, b)) in enumerate(zip(acts, params)):
            z = jnp.matmul(a, w, precision=PRECISION) + b
            if perturbations is not None:
                z = z + perturbations[layer]
            a = act(z)
            outputs.append(a)
        return loss_terms(key.loss, onehot, a, z, t), outputs

    return terms


def network_loss(key: NetworkKey, onehot: bool) -> Callable:
    """``(params, x, t, perturbations=None) -> (E, [a_l])``: ``network_terms`` reduced by
    ``jnp.sum`` or ``jnp.mean``, the loss ``compute`` differentiates."""
    terms_of = network_terms(key, onehot)
    reduce = jnp.sum if key.reduction == "sum" else jnp.mean

    def loss(params: Sequence, x: Any, t: Any, perturbations: Sequence | None = None) -> tuple[Any, list]:
        terms, outputs = terms_of(params, x, t, perturbations)
        return reduce(terms), outputs

    return loss


# --- devices and what XLA cannot run -------------------------------------------------------

@functools.cache
def device_table() -> dict[str, Any]:
    devices = list(jax.devices("cpu"))
    if jax.default_backend() != "cpu":
        devices += jax.devices()
    names = ["cpu"] + [f"{d.platform}:{d.id}" for d in devices[1:]]
    return dict(zip(names, devices))


def device(name: str) -> Any:
    table = device_table()
    if name not in table:
        raise ValueError(f"unknown device {name!r}; known devices: {', '.join(table)}")
    return table[name]


@contextlib.contextmanager
def unimplemented_is_unsupported(target: str, what: str, dtype: str, device: str) -> Iterator[None]:
    """XLA's "not implemented" as ``Unsupported`` naming ``what`` ran; nothing else."""
    try:
        yield
    except RUNTIME_ERROR as err:
        # Only XLA's "not implemented" means the device cannot run this combination.
        if "UNIMPLEMENTED" not in str(err):
            raise
        raise Unsupported(
            f"target {target!r}: an op of {what} is not implemented for dtype {dtype!r} on "
            f"device {device!r}: {str(err).splitlines()[0]}"
        ) from err


# --- the bound on compiled programs --------------------------------------------------------

# Compiled code stays mapped while its program lives, several memory maps a program:
# a run through thousands of architectures (a soak, the thorough profile) would reach
# the kernel's map limit (vm.max_map_count, 65,530 by default; XLA then fails with
# "LLVM compilation error: Cannot allocate memory" after ~1,500 programs; a bfloat16
# program takes ~130 maps, a float64 one ~50).  Past this many shapes, every program is
# dropped (jax.clear_caches()) with every function built to make one; a random stream
# rarely meets an architecture again, so little is compiled twice.
MAX_LIVE_SHAPES = 128
_LIVE: set[tuple] = set()  # (key, layout) compiled since the last flush, by every path
_CACHES: list[dict] = []  # the built functions of every path, dropped with the programs
_COUNTS = {"compiles": 0, "flushes": 0}


def function_cache() -> dict:
    """A new cache of built (and possibly jitted) functions, emptied by every flush."""
    cache: dict = {}
    _CACHES.append(cache)
    return cache


def hold(key: tuple, layout: tuple, jit: bool) -> None:
    """Count ``(key, layout)`` as compiled (a jax.jit program, or un-jitted jax's
    primitives for these shapes), first dropping every program and every built function
    once ``MAX_LIVE_SHAPES`` are held."""
    if (key, layout) in _LIVE:
        return
    if len(_LIVE) >= MAX_LIVE_SHAPES:
        for cache in _CACHES:
            cache.clear()
        _LIVE.clear()
        jax.clear_caches()
        _COUNTS["flushes"] += 1
    _LIVE.add((key, layout))
    _COUNTS["compiles"] += jit


def program_stats() -> dict[str, int]:
    """Shapes held now, XLA compiles counted (new key and shapes under jit), flushes."""
    return {"live_shapes": len(_LIVE), "compiles": _COUNTS["compiles"], "flushes": _COUNTS["flushes"]}
