"""Data-parallel batch gradients with torch.distributed, for the ``torch`` and
``torch-func`` targets' ``data_parallel_grads``.

The batch is split, in order, into ``shards`` contiguous parts (``numpy.array_split``),
one per rank of a gloo process group on loopback (127.0.0.1, a free port); each rank
computes the gradient of its part's share of E, and the shares' gradients are
all-reduced, so every rank ends with the gradient of the whole batch's E:

* ``torch`` -- ``torch.nn.parallel.DistributedDataParallel`` around the ``nn.Linear``
  stack: its backward all-reduces the gradients and divides them by the world size R,
  so DDP returns the *average* (1/R) sum_r dL_r of the ranks' losses L_r.
* ``torch-func`` -- ``torch.func.grad`` of ``torch_common.pure_loss`` on each rank, then
  ``torch.distributed.all_reduce`` (SUM) of every gradient: sum_r dL_r.

Which L_r makes that E's gradient.  E = c S with S the sum of the batch's loss terms
and c = 1 (``sum``) or 1/(N K) (``mean``: N examples, K = 1 for the per-example losses
sse, ce, softmax_ce, K = the output width for the element-wise mse, bce, bce_logits).
A part of n_r examples has the sum S_r (S = sum_r S_r) and the framework's mean
S_r / (n_r K) (the same loss call on the part).

* ``sum``: L_r = S_r.  All-reduced sum: sum_r dS_r = dE.  DDP: (1/R) sum_r dS_r, times R.
* ``mean``: L_r = (A n_r / N) x the part's mean, with A = R for DDP (which divides by
  R) and A = 1 for the all-reduced sum: (1/A) sum_r (A n_r / N) dS_r / (n_r K)
  = sum_r dS_r / (N K) = dE, for any part sizes (equal parts under DDP: weight 1; N = 5
  over R = 2: 6/5 and 4/5).  Weighting each part's mean by 1/R alone, as DDP's average
  does, is right only for equal parts.
* an empty part (R > N): L_r is its empty sum, 0, with zero gradients.

The ranks are a persistent pool per world size: started on first use, fed problems
through ``multiprocessing`` queues, shut down at interpreter exit (or when a rank
failed, to be restarted on the next call), so a call costs milliseconds.  They are
forked from a ``forkserver`` that imports torch and ``torch._dynamo`` (which DDP's
constructor imports) once: spawned ranks would each import them again, about 10 s of
CPU per rank; like ``spawn``, the fork server never forks the calling process, whose
thread pools (jax's, torch's) a fork would copy in an undefined state.

Public torch APIs exercised: torch.distributed.{init_process_group (gloo, tcp://),
all_reduce, ReduceOp.SUM, is_available, is_gloo_available},
torch.nn.parallel.DistributedDataParallel, torch.nn.Module, torch.nn.ModuleList,
torch.func.grad, torch.multiprocessing.get_context("forkserver"), Tensor.backward.
"""

from __future__ import annotations

import atexit
import dataclasses
import datetime
import os
import queue
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from adapters import interface as api
from adapters import torch_common as tc
from adapters.common import check_shards, picklable, portable
from adapters.interface import NetworkSpec, Params, Problem

COLLECTIVE_TIMEOUT = datetime.timedelta(seconds=60)  # a rank waiting on a dead peer gives up
REPLY_TIMEOUT_S = 180.0  # the caller's wait for every rank (pool start included)
RankFn = Callable[..., Params]


def shard_rows(n: int, world: int) -> list[slice]:
    """The rows of each rank: ``numpy.array_split``'s contiguous parts of ``range(n)``."""
    ends = np.cumsum([0] + [len(part) for part in np.array_split(np.arange(n), world)])
    return [slice(int(a), int(b)) for a, b in zip(ends[:-1], ends[1:])]


def part_of(problem: Problem, rows: slice) -> Problem:
    return dataclasses.replace(problem, x=problem.x[rows], t=problem.t[rows])


