"""Each known discrepancy's reproducer: its minimal case as data, run on a target.

An entry's ``[discrepancy.reproducer]`` table gives the network and either its arrays or
the seed that fills them (``strategies.build_case``)::

    [discrepancy.reproducer]
    network = { sizes = [1, 1], activations = ["tanh"], loss = "sse", reduction = "sum" }
    dtype = "float32"
    x = [[12.0]]                      # explicit arrays (rounded to the dtype) ...
    params = [[[[1.0]], [0.0]]]       # [[W, b], ...]
    t = [[0.0]]
    # ... or: batch = 4, seed = 3, scales = [1.0, 3.0], targets = "hard"
    lr = 0.1                          # optional (default 0.1)
    device = "cpu"                    # the device kind (default cpu)
    method = "compute"                # or jvp, hvp, per_example_grads (with tangent_seed)
    tangent_seed = 0

``reproducer_cases`` checks the table and builds its case; ``verdict`` runs it the way
the suite's tests do and says whether the finding shows and is explained by its entry
and by no other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.compare import comparisons
from harness.crossval import expected_result, problem_of
from harness.error_model import both_bounds
from harness.reproducer_cases import case_of
from harness.strategies import Case

if TYPE_CHECKING:
    from harness.compare import Comparison
    from harness.known import Discrepancy
    from harness.selection import Variant

# The suite's test whose comparisons a reproducer's method makes, for entries scoped by test.
TEST_OF_METHOD = {"compute": "test_every_quantity_matches_reference", "jvp": "test_forward_mode_matches_reference",
                  "hvp": "test_hessian_vector_product_matches_reference",
                  "per_example_grads": "test_per_example_gradients_match_reference"}


@dataclass(frozen=True)
class Verdict:
    shows: bool  # some quantity the entry covers disagrees with the reference
    explained: bool  # ... each explained by the entry alone, and every other failure by another entry
    others: tuple[str, ...]  # other entries that also explain a failure the entry covers
    message: str


def verdict(entry: Discrepancy, variant: Variant, raw: Mapping[str, Any], known: Sequence[Discrepancy],
            crash: BaseException | None, result: Any) -> Verdict:
    """Whether ``result`` (the target's answer to the reproducer, or the exception it
    raised) shows the entry's finding, explained by the entry and by no other.  Failures
    in quantities the entry does not cover (a reproducer's loss finding beside its
    gradient finding) must be explained by some other entry."""
    case = case_of(raw)
    test = TEST_OF_METHOD[raw.get("method", "compute")]
    if crash is not None:
        ok = entry.raises is not None and entry.raises.matches(crash)
        return Verdict(True, ok, (), f"raised {type(crash).__name__}: {crash}")
    failing = [c for c in _comparisons(case, raw, result) if c.failed]
    mine = [c for c in failing if entry.covers(c.key)]
    if not mine:
        return Verdict(False, False, (), "every quantity it covers agrees with the reference")
    applicable = [d for d in known if d.id != entry.id and d.applies(variant.target, variant.device, variant.dtype, test, case)]
    rest = [c for c in failing if not entry.covers(c.key) and not any(d.explains(c, case) for d in applicable)]
    alone = all(entry.explains(c, case) for c in mine) and not rest
    others = tuple(sorted({d.id for d in applicable for c in mine if d.covers(c.key) and d.explains(c, case)}))
    worst = max(mine + rest, key=lambda c: c.entry_ratio)
    return Verdict(True, alone, others, f"{len(mine)} quantity(ies) it covers off, {len(rest)} other(s) "
                                        f"unexplained; worst {worst.key} at error/allowed {worst.entry_ratio:.3g}\n"
                                        f"{worst.describe()}")


def run(variant: Variant, raw: Mapping[str, Any]) -> tuple[Any, BaseException | None]:
    """The target's answer to the reproducer: (result, None) or (None, the exception)."""
    case = case_of(raw)
    method = raw.get("method", "compute")
    adapter = variant.adapter
    assert adapter is not None, f"{variant.id} is skipped ({variant.skip_reason}); nothing runs it"
    try:
        if method == "compute":
            return adapter.compute(problem_of(case), device=variant.device, dtype=variant.dtype, lr=case.lr), None
        from harness.crossval_higher import METHODS as HIGHER

        args = HIGHER[method].arguments(case, int(raw.get("tangent_seed", 0)))
        return getattr(adapter, method)(problem_of(case), *args, device=variant.device, dtype=variant.dtype), None
    except Exception as exc:  # noqa: BLE001 -- a crash is what a raises entry names
        from adapters.interface import Unsupported

        if isinstance(exc, Unsupported):
            raise
        return None, exc


def _comparisons(case: Case, raw: Mapping[str, Any], result: Any) -> list[Comparison]:
    method = raw.get("method", "compute")
    if method == "compute":
        bounds, loose = both_bounds(case.network, case.params, case.x, case.t, dtype=case.dtype, lr=case.lr)
        return comparisons(case, result, expected_result(case), bounds, loose)
    from harness.crossval_higher import METHODS as HIGHER

    args = HIGHER[method].arguments(case, int(raw.get("tangent_seed", 0)))
    return HIGHER[method].comparisons(case, result, *args)
