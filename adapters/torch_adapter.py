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
``torch``; ``torch.func.jvp``, jvp of grad, ``vmap`` of grad and grad steps for ``torch-func``.

Public torch APIs exercised: torch.nn.Linear, torch.nn.ModuleList, torch.optim.SGD
(and its param_groups), Tensor.retain_grad, Tensor.backward, Tensor.sub,
torch.autograd.grad, torch.autograd.forward_ad.{dual_level, make_dual, unpack_dual},
torch.nn.Module.zero_grad, torch.func.grad, torch.func.grad_and_value, torch.func.jvp,
torch.func.vmap, torch.nn.functional.{linear, relu, leaky_relu, elu, selu,
celu, softplus, gelu, silu, mish, softsign, hardtanh, relu6, hardsigmoid, hardswish,
logsigmoid, softmax, mse_loss, binary_cross_entropy, binary_cross_entropy_with_logits,
cross_entropy}, torch.sigmoid, torch.tanh, torch.log, torch.tensor, torch.zeros,
torch.no_grad, torch.cuda.device_count, torch.backends.mps.is_available,
torch.backends.cuda.matmul.allow_{tf32, fp16_reduced_precision_reduction,
bf16_reduced_precision_reduction}, torch.backends.cudnn.allow_tf32.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from adapters import interface as api
from adapters import torch_transforms as transforms
from adapters.interface import Activation, NetworkSpec, Params, Problem, Result

# The interface's dtype names are torch's own attribute names.
_DTYPES = {name: getattr(torch, name) for name in api.DTYPES}

_ACT: dict[str, Callable[[torch.Tensor, Activation], torch.Tensor]] = {
    "identity": lambda z, a: z,
    "sigmoid": lambda z, a: torch.sigmoid(z),
    "tanh": lambda z, a: torch.tanh(z),
    "relu": lambda z, a: F.relu(z),
    "leaky_relu": lambda z, a: F.leaky_relu(z, negative_slope=a.param("slope")),
    "elu": lambda z, a: F.elu(z, alpha=a.param("alpha")),
    "selu": lambda z, a: F.selu(z),
    "celu": lambda z, a: F.celu(z, alpha=a.param("alpha")),
    # threshold=inf goes straight to torch, which then never switches to the identity.
    "softplus": lambda z, a: F.softplus(z, a.param("beta"), a.param("threshold")),
    "gelu": lambda z, a: F.gelu(z, approximate="none"),
    "gelu_tanh": lambda z, a: F.gelu(z, approximate="tanh"),
    "silu": lambda z, a: F.silu(z),
    "mish": lambda z, a: F.mish(z),
    "softsign": lambda z, a: F.softsign(z),
    "hardtanh": lambda z, a: F.hardtanh(z, a.param("min_val"), a.param("max_val")),
    "relu6": lambda z, a: F.relu6(z),
    "hardsigmoid": lambda z, a: F.hardsigmoid(z),
    "hardswish": lambda z, a: F.hardswish(z),
    "log_sigmoid": lambda z, a: F.logsigmoid(z),
    "softmax": lambda z, a: F.softmax(z, dim=1),
}

# Matches e.g.  "addmm_impl_cpu_" not implemented for 'Half'
_NOT_IMPLEMENTED = re.compile(r"\"?([\w:.]+)\"? not implemented for '(\w+)'")


@functools.cache
def _devices() -> tuple[str, ...]:
    found = ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        found.append("mps")
    return tuple(found)


def _require(value: str, allowed: Iterable[str], what: str) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; known: {', '.join(allowed)}")


def _full_precision(device: str) -> str:
    """Switch off the reduced-precision matmul paths torch enables by default on CUDA."""
    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction = False
        torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = False
        on = torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32
        tf32 = "ON" if on else "off"
        return f"highest (TF32 {tf32}, fp16/bf16 reduced-precision reductions off)"
    if device == "mps":
        return "highest available (MPS has no TF32 switch)"
    return "highest (CPU: full-precision matmul, no TF32)"


def _check_network(net: NetworkSpec) -> None:
    if len(net.activations) != len(net.sizes) - 1:
        raise ValueError(
            f"{len(net.activations)} activations for sizes {net.sizes}; need {len(net.sizes) - 1}"
        )
    for i, act in enumerate(net.activations, start=1):
        _require(act.name, api.ACTIVATIONS, "activation")
        if act.name in api.OUTPUT_ONLY_ACTIVATIONS and i < len(net.activations):
            raise ValueError(f"activation {act.name!r} is allowed on the output only")
    _require(net.loss, api.LOSSES, "loss")
    _require(net.reduction, api.REDUCTIONS, "reduction")
    required = api.OUTPUT_ACTIVATION_FOR_LOSS.get(net.loss)
    if required is not None and net.activations[-1].name != required:
        raise ValueError(
            f"loss {net.loss!r} needs output activation {required!r}, got {net.activations[-1].name!r}"
        )


