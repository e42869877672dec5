"""JAX targets: ``jax`` (op-by-op dispatch) and ``jax-jit`` (one XLA program per shape).

Both differentiate one pure function of ``(params, perturbations, x, t)``: the
perturbations are zeros added to every pre-activation Z, so their gradient is dE/dZ,
the deltas.  ``jax-jit`` runs the same function under ``jax.jit``.

Public APIs exercised:

* jax: ``value_and_grad`` (argnums), ``jit`` (static_argnames), ``device_put``,
  ``device_get``, ``devices``, ``default_backend``, ``config.update("jax_enable_x64")``,
  ``lax.Precision.HIGHEST``, ``errors.JaxRuntimeError``, ``Array.devices``.
* jax.numpy: ``matmul(precision=)``, ``tanh``, ``log``, ``where``, ``clip``, ``sum``,
  ``mean``, ``argmax``, ``zeros_like(shape=)``, ``concatenate``; dtypes ``float64``,
  ``float32``, ``float16``, ``bfloat16``.
* jax.nn: ``sigmoid``, ``relu``, ``leaky_relu(negative_slope)``, ``elu(alpha)``,
  ``selu``, ``celu(alpha)``, ``softplus``, ``gelu(approximate=False/True)``, ``silu``,
  ``mish``, ``soft_sign``, ``hard_tanh``, ``relu6``, ``hard_sigmoid``, ``hard_swish``,
  ``log_sigmoid``, ``softmax``.
* optax: ``l2_loss``, ``squared_error``, ``sigmoid_binary_cross_entropy``,
  ``softmax_cross_entropy``, ``softmax_cross_entropy_with_integer_labels``, ``sgd``
  (``init``/``update``), ``apply_updates``.
"""

from __future__ import annotations

import functools
import importlib
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from adapters.interface import (
    ACTIVATIONS,
    LOSSES,
    OUTPUT_ACTIVATION_FOR_LOSS,
    OUTPUT_ONLY_ACTIVATIONS,
    REDUCTIONS,
    NetworkSpec,
    Params,
    Problem,
    Result,
    Tangents,
    Unsupported,
    check_dtype,
)

# JAX keeps 64-bit types off by default and would then quietly run a float64 request
# in float32.  The flag is process-wide; every input below is cast explicitly to the
# requested dtype, so it makes nothing here upcast to float64.
jax.config.update("jax_enable_x64", True)

_DTYPES = {
    name: np.dtype(getattr(jnp, name)) for name in ("float64", "float32", "float16", "bfloat16")
}
_PRECISION = jax.lax.Precision.HIGHEST
# XLA's runtime error: jax.errors.JaxRuntimeError in current jax, jaxlib's XlaRuntimeError
# in older releases (0.4.30, the oldest pyproject allows).
RUNTIME_ERROR: type[Exception] = getattr(jax.errors, "JaxRuntimeError", None) or importlib.import_module("jaxlib.xla_extension").XlaRuntimeError


def _softplus(beta: float, threshold: float) -> Callable:
    def softplus(z):
        out = jax.nn.softplus(beta * z) / beta
        # threshold=inf is the exact function; skip a select that can never pick z.
        return out if math.isinf(threshold) else jnp.where(beta * z > threshold, z, out)

    return softplus


def _hardtanh(lo: float, hi: float) -> Callable:
    # jax.nn.hard_tanh has fixed bounds; any other bounds go through jnp.clip, whose
    # gradient at a bound is 1/2 (lax.max/min split ties), not hard_tanh's 1.
    return jax.nn.hard_tanh if (lo, hi) == (-1.0, 1.0) else lambda z: jnp.clip(z, lo, hi)


_ACTIVATION_FNS: dict[str, Callable[[dict[str, float]], Callable]] = {
    "identity": lambda p: lambda z: z,
    "sigmoid": lambda p: jax.nn.sigmoid,
    "tanh": lambda p: jnp.tanh,
    "relu": lambda p: jax.nn.relu,
    "leaky_relu": lambda p: functools.partial(jax.nn.leaky_relu, negative_slope=p["slope"]),
    "elu": lambda p: functools.partial(jax.nn.elu, alpha=p["alpha"]),
    "selu": lambda p: jax.nn.selu,
    "celu": lambda p: functools.partial(jax.nn.celu, alpha=p["alpha"]),
    "softplus": lambda p: _softplus(p["beta"], p["threshold"]),
    "gelu": lambda p: functools.partial(jax.nn.gelu, approximate=False),
    "gelu_tanh": lambda p: functools.partial(jax.nn.gelu, approximate=True),
    "silu": lambda p: jax.nn.silu,
    "mish": lambda p: jax.nn.mish,
    "softsign": lambda p: jax.nn.soft_sign,
    "hardtanh": lambda p: _hardtanh(p["min_val"], p["max_val"]),
    "relu6": lambda p: jax.nn.relu6,
    "hardsigmoid": lambda p: jax.nn.hard_sigmoid,
    "hardswish": lambda p: jax.nn.hard_swish,
    "log_sigmoid": lambda p: jax.nn.log_sigmoid,
    "softmax": lambda p: functools.partial(jax.nn.softmax, axis=-1),
}


