"""Running the range sweep (``sweep.py``) against one variant: the check behind
``test_every_activation_and_loss_matches_reference_across_its_range`` and the self-tests
that plant framework faults.

Each sweep case is computed by the variant's adapter and compared with the reference
under the random search's error model, verdicts and known discrepancies
(``Recorder.check``).  A disagreement is narrowed to the single worst grid row where
that row alone still disagrees; every failing case is listed, the first few in full
(``crossval.failure_message``: quantity by equation, statistics, reproducer, rebuild
and rerun lines).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pytest

from adapters.interface import Unsupported
from harness import sweep
from harness.compare import Comparison, Mismatch, comparisons
from harness.crossval import expected_result, failure_message, problem_of
from harness.error_model import both_bounds

SHOWN_IN_FULL = 3  # failing cases whose whole message is printed; the rest are listed


def run_sweep(variant, recorder, cases: Iterable[sweep.SweepCase]) -> None:
    """Check every case; raise ``Mismatch`` naming each failing case, or skip (with the
    reasons) when the variant could run none of them."""
    unsupported: list[str] = []
    cases = list(cases)
    checked, failures = 0, []
    for item in cases:
        ran, failure = check_case(variant, recorder, item, unsupported)
        checked += ran
        if failure is not None:
            failures.append(failure)
    if failures:
        listing = [f"  - {label}" for label, _ in failures]
        shown = [f"==== {label}\n{message}\n" for label, message in failures[:SHOWN_IN_FULL]]
        raise Mismatch("\n".join([
            f"range sweep: {len(failures)} of {len(cases)} cases disagree with the reference:", *listing, "", *shown,
        ]))
    if not checked:
        pytest.skip("unsupported: " + "; ".join(sorted(set(unsupported))[:3]) if unsupported
                    else "every sweep case crashed in a way a known discrepancy explains")


def check_case(variant, recorder, item: sweep.SweepCase, unsupported: list[str]) -> tuple[bool, tuple[str, str] | None]:
    """(whether the case ran, (label, failure message) or None).  Not run: unsupported
    (the reason appended to ``unsupported``), or a crash a known discrepancy explains;
    an unexplained crash fails, naming the sweep case."""
    failing = _failing(variant, recorder, item.case, item.bounds, item.expected, unsupported, item.label)
    if not failing:
        return failing is not None, None
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
    return True, (item.label, failure_message(variant, case, failing, recorder, rebuild=rebuild))


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
    return int(np.unravel_index(int(np.argmax(np.where(np.isnan(ratio), np.inf, ratio))), ratio.shape)[0])
