"""JAX targets: ``jax`` (op-by-op dispatch) and ``jax-jit`` (one XLA program per shape).

Both differentiate one pure function of ``(params, perturbations, x, t)``, the network
of ``jax_common.network_loss``: the perturbations are zeros added to every
pre-activation Z, so their gradient is dE/dZ, the deltas.  ``jax-jit`` runs the same
function under ``jax.jit``.  The optional ``HigherOrder`` methods are in
``adapters/jax_transforms.py``, data-parallel gradients in ``adapters/jax_sharded.py``.

Public APIs exercised here (the network's own are listed in jax_common):

* jax: ``value_and_grad`` (argnums), ``jit`` (static_argnames), ``device_put``,
  ``device_get``, ``tree.leaves``, ``Array.devices``.
* jax.numpy: ``zeros_like(shape=)``, ``concatenate``.
* optax: ``sgd`` (``init``/``update``), ``apply_updates``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from adapters import jax_common as jc
from adapters import jax_transforms
from adapters.common import check_dtype
from adapters.interface import Params, Problem, Result, Tangents


def _make_step(key: jc.NetworkKey, onehot: bool) -> Callable:
    """One training step on a list of arrays [W1, b1, ..., x, t, lr]: returns the
    outputs [loss, *deltas, *grads] and the stepped parameters [W1', b1', ...]."""
    loss_fn = jc.network_loss(key, onehot)
    value_and_grad = jax.value_and_grad(lambda params, perturbations, x, t: loss_fn(params, x, t, perturbations)[0],
                                        argnums=(0, 1))

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


_STEPS: dict[tuple, Callable] = jc.function_cache()  # key but shapes -> step (flat and jitted for jax-jit)
_COUNTS = {"calls": 0}  # compute/train calls, for compile_stats


def compile_stats() -> dict[str, int]:
    """jax-jit counters for benchmarks: XLA compiles (new key and shapes, every jax path),
    jitted step functions alive (distinct keys), compute/train calls, and flushes."""
    programs = jc.program_stats()
    jitted = sum(key[0] == "jax-jit" for key in _STEPS)
    return {"compiles": programs["compiles"], "jitted_functions": jitted, "calls": _COUNTS["calls"],
            "flushes": programs["flushes"]}


class JaxTarget:
    """One JAX target; ``jit`` selects ``jax.jit`` over op-by-op dispatch."""

    framework = "jax"

    def __init__(self, name: str, jit: bool) -> None:
        self.name = name
        self.jit = jit

    def version(self) -> str:
        return jax.__version__

    def devices(self) -> list[str]:
        return list(jc.device_table())

    def precision_mode(self, device: str) -> str:
        platform = jc.device(device).platform
        default = "already full precision" if platform == "cpu" else "reduced by default"
        return f"highest (precision=HIGHEST on every matmul; {platform} default {default})"

    def _run(self, problem: Problem, device: str, dtype: str, lr: float, steps: int) -> list:
        """Host flat outputs [loss, deltas, grads, stepped] of ``steps`` chained steps."""
        check_dtype(dtype)
        dev = jc.device(device)
        onehot = problem.network.loss == "softmax_ce" and jc.is_onehot(problem.t)
        network = jc.network_key(problem.network)
        key = (self.name, network, dtype, device, onehot)
        parts: list[Any] = [a for layer in problem.params for a in layer] + [problem.x, problem.t, lr]
        layout = tuple(np.shape(a) for a in parts)
        jc.hold(key, layout, self.jit)
        if key not in _STEPS:
            _STEPS[key] = _chained(_make_step(network, onehot), self.jit)
        step = _STEPS[key]
        # Values are exactly representable in dtype, so casting on the host is exact.
        flat = np.concatenate([np.ravel(a) for a in parts]).astype(jc.DTYPES[dtype])
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
        with jc.unimplemented_is_unsupported(self.name, "the forward/backward/SGD step", dtype, device):
            return self._run(problem, device, dtype, lr, steps)

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
        return jax_transforms.jvp(self.name, self.jit, problem, tangent, tangent_x, device=device, dtype=dtype)

    def hvp(self, problem: Problem, vector: Params, *, device: str, dtype: str) -> Params:
        return jax_transforms.hvp(self.name, self.jit, problem, vector, device=device, dtype=dtype)

    def per_example_grads(self, problem: Problem, *, device: str, dtype: str) -> Params:
        return jax_transforms.per_example_grads(self.name, self.jit, problem, device=device, dtype=dtype)

    def train_online(self, problem: Problem, *, device: str, dtype: str,
                     schedule: Sequence[tuple[int, float]]) -> list[Params]:
        return jax_transforms.train_online(self.name, self.jit, problem, device=device, dtype=dtype,
                                           schedule=schedule)

    def data_parallel_grads(self, problem: Problem, *, device: str, dtype: str, shards: int) -> Params:
        """dE of the batch sharded over ``shards`` host CPU devices with NamedSharding, in a
        worker process started with that many devices (adapters/jax_sharded.py)."""
        from adapters import jax_sharded  # its worker process starts on the first call

        check_dtype(dtype)
        return jax_sharded.data_parallel_grads(self.name, problem, device=device, platform=jc.device(device).platform,
                                               dtype=dtype, shards=shards, jit=self.jit)


def _param_shapes(problem: Problem) -> list[tuple[int, ...]]:
    return [a.shape for layer in problem.params for a in layer]


def _pairs(arrays: list[np.ndarray]) -> Params:
    return list(zip(arrays[0::2], arrays[1::2]))


TARGETS: dict[str, JaxTarget] = {
    "jax": JaxTarget("jax", jit=False),
    "jax-jit": JaxTarget("jax-jit", jit=True),
}