def share_of_loss(net: NetworkSpec, n_rows: int, n_total: int, averaged_over: int) -> tuple[NetworkSpec, float]:
    """The network whose loss call a part uses and the weight of that loss, such that
    the ranks' gradients, all-reduced and divided by ``averaged_over``, are dE (module
    docstring): ``sum`` and empty parts use their sum, weight 1; ``mean`` parts their
    own mean, weight averaged_over x n_rows / n_total."""
    if net.reduction == "sum" or n_rows == 0:
        return dataclasses.replace(net, reduction="sum"), 1.0
    return net, averaged_over * n_rows / n_total


class Stack(torch.nn.Module):
    """The ``torch`` target's network as one Module, for DDP: the nn.Linear layers of
    ``torch_common.model`` run through ``torch_common.forward``."""

    def __init__(self, params: Params, net: NetworkSpec, on: dict[str, Any]) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList(tc.model(params, on))
        self.activations = net.activations

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return tc.forward(list(self.layers), self.activations, x)[1][-1]


def placement(dtype: str) -> dict[str, Any]:
    return {"device": torch.device("cpu"), "dtype": tc.DTYPES[dtype]}


def ddp_rank(problem: Problem, dtype: str, *, rank: int, world: int) -> Params:
    """One rank of ``torch``: DDP forward and backward on its part; DDP averages."""
    on, rows = placement(dtype), shard_rows(len(problem.x), world)[rank]
    net_r, weight = share_of_loss(problem.network, rows.stop - rows.start, len(problem.x), world)
    model = torch.nn.parallel.DistributedDataParallel(Stack(problem.params, problem.network, on))
    x, t, labels = tc.data(part_of(problem, rows), on)
    loss = tc.loss(net_r, model(x), t, labels)
    (loss if weight == 1.0 else loss * weight).backward()
    layers = model.module.layers
    if problem.network.reduction == "sum":  # DDP's average of the parts' sums, times R
        return tc.numpy_params((lin.weight.grad * world, lin.bias.grad * world) for lin in layers)
    return tc.numpy_params((lin.weight.grad, lin.bias.grad) for lin in layers)


def func_rank(problem: Problem, dtype: str, *, rank: int, world: int) -> Params:
    """One rank of ``torch-func``: torch.func.grad of its share, all_reduce (SUM)."""
    on, rows = placement(dtype), shard_rows(len(problem.x), world)[rank]
    net_r, weight = share_of_loss(problem.network, rows.stop - rows.start, len(problem.x), 1)
    part = part_of(problem, rows)
    params, zeros = tc.tensors(part, on)
    data = tc.data(part, on)

    def share(p):
        loss = tc.pure_loss(p, zeros, net_r, data)
        return loss if weight == 1.0 else loss * weight

    grads = torch.func.grad(share)(params)
    for pair in grads:
        for g in pair:
            dist.all_reduce(g, op=dist.ReduceOp.SUM)
    return tc.numpy_params(grads)


# --- the pool of ranks ----------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(rank: int, world: int, port: int, jobs, replies) -> None:
    """A rank's loop: join the group, then run each job ``(fn, args)`` as
    ``fn(*args, rank=, world=)`` until ``None`` arrives or the caller dies."""
    # Gloo binds to the interface the host name resolves to unless told otherwise.
    names = {name for _, name in socket.if_nameindex()}
    loopback = next((n for n in ("lo", "lo0") if n in names), None)
    if loopback is not None:
        os.environ["GLOO_SOCKET_IFNAME"] = loopback
    try:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                world_size=world, timeout=COLLECTIVE_TIMEOUT)
    except Exception as err:
        replies.put((rank, False, portable(err, "on the rank")))
        return
    replies.put((rank, True, None))
    caller = mp.parent_process()
    while True:
        try:
            job = jobs.get(timeout=1.0)
        except queue.Empty:
            if caller is not None and not caller.is_alive():
                return
            continue
        if job is None:
            return
        fn, args = job
        try:
            replies.put((rank, True, fn(*args, rank=rank, world=world)))
        except Exception as err:
            replies.put((rank, False, portable(err, "on the rank")))


