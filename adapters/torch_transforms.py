"""The optional ``HigherOrder`` methods of the PyTorch targets (``adapters.torch_adapter``).

``torch`` (eager) runs them the way an eager PyTorch user would, on the nn.Linear stack
of ``torch_common.model`` through ``torch_common.forward`` with the target's activation
hook:

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
(``torch_common.pure_loss``; ``_pure_outputs`` below also returns every a_l):
``func_jvp`` = ``torch.func.jvp``, ``func_hvp`` = ``torch.func.jvp`` of
``torch.func.grad``, ``func_per_example_grads`` = ``torch.func.vmap`` of
``torch.func.grad`` over the rows, ``func_train_online`` = ``torch.func.grad`` and
``torch_common.step``.

For ``softmax_ce``, ``torch_common.data`` decides once for the whole batch whether t
is given as class labels (every row one-hot) or as probabilities; a one-row batch is
that data's row n, so it follows the batch's choice.

Public torch APIs exercised: torch.autograd.forward_ad.{dual_level, make_dual,
unpack_dual}, torch.autograd.grad (create_graph, allow_unused, materialize_grads),
Tensor.backward, torch.nn.ModuleList.zero_grad, torch.optim.SGD.param_groups,
torch.func.{jvp, grad, vmap}, torch.tensor.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.autograd.forward_ad as fwAD

from adapters import interface as api
from adapters import torch_common as tc
from adapters.common import Schedule, check_like_params, check_like_x, check_schedule
from adapters.interface import NetworkSpec, Params, Problem, Tangents

# "derivative for aten::hardsigmoid_backward is not implemented" (double backward) and
# "Trying to use forward AD with hardsigmoid_backward that does not support it" (jvp).
_NO_DERIVATIVE = re.compile(
    r"derivative for ([\w:.]+) is not implemented|forward AD with ([\w:.]+) that does not support it"
)
# Forward AD writing in place to an efficient zero tangent: F.mse_loss with reduction "mean"
# under torch.func.jvp of torch.func.grad (pytorch/pytorch#123996).
_ZERO_TENSOR = "ZeroTensors are immutable"

On = tc.On


def run(target: str, method: Callable, problem: Problem, device: str, dtype: str, *args: Any) -> Any:
    """Check the device and dtype, then ``method(problem, on, *args)``; a dtype or a
    derivative torch lacks becomes ``Unsupported``."""
    on = tc.setup(target, device, dtype)
    limits = _torch_limits(target, method, problem, dtype, device)
    with tc.unsupported(target, dtype, device), limits:
        return method(problem, on, *args)


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
    check_like_params(what, pairs, problem.params)
    # Contiguous (out, in), like the parameters of torch_common.model and tensors.
    return [
        (torch.tensor(np.ascontiguousarray(np.transpose(tw)), **on), torch.tensor(np.asarray(tb), **on))
        for tw, tb in pairs
    ]


def _x_tangent(tangent_x: np.ndarray, problem: Problem, on: On) -> torch.Tensor:
    check_like_x(tangent_x, problem)
    return torch.tensor(np.asarray(tangent_x), **on)


def _row(data: tc.Data, n: int) -> tc.Data:
    """Example n of ``torch_common.data``'s (x, t, labels) as a one-row batch."""
    x, t, labels = data
    return x[n : n + 1], t[n : n + 1], None if labels is None else labels[n : n + 1]


def _row_weight(net: NetworkSpec, batch: int) -> float:
    """The factor taking a one-row batch's E to example n's term of the batch's E:
    "mean" divides by N (or N K) where one row divides by 1 (or K); "sum" by neither."""
    return 1.0 / batch if net.reduction == "mean" else 1.0


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
    return tc.to_numpy(tangent)


def _loss_of(layers: list[torch.nn.Linear], net: NetworkSpec, data: tc.Data, activate: tc.Activate) -> torch.Tensor:
    """E of the nn.Linear stack on ``data``, through the target's activation hook."""
    x, t, labels = data
    return tc.loss(net, tc.forward(layers, net.activations, x, activate=activate)[1][-1], t, labels)


