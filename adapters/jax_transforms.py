"""Beyond the single gradient on the JAX targets: forward-mode tangents, Hessian-vector
products, per-example gradients and the post's online loop (``HigherOrder``).

Every method transforms one pure function ``(params, x, t) -> (E, [a_l])``,
``jax_common.network_loss``, the very function ``compute`` differentiates:

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
then compiles it once per argument shapes, dtype and device.  Each new (function,
shapes, dtype, device) counts toward ``jax_common.MAX_LIVE_SHAPES``, past which these
functions are dropped with every compiled program, as ``compute``'s are.  The online
loop compiles one step whose row index and learning rate are arguments, and loops over
the schedule in Python, so a schedule of any length or any rates reuses that one
compile.

Public APIs exercised: ``jax.jvp``, ``jax.grad``, ``jax.vmap``, ``jax.jit``,
``jax.device_put``, ``jax.device_get``, ``jax.tree.map``, ``jax.tree.leaves``,
``jax.lax.dynamic_slice_in_dim``, ``Array.devices``, ``errors.JaxRuntimeError``,
``optax.sgd`` (``init``/``update``), ``optax.apply_updates``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
import optax

from adapters import jax_common as jc
from adapters.common import Schedule, check_dtype, check_like_params, check_like_x, check_schedule
from adapters.interface import Params, Problem, Tangents

_FUNCTIONS: dict[tuple, Callable] = jc.function_cache()  # (jit, method, network, one-hot) -> function


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


def _function(jit: bool, method: str, problem: Problem, dtype: str, device: str, args: Sequence) -> Callable:
    """The method's function for this network, jitted for jax-jit; built once, and
    counted toward the bound on compiled programs for the shapes of ``args``."""
    onehot = problem.network.loss == "softmax_ce" and jc.is_onehot(problem.t)
    network = jc.network_key(problem.network)
    cache_key = (jit, method, network, onehot)
    layout = tuple(np.shape(a) for a in jax.tree.leaves(args))
    jc.hold(("transform", *cache_key, dtype, device), layout, jit)
    if cache_key not in _FUNCTIONS:
        fn = _BUILDERS[method](jc.network_loss(network, onehot), network.reduction)
        _FUNCTIONS[cache_key] = jax.jit(fn) if jit else fn
    return _FUNCTIONS[cache_key]


def _put(tree: Any, dtype: str, dev: Any) -> Any:
    # Values are exactly representable in dtype, so casting on the host is exact.
    return jax.device_put(jax.tree.map(lambda a: np.asarray(a).astype(jc.DTYPES[dtype]), tree), dev)


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


def _run(name: str, jit: bool, method: str, problem: Problem, device: str, dtype: str, *extra: Any) -> Any:
    """``method``'s function on (params, x, t, *extra) cast to dtype on device, on the host."""
    check_dtype(dtype)
    dev = jc.device(device)
    args = (_pairs(problem.params), problem.x, problem.t, *extra)
    fn = _function(jit, method, problem, dtype, device, args)
    with jc.unimplemented_is_unsupported(name, method, dtype, device):
        return _to_host(name, fn(*_put(args, dtype, dev)), dtype, dev, device)


def jvp(name: str, jit: bool, problem: Problem, tangent: Params, tangent_x: np.ndarray, *,
        device: str, dtype: str) -> Tangents:
    """dE and every da_l along ``(tangent, tangent_x)``, by ``jax.jvp``."""
    check_like_params("tangent", tangent, problem.params)
    check_like_x(tangent_x, problem)
    dE, das = _run(name, jit, "jvp", problem, device, dtype, _pairs(tangent), tangent_x)
    return Tangents(loss=float(dE), outputs=list(das))


def hvp(name: str, jit: bool, problem: Problem, vector: Params, *, device: str, dtype: str) -> Params:
    """H v in the parameters' layout, by ``jax.jvp`` of ``jax.grad``.  A kinked activation
    gets jax's derivative of its derivative rule: zero g'' away from the kink."""
    check_like_params("vector", vector, problem.params)
    return _pairs(_run(name, jit, "hvp", problem, device, dtype, _pairs(vector)))


def per_example_grads(name: str, jit: bool, problem: Problem, *, device: str, dtype: str) -> Params:
    """``[(dW (N, n_in, n_out), db (N, n_out))]`` by ``jax.vmap(jax.grad(...))``."""
    return _pairs(_run(name, jit, "per_example_grads", problem, device, dtype))


def train_online(name: str, jit: bool, problem: Problem, *, device: str, dtype: str,
                 schedule: Schedule) -> list[Params]:
    """The parameters after each ``(n, lr)`` step of ``schedule``: one jitted (jax-jit)
    or op-by-op step, looped over in Python with n and lr as arguments."""
    check_schedule(schedule, len(problem.x))
    check_dtype(dtype)
    dev = jc.device(device)
    args = (_pairs(problem.params), problem.x, problem.t)
    step = _function(jit, "train_online", problem, dtype, device, args)
    with jc.unimplemented_is_unsupported(name, "train_online", dtype, device):
        params, x, t = _put(args, dtype, dev)
        history = []
        for n, lr in schedule:
            params = step(params, x, t, int(n), np.asarray(lr, jc.DTYPES[dtype]))
            history.append(params)
        return [_pairs(p) for p in _to_host(name, history, dtype, dev, device)]