def _loss_terms(loss: str, onehot: bool, a, z, t):
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


def _spec_key(spec: NetworkSpec) -> tuple:
    """A hashable description of the network but its shapes; validates the spec."""
    for what, value, known in (
        ("loss", spec.loss, LOSSES),
        ("reduction", spec.reduction, REDUCTIONS),
    ):
        if value not in known:
            raise ValueError(f"unknown {what} {value!r}; known: {', '.join(known)}")
    if len(spec.activations) != len(spec.sizes) - 1:
        raise ValueError(
            f"{len(spec.activations)} activations for sizes {spec.sizes}; "
            f"give one per layer ({len(spec.sizes) - 1})"
        )
    acts = []
    for i, act in enumerate(spec.activations):
        if act.name not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {act.name!r}; known: {', '.join(ACTIVATIONS)}"
            )
        if set(act.params) - set(ACTIVATIONS[act.name]):
            raise ValueError(
                f"activation {act.name!r} got parameters {sorted(act.params)}; "
                f"allowed: {sorted(ACTIVATIONS[act.name])}"
            )
        if act.name in OUTPUT_ONLY_ACTIVATIONS and i != len(spec.activations) - 1:
            raise ValueError(f"activation {act.name!r} is allowed on the output layer only")
        acts.append((act.name, tuple((k, act.param(k)) for k in ACTIVATIONS[act.name])))
    needed = OUTPUT_ACTIVATION_FOR_LOSS.get(spec.loss, acts[-1][0])
    if acts[-1][0] != needed:
        raise ValueError(
            f"loss {spec.loss!r} needs output activation {needed!r}, got {acts[-1][0]!r}"
        )
    return tuple(acts), spec.loss, spec.reduction


def _make_step(key: tuple, onehot: bool) -> Callable:
    """One training step on a list of arrays [W1, b1, ..., x, t, lr]: returns the
    outputs [loss, *deltas, *grads] and the stepped parameters [W1', b1', ...]."""
    act_specs, loss, reduction = key
    acts = [_ACTIVATION_FNS[name](dict(params)) for name, params in act_specs]
    reduce = jnp.sum if reduction == "sum" else jnp.mean

    def loss_fn(params, perturbations, x, t):
        a = z = x
        for act, (w, b), p in zip(acts, params, perturbations):
            z = jnp.matmul(a, w, precision=_PRECISION) + b + p
            a = act(z)
        return reduce(_loss_terms(loss, onehot, a, z, t))

    value_and_grad = jax.value_and_grad(loss_fn, argnums=(0, 1))

    def step(leaves):
        *flat_params, x, t, lr = leaves
        params = list(zip(flat_params[0::2], flat_params[1::2]))
        perturbations = [jnp.zeros_like(x, shape=(len(x), w.shape[1])) for w, _ in params]
        value, (grads, deltas) = value_and_grad(params, perturbations, x, t)
        # Plain SGD keeps no state, so a fresh init each step is the same optimizer.
        sgd = optax.sgd(lr)
        updates, _ = sgd.update(grads, sgd.init(params), params)
        outs = [value, *deltas, *jax.tree.leaves(grads)]
        stepped = jax.tree.leaves(optax.apply_updates(params, updates))
        # Checked while tracing (free under jit): a promoted dtype is a bug, not a result.
        found = {str(o.dtype) for o in outs + stepped}
        if found != {str(x.dtype)}:
            raise RuntimeError(f"computed in {sorted(found)}, asked for {x.dtype}")
        return outs, stepped

    return step


def _split(flat: Any, shapes: Sequence[tuple[int, ...]]) -> list:
    """Consecutive pieces of a flat array (NumPy or traced JAX) with ``shapes``."""
    pieces, start = [], 0
    for shape in shapes:
        size = math.prod(shape)
        pieces.append(flat[start : start + size].reshape(shape))
        start += size
    return pieces


