"""reference.per_example_gradients: Eq. 15 and Eq. 18 before the batch sum.

* Their sum over the batch is reference.gradients: both are float64 sums of the same
  products delta_j[n] a_i[n], so they differ by at most the rounding of an N-term sum,
  N u sum_n |a_i[n] delta_j[n]| (the error model's gamma_N bound for Eq. 15).
* Example n's term is the gradient of example n alone, ``reference.gradients`` on
  the one-row batch with reduction "sum", times the batch's reduction scale.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import given, settings

import reference
from harness.error_model import SAFETY, Precision
from harness.error_model_higher import per_example_bounds
from harness.strategies import Case, cases
from reference import losses

U64 = Precision.of("float64").u


@settings(max_examples=40, deadline=None)
@given(case=cases(dtype="float64", depth=(1, 3), width=(1, 6), batch=(1, 4)))
def test_per_example_gradients_sum_to_the_batch_gradient(case: Case) -> None:
    """sum_n of per-example dW and db equals reference.gradients (Eqs. 15, 18)."""
    net = case.network
    per = reference.per_example_gradients(net, case.params, case.x, case.t)
    grads = reference.gradients(net, case.params, case.x, case.t)
    n = len(case.x)
    for l, ((pW, pb), (gW, gb)) in enumerate(zip(per, grads)):
        assert pW.shape == (n, *gW.shape) and pb.shape == (n, *gb.shape), f"layer {l + 1}: shapes {pW.shape}, {pb.shape}"
        for what, part, whole in (("dE/dW", pW, gW), ("dE/db", pb, gb)):
            tol = SAFETY * (n * U64 * np.abs(part).sum(axis=0) + n * Precision.of("float64").tiny)
            diff = np.abs(part.sum(axis=0) - whole)
            assert (diff <= tol).all(), (
                f"per-example {what} of layer {l + 1} summed over the batch (Eq. 15/18) differs from "
                f"reference.gradients by {diff.max():.3g} > {tol[np.argmax(diff)] if tol.ndim == 1 else tol.flat[np.argmax(diff)]:.3g}"
            )


@settings(max_examples=25, deadline=None)
@given(case=cases(dtype="float64", depth=(1, 3), width=(1, 6), batch=(1, 4)))
def test_each_example_term_is_the_gradient_of_that_example_alone(case: Case) -> None:
    """Row n of the per-example gradients is reference.gradients on example n alone
    (reduction "sum") times the batch's reduction scale; within SAFETY x the error
    model's float64 bound of that one-example gradient."""
    net = case.network
    alone = reference.Network(net.sizes, net.activations, loss=net.loss, reduction="sum")
    scale = losses.reduction_scale(net, len(case.x))
    per = reference.per_example_gradients(net, case.params, case.x, case.t)
    bounds = per_example_bounds(net, case.params, case.x, case.t, dtype="float64")
    for n in range(len(case.x)):
        one = dataclasses.replace(case, x=case.x[n : n + 1], t=case.t[n : n + 1])
        grads = reference.gradients(alone, one.params, one.x, one.t)
        for l, ((gW, gb), (pW, pb), (eW, eb)) in enumerate(zip(grads, per, bounds)):
            for what, got, want, e in (("dE/dW", pW[n], gW * scale, eW[n]), ("dE/db", pb[n], gb * scale, eb[n])):
                diff = np.abs(got - want)
                assert (diff <= SAFETY * e).all(), (
                    f"per-example {what} of layer {l + 1}, example {n} (Eq. 15/18 before the batch sum): "
                    f"off by {diff.max():.3g} from the one-example gradient"
                )
