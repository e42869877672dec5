"""What the cross-validation tests share: the problem an adapter sees, the
reference's answer, adapter calls that may be unsupported, and failure messages."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import hypothesis.errors
import numpy as np
import pytest
from hypothesis import assume, given, reject, seed, settings
from hypothesis import strategies as st

import reference
from adapters.interface import Activation, NetworkSpec, Problem, Result, Unsupported
from harness.compare import Mismatch, comparisons
from harness.error_model import both_bounds, fits_dtype, set_bounds
from harness.repro import snippet
from harness.strategies import Case, case_sets

if TYPE_CHECKING:
    from harness.compare import Comparison
    from harness.error_model import Bounds
    from harness.results import Recorder
    from harness.selection import Variant

T = TypeVar("T")


def problem_of(case: Case) -> Problem:
    net = case.network
    spec = NetworkSpec(
        sizes=net.sizes,
        activations=tuple(Activation(name, dict(p)) for name, p in net.activations),
        loss=net.loss,
        reduction=net.reduction,
    )
    return Problem(spec, [(W.copy(), b.copy()) for W, b in case.params], case.x.copy(), case.t.copy())


def expected_result(case: Case) -> Result:
    """The reference's loss, deltas, gradients and step, in float64."""
    net = case.network
    trace = reference.forward(net, case.params, case.x)
    ds = reference.backward(net, case.params, trace, case.t)
    grads = [reference.layer_gradients(d, a_in) for d, a_in in zip(ds, trace.a_in)]
    E = reference.loss(net, case.params, case.x, case.t)
    return Result(E, ds, grads, reference.sgd_step(case.params, grads, case.lr))


def compute_or_reject(variant: Variant, case: Case, unsupported: list[str], steps: int | None = None,
                      variant_recorder: Recorder | None = None) -> Any:
    """Run the adapter's ``compute`` (or ``train`` for ``steps``) through ``run_or_reject``:
    a ``Result``, or the parameters after each step."""
    problem = problem_of(case)
    adapter = variant.adapter
    assert adapter is not None, f"{variant.id} is skipped ({variant.skip_reason}); nothing runs it"
    device, dtype, lr = variant.device, variant.dtype, case.lr
    if steps is None:
        return run_or_reject(lambda: adapter.compute(problem, device=device, dtype=dtype, lr=lr), variant, case,
                             unsupported, variant_recorder)
    return run_or_reject(lambda: adapter.train(problem, steps=steps, device=device, dtype=dtype, lr=lr), variant,
                         case, unsupported, variant_recorder, steps)


def run_or_reject(call: Callable[[], T], variant: Variant, case: Case, unsupported: list[str],
                  recorder: Recorder | None = None, steps: int | None = None) -> T:
    """``call()``; a combination the target cannot run (``Unsupported``) rejects the
    example, and the reason is kept so that a test with no supported example becomes a
    skip."""
    try:
        return call()
    except Unsupported as exc:
        unsupported.append(str(exc))
        reject()
    except Exception as exc:
        # A crash is this target's failure unless a known finding that names the exception
        # and applies to the case -- at its start or, for a trajectory, at any reference
        # step -- explains it; then it is counted as that finding and the example is
        # drawn again.
        if recorder is not None and any(
            recorder.explain_crash(variant, point, exc) is not None for point in _trajectory_points(case, steps)
        ):
            reject()
        raise


def _trajectory_points(case: Case, steps: int | None) -> list[Case]:
    points = [case]
    if steps:
        with np.errstate(all="ignore"):
            history = reference.train(case.network, case.params, case.x, case.t, lr=case.lr, steps=steps)
        points += [dataclasses.replace(case, params=p) for p in history]
    return points


def run_hypothesis(check: Callable[[], None], unsupported: list[str]) -> None:
    try:
        check()
    except hypothesis.errors.Unsatisfiable:
        if unsupported:
            pytest.skip("unsupported: " + "; ".join(sorted(set(unsupported))[:3]))
        raise


def network_expression(net: reference.Network) -> str:
    """Python that rebuilds ``net`` as a ``reference.Network``."""
    acts = tuple(name if not p else (name, dict(p)) for name, p in net.activations)
    acts_text = repr(acts).replace("inf", "float('inf')")
    return f"reference.Network({net.sizes}, {acts_text}, loss={net.loss!r}, reduction={net.reduction!r})"


