"""Beyond the single gradient on the JAX targets: forward-mode tangents, Hessian-vector
products, per-example gradients and the post's online loop (``HigherOrder``).

Every method transforms one pure function ``(params, x, t) -> (E, [a_l])`` assembled
from the adapter's own pieces (``_ACTIVATION_FNS``, ``_loss_terms``, every matmul at
``_PRECISION``), so E is the loss ``compute`` differentiates:

* ``jvp`` -- ``jax.jvp`` of that function in ``(params, x)``: dE and every da_l;
* ``hvp`` -- ``jax.jvp`` of ``jax.grad(E)`` in the parameters (forward over reverse);
* ``per_example_grads`` -- ``jax.vmap`` over rows of ``jax.grad`` of one example's term.
  The row's E reduces as the batch's does (``jnp.mean`` over a one-row batch divides
  the element-wise losses by K) and a ``"mean"`` batch then divides by N, so the scale
  is 1, 1/N or 1/(N K) and the rows sum to the batch gradient;
* ``train_online`` -- for each ``(n, lr)``, ``jax.grad`` of E on row n alone
  (``lax.dynamic_slice_in_dim``) and the update through ``optax.sgd(lr)``, as
  ``compute``'s step does.

``jax`` runs them op by op; ``jax-jit`` under ``jax.jit``.  One jitted function is kept
per method and network (activations, loss, reduction, one-hot targets); jax's own cache
then compiles it once per argument shapes, dtype and device.  The online loop compiles
one step whose row index and learning rate are arguments, and loops over the schedule
in Python, so a schedule of any length or any rates reuses that one compile.

Public APIs exercised: ``jax.jvp``, ``jax.grad``, ``jax.vmap``, ``jax.jit``,
``jax.device_put``, ``jax.device_get``, ``jax.tree.map``, ``jax.tree.leaves``,
``jax.lax.dynamic_slice_in_dim``, ``Array.devices``, ``errors.JaxRuntimeError``,
``optax.sgd`` (``init``/``update``), ``optax.apply_updates``.
"""

from __future__ import annotations

import contextlib
import math
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from adapters.interface import Params, Problem, Tangents, Unsupported, check_dtype
from adapters.jax_adapter import (
    _ACTIVATION_FNS,
    _DTYPES,
    _PRECISION,
    RUNTIME_ERROR,
    _device,
    _is_onehot,
    _loss_terms,
    _spec_key,
)

_FUNCTIONS: dict[tuple, Callable] = {}  # (jit, method, network key, one-hot) -> function
_TRACES: Counter[str] = Counter()  # per method: each trace under jax.jit is one compile


def compile_stats() -> dict[str, int]:
    """jax-jit traces (one XLA compile each) per method since the process started."""
    return dict(_TRACES)


def _loss_and_outputs(key: tuple, onehot: bool) -> Callable:
    """``(params, x, t) -> (E, [a_l])``: Eqs. 3-4 forward and the loss of ``compute``."""
    act_specs, loss, reduction = key
    acts = [_ACTIVATION_FNS[name](dict(params)) for name, params in act_specs]
    reduce = jnp.sum if reduction == "sum" else jnp.mean

    def loss_and_outputs(params, x, t):
        a, outputs = x, []
        for act, (w, b) in zip(acts, params):
            z = jnp.matmul(a, w, precision=_PRECISION) + b
            a = act(z)
            outputs.append(a)
        return reduce(_loss_terms(loss, onehot, a, z, t)), outputs

    return loss_and_outputs


def _jvp(f: Callable, reduction: str) -> Callable:
    """(dE, [da_l]) along (tangent, tangent_x): ``jax.jvp`` of f in params and x."""

    def jvp(params, x, t, tangent, tangent_x):
        _, (dE, das) = jax.jvp(lambda p, xs: f(p, xs, t), (params, x), (tangent, tangent_x))
        return dE, das

    return jvp


