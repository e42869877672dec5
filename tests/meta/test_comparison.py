"""compare.Comparison: verdicts entry-wise and tensor-wise, and a mismatch message
that names the quantity, the mismatch statistics and the allowed error's origin."""

from __future__ import annotations

import math

import numpy as np
import pytest

import reference
from harness.compare import Comparison, comparisons, quantity_name, with_ratios
from harness.crossval import expected_result
from harness.error_model import SAFETY, Precision, both_bounds
from harness.strategies import build_case

U32 = Precision.of("float32").u


def _comparison(actual, expected, allowed, allowed_loose=None, dtype: str = "float32") -> Comparison:
    expected = np.asarray(expected, np.float64)
    allowed = np.broadcast_to(np.asarray(allowed, np.float64), expected.shape)
    loose = allowed if allowed_loose is None else np.broadcast_to(
        np.asarray(allowed_loose, np.float64), expected.shape
    )
    return Comparison("dE/dW of layer 2, Eq. 6", "dW[2]", dtype, np.asarray(actual, np.float64),
                      expected, allowed, loose)


def test_equal_arrays_pass_with_ratio_zero_even_where_nothing_is_allowed() -> None:
    values = np.array([[1.5, -2.0], [0.0, 3e-30]])
    c = _comparison(values, values.copy(), allowed=0.0)
    assert (c.entry_ratio, c.tensor_ratio, c.mismatched_relative) == (0.0, 0.0, 0.0)
    assert not c.failed and c.verdict == "ok"


def test_the_mismatch_message_names_the_quantity_the_statistics_and_the_allowed_error() -> None:
    expected = np.array([[1.0, 2.0, 4.0], [1e-3, 5.0, 6.0]])
    actual = expected.copy()
    actual[0, 2] += 0.5  # the greatest absolute difference
    actual[1, 0] += 1e-3  # the greatest relative difference: 100 %
    c = _comparison(actual, expected, allowed=1e-6)
    lines = c.describe().splitlines()
    assert lines[0] == "dE/dW of layer 2, Eq. 6: wrong (tensor-wise and entry-wise)"
    assert lines[1] == "  mismatched entries: 2 of 6"
    assert lines[2] == "  greatest absolute difference: 0.5 at index (0, 2)"
    assert lines[3] == "  greatest relative difference: 1 at index (1, 0)"
    assert lines[4] == (
        "  worst entry (0, 2): framework 4.5, reference 4, allowed +-1e-06 (error/allowed = 500000)"
    )
    assert "tensor-wise: error/allowed = 500000" in lines[5]
    assert lines[6] == (
        f"  allowed = {SAFETY:g} x the error model's bound for float32 (u = {U32:.3g}, "
        "smallest normal 1.18e-38); see docs/error-model.md"
    )


def test_the_scalar_loss_is_described_at_index_empty() -> None:
    c = Comparison("loss E, Eq. 1", "loss", "float64", np.asarray(1.25), np.asarray(1.0),
                   np.asarray(1e-15), np.asarray(1e-15))
    text = c.describe()
    assert c.failed
    assert "mismatched entries: 1 of 1" in text and "greatest absolute difference: 0.25 at index ()" in text


def test_a_zero_where_the_reference_is_tiny_fails_entry_wise_only() -> None:
    # The second entry's true value is 3e-30: a framework that flushes it to 0 is off
    # by 100 % of that entry but by nothing that matters at the tensor's scale.
    expected = np.array([1.0, 3e-30])
    allowed = 4 * U32 * np.abs(expected)
    c = _comparison([1.0, 0.0], expected, allowed, allowed_loose=4 * U32)
    assert c.entry_failed and not c.tensor_failed
    assert c.verdict == "inaccurate (entry-wise)"
    assert c.entry_ratio == pytest.approx(3e-30 / allowed[1])
    assert c.mismatched_relative == pytest.approx(3e-30)


def test_a_large_error_fails_tensor_wise() -> None:
    expected = np.array([1.0, -2.0, 3.0])
    c = _comparison([1.0, -2.0, 3.01], expected, 4 * U32 * np.abs(expected), allowed_loose=4 * U32 * 3.0)
    assert c.entry_failed and c.tensor_failed
    assert c.verdict == "wrong (tensor-wise and entry-wise)"
    assert c.tensor_ratio == pytest.approx(0.01 / (12 * U32))


def test_an_error_within_every_entry_allowance_can_still_fail_tensor_wise() -> None:
    c = _comparison([1.5], [1.0], allowed=1.0, allowed_loose=0.1)
    assert not c.entry_failed and c.tensor_failed and c.verdict == "wrong (tensor-wise)"


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_a_non_finite_framework_entry_fails_both_ways(bad: float) -> None:
    c = _comparison([1.0, bad], [1.0, 2.0], allowed=1.0)
    assert c.entry_ratio == np.inf and c.tensor_ratio == np.inf and c.failed
    assert f"framework {float(bad):.6g}" in c.describe()


