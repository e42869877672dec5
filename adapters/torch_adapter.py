"""PyTorch targets: ``torch`` (eager autograd) and ``torch-func`` (function transforms).

``torch`` builds the network the idiomatic way: one ``torch.nn.Linear`` per layer (its
``(out, in)`` weight set to ``W.T``, its bias to ``b``), ``torch.nn.functional``
activations and losses, ``Tensor.retain_grad`` on every pre-activation ``Z`` for the
deltas, ``Tensor.backward`` for the gradients and ``torch.optim.SGD`` (``zero_grad``/
``step``, over a ``torch.nn.ModuleList``'s parameters) for the update.

``torch-func`` differentiates the same pure function of ``(params, x, t)``, written with
plain ``torch.nn.functional.linear`` on weights in nn.Linear's ``(out, in)`` layout (not
``torch.func.functional_call``), by ``torch.func.grad_and_value`` (compute) and
``torch.func.grad`` (train).  Its deltas are gradients with respect to zero-valued
perturbations added to each ``Z`` and passed as extra arguments.  torch.func has no
optimizer, so the step is ``p - lr*g`` by hand, written ``Tensor.sub(g, alpha=lr)``: the
fused scalar multiply-add SGD itself runs, hence the same rounding in float16.

Both targets also implement the optional ``HigherOrder`` methods (jvp, hvp,
per_example_grads, train_online) in ``adapters/torch_transforms.py``: forward-mode dual
tensors, double backward, one backward per example and per-step SGD learning rates for
``torch``; ``torch.func.jvp``, jvp of grad, ``vmap`` of grad and grad steps for ``torch-func``;
and ``data_parallel_grads`` on gloo ranks in ``adapters/torch_distributed.py``.  The
network itself -- activations, forward pass, losses -- is ``adapters/torch_common.py``'s,
shared by every path.

Public torch APIs exercised here (the network's own are listed in torch_common):
torch.nn.ModuleList, torch.optim.SGD (and its param_groups), Tensor.retain_grad,
Tensor.backward, torch.func.grad, torch.func.grad_and_value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from adapters import torch_common as tc
from adapters import torch_transforms as transforms
from adapters.interface import Activation, NetworkSpec, Params, Problem, Result, Tangents


class _TorchTarget:
    """Eager autograd on an nn.Linear stack, stepped by torch.optim.SGD."""

    framework = "torch"
    name = "torch"
    _cache: tuple | None = None  # (shapes, dtype, device), its nn.Linear stack, its SGD: see _reused

    def version(self) -> str:
        return torch.__version__

    def devices(self) -> list[str]:
        return list(tc.devices())

    def precision_mode(self, device: str) -> str:
        tc.check_device(device)
        return tc.full_precision(device)

    def compute(self, problem: Problem, *, device: str, dtype: str, lr: float) -> Result:
        on = tc.setup(self.name, device, dtype)
        with tc.unsupported(self.name, dtype, device):
            return self._compute(problem, on, float(lr))

    def train(self, problem: Problem, *, device: str, dtype: str, lr: float, steps: int) -> list[Params]:
        if steps < 0:
            raise ValueError(f"steps must be >= 0, got {steps!r}")
        on = tc.setup(self.name, device, dtype)
        with tc.unsupported(self.name, dtype, device):
            return self._train(problem, on, float(lr), steps)

    # Optional HigherOrder methods; the code is in adapters/torch_transforms.py.
    def jvp(self, problem: Problem, tangent: Params, tangent_x: np.ndarray, *, device: str, dtype: str) -> Tangents:
        """dE and every da_l along the tangent: torch.autograd.forward_ad dual tensors."""
        return transforms.run(self.name, transforms.eager_jvp, problem, device, dtype, self._activate, tangent,
                              tangent_x)

    def hvp(self, problem: Problem, vector: Params, *, device: str, dtype: str) -> Params:
        """The Hessian of E times ``vector``: double backward with torch.autograd.grad."""
        return transforms.run(self.name, transforms.eager_hvp, problem, device, dtype, self._activate, vector)

    def per_example_grads(self, problem: Problem, *, device: str, dtype: str) -> Params:
        """Each example's term of the gradient: one Tensor.backward per one-row batch."""
        return transforms.run(self.name, transforms.eager_per_example_grads, problem, device, dtype, self._activate)

    def train_online(
        self, problem: Problem, *, device: str, dtype: str, schedule: Sequence[tuple[int, float]]
    ) -> list[Params]:
        """One torch.optim.SGD step per (example, lr) of ``schedule``, on that one row."""
        return transforms.run(self.name, transforms.eager_train_online, problem, device, dtype, self._activate,
                              schedule)

    def data_parallel_grads(self, problem: Problem, *, device: str, dtype: str, shards: int) -> Params:
        """dE of the batch split over ``shards`` gloo ranks, DistributedDataParallel
        around the nn.Linear stack (adapters/torch_distributed.py)."""
        from adapters import torch_distributed as dp  # starts no process until called

        tc.setup(self.name, device, dtype)
        with tc.unsupported(self.name, dtype, device):
            return dp.data_parallel_grads(self.name, dp.ddp_rank, problem, device=device, dtype=dtype, shards=shards)

    def _activate(self, z: torch.Tensor, act: Activation) -> torch.Tensor:
        """g(z) of one layer: the hook a subclass may replace to plant a wrong derivative."""
        return tc.activate(z, act)

    def _forward(
        self, layers: list[torch.nn.Linear], net: NetworkSpec, data: tc.Data, retain: bool
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The pre-activations Z (each kept for its .grad, the delta, if ``retain``) and E."""
        x, t, labels = data
        zs, outputs = tc.forward(layers, net.activations, x, activate=self._activate)
        if retain:
            for z in zs:
                z.retain_grad()
        return zs, tc.loss(net, outputs[-1], t, labels)

    def _reused(self, params: Params, on: dict[str, Any], lr: float) -> tuple[list[torch.nn.Linear], Any]:
        """The nn.Linear stack and its SGD for these shapes, made once and refilled: a
        suite checks many networks of one architecture in a row (as a training loop
        keeps its modules), and building modules costs more than the gradient."""
        key = (tuple(w.shape for w, _ in params), on["dtype"], on["device"])
        if self._cache is None or self._cache[0] != key:
            layers = tc.model(params, on)
            optimizer = torch.optim.SGD(torch.nn.ModuleList(layers).parameters(), lr=lr)
            self._cache = (key, layers, optimizer)
            return layers, optimizer
        _, layers, optimizer = self._cache
        tc.fill(layers, params)
        optimizer.zero_grad(set_to_none=True)
        optimizer.param_groups[0]["lr"] = lr
        return layers, optimizer

    def _compute(self, problem: Problem, on: dict[str, Any], lr: float) -> Result:
        layers, optimizer = self._reused(problem.params, on, lr)
        zs, loss = self._forward(layers, problem.network, tc.data(problem, on), True)
        loss.backward()
        grads = tc.numpy_params((lin.weight.grad, lin.bias.grad) for lin in layers)
        optimizer.step()
        stepped = tc.numpy_params((lin.weight, lin.bias) for lin in layers)
        return Result(float(loss.item()), [tc.to_numpy(z.grad) for z in zs], grads, stepped)

    def _train(self, problem: Problem, on: dict[str, Any], lr: float, steps: int) -> list[Params]:
        layers = tc.model(problem.params, on)
        optimizer = torch.optim.SGD(torch.nn.ModuleList(layers).parameters(), lr=lr)
        data = tc.data(problem, on)
        history = []
        for _ in range(steps):
            optimizer.zero_grad()
            self._forward(layers, problem.network, data, False)[1].backward()
            optimizer.step()
            history.append(tc.numpy_params((lin.weight, lin.bias) for lin in layers))
        return history


class _TorchFuncTarget(_TorchTarget):
    """torch.func transforms of ``torch_common.pure_loss``; the step by hand."""

    name = "torch-func"

    def _compute(self, problem: Problem, on: dict[str, Any], lr: float) -> Result:
        params, zeros = tc.tensors(problem, on)
        grad_fn = torch.func.grad_and_value(tc.pure_loss, argnums=(0, 1))
        (grads, deltas), loss = grad_fn(params, zeros, problem.network, tc.data(problem, on))
        return Result(
            loss=float(loss.item()),
            deltas=[tc.to_numpy(d) for d in deltas],
            grads=tc.numpy_params(grads),
            stepped=tc.numpy_params(tc.step(params, grads, lr)),
        )

    def _train(self, problem: Problem, on: dict[str, Any], lr: float, steps: int) -> list[Params]:
        params, zeros = tc.tensors(problem, on)
        data = tc.data(problem, on)
        grad_fn = torch.func.grad(tc.pure_loss, argnums=0)
        history = []
        for _ in range(steps):
            grads = grad_fn(params, zeros, problem.network, data)
            params = tc.step(params, grads, lr)
            history.append(tc.numpy_params(params))
        return history

    # Optional HigherOrder methods; the code is in adapters/torch_transforms.py.
    def jvp(self, problem: Problem, tangent: Params, tangent_x: np.ndarray, *, device: str, dtype: str) -> Tangents:
        """dE and every da_l along the tangent: torch.func.jvp of the pure loss."""
        return transforms.run(self.name, transforms.func_jvp, problem, device, dtype, tangent, tangent_x)

    def hvp(self, problem: Problem, vector: Params, *, device: str, dtype: str) -> Params:
        """The Hessian of E times ``vector``: torch.func.jvp of torch.func.grad."""
        return transforms.run(self.name, transforms.func_hvp, problem, device, dtype, vector)

    def per_example_grads(self, problem: Problem, *, device: str, dtype: str) -> Params:
        """Each example's term of the gradient: torch.func.vmap of torch.func.grad."""
        return transforms.run(self.name, transforms.func_per_example_grads, problem, device, dtype)

    def train_online(
        self, problem: Problem, *, device: str, dtype: str, schedule: Sequence[tuple[int, float]]
    ) -> list[Params]:
        """One torch.func.grad step by hand per (example, lr) of ``schedule``, on that one row."""
        return transforms.run(self.name, transforms.func_train_online, problem, device, dtype, schedule)

    def data_parallel_grads(self, problem: Problem, *, device: str, dtype: str, shards: int) -> Params:
        """dE of the batch split over ``shards`` gloo ranks: torch.func.grad of each part's
        share, then torch.distributed.all_reduce (adapters/torch_distributed.py)."""
        from adapters import torch_distributed as dp

        tc.setup(self.name, device, dtype)
        with tc.unsupported(self.name, dtype, device):
            return dp.data_parallel_grads(self.name, dp.func_rank, problem, device=device, dtype=dtype, shards=shards)


TARGETS: dict[str, _TorchTarget] = {
    "torch": _TorchTarget(),
    "torch-func": _TorchFuncTarget(),
}