def _hvp(f: Callable, reduction: str) -> Callable:
    """H v: ``jax.jvp`` of ``jax.grad`` of E in the parameters along ``vector``."""

    def hvp(params, x, t, vector):
        grad = jax.grad(lambda p: f(p, x, t)[0])
        return jax.jvp(grad, (params,), (vector,))[1]

    return hvp


def _per_example(f: Callable, reduction: str) -> Callable:
    """``jax.vmap`` over rows of ``jax.grad`` of one row's E divided by N under "mean"."""

    def per_example(params, x, t):
        divisor = len(x) if reduction == "mean" else 1

        def one(p, xn, tn):
            return f(p, xn[None], tn[None])[0] / divisor

        return jax.vmap(jax.grad(one), in_axes=(None, 0, 0))(params, x, t)

    return per_example


def _online_step(f: Callable, reduction: str) -> Callable:
    """Eq. 7 on row n alone: ``jax.grad`` of the one-row E, ``optax.sgd(lr)`` update."""

    def online_step(params, x, t, n, lr):
        rows = [jax.lax.dynamic_slice_in_dim(a, n, 1) for a in (x, t)]
        grads = jax.grad(lambda p: f(p, *rows)[0])(params)
        # Plain SGD keeps no state, so a fresh init each step is the same optimizer.
        sgd = optax.sgd(lr)
        updates, _ = sgd.update(grads, sgd.init(params), params)
        return optax.apply_updates(params, updates)

    return online_step


_BUILDERS = {"jvp": _jvp, "hvp": _hvp, "per_example_grads": _per_example, "train_online": _online_step}


def _function(jit: bool, method: str, problem: Problem) -> Callable:
    """The method's function for this network, jitted for jax-jit; built once."""
    onehot = problem.network.loss == "softmax_ce" and _is_onehot(problem.t)
    key = _spec_key(problem.network)
    cache_key = (jit, method, key, onehot)
    if cache_key not in _FUNCTIONS:
        fn = _BUILDERS[method](_loss_and_outputs(key, onehot), key[2])
        _FUNCTIONS[cache_key] = jax.jit(_counted(fn, method)) if jit else fn
    return _FUNCTIONS[cache_key]


def _counted(fn: Callable, method: str) -> Callable:
    def traced(*args):
        _TRACES[method] += 1  # runs once per trace: jit replays the compiled program
        return fn(*args)

    return traced


@contextlib.contextmanager
def _unimplemented_is_unsupported(name: str, method: str, dtype: str, device: str) -> Iterator[None]:
    try:
        yield
    except RUNTIME_ERROR as err:
        # Only XLA's "not implemented" means the device cannot run this combination.
        if "UNIMPLEMENTED" not in str(err):
            raise
        raise Unsupported(
            f"target {name!r}: an op of {method} is not implemented for dtype {dtype!r} on "
            f"device {device!r}: {str(err).splitlines()[0]}"
        ) from err


def _put(tree: Any, dtype: str, dev: Any) -> Any:
    # Values are exactly representable in dtype, so casting on the host is exact.
    return jax.device_put(jax.tree.map(lambda a: np.asarray(a).astype(_DTYPES[dtype]), tree), dev)


def _to_host(name: str, tree: Any, dtype: str, dev: Any, device: str) -> Any:
    """``tree`` as NumPy float64, after checking it was computed in dtype on dev."""
    leaves = jax.tree.leaves(tree)
    found = {str(a.dtype) for a in leaves}
    if found - {dtype}:
        raise RuntimeError(f"{name} computed in {sorted(found)}, asked for {dtype}")
    ran_on = set().union(*(a.devices() for a in leaves))
    if ran_on - {dev}:
        raise RuntimeError(f"{name} ran on {ran_on}, asked for {device!r}")
    return jax.tree.map(lambda a: np.array(a, np.float64), jax.device_get(tree))


def _pairs(params: Sequence) -> Params:
    return [(W, b) for W, b in params]


