"""Cross-validation of the optional methods beyond the single gradient: forward-mode
tangents (``jvp``), Hessian-vector products (``hvp``) and per-example gradients
(``per_example_grads``), each against the reference within its error model.

One hypothesis search per method, like ``crossval.check_quantities``: a case from the
suite's strategy, plus -- for ``jvp`` and ``hvp`` -- a tangent drawn from a seed with
entries of the parameters' own scale, rounded to the dtype.  Each quantity gets the
entry-wise (strict model) and tensor-wise (absolute-activation model) verdicts of
``compare.Comparison`` and goes through the recorder, so the known-discrepancy file
applies as it does to the gradient.  A failure prints the quantity by its equation, the
shrunk case, a script with only NumPy and the framework, the expressions that rebuild
the case and its tangent, and the command that reruns exactly that example.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from hypothesis import Phase, assume, given, seed, settings
from hypothesis import strategies as st

import reference
from adapters.interface import capability
from harness.compare import Comparison, Mismatch
from harness.crossval import problem_of, rebuild_expression, run_hypothesis, run_or_reject
from harness.error_model import SAFETY, Bounds, error_bounds, fits_dtype, round_to
from harness.error_model_higher import hessian_computable, hvp_bounds, per_example_bounds, tangent_bounds
from harness.repro_higher import transform_snippet
from harness.strategies import Case, cases

if TYPE_CHECKING:
    from adapters.interface import Tangents
    from harness.results import Recorder
    from harness.selection import Variant

Array = np.ndarray

SMOOTH_ACTIVATIONS = tuple(name for name in reference.SECOND_DERIVATIVES)


def tangent_for(case: Case, seed_: int, *, with_x: bool = True) -> tuple[reference.Params, Array]:
    """A tangent ``([(dW, db), ...], dx)`` with entries of the parameters' (and x's) own
    scale, drawn from ``seed_`` and rounded to the case's dtype."""
    rng = np.random.default_rng(seed_)
    scaled = lambda v: round_to(rng.standard_normal(np.shape(v)) * (np.abs(v) + 1e-3), case.dtype)
    tangent = [(scaled(W), scaled(b)) for W, b in case.params]
    return tangent, (scaled(case.x) if with_x else np.zeros_like(case.x))


def _finite(arrays: Iterable[Array]) -> bool:
    return all(np.isfinite(a).all() for a in arrays)


def _compare(quantity: str, key: str, case: Case, got, want, strict, loose, scoped=None) -> Comparison:
    """``scoped(scope)``: the loose bound with the absolute-activation model scoped to
    ``scope``.  A known finding's own relative errors of values are not carried through
    these bounds: such an entry explains here within its absolute-activation part."""
    rescoped = None if scoped is None else (lambda scope, forward: SAFETY * np.asarray(scoped(scope)))
    return Comparison(quantity, key, case.dtype, np.asarray(got, np.float64), np.asarray(want, np.float64),
                      SAFETY * np.asarray(strict), SAFETY * np.asarray(loose), scoped=rescoped)


def jvp_comparisons(case: Case, got: Tangents, tangent: reference.Params, tangent_x: Array) -> list[Comparison]:
    net = case.network
    dE, _, das = reference.jvp(net, case.params, case.x, case.t, tangent, tangent_x)
    strict = tangent_bounds(net, case.params, case.x, case.t, tangent, tangent_x, dtype=case.dtype)
    loose = tangent_bounds(net, case.params, case.x, case.t, tangent, tangent_x, absolute=True, dtype=case.dtype)
    assume(np.isfinite(loose.loss) and _finite(loose.outputs))
    scoped = functools.cache(lambda scope: tangent_bounds(net, case.params, case.x, case.t, tangent, tangent_x,
                                                          absolute=scope, dtype=case.dtype))
    comps = [_compare("loss tangent dE = <delta_L, dz_L> (Eqs. 1-5 in forward mode)", "jvp_loss", case,
                      got.loss, dE, strict.loss, loose.loss, lambda scope: scoped(scope).loss)]
    for l, (g, w, s, o) in enumerate(zip(got.outputs, das, strict.outputs, loose.outputs), 1):
        comps.append(_compare(f"output tangent da of layer {l} (Eqs. 3-4 in forward mode)", f"jvp_a[{l}]",
                              case, g, w, s, o, lambda scope, l=l: scoped(scope).outputs[l - 1]))
    return comps


def hvp_comparisons(case: Case, got: reference.Params, vector: reference.Params, _unused: None = None
                    ) -> list[Comparison]:
    net = case.network
    want = reference.hvp(net, case.params, case.x, case.t, vector)
    strict = hvp_bounds(net, case.params, case.x, case.t, vector, dtype=case.dtype)
    loose = hvp_bounds(net, case.params, case.x, case.t, vector, dtype=case.dtype, absolute=True)
    assume(_finite(e for pair in loose for e in pair))
    scoped = functools.cache(lambda scope: hvp_bounds(net, case.params, case.x, case.t, vector, dtype=case.dtype,
                                                      absolute=scope))
    comps = []
    for l in range(net.n_layers):
        for i, name in ((0, "W"), (1, "b")):
            eq = "Eq. 15" if i == 0 else "Eq. 18"
            comps.append(_compare(f"Hessian-vector product Hv for {name} of layer {l + 1} (R-operator on Eqs. 5, 14, {eq})",
                                  f"hvp_{name}[{l + 1}]", case, got[l][i], want[l][i], strict[l][i], loose[l][i],
                                  lambda scope, l=l, i=i: scoped(scope)[l][i]))
    return comps


