"""Deliberately broken PyTorch adapters, each one a realistic backpropagation bug.

``EagerTarget`` is a small, correct eager-autograd adapter with a hook for every place
a bug can hide: ``_Linear`` (a ``torch.autograd.Function``) runs each layer with its
backward written as the derivation's matrix form (``matmul``, ``weight_gradient``,
``bias_gradient``); ``_Pointwise`` gives tanh, sigmoid and silu a derivative computed
from z (``derivative``), accurate in the tails where torch's forms from the rounded
output are not; ``activation``, ``loss`` and ``step`` (``torch.optim.SGD``) complete it.
Each class in ``BROKEN`` overrides one hook; ``CORRECT`` is the base itself, the control.

The suite runs these with no known discrepancies, so that no listed finding can explain
a planted bug away; activations whose torch implementation is a listed finding are
therefore ``Unsupported`` here.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import torch
import torch.nn.functional as F

from adapters.interface import Activation, NetworkSpec, Params, Problem, Result, Unsupported

_ELEMENTWISE_LOSSES = ("mse", "bce", "bce_logits")  # "mean" averages over every element
# Activations whose torch backward is inaccurate somewhere, and where.
_UNSUPPORTED = {
    "gelu": "F.gelu's backward cancels for z << 0",
    "gelu_tanh": "F.gelu(approximate='tanh')'s backward cancels for z << 0",
    "softsign": "autodiff of F.softsign's z / (1 + |z|) cancels for large |z|",
    "mish": "F.mish's backward flushes a subnormal sigmoid(z) to 0",
}


class _Linear(torch.autograd.Function):
    """z = a W + b, with the backward written out; ``rules`` supplies the hooks."""

    @staticmethod
    def forward(ctx, a, W, b, rules: EagerTarget, layer: int):
        ctx.save_for_backward(a, W)
        ctx.rules, ctx.layer = rules, layer
        return rules.matmul(a, W) + b

    @staticmethod
    def backward(ctx, delta):
        a, W = ctx.saved_tensors
        rules, layer = ctx.rules, ctx.layer
        delta_in = rules.matmul(delta, W.T)  # Eq. 14, before the activation derivative
        return delta_in, rules.weight_gradient(a, delta, layer), rules.bias_gradient(delta, layer), None, None


class _Pointwise(torch.autograd.Function):
    """a = g(z), with g'(z) from ``rules.derivative``: a function of z, not of a."""

    @staticmethod
    def forward(ctx, z, name: str, rules: EagerTarget):
        ctx.save_for_backward(z)
        ctx.name, ctx.rules = name, rules
        return _FROM_Z[name][0](z)

    @staticmethod
    def backward(ctx, grad):
        (z,) = ctx.saved_tensors
        return grad * ctx.rules.derivative(ctx.name, z), None, None


def _sigmoid(z: torch.Tensor) -> torch.Tensor:
    e = torch.exp(-z.abs())  # subnormal where it should be: torch.sigmoid flushes those to 0
    return torch.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _sigmoid_prime(z: torch.Tensor) -> torch.Tensor:
    e = torch.exp(-z.abs())  # e / (1 + e)^2: no 1 - y, no cancellation
    return e / (1.0 + e) ** 2


# Activations whose torch backward loses accuracy in a tail: (g, g') as functions of z.
_FROM_Z = {
    "tanh": (torch.tanh, lambda z: 4.0 * _sigmoid_prime(2.0 * z)),
    "sigmoid": (_sigmoid, _sigmoid_prime),
    "silu": (lambda z: z * _sigmoid(z), lambda z: _sigmoid(z) * (1.0 + z * _sigmoid(-z))),
}


def _softplus(v: torch.Tensor) -> torch.Tensor:
    return torch.logaddexp(v, torch.zeros_like(v))  # its backward: 1 / (1 + exp(-v))


def _activate(z: torch.Tensor, act: Activation) -> torch.Tensor:
    p = act.param
    table = {
        "identity": lambda: z, "relu": lambda: F.relu(z), "leaky_relu": lambda: F.leaky_relu(z, p("slope")),
        "elu": lambda: F.elu(z, p("alpha")), "selu": lambda: F.selu(z), "celu": lambda: F.celu(z, p("alpha")),
        "softplus": lambda: F.softplus(z, p("beta"), p("threshold")), "relu6": lambda: F.relu6(z),
        "hardtanh": lambda: F.hardtanh(z, p("min_val"), p("max_val")), "hardswish": lambda: F.hardswish(z),
        "log_sigmoid": lambda: F.logsigmoid(z),
        # relu6(z + 3) / 6: F.hardsigmoid's float64 backward uses a float32 1/6.
        "hardsigmoid": lambda: F.relu6(z + 3.0) / 6.0, "softmax": lambda: F.softmax(z, dim=1),
    }
    return table[act.name]()