def test_quantities_are_named_by_their_equation_for_output_and_hidden_layers() -> None:
    assert quantity_name("loss", 0, 3) == "loss E, Eq. 1"
    assert quantity_name("delta", 2, 3) == "dE/dz of layer 3, Eq. 5"
    assert quantity_name("delta", 0, 3) == "dE/dz of layer 1, Eq. 14"
    assert quantity_name("dW", 1, 3) == "dE/dW of layer 2, Eq. 15"
    assert quantity_name("db", 2, 3) == "dE/db of layer 3, Eq. 8"
    assert quantity_name("W_step", 0, 3) == "W after one step of layer 1, Eq. 7"


def test_the_reference_against_itself_passes_every_quantity_of_the_derivation() -> None:
    net = reference.Network((3, 4, 2), ("tanh", "identity"), loss="mse", reduction="mean")
    case = build_case(net, batch=5, dtype="float32", lr=0.1, seed=7, scales=(1.0, 1.0, 1.0))
    bounds, loose = both_bounds(net, case.params, case.x, case.t, dtype="float32", lr=0.1)
    want = expected_result(case)
    comps = comparisons(case, want, want, bounds, loose)
    assert [c.key for c in comps] == ["loss"] + [
        f"{key}[{n}]" for n in (1, 2) for key in ("delta", "dW", "db", "W_step", "b_step")
    ]
    assert all(c.entry_ratio == 0.0 and c.verdict == "ok" for c in comps)
    assert all(np.all(c.allowed > 0) and np.all(c.allowed_loose >= c.allowed) for c in comps[1:])


def test_ratios_filled_at_once_equal_the_properties_bit_for_bit() -> None:
    # with_ratios lays every quantity's entries end to end; the verdicts must not change,
    # NaN, inf, zero allowances and exact agreement included.
    rng = np.random.default_rng(3)

    def fresh(seed_arrays):
        return [Comparison(f"q{i}", f"dW[{i}]", "float32", a, e, al, lo) for i, (a, e, al, lo) in enumerate(seed_arrays)]

    arrays = []
    for shape in [(), (1,), (3, 2), (5,), (2, 2)] * 6:
        e = rng.standard_normal(shape)
        a = e + rng.choice([0.0, 1e-9, 1e-3, np.nan, np.inf], size=shape)
        al = np.abs(rng.standard_normal(shape)) * rng.choice([0.0, 1e-8, 1.0], size=shape)
        lo = al * rng.choice([1.0, 10.0, np.inf], size=shape)
        arrays.append((np.asarray(a, np.float64), np.asarray(e, np.float64), np.asarray(al, np.float64), np.asarray(lo, np.float64)))
    lazy, bulk = fresh(arrays), with_ratios(fresh(arrays))
    for one, other in zip(lazy, bulk):
        for name in ("entry_ratio", "tensor_ratio"):
            got, want = getattr(other, name), getattr(one, name)
            assert (math.isnan(got) and math.isnan(want)) or got == want, (name, got, want)


def test_a_step_that_cancels_is_measured_against_its_terms() -> None:
    # W - lr dW = -0.0594 - (-0.0597) = 2.9e-4: an error of 3e-8 relative to lr dW is 6e-6
    # of the result, but 1.5e-8 of |W| + lr |dW|, the size the step is formed from.
    expected, error = np.array([[2.9e-4]]), 1.8e-9
    args = ("W after one step of layer 1, Eq. 7", "W_step[1]", "float64", expected + error, expected,
            np.array([[1e-16]]), np.array([[1e-16]]))
    assert Comparison(*args).mismatched_relative == pytest.approx(error / 2.9e-4)
    assert Comparison(*args, np.array([[0.0594 + 0.0597]])).mismatched_relative == pytest.approx(error / 0.1191)


def test_comparisons_give_each_step_its_terms_as_scale() -> None:
    net = reference.Network((2, 3), ("tanh",), loss="sse", reduction="sum")
    case = build_case(net, batch=2, dtype="float64", lr=0.1, seed=4, scales=(1.0, 1.0))
    expected = expected_result(case)
    bounds, loose = both_bounds(case.network, case.params, case.x, case.t, dtype="float64", lr=0.1)
    comps = {c.key: c for c in comparisons(case, expected, expected, bounds, loose)}
    W, dW = case.params[0][0], expected.grads[0][0]
    assert np.array_equal(comps["W_step[1]"].scale, np.abs(W) + 0.1 * np.abs(dW))
    assert comps["dW[1]"].scale is None
