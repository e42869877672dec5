"""Every activation and loss, across its whole range, against the reference.

For each selected target x device x dtype, every case of ``sweep.sweep_cases`` -- each
activation with each parameter set the strategies know, in a one-layer (Eq. 5) and a
two-layer network (Eq. 14), and each loss with each reduction, on a deterministic grid
of pre-activations and logits through kinks, tails and the points where common formulas
cancel -- is computed by the target and compared with the reference under the same
error model, verdicts and known discrepancies as the random search.  A disagreement is
narrowed to the single worst grid row where that row alone still disagrees, and every
failing case is reported.  Deterministic: no hypothesis here.
"""

from __future__ import annotations

import numpy as np
import pytest
import sweep
from compare import Comparison, Mismatch, comparisons
from crossval import expected_result, failure_message, problem_of
from error_model import both_bounds

from adapters.interface import Unsupported

SHOWN_IN_FULL = 3  # failing cases whose whole message is printed; the rest are listed


def test_every_activation_and_loss_matches_reference_across_its_range(variant, recorder):
    unsupported: list[str] = []
    checked, failures = 0, []
    cases = sweep.sweep_cases(variant.dtype)
    for item in cases:
        outcome = _check(variant, recorder, item, unsupported)
        checked += outcome is not None
        if outcome:
            failures.append(outcome)
    if failures:
        listing = [f"  - {label}" for label, _ in failures]
        shown = [message for _, message in failures[:SHOWN_IN_FULL]]
        raise Mismatch("\n".join([
            f"range sweep: {len(failures)} of {len(cases)} cases disagree with the reference:", *listing, "",
            *(f"==== {label}\n{message}\n" for (label, _), message in zip(failures, shown)),
        ]))
    if not checked:
        pytest.skip("unsupported: " + "; ".join(sorted(set(unsupported))[:3]) if unsupported
                    else "every sweep case crashed in a way a known discrepancy explains")


def _check(variant, recorder, item: sweep.SweepCase, unsupported: list[str]) -> tuple[str, str] | None | bool:
    """None: not checked (unsupported, or a crash a known discrepancy explains); False:
    agrees; else (label, failure message).  An unexplained crash fails the test, naming
    the sweep case."""
    failing = _failing(variant, recorder, item.case, item.bounds, item.expected, unsupported, item.label)
    if failing is None or not failing:
        return failing if failing is None else False
    case = item.case
    row = _worst_row(failing)
    if row is not None:  # narrow to that row alone, where it still disagrees there
        one = sweep.identity_case(case.network, case.x[row : row + 1], case.t[row : row + 1], case.dtype)
        with np.errstate(all="ignore"):
            both = both_bounds(one.network, one.params, one.x, one.t, dtype=one.dtype, lr=one.lr)
        narrowed = _failing(variant, recorder, one, both, expected_result(one), [], item.label)
        if narrowed:
            case, failing = one, narrowed
    rebuild = "import sweep; " + sweep.rebuild_expression(case)
    return item.label, failure_message(variant, case, failing, recorder, rebuild=rebuild)


def _failing(variant, recorder, case, both, expected, unsupported: list[str], label: str) -> list[Comparison] | None:
    """The unexplained disagreements of ``variant`` on ``case``; None where it cannot run it."""
    try:
        result = variant.adapter.compute(problem_of(case), device=variant.device, dtype=variant.dtype, lr=case.lr)
    except Unsupported as exc:
        unsupported.append(str(exc))
        return None
    except Exception as exc:
        if recorder.explain_crash(case) is not None:
            return None
        raise AssertionError(f"{variant.id}: range sweep case {label}: the target raised {exc!r}; "
                             f"rerun: {recorder.rerun_command()}") from exc
    return recorder.check(variant, case, comparisons(case, result, expected, *both))


def _worst_row(failing: list[Comparison]) -> int | None:
    """The batch row of the worst disagreeing delta entry (dE/dz has one row per grid
    point), or None where no delta disagrees (the loss, dW, db mix the rows)."""
    deltas = [c for c in failing if c.key.startswith("delta")]
    if not deltas:
        return None
    worst = max(deltas, key=lambda c: c.entry_ratio)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(worst.diff == 0, 0.0, worst.diff / worst.allowed)
    return int(np.unravel_index(int(np.nanargmax(np.where(np.isnan(ratio), np.inf, ratio))), ratio.shape)[0])
