"""The optional ``HigherOrder`` methods of the PyTorch targets (``adapters.torch_adapter``).

``torch`` (eager) runs them the way an eager PyTorch user would, on the nn.Linear stack
of ``_TorchTarget._model`` and its ``_forward``:

* ``eager_jvp`` -- forward mode: ``torch.autograd.forward_ad`` dual tensors set in place
  of each nn.Linear's weight and bias (``delattr``/``setattr``, as the forward-AD
  tutorial does for modules) and on x; ``unpack_dual`` reads every tangent.
* ``eager_hvp`` -- double backward: ``torch.autograd.grad(E, params, create_graph=True)``,
  then ``torch.autograd.grad`` of ``<grads, vector>``.
* ``eager_per_example_grads`` -- one ``Tensor.backward`` per example, on the one-row
  batch's loss times ``_row_weight`` so that the batch's reduction scale is kept.
* ``eager_train_online`` -- ``torch.optim.SGD`` with ``param_groups[0]["lr"]`` set
  before each one-row step.

``torch-func`` composes ``torch.func`` transforms of the pure loss
(``torch_adapter._pure_loss``; ``_pure_outputs`` below also returns every a_l):
``func_jvp`` = ``torch.func.jvp``, ``func_hvp`` = ``torch.func.jvp`` of
``torch.func.grad``, ``func_per_example_grads`` = ``torch.func.vmap`` of
``torch.func.grad`` over the rows, ``func_train_online`` = ``torch.func.grad`` and
``_TorchFuncTarget._step``.

For ``softmax_ce``, ``torch_adapter._data`` decides once for the whole batch whether t
is given as class labels (every row one-hot) or as probabilities; a one-row batch is
that data's row n, so it follows the batch's choice.

Public torch APIs exercised: torch.autograd.forward_ad.{dual_level, make_dual,
unpack_dual}, torch.autograd.grad (create_graph, allow_unused, materialize_grads),
Tensor.backward, torch.nn.ModuleList.zero_grad, torch.optim.SGD.param_groups,
torch.func.{jvp, grad, vmap}, torch.tensor.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.autograd.forward_ad as fwAD

# torch_adapter imports this module while it loads; its names are read at call time.
import adapters.torch_adapter as base
from adapters import interface as api
from adapters.interface import NetworkSpec, Params, Problem, Tangents

# "derivative for aten::hardsigmoid_backward is not implemented" (double backward) and
# "Trying to use forward AD with hardsigmoid_backward that does not support it" (jvp).
_NO_DERIVATIVE = re.compile(
    r"derivative for ([\w:.]+) is not implemented|forward AD with ([\w:.]+) that does not support it"
)
# Forward AD writing in place to an efficient zero tangent: F.mse_loss with reduction "mean"
# under torch.func.jvp of torch.func.grad (pytorch/pytorch#123996).
_ZERO_TENSOR = "ZeroTensors are immutable"

On = dict[str, Any]  # tensor placement keywords, as _TorchTarget._setup returns them
Schedule = Sequence[tuple[int, float]]  # (example index, learning rate) per online step


def run(target: Any, method: Callable, problem: Problem, device: str, dtype: str, *args: Any) -> Any:
    """Validate through ``target._setup``, then ``method(target, problem, on, *args)``;
    a dtype or a derivative torch lacks becomes ``Unsupported``."""
    on = target._setup(problem, device, dtype)
    limits = _torch_limits(target.name, method, problem, dtype, device)
    with base._unsupported(target.name, dtype, device), limits:
        return method(target, problem, on, *args)


@contextlib.contextmanager
def _torch_limits(target: str, method: Callable, problem: Problem, dtype: str, device: str) -> Iterator[None]:
    """Turn a derivative torch lacks, or its known in-place failure on a zero tangent,
    into Unsupported; nothing else."""
    what = f"{target}: {method.__name__.split('_', 1)[1]}"
    net = problem.network
    where = f"loss {net.loss!r}, reduction {net.reduction!r}, dtype {dtype}, device {device}"
    try:
        yield
    except (NotImplementedError, RuntimeError) as err:
        match = _NO_DERIVATIVE.search(str(err))
        if match is not None:
            op = match[1] or match[2]
            raise api.Unsupported(
                f"{what} needs a derivative of torch op {op!r} that torch does not implement ({where})"
            ) from err
        if _ZERO_TENSOR in str(err):
            raise api.Unsupported(
                f"{what} fails inside torch: forward-mode AD writes in place to a zero tangent "
                f"({_ZERO_TENSOR!r}; for F.mse_loss with reduction 'mean' this is "
                f"pytorch/pytorch#123996) ({where})"
            ) from err
        raise


def _tensor_pairs(pairs: Params, problem: Problem, what: str, on: On) -> list:
    """``[(W (n_in, n_out), b)]`` shaped like the parameters -> [(weight (out, in), bias)]."""
    if len(pairs) != len(problem.params):
        raise ValueError(
            f"{what} has {len(pairs)} layers but the network has {len(problem.params)}; "
            "give one (W, b) pair per layer"
        )
    for layer, ((w, b), (tw, tb)) in enumerate(zip(problem.params, pairs), 1):
        if np.shape(tw) != np.shape(w) or np.shape(tb) != np.shape(b):
            raise ValueError(
                f"{what} of layer {layer} has W of shape {np.shape(tw)} and b of shape "
                f"{np.shape(tb)}; the parameters have {np.shape(w)} and {np.shape(b)}"
            )
    # Contiguous (out, in), like the parameters of _model and _tensors.
    return [
        (torch.tensor(np.ascontiguousarray(np.transpose(tw)), **on), torch.tensor(np.asarray(tb), **on))
        for tw, tb in pairs
    ]


def _x_tangent(tangent_x: np.ndarray, problem: Problem, on: On) -> torch.Tensor:
    if np.shape(tangent_x) != problem.x.shape:
        raise ValueError(
            f"tangent_x has shape {np.shape(tangent_x)}; x has {problem.x.shape}, give the same"
        )
    return torch.tensor(np.asarray(tangent_x), **on)


def _row(data: tuple, n: int) -> tuple:
    """Example n of ``_data``'s (x, t, labels) as a one-row batch."""
    x, t, labels = data
    return x[n : n + 1], t[n : n + 1], None if labels is None else labels[n : n + 1]


