"""Deliberately broken forward-mode, Hessian-vector and per-example methods.

Each wraps a real target and gets one of its optional methods wrong the way such code
goes wrong in practice -- a term of the product rule dropped, a reduction scale
forgotten, a finite-difference shortcut taken for the exact product -- while every
other call goes to the real target.  The framework does the computing; only the
mistake is ours.  ``BROKEN[method]`` lists the classes for each method.
"""

from __future__ import annotations

import numpy as np

from adapters.interface import Problem, Tangents
from reference import losses as ref_losses


class _Broken:
    """A real target with ``bug`` in one optional method."""

    bug = ""

    def __init__(self, base) -> None:
        self.base = base
        self.framework = base.framework
        self.name = f"{base.name} ({self.bug})"

    def __getattr__(self, attr):
        return getattr(self.base, attr)


def _scale(problem: Problem, n: int) -> float:
    """The reduction scale of an n-row batch (``reference.losses.reduction_scale`` reads
    only the loss, the reduction and the sizes, which the spec shares)."""
    return ref_losses.reduction_scale(problem.network, n)


class JvpDroppingBiasTangent(_Broken):
    bug = "forward mode drops the bias tangent db of Eq. 3"

    def jvp(self, problem, tangent, tangent_x, *, device, dtype):
        return self.base.jvp(problem, [(dW, 0.0 * db) for dW, db in tangent], tangent_x, device=device, dtype=dtype)


class JvpDroppingInputTangent(_Broken):
    bug = "forward mode ignores the input tangent dx"

    def jvp(self, problem, tangent, tangent_x, *, device, dtype):
        return self.base.jvp(problem, tangent, 0.0 * tangent_x, device=device, dtype=dtype)


class JvpOfTheUnreducedLoss(_Broken):
    bug = "loss tangent of the summed loss, the mean's scale forgotten"

    def jvp(self, problem, tangent, tangent_x, *, device, dtype):
        got = self.base.jvp(problem, tangent, tangent_x, device=device, dtype=dtype)
        return Tangents(got.loss / _scale(problem, len(problem.x)), got.outputs)


class HvpByCentralDifferences(_Broken):
    bug = "Hv as (grad(p + h v) - grad(p - h v)) / 2h, h = 1e-4"

    def hvp(self, problem, vector, *, device, dtype):
        h = 1e-4
        grads = []
        for sign in (1.0, -1.0):
            params = [(W + sign * h * V, b + sign * h * v) for (W, b), (V, v) in zip(problem.params, vector)]
            moved = Problem(problem.network, params, problem.x, problem.t)
            grads.append(self.base.compute(moved, device=device, dtype=dtype, lr=0.0).grads)
        return [((gW1 - gW2) / (2 * h), (gb1 - gb2) / (2 * h)) for (gW1, gb1), (gW2, gb2) in zip(*grads)]


class HvpDroppingBiasDirection(_Broken):
    bug = "Hv along the weights' part of v only"

    def hvp(self, problem, vector, *, device, dtype):
        return self.base.hvp(problem, [(V, 0.0 * v) for V, v in vector], device=device, dtype=dtype)


class PerExampleSummedOverUnits(_Broken):
    bug = "per-example dW summed over the output units"

    def per_example_grads(self, problem, *, device, dtype):
        got = self.base.per_example_grads(problem, device=device, dtype=dtype)
        return [(np.broadcast_to(gW.sum(axis=-1, keepdims=True), gW.shape).copy(), gb) for gW, gb in got]


class PerExampleWithoutReductionScale(_Broken):
    bug = "per-example gradients of each example's loss alone, not of its term in the batch's loss"

    def per_example_grads(self, problem, *, device, dtype):
        got = self.base.per_example_grads(problem, device=device, dtype=dtype)
        ratio = _scale(problem, len(problem.x)) / _scale(problem, 1)
        return [(gW / ratio, gb / ratio) for gW, gb in got]


class PerExampleAsBatchMean(_Broken):
    bug = "every example given the batch gradient / batch size"

    def per_example_grads(self, problem, *, device, dtype):
        grads = self.base.compute(problem, device=device, dtype=dtype, lr=0.0).grads
        n = len(problem.x)
        return [(np.repeat(gW[None] / n, n, axis=0), np.repeat(gb[None] / n, n, axis=0)) for gW, gb in grads]


BROKEN = {
    "jvp": (JvpDroppingBiasTangent, JvpDroppingInputTangent, JvpOfTheUnreducedLoss),
    "hvp": (HvpByCentralDifferences, HvpDroppingBiasDirection),
    "per_example_grads": (PerExampleSummedOverUnits, PerExampleWithoutReductionScale, PerExampleAsBatchMean),
}