def per_example_comparisons(case: Case, got: reference.Params, *_unused: object) -> list[Comparison]:
    net = case.network
    want = reference.per_example_gradients(net, case.params, case.x, case.t)
    strict = per_example_bounds(net, case.params, case.x, case.t, dtype=case.dtype)
    loose = per_example_bounds(net, case.params, case.x, case.t, dtype=case.dtype, absolute=True)
    assume(_finite(e for pair in loose for e in pair))
    scoped = functools.cache(lambda scope: per_example_bounds(net, case.params, case.x, case.t, dtype=case.dtype,
                                                              absolute=scope))
    comps = []
    for l in range(net.n_layers):
        eqs = ("Eq. 6", "Eq. 8") if l == net.n_layers - 1 else ("Eq. 15", "Eq. 18")
        for i, name in ((0, "dW"), (1, "db")):
            comps.append(_compare(f"per-example dE/{name} of layer {l + 1} ({eqs[i]} before the batch sum)",
                                  f"pe_{name}[{l + 1}]", case, got[l][i], want[l][i], strict[l][i], loose[l][i],
                                  lambda scope, l=l, i=i: scoped(scope)[l][i]))
    return comps


def has_second_derivatives(case: Case, bounds: Bounds) -> bool:
    """Only the smooth softplus (threshold = inf) has g'' everywhere; and the Hessian of a
    loss on probabilities must stay finite in the dtype."""
    smooth = all(p.get("threshold", np.inf) == np.inf for _, p in case.network.activations)
    return smooth and hessian_computable(case.network, case.params, case.x, case.t, dtype=case.dtype,
                                         first_order=bounds.max_magnitude)


@dataclass(frozen=True)
class Method:
    """One optional method: how to draw its extra arguments and compare its result."""

    name: str
    activations: tuple[str, ...] | None  # None: every activation
    arguments: Callable[[Case, int], tuple]
    comparisons: Callable[..., list[Comparison]]
    rebuild: str  # Python that rebuilds the extra arguments, formatted with the tangent seed
    accepts: Callable[[Case, Bounds], bool] = lambda case, bounds: True


METHODS = {
    "jvp": Method("jvp", None, lambda case, s: tangent_for(case, s), jvp_comparisons,
                  "tangent, tangent_x = crossval_higher.tangent_for(case, {seed})"),
    "hvp": Method("hvp", SMOOTH_ACTIVATIONS, lambda case, s: (tangent_for(case, s, with_x=False)[0],),
                  hvp_comparisons, "vector = crossval_higher.tangent_for(case, {seed}, with_x=False)[0]",
                  has_second_derivatives),
    "per_example_grads": Method("per_example_grads", None, lambda case, s: (), per_example_comparisons, ""),
}


def call_method(variant: Variant, method: str, case: Case, args: tuple, unsupported: list[str],
                recorder: Recorder | None = None) -> Any:
    """The target's ``method`` on the case, through ``crossval.run_or_reject`` (a target
    that lacks the method raises Unsupported from ``capability``)."""
    adapter = variant.adapter
    assert adapter is not None, f"{variant.id} is skipped ({variant.skip_reason}); nothing runs it"

    def call() -> Any:
        return capability(adapter, method)(problem_of(case), *args, device=variant.device, dtype=variant.dtype)

    return run_or_reject(call, variant, case, unsupported, recorder)


def failure_message(variant: Variant, method: Method, case: Case, tangent_seed: int, args: tuple,
                    failing: list[Comparison], recorder: Recorder) -> str:
    tangent, tangent_x = (args + (None, None))[:2]
    parts = [f"{variant.id}: {method.name}: {len(failing)} quantity(ies) disagree with the reference", ""]
    parts += [c.describe() for c in failing]
    parts += ["", f"case: {case!r}", "", "reproduce with NumPy and the framework alone:",
              transform_snippet(variant, case, method.name, failing[0], tangent, tangent_x), "",
              f"rebuild exactly this case (from tests/): case = {rebuild_expression(case)}"]
    if method.rebuild:
        parts.append(f"and its arguments: {method.rebuild.format(seed=tangent_seed)}")
    parts.append(f"rerun exactly this test: {recorder.rerun_command()}")
    return "\n".join(parts)


def check_method(variant: Variant, recorder: Recorder, run_seed: int, max_examples: int, method_name: str,
                 strategy: st.SearchStrategy, shrink: bool = True) -> None:
    """Hypothesis search: ``method_name`` of ``variant`` against the reference
    (``shrink=False``: report the first failing example as found)."""
    method = METHODS[method_name]
    unsupported: list[str] = []
    phases = tuple(p for p in Phase if shrink or p not in (Phase.shrink, Phase.explain))

    @settings(max_examples=max_examples, phases=phases)
    @seed(run_seed)
    @given(case=strategy, tangent_seed=st.integers(0, 2**32 - 1))
    def check(case: Case, tangent_seed: int) -> None:
        strict = error_bounds(case.network, case.params, case.x, case.t, dtype=case.dtype, lr=case.lr)
        assume(fits_dtype(strict, case.dtype) and method.accepts(case, strict))
        args = method.arguments(case, tangent_seed)
        got = call_method(variant, method.name, case, args, unsupported, recorder)
        failing = recorder.check(variant, case, method.comparisons(case, got, *args))
        if failing:
            raise Mismatch(failure_message(variant, method, case, tangent_seed, args, failing, recorder))

    run_hypothesis(check, unsupported)


def method_strategy(method: str, dtype: str) -> st.SearchStrategy[Case]:
    """The cases the higher-order checks draw for ``method``: up to 3 layers of width 8,
    batch 6, and only the activations the method supports (smooth ones for hvp)."""
    acts = METHODS[method].activations
    kw = {} if acts is None else {"activations": acts}
    return cases(dtype=dtype, depth=(1, 3), width=(1, 8), batch=(1, 6), **kw)
