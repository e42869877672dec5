"""What every PyTorch path shares: the dtype table, the activations as code and as
source text, the one forward pass, the losses, and the conversions to and from NumPy.

The targets (``torch_adapter``), their higher-order methods (``torch_transforms``) and
their data-parallel ranks (``torch_distributed``) import this module and nothing of
each other, so the network is written once: ``forward`` runs Eqs. 3-4 on any stack of
linear maps -- ``torch.nn.Linear`` modules (eager, DDP) or ``F.linear`` on plain
tensors (``torch.func``) -- and ``loss`` reduces it.

Public torch APIs exercised: torch.nn.Linear, torch.nn.functional.{linear, relu,
leaky_relu, elu, selu, celu, softplus, gelu, silu, mish, softsign, hardtanh, relu6,
hardsigmoid, hardswish, logsigmoid, softmax, mse_loss, binary_cross_entropy,
binary_cross_entropy_with_logits, cross_entropy}, torch.sigmoid, torch.tanh, torch.log,
torch.tensor, torch.from_numpy, torch.zeros, torch.no_grad, Tensor.sub,
torch.cuda.device_count, torch.backends.mps.is_available,
torch.backends.cuda.matmul.allow_{tf32, fp16_reduced_precision_reduction,
bf16_reduced_precision_reduction}, torch.backends.cudnn.allow_tf32.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from adapters import interface as api
from adapters.common import ActivationCode, check_dtype
from adapters.interface import Activation, NetworkSpec, Params, Problem

# The interface's dtype names are torch's own attribute names.
DTYPES = {name: getattr(torch, name) for name in api.DTYPES}

On = dict[str, Any]  # tensor placement keywords: device and dtype
Data = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]  # x, t, softmax_ce's class labels
Activate = Callable[[torch.Tensor, Activation], torch.Tensor]


def _code(template: str, fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[Mapping[str, float]], ActivationCode]:
    return lambda p: ActivationCode(template, p, fn)


# Each activation's torch call and its text, side by side; tests/meta/test_activation_code.py
# checks that the text computes what the call does, derivatives at the kinks included.  The
# calls look the public function up when they run, so a patched torch function (a planted
# fault, a user's own fix) is the one checked.
_CODE: dict[str, Callable[[Mapping[str, float]], ActivationCode]] = {
    "identity": _code("z", lambda z: z),
    "sigmoid": _code("torch.sigmoid(z)", lambda z: torch.sigmoid(z)),
    "tanh": _code("torch.tanh(z)", lambda z: torch.tanh(z)),
    "relu": _code("F.relu(z)", lambda z: F.relu(z)),
    "leaky_relu": lambda p: ActivationCode(
        "F.leaky_relu(z, negative_slope={slope})", p, lambda z: F.leaky_relu(z, negative_slope=p["slope"])),
    "elu": lambda p: ActivationCode("F.elu(z, alpha={alpha})", p, lambda z: F.elu(z, alpha=p["alpha"])),
    "selu": _code("F.selu(z)", lambda z: F.selu(z)),
    "celu": lambda p: ActivationCode("F.celu(z, alpha={alpha})", p, lambda z: F.celu(z, alpha=p["alpha"])),
    # threshold=inf goes straight to torch, which then never switches to the identity.
    "softplus": lambda p: ActivationCode(
        "F.softplus(z, {beta}, {threshold})", p, lambda z: F.softplus(z, p["beta"], p["threshold"])),
    "gelu": _code("F.gelu(z, approximate='none')", lambda z: F.gelu(z, approximate="none")),
    "gelu_tanh": _code("F.gelu(z, approximate='tanh')", lambda z: F.gelu(z, approximate="tanh")),
    "silu": _code("F.silu(z)", lambda z: F.silu(z)),
    "mish": _code("F.mish(z)", lambda z: F.mish(z)),
    "softsign": _code("F.softsign(z)", lambda z: F.softsign(z)),
    "hardtanh": lambda p: ActivationCode(
        "F.hardtanh(z, {min_val}, {max_val})", p, lambda z: F.hardtanh(z, p["min_val"], p["max_val"])),
    "relu6": _code("F.relu6(z)", lambda z: F.relu6(z)),
    "hardsigmoid": _code("F.hardsigmoid(z)", lambda z: F.hardsigmoid(z)),
    "hardswish": _code("F.hardswish(z)", lambda z: F.hardswish(z)),
    "log_sigmoid": _code("F.logsigmoid(z)", lambda z: F.logsigmoid(z)),
    "softmax": _code("F.softmax(z, dim=1)", lambda z: F.softmax(z, dim=1)),
}


def activation_code(name: str, params: Mapping[str, float]) -> ActivationCode:
    """The activation ``name`` with every parameter in ``params`` as the torch targets
    run it; its ``source`` uses the names ``torch``, ``F`` (torch.nn.functional), ``z``."""
    return _CODE[name](params)


def activate(z: torch.Tensor, act: Activation) -> torch.Tensor:
    """g(z) for one layer's activation (Eq. 3's g)."""
    return activation_code(act.name, {key: act.param(key) for key in api.ACTIVATIONS[act.name]}).fn(z)


def linear(weight: torch.Tensor, bias: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """The map a -> a weight^T + bias of a weight in nn.Linear's (out, in) layout."""
    return lambda a: F.linear(a, weight, bias)