def _chained(step: Callable, jit: bool) -> Callable:
    """``step`` as (inputs, layout) -> (outputs, next step's inputs).  Under jit both are
    one flat buffer: one transfer each way, where one per array would dominate the
    per-call cost.  Op-by-op, they stay lists: slicing would cost more dispatches."""

    def list_step(leaves, layout):
        outs, stepped = step(leaves)
        return outs + stepped, stepped + leaves[-3:]

    def flat_step(flat, layout):
        outs, inputs = list_step(_split(flat, layout), layout)
        return tuple(jnp.concatenate([a.ravel() for a in arrays]) for arrays in (outs, inputs))

    return jax.jit(flat_step, static_argnames="layout") if jit else list_step


_STEPS: dict[tuple, Callable] = {}  # key but shapes -> step (flat and jitted for jax-jit)
_LIVE: set[tuple] = set()  # (key, layout) compiled since the last flush: jax-jit programs, jax's primitives
_COUNTS = {"calls": 0, "compiles": 0, "flushes": 0}
# Compiled code stays mapped while its program lives, several memory maps a program:
# a run through thousands of architectures (a soak, the thorough profile) would reach
# the kernel's map limit (vm.max_map_count, 65,530 by default; XLA then fails with
# "LLVM compilation error: Cannot allocate memory" after ~1,500 programs; a bfloat16
# program takes ~130 maps, a float64 one ~50).  Past this many shapes, every program is
# dropped (jax.clear_caches()); a random stream rarely meets an architecture again, so
# little is compiled twice.
MAX_LIVE_SHAPES = 128


def compile_stats() -> dict[str, int]:
    """jax-jit counters for benchmarks: XLA compiles (new key and shapes), jitted
    functions alive (distinct keys), compute/train calls, and flushes."""
    jitted = sum(key[0] == "jax-jit" for key in _STEPS)
    return {"compiles": _COUNTS["compiles"], "jitted_functions": jitted, "calls": _COUNTS["calls"],
            "flushes": _COUNTS["flushes"]}


def _hold(key: tuple, layout: tuple, jit: bool) -> None:
    """Count ``(key, layout)`` as compiled, first dropping every program once
    ``MAX_LIVE_SHAPES`` are held."""
    if (key, layout) in _LIVE:
        return
    if len(_LIVE) >= MAX_LIVE_SHAPES:
        _STEPS.clear()
        _LIVE.clear()
        jax.clear_caches()
        _COUNTS["flushes"] += 1
    _LIVE.add((key, layout))
    _COUNTS["compiles"] += jit


@functools.cache
def _device_table() -> dict[str, Any]:
    devices = list(jax.devices("cpu"))
    if jax.default_backend() != "cpu":
        devices += jax.devices()
    names = ["cpu"] + [f"{d.platform}:{d.id}" for d in devices[1:]]
    return dict(zip(names, devices))


def _device(device: str) -> Any:
    table = _device_table()
    if device not in table:
        raise ValueError(f"unknown device {device!r}; known devices: {', '.join(table)}")
    return table[device]


def _is_onehot(t: np.ndarray) -> bool:
    return bool(np.all((t == 0) | (t == 1)) and np.all(t.sum(axis=1) == 1))