def rebuild_expression(case: Case) -> str:
    """Python that rebuilds ``case`` with the suite's modules (run from tests/)."""
    return (
        f"strategies.build_case({network_expression(case.network)}, batch={case.x.shape[0]}, "
        f"dtype={case.dtype!r}, lr={case.lr!r}, seed={case.seed}, scales={case.scales}, targets={case.targets!r})"
    )


def failure_message(variant: Variant, case: Case, failing: list[Comparison], recorder: Recorder,
                    rebuild: str | None = None) -> str:
    """What disagrees, the case, a NumPy + framework reproducer, and how to rebuild the
    case (``rebuild``: Python for a case no strategy drew, such as the range sweep's) and
    rerun the test."""
    parts = [f"{variant.id}: {len(failing)} quantity(ies) disagree with the reference", ""]
    parts += [c.describe() for c in failing]
    parts += [
        "",
        f"case: {case!r}",
        "",
        "reproduce with NumPy and the framework alone:",
        snippet(variant, case, failing[0]),
        "",
        f"rebuild exactly this case: {rebuild or rebuild_expression(case)}",
        f"rerun exactly this test: {recorder.rerun_command()}",
    ]
    if rebuild is None:
        parts.append("(hypothesis also prints a @reproduce_failure blob below, which replays the shrunk case "
                     "bit for bit even after the source changes)")
    return "\n".join(parts)


# Networks per hypothesis example: one architecture draw serves up to this many
# networks, each filled from its own seed (``strategies.case_sets``); a failure shrinks to
# the single failing network.  Where a new shape costs the framework far more than a
# network -- jax.jit compiles a program (0.4-0.5 s), un-jitted jax each primitive, per
# shape -- a set is larger, and the compile is paid once for all of it: up to 128
# networks under jax.jit (54 on average; a network costs ~1 ms once compiled), 64 for
# un-jitted jax (36).  benchmarks/RESULTS.md section 1 has the rates.
NETWORKS_PER_EXAMPLE = {"jax": 64, "jax-jit": 128}
DEFAULT_NETWORKS_PER_EXAMPLE = 16


def networks_per_example(target: str) -> int:
    return NETWORKS_PER_EXAMPLE.get(target, DEFAULT_NETWORKS_PER_EXAMPLE)


def check_quantities(variant: Variant, recorder: Recorder, run_seed: int, max_examples: int, strategy: st.SearchStrategy | None = None) -> None:
    """Hypothesis search over cases: loss, deltas, dW, db and the step of ``variant``
    against the reference; raises ``Mismatch`` (after shrinking) on a disagreement.
    ``strategy`` draws a case or a tuple of cases (default: ``case_sets`` of up to
    ``networks_per_example(target)`` networks)."""
    unsupported: list[str] = []
    if strategy is None:
        strategy = case_sets(dtype=variant.dtype, networks=networks_per_example(variant.target))

    @settings(max_examples=max_examples)
    @seed(run_seed)
    @given(drawn=strategy)
    def check(drawn: Case | tuple[Case, ...]) -> None:
        drawn = drawn if isinstance(drawn, tuple) else (drawn,)
        checked = 0
        # One error-model pass for the whole set (its networks share the architecture).
        for case, bounds in zip(drawn, set_bounds(drawn)):
            checked += check_one(variant, recorder, case, unsupported, bounds)
        assume(checked)

    run_hypothesis(check, unsupported)


def check_one(variant: Variant, recorder: Recorder, case: Case, unsupported: list[str],
              both: tuple[Bounds, Bounds] | None = None) -> bool:
    """One network of an example: False if the dtype cannot compute it or a known
    finding explains a crash (the other networks of the example still count), else
    compared, raising ``Mismatch`` on a disagreement.  ``both``: the case's strict and
    loose bounds where already computed (``set_bounds``)."""
    if both is None:
        both = both_bounds(case.network, case.params, case.x, case.t, dtype=case.dtype, lr=case.lr)
    bounds, loose = both
    if not fits_dtype(bounds, case.dtype):
        return False
    before = len(unsupported)
    try:
        result = compute_or_reject(variant, case, unsupported, variant_recorder=recorder)
    except hypothesis.errors.UnsatisfiedAssumption:
        if len(unsupported) > before:
            raise  # the variant cannot run this architecture at all
        return False
    comps = comparisons(case, result, expected_result(case), bounds, loose)
    failing = recorder.check(variant, case, comps)
    if failing:
        raise Mismatch(failure_message(variant, case, failing, recorder))
    return True