class _Pool:
    """``world`` gloo ranks started once and reused; ``run`` returns every rank's result."""

    def __init__(self, world: int) -> None:
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["torch", "torch._dynamo", "adapters.torch_distributed"])
        port = _free_port()
        self.world = world
        self.jobs = [ctx.Queue() for _ in range(world)]
        self.replies = ctx.Queue()
        self.ranks = [
            ctx.Process(target=_serve, args=(r, world, port, self.jobs[r], self.replies), daemon=True,
                        name=f"deltacheck-gloo-rank-{r}-of-{world}")
            for r in range(world)
        ]
        for p in self.ranks:
            p.start()
        self._collect("joining the gloo process group")

    def run(self, fn: RankFn, *args: Any) -> list[Params]:
        for jobs in self.jobs:
            jobs.put((fn, args))
        return self._collect(f"{fn.__module__}.{fn.__qualname__}")

    def _collect(self, what: str) -> list:
        got: dict[int, tuple[bool, Any]] = {}
        deadline = time.monotonic() + REPLY_TIMEOUT_S
        while len(got) < self.world:
            try:
                rank, ok, value = self.replies.get(timeout=0.5)
            except queue.Empty:
                self._check_alive(got, deadline, what)
                continue
            got[rank] = (ok, value)
        failed = [r for r in range(self.world) if not got[r][0]]
        if failed:
            err = got[failed[0]][1]
            err.add_note(f"rank {failed[0]} of {self.world} failed ({what}); failed ranks: {failed}")
            raise err
        return [got[r][1] for r in range(self.world)]

    def _check_alive(self, got: dict, deadline: float, what: str) -> None:
        missing = [r for r in range(self.world) if r not in got]
        dead = [(r, self.ranks[r].exitcode) for r in missing if not self.ranks[r].is_alive()]
        if dead:
            raise RuntimeError(f"gloo rank(s) exited before answering ({what}): "
                               + ", ".join(f"rank {r} with exit code {code}" for r, code in dead))
        if time.monotonic() > deadline:
            raise TimeoutError(f"gloo ranks {missing} of {self.world} did not answer within "
                               f"{REPLY_TIMEOUT_S:g} s ({what})")

    def close(self) -> None:
        for jobs, p in zip(self.jobs, self.ranks):
            if p.is_alive():
                jobs.put(None)
        for p in self.ranks:
            p.join(timeout=5.0)
            if p.is_alive():
                p.terminate()
                p.join(timeout=5.0)


_POOLS: dict[int, _Pool] = {}
_LOCK = threading.Lock()


def on_ranks(fn: RankFn, problem: Problem, dtype: str, shards: int) -> list[Params]:
    """Every rank's result of ``fn(problem, dtype, rank=, world=shards)`` on the pool of
    ``shards`` ranks; a failed call closes the pool (a rank may be stuck in a collective)."""
    with _LOCK:
        try:
            pool = _POOLS.get(shards) or _POOLS.setdefault(shards, _Pool(shards))
            return pool.run(fn, picklable(problem), dtype)
        except BaseException:
            stale = _POOLS.pop(shards, None)
            if stale is not None:
                stale.close()
            raise


@atexit.register
def _close_pools() -> None:
    with _LOCK:
        while _POOLS:
            _POOLS.popitem()[1].close()


def data_parallel_grads(target: str, fn: RankFn, problem: Problem, *, device: str, dtype: str,
                        shards: int) -> Params:
    """dE of the whole batch from ``shards`` gloo ranks running ``fn`` (``ddp_rank`` or
    ``func_rank``): rank 0's all-reduced gradient."""
    shards = check_shards(shards, "ranks")
    if not (dist.is_available() and dist.is_gloo_available()):
        raise api.Unsupported(f"{target}: this torch build has no torch.distributed gloo backend "
                              f"(dtype {dtype}, device {device})")
    if device != "cpu":
        raise api.Unsupported(f"{target}: data-parallel gradients run on gloo ranks on the CPU; device "
                              f"{device!r} would need one accelerator per rank (dtype {dtype})")
    return on_ranks(fn, problem, dtype, shards)[0]