def _row_weight(net: NetworkSpec, batch: int) -> float:
    """The factor taking a one-row batch's E to example n's term of the batch's E:
    "mean" divides by N (or N K) where one row divides by 1 (or K); "sum" by neither."""
    return 1.0 / batch if net.reduction == "mean" else 1.0


def _check_schedule(schedule: Schedule, batch: int) -> None:
    for i, entry in enumerate(schedule):
        if not (isinstance(entry, (tuple, list)) and len(entry) == 2):
            raise ValueError(f"schedule[{i}] is {entry!r}; give a pair (example index, learning rate)")
        n, lr = entry
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 <= n < batch:
            raise ValueError(f"schedule[{i}] has example index {n!r}; give an integer 0 <= n < {batch}")
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr < 0:
            raise ValueError(f"schedule[{i}] has learning rate {lr!r}; give a finite number >= 0")


def _stacked(rows: list[Params]) -> Params:
    """Per-example ``[(dW, db)]`` lists -> ``[(dW (batch, n_in, n_out), db (batch, n_out))]``."""
    return [
        (np.stack([r[layer][0] for r in rows]), np.stack([r[layer][1] for r in rows]))
        for layer in range(len(rows[0]))
    ]


def _tangent(dual: torch.Tensor) -> np.ndarray:
    tangent = fwAD.unpack_dual(dual).tangent
    if tangent is None:  # every output depends on the dual weights: a bug to surface
        raise RuntimeError("torch.autograd.forward_ad left a tangent unset")
    return base._to_numpy(tangent)