def forward(
    linears: Sequence[Callable[[torch.Tensor], torch.Tensor]],
    activations: Sequence[Activation],
    x: torch.Tensor,
    *,
    perturbations: Sequence[torch.Tensor] | None = None,
    activate: Activate = activate,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Eqs. 3-4 through every layer: ``(zs, outputs)``, the pre-activations z_l and the
    outputs a_l.  A perturbation, when given, is added to each z_l (a zero whose
    gradient is the delta); ``activate`` is the hook a target may replace."""
    zs, outputs, a = [], [], x
    for layer, (apply, act) in enumerate(zip(linears, activations)):
        z = apply(a)
        if perturbations is not None:
            z = z + perturbations[layer]
        zs.append(z)
        a = activate(z, act)
        outputs.append(a)
    return zs, outputs


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


def loss(net: NetworkSpec, a: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """E of the output a under ``net``'s loss and reduction (Eq. 1 for sse with sum)."""
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


def pure_loss(
    params: Sequence[tuple[torch.Tensor, torch.Tensor]],
    perturbations: Sequence[torch.Tensor],
    net: NetworkSpec,
    data: Data,
) -> torch.Tensor:
    """E(params) as a pure function for torch.func; a zero perturbation is added to
    each Z so that dE/dZ is a gradient."""
    x, t, labels = data
    outputs = forward([linear(w, b) for w, b in params], net.activations, x, perturbations=perturbations)[1]
    return loss(net, outputs[-1], t, labels)


def data(problem: Problem, on: On) -> Data:
    """x, t and -- for softmax_ce with every row of t one-hot -- t's class indices.  A
    one-row batch is row n of this, so it follows the whole batch's choice."""
    x, t = torch.tensor(problem.x, **on), torch.tensor(problem.t, **on)
    if problem.network.loss != "softmax_ce":
        return x, t, None
    tn = problem.t
    one_hot = np.all((tn == 0) | (tn == 1)) and np.all(tn.sum(axis=1) == 1)
    return x, t, torch.tensor(tn.argmax(axis=1), device=on["device"]) if one_hot else None


def to_numpy(tensor: torch.Tensor | None) -> np.ndarray:
    if tensor is None:  # a .grad autograd never filled: a bug to surface, not a zero
        raise RuntimeError("torch left a gradient unset")
    # copy=True: on CPU float64 .to() would alias storage that SGD later updates in place.
    return tensor.detach().to(device="cpu", dtype=torch.float64, copy=True).numpy()


def numpy_params(pairs: Iterable[tuple[torch.Tensor | None, torch.Tensor | None]]) -> Params:
    """(weight (out, in), bias) pairs -> [(W (in, out), b), ...]."""
    return [(to_numpy(w).T, to_numpy(b)) for w, b in pairs]


def fill(layers: Sequence[torch.nn.Linear], params: Params) -> None:
    """Each layer's weight and bias set to ``(W, b)`` (W of shape (in, out))."""
    with torch.no_grad():
        for layer, (w, b) in zip(layers, params):
            layer.weight.copy_(torch.from_numpy(w.T))
            layer.bias.copy_(torch.from_numpy(b))


def model(params: Params, on: On) -> list[torch.nn.Linear]:
    """One nn.Linear per layer, holding ``params``."""
    layers = [torch.nn.Linear(w.shape[0], w.shape[1], **on) for w, _ in params]
    fill(layers, params)
    return layers


def tensors(problem: Problem, on: On) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], list[torch.Tensor]]:
    """The parameters as plain tensors, and zero perturbations of each Z."""
    # Contiguous (out, in) like nn.Linear's weight (torch.tensor would keep W.T's
    # strides), so both targets run the very same matmul kernels.
    params = [(torch.tensor(np.ascontiguousarray(w.T), **on), torch.tensor(b, **on)) for w, b in problem.params]
    n = problem.x.shape[0]
    return params, [torch.zeros(n, w.shape[0], **on) for w, _ in params]


def step(params: Sequence, grads: Sequence, lr: float) -> list:
    """SGD by hand (Eq. 7), ``Tensor.sub(g, alpha=lr)``: the fused multiply-add
    ``torch.optim.SGD`` itself runs, hence the same rounding in float16."""
    return [(w.sub(gw, alpha=lr), b.sub(gb, alpha=lr)) for (w, b), (gw, gb) in zip(params, grads)]


# --- devices, precision and what torch cannot run -----------------------------------------

# Matches e.g.  "addmm_impl_cpu_" not implemented for 'Half'
_NOT_IMPLEMENTED = re.compile(r"\"?([\w:.]+)\"? not implemented for '(\w+)'")


@functools.cache
def devices() -> tuple[str, ...]:
    found = ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        found.append("mps")
    return tuple(found)


def check_device(device: str) -> None:
    if device not in devices():
        raise ValueError(f"unknown device {device!r}; known: {', '.join(devices())}")


def full_precision(device: str) -> str:
    """Switch off the reduced-precision matmul paths torch enables by default on CUDA;
    the mode now in force, for the report header."""
    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction = False
        torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = False
        return "highest (TF32 off, fp16/bf16 reduced-precision reductions off)"
    if device == "mps":
        return "highest available (MPS has no TF32 switch)"
    return "highest (CPU: full-precision matmul, no TF32)"


def setup(target: str, device: str, dtype: str) -> On:
    """Check the device and dtype, switch to full precision; the tensor placement."""
    check_dtype(dtype)
    check_device(device)
    if device == "mps" and dtype == "float64":
        # MPS reports this as a TypeError while casting, not as a missing op.
        raise api.Unsupported(f"{target}: dtype float64 is unsupported on device mps")
    full_precision(device)
    return {"device": torch.device(device), "dtype": DTYPES[dtype]}


@contextlib.contextmanager
def unsupported(target: str, dtype: str, device: str) -> Iterator[None]:
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
