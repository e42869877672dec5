"""Every quantity of the derivation, from every target, against the reference.

For each selected target x device x dtype: the loss (Eq. 1), every layer's delta
(Eqs. 5, 14), dW (Eqs. 6, 15), db (Eqs. 8, 18) and the parameters after one step
(Eq. 7) equal the reference, entry by entry, within the error model; and a K-step
full-batch trajectory is, step by step, the reference's Eq. 7 step from the
framework's own previous parameters, and, as a whole, the reference's trajectory from
the same start within a bound that grows with the step count.  The reference runs in
float64 on inputs already rounded to the tested dtype.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
from hypothesis import assume, given, seed, settings

import reference
from harness.compare import Comparison, Mismatch, scoped_bounds
from harness.crossval import check_quantities, compute_or_reject, failure_message, run_hypothesis
from harness.error_model import SAFETY, both_bounds, error_bounds, fits_dtype, round_to, trajectory_bounds
from harness.plugin import example_budget
from harness.strategies import cases

TRAJECTORY_STEPS = 4


def test_every_quantity_matches_reference(variant, recorder, run_seed, pytestconfig):
    check_quantities(variant, recorder, run_seed, example_budget(pytestconfig, variant.target))


def test_training_trajectory_matches_reference(variant, recorder, run_seed, pytestconfig):
    unsupported: list[str] = []

    @settings(max_examples=max(2, example_budget(pytestconfig, variant.target) // 4))
    @seed(run_seed)
    @given(case=cases(dtype=variant.dtype, depth=(1, 3), width=(1, 16), batch=(1, 8)))
    def check(case):
        assume(_trajectory_is_computable(case))
        history = compute_or_reject(variant, case, unsupported, steps=TRAJECTORY_STEPS, variant_recorder=recorder)
        params = case.params
        first_record = len(recorder.results.records)
        for step, after in enumerate(history, 1):
            comps = _step_comparisons(case, params, after, step)
            at_step = dataclasses.replace(case, params=params)
            failing = recorder.check(variant, at_step, comps)
            if failing:
                raise Mismatch(failure_message(variant, at_step, failing, recorder))
            if not all(np.isfinite(W).all() and np.isfinite(b).all() for W, b in after):
                return  # a known finding made this step non-finite; later steps mean nothing
            params = after
        if any(r.known for r in recorder.results.records[first_record:]):
            return  # a known finding moved a step off the reference: the drift is explained
        failing = recorder.check(variant, case, _drift_comparisons(case, history))
        if failing:
            raise Mismatch(failure_message(variant, case, failing, recorder))

    run_hypothesis(check, unsupported)


def _drift_comparisons(case, history) -> list[Comparison]:
    """The whole trajectory against the reference's, started from the same parameters:
    step k is allowed the error model's bound after k steps, which takes each earlier
    step's bound as an input error and so grows with k."""
    net, kw = case.network, dict(dtype=case.dtype, lr=case.lr, steps=TRAJECTORY_STEPS)
    with np.errstate(over="ignore", invalid="ignore"):  # a bound may grow past float64: inf
        strict = trajectory_bounds(net, case.params, case.x, case.t, **kw)
        loose = trajectory_bounds(net, case.params, case.x, case.t, absolute=True, **kw)
    expected = reference.train(net, case.params, case.x, case.t, lr=case.lr, steps=TRAJECTORY_STEPS)
    scoped_history = functools.cache(lambda scope, forward: trajectory_bounds(
        net, case.params, case.x, case.t, absolute=scope, forward_errors=dict(forward), **kw))
    out = []
    for k, (after, want, (sW, sb), (lW, lb)) in enumerate(zip(history, expected, strict, loose), 1):
        if not all(np.isfinite(a).all() for a in (*sW, *sb, *lW, *lb)):
            break  # the drift can no longer be bounded (first-order bounds blew up): stop here
        for l, ((W, b), (eW, eb)) in enumerate(zip(after, want)):
            n = l + 1
            for key, got, ref, bound, lbound in (("W", W, eW, sW[l], lW[l]), ("b", b, eb, sb[l], lb[l])):
                which = 0 if key == "W" else 1

                def scoped(scope, forward, k=k, l=l, which=which):
                    with np.errstate(over="ignore", invalid="ignore"):
                        return SAFETY * scoped_history(scope, forward)[k - 1][which][l]

                out.append(Comparison(
                    f"{key} of layer {n} after {k} of {TRAJECTORY_STEPS} steps from the same start, Eq. 7",
                    f"{key}_traj[{n}]@{k}", case.dtype, got, ref, SAFETY * bound, SAFETY * lbound, scoped=scoped))
    return out


def _trajectory_is_computable(case) -> bool:
    """Whether every point of the reference trajectory (rounded to the dtype) is
    computable in the dtype: a step that saturates a log-loss's probability to 0 or 1,
    or overflows, makes the rest of the trajectory meaningless (NaN), so such cases
    are drawn again rather than compared."""
    params = case.params
    for step in range(TRAJECTORY_STEPS + 1):
        if step:
            try:
                with np.errstate(all="ignore"):
                    grads = reference.gradients(case.network, params, case.x, case.t)
                    after = reference.sgd_step(params, grads, case.lr)
            except ValueError:  # the reference rejects non-finite parameters: diverged
                return False
            if not all(np.isfinite(W).all() and np.isfinite(b).all() for W, b in after):
                return False
            params = [(round_to(W, case.dtype), round_to(b, case.dtype)) for W, b in after]
        with np.errstate(all="ignore"):
            bounds = error_bounds(case.network, params, case.x, case.t, dtype=case.dtype, lr=case.lr)
        if not fits_dtype(bounds, case.dtype):
            return False
    return True


def _step_comparisons(case, params, after, step: int) -> list[Comparison]:
    """Step ``step`` against Eq. 7 taken by the reference from the framework's own
    previous parameters, so each step is held to the single-step error model."""
    net = case.network
    b, loose = both_bounds(net, params, case.x, case.t, dtype=case.dtype, lr=case.lr)
    assume(fits_dtype(b, case.dtype))
    grads = reference.gradients(net, params, case.x, case.t)
    expected = reference.sgd_step(params, grads, case.lr)
    scoped = scoped_bounds(case, params)
    out = []
    for l, ((W, bias), (eW, eb), (gW, gb), (pW, pb)) in enumerate(zip(after, expected, grads, params)):
        n = l + 1
        for key, got, want, bound, lbound, grad, param in (
            ("W", W, eW, b.stepped_W[l], loose.stepped_W[l], gW, pW),
            ("b", bias, eb, b.stepped_b[l], loose.stepped_b[l], gb, pb),
        ):
            # A finding's size is measured against |W| + lr |dW|, as for the single step.
            scale = np.abs(np.asarray(param, np.float64)) + case.lr * np.abs(grad)
            out.append(Comparison(f"{key} of layer {n} after step {step} of {TRAJECTORY_STEPS}, Eq. 7",
                                  f"{key}_step[{n}]@{step}", case.dtype, got, want, SAFETY * bound, SAFETY * lbound,
                                  scale, lambda scope, forward, key=key, l=l: SAFETY * scoped(scope, forward).of(
                                      f"{key}_step", l)))
    return out