# --- "torch": eager autograd on the nn.Linear stack ----------------------------------------

def eager_jvp(target: Any, problem: Problem, on: On, tangent: Params, tangent_x: np.ndarray) -> Tangents:
    """dE and every da_l along (tangent, tangent_x), by forward-mode AD: dual weights,
    biases and x (``torch.autograd.forward_ad``) through nn.Linear, ``_activate``, ``_loss``."""
    tangents, tx = _tensor_pairs(tangent, problem, "tangent", on), _x_tangent(tangent_x, problem, on)
    layers = target._model(problem.params, on)
    x, t, labels = base._data(problem, on)
    with fwAD.dual_level():
        for layer, (tw, tb) in zip(layers, tangents):
            for name, tan in (("weight", tw), ("bias", tb)):
                primal = getattr(layer, name)
                delattr(layer, name)
                setattr(layer, name, fwAD.make_dual(primal, tan))
        a, outputs = fwAD.make_dual(x, tx), []
        for layer, act in zip(layers, problem.network.activations):
            a = target._activate(layer(a), act)
            outputs.append(a)
        loss = base._loss(problem.network, a, t, labels)
        return Tangents(loss=float(_tangent(loss)), outputs=[_tangent(a) for a in outputs])


def eager_hvp(target: Any, problem: Problem, on: On, vector: Params) -> Params:
    """H v by double backward: g = ``torch.autograd.grad(E, params, create_graph=True)``,
    then ``torch.autograd.grad(<g, v>, params)``."""
    v = [tensor for pair in _tensor_pairs(vector, problem, "vector", on) for tensor in pair]
    layers = target._model(problem.params, on)
    params = [p for layer in layers for p in (layer.weight, layer.bias)]
    loss = target._forward(layers, problem.network, base._data(problem, on), False)[1]
    grads = torch.autograd.grad(loss, params, create_graph=True)
    dot = sum((g * vi).sum() for g, vi in zip(grads, v))
    # A parameter the gradient does not depend on (every unit dead) has H v = 0.
    hv = torch.autograd.grad(dot, params, allow_unused=True, materialize_grads=True)
    return base._numpy_params(zip(hv[0::2], hv[1::2]))


def eager_per_example_grads(target: Any, problem: Problem, on: On) -> Params:
    """Example n's gradient, for each n: ``Tensor.backward`` of the one-row batch's
    loss times ``_row_weight``, read from each nn.Linear's ``.grad``."""
    layers = target._model(problem.params, on)
    stack = torch.nn.ModuleList(layers)
    data, batch = base._data(problem, on), problem.x.shape[0]
    rows = []
    for n in range(batch):
        stack.zero_grad()
        loss = target._forward(layers, problem.network, _row(data, n), False)[1]
        (loss * _row_weight(problem.network, batch)).backward()
        rows.append(base._numpy_params((lin.weight.grad, lin.bias.grad) for lin in layers))
    return _stacked(rows)


def eager_train_online(target: Any, problem: Problem, on: On, schedule: Schedule) -> list[Params]:
    """The post's online loop: for each (n, lr), ``torch.optim.SGD`` with
    ``param_groups[0]["lr"] = lr`` steps on example n's one-row batch."""
    _check_schedule(schedule, problem.x.shape[0])
    layers = target._model(problem.params, on)
    optimizer = torch.optim.SGD(torch.nn.ModuleList(layers).parameters(), lr=0.0)
    data = base._data(problem, on)
    history = []
    for n, lr in schedule:
        optimizer.param_groups[0]["lr"] = float(lr)
        optimizer.zero_grad()
        target._forward(layers, problem.network, _row(data, int(n)), False)[1].backward()
        optimizer.step()
        history.append(base._numpy_params((lin.weight, lin.bias) for lin in layers))
    return history


# --- "torch-func": transforms of the pure loss ---------------------------------------------