class JaxTarget:
    """One JAX target; ``jit`` selects ``jax.jit`` over op-by-op dispatch."""

    framework = "jax"

    def __init__(self, name: str, jit: bool) -> None:
        self.name = name
        self.jit = jit

    def version(self) -> str:
        return jax.__version__

    def devices(self) -> list[str]:
        return list(_device_table())

    def precision_mode(self, device: str) -> str:
        platform = _device(device).platform
        default = "already full precision" if platform == "cpu" else "reduced by default"
        return f"highest (precision=HIGHEST on every matmul; {platform} default {default})"

    def _run(self, problem: Problem, device: str, dtype: str, lr: float, steps: int) -> list:
        """Host flat outputs [loss, deltas, grads, stepped] of ``steps`` chained steps."""
        check_dtype(dtype)
        dev = _device(device)
        onehot = problem.network.loss == "softmax_ce" and _is_onehot(problem.t)
        key = (self.name, *_spec_key(problem.network), dtype, device, onehot)
        parts: list[Any] = [a for layer in problem.params for a in layer] + [problem.x, problem.t, lr]
        layout = tuple(np.shape(a) for a in parts)
        _hold(key, layout, self.jit)
        if key not in _STEPS:
            _STEPS[key] = _chained(_make_step(key[1:4], onehot), self.jit)
        step = _STEPS[key]
        # Values are exactly representable in dtype, so casting on the host is exact.
        flat = np.concatenate([np.ravel(a) for a in parts]).astype(_DTYPES[dtype])
        _COUNTS["calls"] += 1
        state, outs = jax.device_put(flat if self.jit else _split(flat, layout), dev), []
        for _ in range(steps):
            out, state = step(state, layout=layout)
            outs.append(out)
        ran_on = jax.tree.leaves(outs)[0].devices() if outs else {dev}
        if ran_on != {dev}:
            raise RuntimeError(f"{self.name} ran on {ran_on}, asked for {device!r}")
        host = jax.device_get(outs)
        return [np.concatenate([np.ravel(a) for a in jax.tree.leaves(out)]) for out in host]

    def _host_run(self, problem: Problem, device: str, dtype: str, lr: float, steps: int) -> list:
        try:
            return self._run(problem, device, dtype, lr, steps)
        except RUNTIME_ERROR as err:
            # Only XLA's "not implemented" means the device cannot run this combination.
            if "UNIMPLEMENTED" not in str(err):
                raise
            raise Unsupported(
                f"target {self.name!r}: an op of the forward/backward/SGD step is not "
                f"implemented for dtype {dtype!r} on device {device!r}: "
                f"{str(err).splitlines()[0]}"
            ) from err

    def compute(self, problem: Problem, *, device: str, dtype: str, lr: float) -> Result:
        (out,) = self._host_run(problem, device, dtype, lr, steps=1)
        n = len(problem.params)
        deltas = [(len(problem.x), w.shape[1]) for w, _ in problem.params]
        pieces = _split(out.astype(np.float64), ((), *deltas, *_param_shapes(problem) * 2))
        return Result(
            loss=float(pieces[0]),
            deltas=pieces[1 : 1 + n],
            grads=_pairs(pieces[1 + n : 1 + 3 * n]),
            stepped=_pairs(pieces[1 + 3 * n :]),
        )

    def train(
        self, problem: Problem, *, device: str, dtype: str, lr: float, steps: int
    ) -> list[Params]:
        if steps < 0:
            raise ValueError(f"steps must be >= 0, got {steps!r}")
        shapes = _param_shapes(problem)
        size = sum(math.prod(shape) for shape in shapes)
        outs = self._host_run(problem, device, dtype, lr, steps)
        # Each output ends with the stepped parameters.
        return [_pairs(_split(out[len(out) - size :].astype(np.float64), shapes)) for out in outs]

    # HigherOrder: jax.jvp, jax.jvp of jax.grad, jax.vmap of jax.grad and a jax.grad step
    # per example, jitted for jax-jit; the code is in adapters/jax_transforms.py.
    def jvp(self, problem: Problem, tangent: Params, tangent_x: np.ndarray, *, device: str,
            dtype: str) -> Tangents:
        from adapters import jax_transforms  # imports this module, so only once it is loaded

        return jax_transforms.jvp(self, problem, tangent, tangent_x, device=device, dtype=dtype)

    def hvp(self, problem: Problem, vector: Params, *, device: str, dtype: str) -> Params:
        from adapters import jax_transforms

        return jax_transforms.hvp(self, problem, vector, device=device, dtype=dtype)

    def per_example_grads(self, problem: Problem, *, device: str, dtype: str) -> Params:
        from adapters import jax_transforms

        return jax_transforms.per_example_grads(self, problem, device=device, dtype=dtype)

    def train_online(self, problem: Problem, *, device: str, dtype: str,
                     schedule: Sequence[tuple[int, float]]) -> list[Params]:
        from adapters import jax_transforms

        return jax_transforms.train_online(self, problem, device=device, dtype=dtype, schedule=schedule)

    def data_parallel_grads(self, problem: Problem, *, device: str, dtype: str, shards: int) -> Params:
        """dE of the batch sharded over ``shards`` host CPU devices with NamedSharding, in a
        worker process started with that many devices (adapters/jax_sharded.py)."""
        from adapters import jax_sharded

        check_dtype(dtype)
        _spec_key(problem.network)
        return jax_sharded.data_parallel_grads(self.name, problem, device=device, platform=_device(device).platform,
                                               dtype=dtype, shards=shards, jit=self.jit)


def _param_shapes(problem: Problem) -> list[tuple[int, ...]]:
    return [a.shape for layer in problem.params for a in layer]


def _pairs(arrays: list[np.ndarray]) -> Params:
    return list(zip(arrays[0::2], arrays[1::2]))


TARGETS: dict[str, JaxTarget] = {
    "jax": JaxTarget("jax", jit=False),
    "jax-jit": JaxTarget("jax-jit", jit=True),
}
