"""Data-parallel batch gradients with jax's sharding API, for the ``jax`` and ``jax-jit``
targets' ``data_parallel_grads``.

The batch is split, in order, into ``shards`` contiguous parts (``numpy.array_split``),
one per host CPU device of a 1-D ``jax.sharding.Mesh`` (axis ``"batch"``): x, t and a
row weight are ``device_put`` with ``NamedSharding(mesh, P("batch"))``, the parameters
replicated (``P()``), and ``jax.grad`` of the *whole batch's* loss E runs on them.
XLA's SPMD partitioner turns every contraction over the sharded batch axis -- the
weight gradients a^T delta (Eqs. 6, 15) and the bias gradients' column sums (Eqs. 8,
18) -- into per-device partial sums followed by an all-reduce, so the gradient comes
back replicated on every device.

* ``jax-jit`` -- ``jax.jit(jax.grad(E), in_shardings=..., out_shardings=replicated)``,
  compiled once per network structure, shapes and shard count.
* ``jax`` -- the same ``jax.grad`` un-jitted on the sharded arrays: each primitive
  dispatches as its own small SPMD program on the inputs' shardings (no ``shard_map``,
  no ``pmap``), so the batch stays split op by op.

A batch size that ``shards`` does not divide is padded: every part is filled up to
ceil(N / shards) rows with copies of the batch's first row carrying weight 0 (a
copy of a real row, so a padding row is as finite as the batch is), and E is
``sum(w * terms)`` (``sum``) or ``sum(w * terms) / (N K)`` (``mean``, N the real batch
size, K the terms per example), which for weights 1 and 0 is exactly jnp.sum /
jnp.mean of the real rows.  The parts, and so each device's rows, are array_split's.

Host devices need ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` before jax
starts its CPU backend, and the calling process's backend is already running with one,
so the computation runs in a persistent worker process (``multiprocessing``, spawn)
that starts with the flag, takes problems through a pipe, keeps its compiled
functions, and ends with the caller.

Public jax APIs exercised: jax.sharding.{Mesh, NamedSharding, PartitionSpec},
jax.device_put, jax.grad, jax.jit(in_shardings, out_shardings), jax.devices,
Array.sharding.is_fully_replicated, jax.errors.JaxRuntimeError.
"""

from __future__ import annotations

import atexit
import math
import multiprocessing as mp
import os
import threading
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from adapters import jax_common as jc
from adapters.common import check_shards, picklable, portable
from adapters.interface import Params, Problem, Unsupported

REPLY_TIMEOUT_S = 300.0  # a first call starts jax and compiles
MIN_DEVICES = 4
WorkerFn = Callable[[Problem, str, int, bool], Params]


def padded_parts(x: np.ndarray, t: np.ndarray, shards: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x, t and row weights laid out as ``shards`` equal blocks: array_split's part r,
    then copies of row 0 with weight 0 up to ceil(N / shards) rows (at least 1)."""
    rows = max(1, math.ceil(len(x) / shards))
    xs, ts, ws = [], [], []
    for part in np.array_split(np.arange(len(x)), shards):
        pad = np.zeros(rows - len(part), dtype=int)
        xs.append(np.concatenate([x[part], x[pad]]))
        ts.append(np.concatenate([t[part], t[pad]]))
        ws.append(np.concatenate([np.ones(len(part)), np.zeros(len(pad))]))
    return np.concatenate(xs), np.concatenate(ts), np.concatenate(ws)


# --- in the worker ---------------------------------------------------------------------------

def structure(problem: Problem) -> tuple[jc.NetworkKey, bool, int]:
    """What E depends on beyond the arrays: the network but its shapes, whether t is
    one-hot (integer labels for softmax_ce) and the real batch size."""
    network = jc.network_key(problem.network)
    return network, network.loss == "softmax_ce" and jc.is_onehot(problem.t), len(problem.x)


def loss_of(problem: Problem) -> Callable:
    """E(params, x, t, w) of the whole batch: sum(w * terms), divided by N K for mean."""
    network, onehot, n_real = structure(problem)
    terms_of = jc.network_terms(network, onehot)

    def E(params, x, t, w):
        terms = terms_of(params, x, t)[0]
        terms = terms * (w[:, None] if terms.ndim == 2 else w)  # per example, or per element
        total = jnp.sum(terms)
        return total if network.reduction == "sum" else total / (n_real * (terms.size // terms.shape[0]))

    return E


def sharded_inputs(problem: Problem, dtype: str, shards: int) -> tuple[Any, list, tuple]:
    """The mesh, the replicated parameters and the batch-sharded (x, t, w)."""
    mesh = Mesh(np.array(jax.devices("cpu")[:shards]), ("batch",))
    replicated, split = NamedSharding(mesh, PartitionSpec()), NamedSharding(mesh, PartitionSpec("batch"))
    cast = lambda v, where: jax.device_put(np.asarray(v).astype(jc.DTYPES[dtype]), where)
    params = [(cast(W, replicated), cast(b, replicated)) for W, b in problem.params]
    batch = tuple(cast(v, split) for v in padded_parts(problem.x, problem.t, shards))
    return mesh, params, batch


_COMPILED: dict[tuple, Callable] = {}


def sharded_grads(problem: Problem, dtype: str, shards: int, jit: bool) -> Params:
    """jax.grad of the whole batch's E on batch-sharded arrays; under jax.jit (compiled
    once per structure and shard count, jax's own cache keeping one program per shape)
    if ``jit``."""
    mesh, params, batch = sharded_inputs(problem, dtype, shards)
    if not jit:
        return host_params(jax.grad(loss_of(problem))(params, *batch))
    key = (structure(problem), shards)
    if key not in _COMPILED:
        replicated, split = NamedSharding(mesh, PartitionSpec()), batch[0].sharding
        _COMPILED[key] = jax.jit(jax.grad(loss_of(problem)), in_shardings=(replicated, split, split, split),
                                 out_shardings=replicated)
    return host_params(_COMPILED[key](params, *batch))


def host_params(grads) -> Params:
    """Replicated jax gradients as NumPy float64 ``[(dW, db), ...]``; a gradient left
    sharded would be one device's part, not the all-reduced sum."""
    for g in (g for pair in grads for g in pair):
        if not g.sharding.is_fully_replicated:
            raise RuntimeError(f"a gradient came back sharded as {g.sharding}, not replicated")
    return [(np.asarray(W).astype(np.float64), np.asarray(b).astype(np.float64)) for W, b in grads]


def _serve(conn, devices: int) -> None:
    """The worker's loop: host devices first, then each ``(fn, args)`` from the pipe."""
    # First: XLA stops reading at a token it cannot parse, and callers' flags may hold one.
    flags = os.environ.get("XLA_FLAGS", "")
    os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices} {flags}".strip()
    found = len(jax.devices("cpu"))
    if found < devices:
        conn.send((False, RuntimeError(f"the worker's jax has {found} CPU devices, asked for {devices}")))
        return
    conn.send((True, found))
    while True:
        try:
            job = conn.recv()
        except EOFError:  # the caller is gone
            return
        if job is None:
            return
        fn, args = job
        try:
            conn.send((True, fn(*args)))
        except Exception as err:
            conn.send((False, _portable(err)))