def _numpy(tensor: torch.Tensor):
    return tensor.detach().to(dtype=torch.float64, copy=True).numpy()


class EagerTarget:
    """Correct eager autograd: hand-written linear and tanh/sigmoid/silu backward, SGD step."""

    framework = "torch"
    name = "eager-correct"
    bug_dtype = "float64"  # the dtype the suite runs a subclass's bug in

    def version(self) -> str:
        return torch.__version__

    def devices(self) -> list[str]:
        return ["cpu"]

    def precision_mode(self, device: str) -> str:
        return "highest (CPU: full-precision matmul, no TF32)"

    # -- hooks: each broken adapter overrides one ------------------------------------
    def matmul(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x @ y

    def weight_gradient(self, a: torch.Tensor, delta: torch.Tensor, layer: int) -> torch.Tensor:
        return self.matmul(a.T, delta)  # Eqs. 6, 15

    def bias_gradient(self, delta: torch.Tensor, layer: int) -> torch.Tensor:
        return delta.sum(dim=0)  # Eqs. 8, 18

    def derivative(self, name: str, z: torch.Tensor) -> torch.Tensor:
        return _FROM_Z[name][1](z)

    def activation(self, z: torch.Tensor, act: Activation, layer: int) -> torch.Tensor:
        if act.name in _FROM_Z:
            return _Pointwise.apply(z, act.name, self)
        return _activate(z, act)

    def loss(self, net: NetworkSpec, z: torch.Tensor, a: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The reduced loss; bce and ce from the logits z, which is accurate where a saturates."""
        if net.loss == "sse":
            total = 0.5 * ((a - t) ** 2).sum()  # Eq. 1
        elif net.loss == "mse":
            total = ((a - t) ** 2).sum()
        elif net.loss in ("bce", "bce_logits"):
            # -log sigma(z) = softplus(-z); F.binary_cross_entropy_with_logits loses a small
            # loss's accuracy (relative error 4e-9 at z = -16, t = 0 in float64).
            total = (t * _softplus(-z) + (1.0 - t) * _softplus(z)).sum()
        else:
            total = -(t * F.log_softmax(z, dim=1)).sum()
        if net.reduction == "sum":
            return total
        return total / (a.numel() if net.loss in _ELEMENTWISE_LOSSES else a.shape[0])

    def step(self, params: list[tuple[torch.Tensor, torch.Tensor]], lr: float) -> None:
        torch.optim.SGD([p for pair in params for p in pair], lr=lr).step()  # Eq. 7

    # -- the adapter interface --------------------------------------------------------
    def compute(self, problem: Problem, *, device: str, dtype: str, lr: float) -> Result:
        net = problem.network
        self._check(net, device)
        on = {"dtype": getattr(torch, dtype), "device": device}
        params = [
            (torch.tensor(W, **on, requires_grad=True), torch.tensor(b, **on, requires_grad=True))
            for W, b in problem.params
        ]
        a, t = torch.tensor(problem.x, **on), torch.tensor(problem.t, **on)
        zs = []
        for layer, ((W, b), act) in enumerate(zip(params, net.activations, strict=True), start=1):
            zs.append(_Linear.apply(a, W, b, self, layer))
            zs[-1].retain_grad()
            a = self.activation(zs[-1], act, layer)
        E = self.loss(net, zs[-1], a, t)
        E.backward()
        grads = [(_numpy(W.grad), _numpy(b.grad)) for W, b in params]
        with torch.no_grad():
            self.step(params, float(lr))
        stepped = [(_numpy(W), _numpy(b)) for W, b in params]
        return Result(float(E.item()), [_numpy(z.grad) for z in zs], grads, stepped)

    def train(self, problem: Problem, *, device: str, dtype: str, lr: float, steps: int) -> list[Params]:
        history = []
        for _ in range(steps):
            result = self.compute(problem, device=device, dtype=dtype, lr=lr)
            problem = dataclasses.replace(problem, params=result.stepped)
            history.append(problem.params)
        return history

    def _check(self, net: NetworkSpec, device: str) -> None:
        if device != "cpu":
            raise ValueError(f"device {device!r}; {self.name} runs on 'cpu' only")
        for act in net.activations:
            why = _UNSUPPORTED.get(act.name)
            if act.name == "softplus" and math.isinf(act.param("threshold")):
                why = "F.softplus with threshold=inf overflows for large beta z"
            if why:
                raise Unsupported(f"{self.name}: activation {act.name!r} is unsupported: {why}")


class TanhDerivativeOffAboveTwo(EagerTarget):
    """tanh' 0.1% too large for z > 2: a piecewise fit of the derivative with one bad segment."""
    name = "tanh-derivative-off-above-2"

    def derivative(self, name: str, z: torch.Tensor) -> torch.Tensor:
        exact = super().derivative(name, z)
        return torch.where(z > 2.0, exact * (1.0 + 1e-3), exact) if name == "tanh" else exact


class SigmoidDerivativeFlushedInTails(EagerTarget):
    """sigmoid' set to 0 for |z| > 15: a 'fast' kernel that treats the tails as saturated."""
    name = "sigmoid-derivative-flushed-in-tails"

    def derivative(self, name: str, z: torch.Tensor) -> torch.Tensor:
        exact = super().derivative(name, z)
        return torch.where(z.abs() > 15.0, torch.zeros_like(exact), exact) if name == "sigmoid" else exact


class BiasGradientNotAccumulated(EagerTarget):
    """db from the last example only: ``db = delta[i]`` in a per-example loop instead of ``+=``."""
    name = "bias-gradient-not-accumulated"

    def bias_gradient(self, delta: torch.Tensor, layer: int) -> torch.Tensor:
        return delta[-1].clone()


class WeightGradientTransposedWhenSquare(EagerTarget):
    """dW formed as delta^T a (out, in) and transposed only when its shape differs from W's."""
    name = "weight-gradient-transposed-when-square"

    def weight_gradient(self, a: torch.Tensor, delta: torch.Tensor, layer: int) -> torch.Tensor:
        dW = self.matmul(delta.T, a)
        return dW if dW.shape == (a.shape[1], delta.shape[1]) else dW.T


class SumLossAveraged(EagerTarget):
    """reduction "sum" computed as a mean: the framework default reduction="mean" left in place."""
    name = "sum-loss-averaged"

    def loss(self, net, z, a, t):
        return super().loss(dataclasses.replace(net, reduction="mean"), z, a, t)


class SseWithoutHalf(EagerTarget):
    """sse as F.mse_loss(reduction="sum"): the post's 1/2 of Eq. 1 forgotten, gradients doubled."""
    name = "sse-without-half"

    def loss(self, net, z, a, t):
        if net.loss != "sse":
            return super().loss(net, z, a, t)
        total = F.mse_loss(a, t, reduction="sum")
        return total if net.reduction == "sum" else total / a.shape[0]


class FirstActivationInFloat32(EagerTarget):
    """layer 1's activation evaluated in float32: a stray ``.float()`` in a float64 model."""
    name = "first-activation-in-float32"

    def activation(self, z, act, layer):
        if layer != 1:
            return super().activation(z, act, layer)
        return super().activation(z.float(), act, layer).to(z.dtype)


class DeepLayerGradientsDoubled(EagerTarget):
    """dW and db of layers 4+ doubled: a second pipeline stage whose gradients are all-reduced twice."""
    name = "deep-layer-gradients-doubled"

    def weight_gradient(self, a, delta, layer):
        dW = super().weight_gradient(a, delta, layer)
        return 2.0 * dW if layer >= 4 else dW

    def bias_gradient(self, delta, layer):
        db = super().bias_gradient(delta, layer)
        return 2.0 * db if layer >= 4 else db


class SingleExampleWeightGradientReshaped(EagerTarget):
    """batch-1 fast path: dW = outer(delta, a).reshape(W.shape), a reshape where a transpose was meant."""
    name = "single-example-weight-gradient-reshaped"

    def weight_gradient(self, a, delta, layer):
        if delta.shape[0] != 1:
            return super().weight_gradient(a, delta, layer)
        return torch.outer(delta[0], a[0]).reshape(a.shape[1], delta.shape[1])


class SchedulerSteppedFirst(EagerTarget):
    """step taken at 0.9 lr: lr_scheduler.step() called before optimizer.step()."""
    name = "scheduler-stepped-first"

    def step(self, params, lr):
        optimizer = torch.optim.SGD([p for pair in params for p in pair], lr=lr)
        scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.9)
        with warnings.catch_warnings():  # torch warns about this order; such code ignores it
            warnings.simplefilter("ignore", UserWarning)
            scheduler.step()
        optimizer.step()


class Bfloat16Accumulation(EagerTarget):
    """every matmul sums its products in a bfloat16 accumulator: a reduced-precision reduction."""
    name = "bfloat16-accumulation"
    bug_dtype = "float32"

    def matmul(self, x, y):
        acc = torch.zeros(x.shape[0], y.shape[1], dtype=torch.bfloat16, device=x.device)
        for k in range(x.shape[1]):
            acc = (acc.to(x.dtype) + x[:, k : k + 1] * y[k : k + 1, :]).to(torch.bfloat16)
        return acc.to(x.dtype)


CORRECT = EagerTarget()
BROKEN = [
    TanhDerivativeOffAboveTwo(), SigmoidDerivativeFlushedInTails(), BiasGradientNotAccumulated(),
    WeightGradientTransposedWhenSquare(), SumLossAveraged(), SseWithoutHalf(), FirstActivationInFloat32(),
    DeepLayerGradientsDoubled(), SingleExampleWeightGradientReshaped(), SchedulerSteppedFirst(),
    Bfloat16Accumulation(),
]
