"""Deliberately broken data-parallel gradients of torch, for ``test_data_parallel`` to
prove its check catches each: real runs of DistributedDataParallel on the gloo ranks,
each with one classic mistake.  Each runs on every rank as ``fn(problem, dtype, rank=,
world=)`` (``adapters.torch_distributed.on_ranks``); the test keeps rank 0's result.

* ``ddp_without_all_reduce`` -- forward and backward inside ``DDP.no_sync()``: no
  all-reduce, so rank 0 returns its own part's gradient (times R for a sum).
* ``ddp_average_of_sums`` -- a ``sum`` loss returned as DDP leaves it: the average over
  ranks of the parts' sums, the times-R forgotten.
* ``ddp_overlapping_parts`` -- each part reaches one row into the next, so a row at
  every boundary is counted twice.
"""

from __future__ import annotations

import contextlib

import torch

from adapters import torch_common as tc
from adapters import torch_distributed as dp
from adapters.interface import Params, Problem


def _ddp_layers(problem: Problem, dtype: str, rows: slice, world: int, *, sync: bool = True):
    """DDP forward and backward of the part ``rows`` (weighted as the correct rank does);
    inside ``no_sync()`` unless ``sync``."""
    on = dp.placement(dtype)
    net_r, weight = dp.share_of_loss(problem.network, rows.stop - rows.start, len(problem.x), world)
    model = torch.nn.parallel.DistributedDataParallel(dp.Stack(problem.params, problem.network, on))
    x, t, labels = tc.data(dp.part_of(problem, rows), on)
    with contextlib.nullcontext() if sync else model.no_sync():
        (tc.loss(net_r, model(x), t, labels) * weight).backward()
    return model.module.layers


def _grads(layers, scale: float) -> Params:
    return tc.numpy_params((lin.weight.grad * scale, lin.bias.grad * scale) for lin in layers)


def _sum_scale(problem: Problem, world: int) -> float:
    return world if problem.network.reduction == "sum" else 1.0


def ddp_without_all_reduce(problem: Problem, dtype: str, *, rank: int, world: int) -> Params:
    rows = dp.shard_rows(len(problem.x), world)[rank]
    return _grads(_ddp_layers(problem, dtype, rows, world, sync=False), _sum_scale(problem, world))


def ddp_average_of_sums(problem: Problem, dtype: str, *, rank: int, world: int) -> Params:
    rows = dp.shard_rows(len(problem.x), world)[rank]
    return _grads(_ddp_layers(problem, dtype, rows, world), 1.0)


def ddp_overlapping_parts(problem: Problem, dtype: str, *, rank: int, world: int) -> Params:
    rows = dp.shard_rows(len(problem.x), world)[rank]
    rows = slice(rows.start, min(rows.stop + 1, len(problem.x)))
    return _grads(_ddp_layers(problem, dtype, rows, world), _sum_scale(problem, world))