def _portable(err: Exception) -> BaseException:
    """``err`` with the worker's traceback as a note: XLA's "not implemented" as
    Unsupported, anything that does not pickle as a RuntimeError."""
    unsupported = None
    if isinstance(err, jc.RUNTIME_ERROR) and "UNIMPLEMENTED" in str(err):
        unsupported = Unsupported(f"an op of the sharded gradient is not implemented: {str(err).splitlines()[0]}")
    return portable(err, "in the sharding worker", raised_as=unsupported)


# --- in the caller ---------------------------------------------------------------------------

class WorkerGone(RuntimeError):
    """The worker process ended without answering."""


class _Worker:
    """One worker process with ``devices`` host CPU devices."""

    def __init__(self, devices: int) -> None:
        ctx = mp.get_context("spawn")
        self.devices = devices
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child, devices), daemon=True,
                                   name=f"deltacheck-jax-{devices}-host-devices")
        self.process.start()
        child.close()
        self._reply("starting jax with host devices")

    def run(self, fn: WorkerFn, *args: Any) -> Any:
        self.conn.send((fn, args))
        return self._reply(f"{fn.__module__}.{fn.__qualname__}")

    def _reply(self, what: str) -> Any:
        if not self.conn.poll(REPLY_TIMEOUT_S):
            raise TimeoutError(f"the jax sharding worker did not answer within {REPLY_TIMEOUT_S:g} s ({what})")
        try:
            ok, value = self.conn.recv()
        except EOFError:
            raise WorkerGone(f"the jax sharding worker exited (code {self.process.exitcode}) ({what})") from None
        if not ok:
            raise value
        return value

    def close(self) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.process.join(timeout=5.0)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout=5.0)


_WORKER: list[_Worker] = []
_LOCK = threading.Lock()


def on_devices(fn: WorkerFn, problem: Problem, dtype: str, shards: int, jit: bool) -> Params:
    """``fn(problem, dtype, shards, jit)`` in the worker, restarted with more host
    devices if ``shards`` needs them or after a failure that may have left it stuck."""
    with _LOCK:
        if _WORKER and _WORKER[0].devices < shards:
            _WORKER.pop().close()
        if not _WORKER:
            _WORKER.append(_Worker(max(shards, MIN_DEVICES)))
        try:
            return _WORKER[0].run(fn, picklable(problem), dtype, shards, jit)
        except (TimeoutError, WorkerGone, OSError):
            _WORKER.pop().close()
            raise


@atexit.register
def _close_worker() -> None:
    with _LOCK:
        while _WORKER:
            _WORKER.pop().close()


def data_parallel_grads(target: str, problem: Problem, *, device: str, platform: str, dtype: str,
                        shards: int, jit: bool) -> Params:
    """dE of the whole batch, sharded over ``shards`` host CPU devices of the worker."""
    shards = check_shards(shards, "devices")
    if platform != "cpu":
        raise Unsupported(f"target {target!r}: data-parallel gradients shard over host CPU devices; "
                          f"device {device!r} ({platform}) would need one per shard (dtype {dtype!r})")
    try:
        return on_devices(sharded_grads, problem, dtype, shards, jit)
    except Unsupported as err:
        raise Unsupported(f"target {target!r}: {err} (dtype {dtype!r}, device {device!r})") from err