@contextlib.contextmanager
def _unsupported(target: str, dtype: str, device: str) -> Iterator[None]:
    """Turn torch's 'op not implemented for dtype' errors into Unsupported; only those."""
    try:
        yield
    except RuntimeError as err:
        match = _NOT_IMPLEMENTED.search(str(err))
        if match is None:
            raise
        raise api.Unsupported(
            f"{target}: torch op {match[1]!r} is not implemented for dtype {dtype} "
            f"({match[2]}) on device {device}"
        ) from err


def _check_probabilities(a: torch.Tensor) -> None:
    """binary_cross_entropy's input range, checked on the host off the CPU.  The CPU
    kernel raises this error for an input outside [0, 1] (NaN included); the CUDA kernel
    stops on a device-side assert instead, which leaves the CUDA context unusable for
    every later call in the process.  Under torch.func.vmap a tensor has no single truth
    value: there the check is left to the kernel."""
    if a.device.type == "cpu":
        return
    try:
        inside = bool(((a >= 0) & (a <= 1)).all())
    except RuntimeError:  # vmap: data-dependent control flow
        return
    if not inside:
        raise RuntimeError(f"all elements of input should be between 0 and 1 (on {a.device}, checked before the kernel)")


def _loss(net: NetworkSpec, a: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    mean = net.reduction == "mean"
    if net.loss == "sse":
        half_sum = 0.5 * F.mse_loss(a, t, reduction="sum")
        return half_sum / a.shape[0] if mean else half_sum
    if net.loss == "mse":
        return F.mse_loss(a, t, reduction=net.reduction)
    if net.loss == "bce":
        _check_probabilities(a)
        return F.binary_cross_entropy(a, t, reduction=net.reduction)
    if net.loss == "bce_logits":
        return F.binary_cross_entropy_with_logits(a, t, reduction=net.reduction)
    if net.loss == "ce":
        total = -(t * torch.log(a)).sum()
        return total / a.shape[0] if mean else total
    return F.cross_entropy(a, t if labels is None else labels, reduction=net.reduction)


def _data(problem: Problem, on: dict[str, Any]) -> tuple:
    """x, t and -- for softmax_ce with every row of t one-hot -- t's class indices."""
    x, t = torch.tensor(problem.x, **on), torch.tensor(problem.t, **on)
    if problem.network.loss != "softmax_ce":
        return x, t, None
    tn = problem.t
    one_hot = np.all((tn == 0) | (tn == 1)) and np.all(tn.sum(axis=1) == 1)
    return x, t, torch.tensor(tn.argmax(axis=1), device=on["device"]) if one_hot else None


def _to_numpy(tensor: torch.Tensor | None) -> np.ndarray:
    if tensor is None:  # a .grad autograd never filled: a bug to surface, not a zero
        raise RuntimeError("torch left a gradient unset")
    # copy=True: on CPU float64 .to() would alias storage that SGD later updates in place.
    return tensor.detach().to(device="cpu", dtype=torch.float64, copy=True).numpy()


def _numpy_params(pairs: Iterable[tuple[torch.Tensor | None, torch.Tensor | None]]) -> Params:
    """(weight (out, in), bias) pairs -> [(W (in, out), b), ...]."""
    return [(_to_numpy(w).T, _to_numpy(b)) for w, b in pairs]


def _fill(layers: Sequence[torch.nn.Linear], params: Params) -> None:
    """Each layer's weight and bias set to ``(W, b)`` (W of shape (in, out))."""
    with torch.no_grad():
        for layer, (w, b) in zip(layers, params):
            layer.weight.copy_(torch.from_numpy(w.T))
            layer.bias.copy_(torch.from_numpy(b))


class _TorchTarget:
    """Eager autograd on an nn.Linear stack, stepped by torch.optim.SGD."""

    framework = "torch"
    name = "torch"
    _cache: tuple | None = None  # (shapes, dtype, device), its nn.Linear stack, its SGD: see _reused

    def version(self) -> str:
        return torch.__version__

    def devices(self) -> list[str]:
        return list(_devices())

    def precision_mode(self, device: str) -> str:
        _require(device, _devices(), "device")
        return _full_precision(device)

    def compute(self, problem: Problem, *, device: str, dtype: str, lr: float) -> Result:
        on = self._setup(problem, device, dtype)
        with _unsupported(self.name, dtype, device):
            return self._compute(problem, on, float(lr))

    def train(self, problem: Problem, *, device: str, dtype: str, lr: float, steps: int) -> list[Params]:
        if steps < 0:
            raise ValueError(f"steps must be >= 0, got {steps!r}")
        on = self._setup(problem, device, dtype)
        with _unsupported(self.name, dtype, device):
            return self._train(problem, on, float(lr), steps)

    # Optional HigherOrder methods; the code is in adapters/torch_transforms.py.
    def jvp(
        self, problem: Problem, tangent: Params, tangent_x: np.ndarray, *, device: str, dtype: str
    ) -> api.Tangents:
        """dE and every da_l along the tangent: torch.autograd.forward_ad dual tensors."""
        return transforms.run(self, transforms.eager_jvp, problem, device, dtype, tangent, tangent_x)

    def hvp(self, problem: Problem, vector: Params, *, device: str, dtype: str) -> Params:
        """The Hessian of E times ``vector``: double backward with torch.autograd.grad."""
        return transforms.run(self, transforms.eager_hvp, problem, device, dtype, vector)

    def per_example_grads(self, problem: Problem, *, device: str, dtype: str) -> Params:
        """Each example's term of the gradient: one Tensor.backward per one-row batch."""
        return transforms.run(self, transforms.eager_per_example_grads, problem, device, dtype)

    def train_online(
        self, problem: Problem, *, device: str, dtype: str, schedule: Sequence[tuple[int, float]]
    ) -> list[Params]:
        """One torch.optim.SGD step per (example, lr) of ``schedule``, on that one row."""
        return transforms.run(self, transforms.eager_train_online, problem, device, dtype, schedule)

    def data_parallel_grads(self, problem: Problem, *, device: str, dtype: str, shards: int) -> Params:
        """dE of the batch split over ``shards`` gloo ranks, DistributedDataParallel
        around the nn.Linear stack (adapters/torch_distributed.py)."""
        from adapters import torch_distributed as dp  # starts no process until called

        self._setup(problem, device, dtype)
        with _unsupported(self.name, dtype, device):
            return dp.data_parallel_grads(self.name, dp.ddp_rank, problem, device=device, dtype=dtype, shards=shards)

    def _setup(self, problem: Problem, device: str, dtype: str) -> dict[str, Any]:
        """Validate; return the tensor placement keywords."""
        api.check_dtype(dtype)
        _require(device, _devices(), "device")
        _check_network(problem.network)
        if device == "mps" and dtype == "float64":
            # MPS reports this as a TypeError while casting, not as a missing op.
            raise api.Unsupported(f"{self.name}: dtype float64 is unsupported on device mps")
        _full_precision(device)
        return {"device": torch.device(device), "dtype": _DTYPES[dtype]}

    @staticmethod
    def _model(params: Params, on: dict[str, Any]) -> list[torch.nn.Linear]:
        layers = [torch.nn.Linear(w.shape[0], w.shape[1], **on) for w, _ in params]
        _fill(layers, params)
        return layers

    @staticmethod
    def _activate(z: torch.Tensor, act: Activation) -> torch.Tensor:
        return _ACT[act.name](z, act)

    def _forward(
        self, layers: list[torch.nn.Linear], net: NetworkSpec, data: tuple, retain: bool
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        x, t, labels = data
        zs, a = [], x
        for layer, act in zip(layers, net.activations):
            zs.append(layer(a))
            if retain:
                zs[-1].retain_grad()
            a = self._activate(zs[-1], act)
        return zs, _loss(net, a, t, labels)

    def _reused(self, params: Params, on: dict[str, Any], lr: float) -> tuple[list[torch.nn.Linear], Any]:
        """The nn.Linear stack and its SGD for these shapes, made once and refilled: a
        suite checks many networks of one architecture in a row (as a training loop
        keeps its modules), and building modules costs more than the gradient."""
        key = (tuple(w.shape for w, _ in params), on["dtype"], on["device"])
        if self._cache is None or self._cache[0] != key:
            layers = self._model(params, on)
            optimizer = torch.optim.SGD(torch.nn.ModuleList(layers).parameters(), lr=lr)
            self._cache = (key, layers, optimizer)
            return layers, optimizer
        _, layers, optimizer = self._cache
        _fill(layers, params)
        optimizer.zero_grad(set_to_none=True)
        optimizer.param_groups[0]["lr"] = lr
        return layers, optimizer

    def _compute(self, problem: Problem, on: dict[str, Any], lr: float) -> Result:
        layers, optimizer = self._reused(problem.params, on, lr)
        zs, loss = self._forward(layers, problem.network, _data(problem, on), True)
        loss.backward()
        grads = _numpy_params((lin.weight.grad, lin.bias.grad) for lin in layers)
        optimizer.step()
        stepped = _numpy_params((lin.weight, lin.bias) for lin in layers)
        return Result(float(loss.item()), [_to_numpy(z.grad) for z in zs], grads, stepped)

    def _train(self, problem: Problem, on: dict[str, Any], lr: float, steps: int) -> list[Params]:
        layers = self._model(problem.params, on)
        optimizer = torch.optim.SGD(torch.nn.ModuleList(layers).parameters(), lr=lr)
        data = _data(problem, on)
        history = []
        for _ in range(steps):
            optimizer.zero_grad()
            self._forward(layers, problem.network, data, False)[1].backward()
            optimizer.step()
            history.append(_numpy_params((lin.weight, lin.bias) for lin in layers))
        return history


def _pure_loss(
    params: Sequence[tuple[torch.Tensor, torch.Tensor]],
    perturbations: Sequence[torch.Tensor],
    net: NetworkSpec,
    data: tuple,
) -> torch.Tensor:
    """E(params); a zero perturbation is added to each Z so that dE/dZ is a gradient."""
    x, t, labels = data
    a = x
    for (weight, bias), eps, act in zip(params, perturbations, net.activations):
        a = _ACT[act.name](F.linear(a, weight, bias) + eps, act)
    return _loss(net, a, t, labels)


class _TorchFuncTarget(_TorchTarget):
    """torch.func transforms of _pure_loss; the step by hand."""

    name = "torch-func"

    @staticmethod
    def _tensors(problem: Problem, on: dict[str, Any]) -> tuple[list, list]:
        """Parameters, and zero perturbations of each Z."""
        # Contiguous (out, in) like nn.Linear's weight (torch.tensor would keep W.T's
        # strides), so both targets run the very same matmul kernels.
        params = [
            (torch.tensor(np.ascontiguousarray(w.T), **on), torch.tensor(b, **on)) for w, b in problem.params
        ]
        n = problem.x.shape[0]
        return params, [torch.zeros(n, w.shape[0], **on) for w, _ in params]

    @staticmethod
    def _step(params: Sequence, grads: Sequence, lr: float) -> list:
        return [(w.sub(gw, alpha=lr), b.sub(gb, alpha=lr)) for (w, b), (gw, gb) in zip(params, grads)]

    def _compute(self, problem: Problem, on: dict[str, Any], lr: float) -> Result:
        params, zeros = self._tensors(problem, on)
        grad_fn = torch.func.grad_and_value(_pure_loss, argnums=(0, 1))
        (grads, deltas), loss = grad_fn(params, zeros, problem.network, _data(problem, on))
        return Result(
            loss=float(loss.item()),
            deltas=[_to_numpy(d) for d in deltas],
            grads=_numpy_params(grads),
            stepped=_numpy_params(self._step(params, grads, lr)),
        )

    def _train(self, problem: Problem, on: dict[str, Any], lr: float, steps: int) -> list[Params]:
        params, zeros = self._tensors(problem, on)
        data = _data(problem, on)
        grad_fn = torch.func.grad(_pure_loss, argnums=0)
        history = []
        for _ in range(steps):
            grads = grad_fn(params, zeros, problem.network, data)
            params = self._step(params, grads, lr)
            history.append(_numpy_params(params))
        return history

    # Optional HigherOrder methods; the code is in adapters/torch_transforms.py.
    def jvp(
        self, problem: Problem, tangent: Params, tangent_x: np.ndarray, *, device: str, dtype: str
    ) -> api.Tangents:
        """dE and every da_l along the tangent: torch.func.jvp of the pure loss."""
        return transforms.run(self, transforms.func_jvp, problem, device, dtype, tangent, tangent_x)

    def hvp(self, problem: Problem, vector: Params, *, device: str, dtype: str) -> Params:
        """The Hessian of E times ``vector``: torch.func.jvp of torch.func.grad."""
        return transforms.run(self, transforms.func_hvp, problem, device, dtype, vector)

    def per_example_grads(self, problem: Problem, *, device: str, dtype: str) -> Params:
        """Each example's term of the gradient: torch.func.vmap of torch.func.grad."""
        return transforms.run(self, transforms.func_per_example_grads, problem, device, dtype)

    def train_online(
        self, problem: Problem, *, device: str, dtype: str, schedule: Sequence[tuple[int, float]]
    ) -> list[Params]:
        """One torch.func.grad step by hand per (example, lr) of ``schedule``, on that one row."""
        return transforms.run(self, transforms.func_train_online, problem, device, dtype, schedule)

    def data_parallel_grads(self, problem: Problem, *, device: str, dtype: str, shards: int) -> Params:
        """dE of the batch split over ``shards`` gloo ranks: torch.func.grad of each part's
        share, then torch.distributed.all_reduce (adapters/torch_distributed.py)."""
        from adapters import torch_distributed as dp

        self._setup(problem, device, dtype)
        with _unsupported(self.name, dtype, device):
            return dp.data_parallel_grads(self.name, dp.func_rank, problem, device=device, dtype=dtype, shards=shards)


TARGETS: dict[str, _TorchTarget] = {
    "torch": _TorchTarget(),
    "torch-func": _TorchFuncTarget(),
}
