"""Deliberately broken data-parallel gradients of jax, for ``test_data_parallel`` to
prove its check catches each: real runs of jax sharding in the sharding worker, each
with one classic mistake.  Each runs in the worker as ``fn(problem, dtype, shards,
jit)`` (``adapters.jax_sharded.on_devices``).

* ``shard_map_without_psum`` -- each device's gradient of its own rows under
  ``jax.shard_map``, declared replicated with no ``psum``: device 0's part only.
* ``shard_map_pmean`` -- the same with ``lax.pmean``: the parts' average, not their sum.
* ``padding_rows_counted`` -- the padded layout with every weight 1: the copies of row 0
  that fill the short parts count as examples.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import PartitionSpec

from adapters import jax_sharded as js
from adapters.interface import Params, Problem


def _shard_map(f, **kw):
    """``jax.shard_map`` without the replication check; ``jax.experimental.shard_map``
    (``check_rep``) in releases before it moved (jax 0.4.30)."""
    if hasattr(jax, "shard_map"):
        return jax.shard_map(f, check_vma=False, **kw)
    from jax.experimental.shard_map import shard_map

    return shard_map(f, check_rep=False, **kw)


def _shard_map_grads(problem: Problem, dtype: str, shards: int, reduce) -> Params:
    mesh, params, batch = js.sharded_inputs(problem, dtype, shards)
    local = jax.grad(js.loss_of(problem))  # of the device's own rows
    per_device = _shard_map(
        lambda p, x, t, w: reduce(local(p, x, t, w)), mesh=mesh,
        in_specs=(PartitionSpec(), *[PartitionSpec("batch")] * 3), out_specs=PartitionSpec(),
    )
    return js.host_params(per_device(params, *batch))


def shard_map_without_psum(problem: Problem, dtype: str, shards: int, jit: bool) -> Params:
    return _shard_map_grads(problem, dtype, shards, lambda g: g)


def shard_map_pmean(problem: Problem, dtype: str, shards: int, jit: bool) -> Params:
    return _shard_map_grads(problem, dtype, shards, lambda g: jax.lax.pmean(g, "batch"))


def padding_rows_counted(problem: Problem, dtype: str, shards: int, jit: bool) -> Params:
    _, params, (x, t, w) = js.sharded_inputs(problem, dtype, shards)
    ones = jax.device_put(np.ones(w.shape, w.dtype), w.sharding)
    grad = jax.jit(jax.grad(js.loss_of(problem))) if jit else jax.grad(js.loss_of(problem))
    return js.host_params(grad(params, x, t, ones))