def _pure_outputs(
    params: Sequence[tuple[torch.Tensor, torch.Tensor]], x: torch.Tensor, net: NetworkSpec,
    t: torch.Tensor, labels: torch.Tensor | None,
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """(E, (a_1, ..., a_L)): ``_pure_loss``'s forward, every layer's output returned too."""
    a, outputs = x, []
    for (weight, bias), act in zip(params, net.activations):
        a = base._ACT[act.name](torch.nn.functional.linear(a, weight, bias), act)
        outputs.append(a)
    return base._loss(net, a, t, labels), tuple(outputs)


def func_jvp(target: Any, problem: Problem, on: On, tangent: Params, tangent_x: np.ndarray) -> Tangents:
    """dE and every da_l along (tangent, tangent_x): ``torch.func.jvp`` of ``_pure_outputs``
    in (params, x)."""
    tangents, tx = _tensor_pairs(tangent, problem, "tangent", on), _x_tangent(tangent_x, problem, on)
    params = target._tensors(problem, on)[0]
    x, t, labels = base._data(problem, on)

    def loss_and_outputs(params: list, x: torch.Tensor) -> tuple:
        return _pure_outputs(params, x, problem.network, t, labels)

    d_loss, d_outputs = torch.func.jvp(loss_and_outputs, (params, x), (tangents, tx))[1]
    return Tangents(loss=float(d_loss.item()), outputs=[base._to_numpy(d) for d in d_outputs])


def func_hvp(target: Any, problem: Problem, on: On, vector: Params) -> Params:
    """H v as forward over reverse: ``torch.func.jvp`` of ``torch.func.grad(_pure_loss)``
    along ``vector``."""
    v = _tensor_pairs(vector, problem, "vector", on)
    params, zeros = target._tensors(problem, on)
    data = base._data(problem, on)
    grad_fn = torch.func.grad(base._pure_loss)
    hv = torch.func.jvp(lambda p: grad_fn(p, zeros, problem.network, data), (params,), (v,))[1]
    return base._numpy_params(hv)


def func_per_example_grads(target: Any, problem: Problem, on: On) -> Params:
    """Every example's gradient at once: ``torch.func.vmap`` over the rows of
    ``torch.func.grad`` of the one-row ``_pure_loss`` times ``_row_weight``."""
    params, _ = target._tensors(problem, on)
    x, t, labels = base._data(problem, on)
    net, batch = problem.network, problem.x.shape[0]
    zeros = [torch.zeros(1, weight.shape[0], **on) for weight, _bias in params]

    def term(params: list, x_n: torch.Tensor, t_n: torch.Tensor, label_n: torch.Tensor | None) -> torch.Tensor:
        label = None if label_n is None else label_n.unsqueeze(0)
        one_row = (x_n.unsqueeze(0), t_n.unsqueeze(0), label)
        return base._pure_loss(params, zeros, net, one_row) * _row_weight(net, batch)

    in_dims = (None, 0, 0, None if labels is None else 0)
    grads = torch.func.vmap(torch.func.grad(term), in_dims=in_dims)(params, x, t, labels)
    return [(base._to_numpy(gw).transpose(0, 2, 1), base._to_numpy(gb)) for gw, gb in grads]


def func_train_online(target: Any, problem: Problem, on: On, schedule: Schedule) -> list[Params]:
    """The post's online loop: for each (n, lr), ``torch.func.grad`` of ``_pure_loss`` on
    example n's one-row batch and ``_TorchFuncTarget._step`` with lr."""
    _check_schedule(schedule, problem.x.shape[0])
    params, _ = target._tensors(problem, on)
    zeros = [torch.zeros(1, weight.shape[0], **on) for weight, _bias in params]
    data = base._data(problem, on)
    grad_fn = torch.func.grad(base._pure_loss)
    history = []
    for n, lr in schedule:
        grads = grad_fn(params, zeros, problem.network, _row(data, int(n)))
        params = target._step(params, grads, float(lr))
        history.append(base._numpy_params(params))
    return history