def _check_like(what: str, given: Sequence, params: Params) -> None:
    """``given`` holds one (W-shaped, b-shaped) pair per layer of ``params``."""
    if len(given) != len(params):
        raise ValueError(
            f"{what} has {len(given)} layers but the network has {len(params)}; "
            "give one (dW, db) pair per layer"
        )
    for layer, ((W, b), pair) in enumerate(zip(params, given), 1):
        shapes = tuple(np.shape(a) for a in pair)
        if shapes != (np.shape(W), np.shape(b)):
            raise ValueError(
                f"{what} of layer {layer} has shapes {shapes}; "
                f"the parameters need {np.shape(W)} and {np.shape(b)}"
            )


def _run(target: Any, method: str, problem: Problem, device: str, dtype: str, *extra: Any) -> Any:
    """``method``'s function on (params, x, t, *extra) cast to dtype on device, on the host."""
    check_dtype(dtype)
    dev = _device(device)
    fn = _function(target.jit, method, problem)
    with _unimplemented_is_unsupported(target.name, method, dtype, device):
        args = _put((_pairs(problem.params), problem.x, problem.t, *extra), dtype, dev)
        return _to_host(target.name, fn(*args), dtype, dev, device)


def jvp(target: Any, problem: Problem, tangent: Params, tangent_x: np.ndarray, *,
        device: str, dtype: str) -> Tangents:
    """dE and every da_l along ``(tangent, tangent_x)``, by ``jax.jvp``."""
    _check_like("tangent", tangent, problem.params)
    if np.shape(tangent_x) != np.shape(problem.x):
        raise ValueError(
            f"tangent_x has shape {np.shape(tangent_x)}; x has {np.shape(problem.x)}, give the same"
        )
    dE, das = _run(target, "jvp", problem, device, dtype, _pairs(tangent), tangent_x)
    return Tangents(loss=float(dE), outputs=list(das))


def hvp(target: Any, problem: Problem, vector: Params, *, device: str, dtype: str) -> Params:
    """H v in the parameters' layout, by ``jax.jvp`` of ``jax.grad``.  A kinked activation
    gets jax's derivative of its derivative rule: zero g'' away from the kink."""
    _check_like("vector", vector, problem.params)
    return _pairs(_run(target, "hvp", problem, device, dtype, _pairs(vector)))


def per_example_grads(target: Any, problem: Problem, *, device: str, dtype: str) -> Params:
    """``[(dW (N, n_in, n_out), db (N, n_out))]`` by ``jax.vmap(jax.grad(...))``."""
    return _pairs(_run(target, "per_example_grads", problem, device, dtype))


def _check_schedule(schedule: Sequence[tuple[int, float]], batch: int) -> None:
    for i, entry in enumerate(schedule):
        n, lr = entry if isinstance(entry, (tuple, list)) and len(entry) == 2 else (None, None)
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 <= n < batch:
            raise ValueError(
                f"schedule[{i}] is {entry!r}; give a pair (n, lr) with n an example index "
                f"in [0, {batch})"
            )
        if isinstance(lr, bool) or not isinstance(lr, (int, float, np.floating)) or not (
            math.isfinite(lr) and lr >= 0
        ):
            raise ValueError(f"schedule[{i}] has learning rate {lr!r}; give a finite number >= 0")


def train_online(target: Any, problem: Problem, *, device: str, dtype: str,
                 schedule: Sequence[tuple[int, float]]) -> list[Params]:
    """The parameters after each ``(n, lr)`` step of ``schedule``: one jitted (jax-jit)
    or op-by-op step, looped over in Python with n and lr as arguments."""
    _check_schedule(schedule, len(problem.x))
    check_dtype(dtype)
    dev = _device(device)
    step = _function(target.jit, "train_online", problem)
    with _unimplemented_is_unsupported(target.name, "train_online", dtype, device):
        params, x, t = _put((_pairs(problem.params), problem.x, problem.t), dtype, dev)
        history = []
        for n, lr in schedule:
            params = step(params, x, t, int(n), np.asarray(lr, _DTYPES[dtype]))
            history.append(params)
        return [_pairs(p) for p in _to_host(target.name, history, dtype, dev, device)]