# --- "torch": eager autograd on the nn.Linear stack ----------------------------------------

def eager_jvp(problem: Problem, on: On, activate: tc.Activate, tangent: Params, tangent_x: np.ndarray) -> Tangents:
    """dE and every da_l along (tangent, tangent_x), by forward-mode AD: dual weights,
    biases and x (``torch.autograd.forward_ad``) through nn.Linear, the activations, the loss."""
    tangents, tx = _tensor_pairs(tangent, problem, "tangent", on), _x_tangent(tangent_x, problem, on)
    layers = tc.model(problem.params, on)
    x, t, labels = tc.data(problem, on)
    with fwAD.dual_level():
        for layer, (tw, tb) in zip(layers, tangents):
            for name, tan in (("weight", tw), ("bias", tb)):
                primal = getattr(layer, name)
                delattr(layer, name)
                setattr(layer, name, fwAD.make_dual(primal, tan))
        outputs = tc.forward(layers, problem.network.activations, fwAD.make_dual(x, tx), activate=activate)[1]
        loss = tc.loss(problem.network, outputs[-1], t, labels)
        return Tangents(loss=float(_tangent(loss)), outputs=[_tangent(a) for a in outputs])


def eager_hvp(problem: Problem, on: On, activate: tc.Activate, vector: Params) -> Params:
    """H v by double backward: g = ``torch.autograd.grad(E, params, create_graph=True)``,
    then ``torch.autograd.grad(<g, v>, params)``."""
    v = [tensor for pair in _tensor_pairs(vector, problem, "vector", on) for tensor in pair]
    layers = tc.model(problem.params, on)
    params = [p for layer in layers for p in (layer.weight, layer.bias)]
    loss = _loss_of(layers, problem.network, tc.data(problem, on), activate)
    grads = torch.autograd.grad(loss, params, create_graph=True)
    dot = sum((g * vi).sum() for g, vi in zip(grads, v))
    # A parameter the gradient does not depend on (every unit dead) has H v = 0.
    hv = torch.autograd.grad(dot, params, allow_unused=True, materialize_grads=True)
    return tc.numpy_params(zip(hv[0::2], hv[1::2]))


def eager_per_example_grads(problem: Problem, on: On, activate: tc.Activate) -> Params:
    """Example n's gradient, for each n: ``Tensor.backward`` of the one-row batch's
    loss times ``_row_weight``, read from each nn.Linear's ``.grad``."""
    layers = tc.model(problem.params, on)
    stack = torch.nn.ModuleList(layers)
    data, batch = tc.data(problem, on), problem.x.shape[0]
    rows = []
    for n in range(batch):
        stack.zero_grad()
        loss = _loss_of(layers, problem.network, _row(data, n), activate)
        (loss * _row_weight(problem.network, batch)).backward()
        rows.append(tc.numpy_params((lin.weight.grad, lin.bias.grad) for lin in layers))
    return _stacked(rows)


def eager_train_online(problem: Problem, on: On, activate: tc.Activate, schedule: Schedule) -> list[Params]:
    """The post's online loop: for each (n, lr), ``torch.optim.SGD`` with
    ``param_groups[0]["lr"] = lr`` steps on example n's one-row batch."""
    check_schedule(schedule, problem.x.shape[0])
    layers = tc.model(problem.params, on)
    optimizer = torch.optim.SGD(torch.nn.ModuleList(layers).parameters(), lr=0.0)
    data = tc.data(problem, on)
    history = []
    for n, lr in schedule:
        optimizer.param_groups[0]["lr"] = float(lr)
        optimizer.zero_grad()
        _loss_of(layers, problem.network, _row(data, int(n)), activate).backward()
        optimizer.step()
        history.append(tc.numpy_params((lin.weight, lin.bias) for lin in layers))
    return history


# --- "torch-func": transforms of the pure loss ---------------------------------------------

def _pure_outputs(
    params: Sequence[tuple[torch.Tensor, torch.Tensor]], x: torch.Tensor, net: NetworkSpec,
    t: torch.Tensor, labels: torch.Tensor | None,
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """(E, (a_1, ..., a_L)): ``pure_loss``'s forward, every layer's output returned too."""
    outputs = tc.forward([tc.linear(w, b) for w, b in params], net.activations, x)[1]
    return tc.loss(net, outputs[-1], t, labels), tuple(outputs)


def func_jvp(problem: Problem, on: On, tangent: Params, tangent_x: np.ndarray) -> Tangents:
    """dE and every da_l along (tangent, tangent_x): ``torch.func.jvp`` of ``_pure_outputs``
    in (params, x)."""
    tangents, tx = _tensor_pairs(tangent, problem, "tangent", on), _x_tangent(tangent_x, problem, on)
    params = tc.tensors(problem, on)[0]
    x, t, labels = tc.data(problem, on)

    def loss_and_outputs(params: list, x: torch.Tensor) -> tuple:
        return _pure_outputs(params, x, problem.network, t, labels)

    d_loss, d_outputs = torch.func.jvp(loss_and_outputs, (params, x), (tangents, tx))[1]
    return Tangents(loss=float(d_loss.item()), outputs=[tc.to_numpy(d) for d in d_outputs])


def func_hvp(problem: Problem, on: On, vector: Params) -> Params:
    """H v as forward over reverse: ``torch.func.jvp`` of ``torch.func.grad(pure_loss)``
    along ``vector``."""
    v = _tensor_pairs(vector, problem, "vector", on)
    params, zeros = tc.tensors(problem, on)
    data = tc.data(problem, on)
    grad_fn = torch.func.grad(tc.pure_loss)
    hv = torch.func.jvp(lambda p: grad_fn(p, zeros, problem.network, data), (params,), (v,))[1]
    return tc.numpy_params(hv)


def func_per_example_grads(problem: Problem, on: On) -> Params:
    """Every example's gradient at once: ``torch.func.vmap`` over the rows of
    ``torch.func.grad`` of the one-row ``pure_loss`` times ``_row_weight``."""
    params, _ = tc.tensors(problem, on)
    x, t, labels = tc.data(problem, on)
    net, batch = problem.network, problem.x.shape[0]
    zeros = [torch.zeros(1, weight.shape[0], **on) for weight, _bias in params]

    def term(params: list, x_n: torch.Tensor, t_n: torch.Tensor, label_n: torch.Tensor | None) -> torch.Tensor:
        label = None if label_n is None else label_n.unsqueeze(0)
        one_row = (x_n.unsqueeze(0), t_n.unsqueeze(0), label)
        return tc.pure_loss(params, zeros, net, one_row) * _row_weight(net, batch)

    in_dims = (None, 0, 0, None if labels is None else 0)
    grads = torch.func.vmap(torch.func.grad(term), in_dims=in_dims)(params, x, t, labels)
    return [(tc.to_numpy(gw).transpose(0, 2, 1), tc.to_numpy(gb)) for gw, gb in grads]


def func_train_online(problem: Problem, on: On, schedule: Schedule) -> list[Params]:
    """The post's online loop: for each (n, lr), ``torch.func.grad`` of ``pure_loss`` on
    example n's one-row batch and ``torch_common.step`` with lr."""
    check_schedule(schedule, problem.x.shape[0])
    params, _ = tc.tensors(problem, on)
    zeros = [torch.zeros(1, weight.shape[0], **on) for weight, _bias in params]
    data = tc.data(problem, on)
    grad_fn = torch.func.grad(tc.pure_loss)
    history = []
    for n, lr in schedule:
        grads = grad_fn(params, zeros, problem.network, _row(data, int(n)))
        params = tc.step(params, grads, float(lr))
        history.append(tc.numpy_params(params))
    return history
