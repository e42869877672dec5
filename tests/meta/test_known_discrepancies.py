"""tests/harness/known.py: the known-discrepancies file parses, every entry says why, bad
entries are rejected by name, and an entry explains only the findings it describes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

import reference
from harness.compare import Comparison
from harness.known import CONDITIONS, Discrepancy, load
from harness.strategies import build_case

KNOWN_FILE = Path(__file__).parents[1] / "suite" / "known_discrepancies.toml"
QUANTITY_KEYS = ("", "loss", "delta", "dW", "db", "W_step", "b_step", "jvp", "hvp", "pe")
TEST_ID = "test_every_quantity_matches_reference[torch-cpu-float32]"


def _case(activations=("sigmoid", "identity"), loss: str = "sse"):
    net = reference.Network((2, 3, 1), activations, loss=loss)
    return build_case(net, batch=2, dtype="float32", lr=0.1, seed=0, scales=(1.0, 1.0, 1.0))


def _one_sigmoid_unit(weight: float):
    """A bce case whose single pre-activation is z = weight (x = 1, b = 0)."""
    net = reference.Network((1, 1), ("sigmoid",), loss="bce")
    case = build_case(net, batch=1, dtype="float32", lr=0.1, seed=0, scales=(1.0, 1.0))
    return dataclasses.replace(case, params=[(np.array([[weight]]), np.zeros(1))], x=np.ones((1, 1)))


def _finding(
    actual: list[float], expected: list[float], allowed: float, loose: float, key: str = "delta[1]"
) -> Comparison:
    e = np.asarray(expected, np.float64)
    return Comparison("dE/dz of layer 1, Eq. 14", key, "float32", np.asarray(actual, np.float64), e,
                      np.full(e.shape, allowed), np.full(e.shape, loose))


# Off by 1e-6 against an allowance of 1e-7 per entry but 1e-5 for the tensor:
# an entry-wise finding whose relative size (to the tensor's largest magnitude, 1) is 1e-6.
ENTRY_ONLY = _finding([1.0, 0.5 + 1e-6], [1.0, 0.5], allowed=1e-7, loose=1e-5)
# Off by 0.1: wrong tensor-wise.
TENSOR_WIDE = _finding([1.0, 0.6], [1.0, 0.5], allowed=1e-7, loose=1e-5)


def _entry(**fields) -> Discrepancy:
    defaults = {"test": "test_*[torch*]", "quantity": "", "reason": "a documented property"}
    return Discrepancy(**{**defaults, **fields})


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "known.toml"
    path.write_text('[[discrepancy]]\ntest = "test_*"\nquantity = ""\nreason = "why"\n' + body)
    return path


def test_the_real_file_parses_and_every_entry_says_why() -> None:
    entries = load(KNOWN_FILE)
    assert entries, f"{KNOWN_FILE} lists no discrepancy"
    for d in entries:
        assert len(d.reason.split()) >= 10, f"entry {d.test} / {d.quantity} gives no real reason"
        assert d.quantity in QUANTITY_KEYS
        assert d.when is None or d.when in CONDITIONS
        assert d.max_relative is None or 0 < d.max_relative < 1e-3


def test_a_missing_file_means_no_known_discrepancies(tmp_path: Path) -> None:
    assert load(tmp_path / "absent.toml") == []


def test_an_unknown_condition_is_rejected_with_the_known_ones_listed(tmp_path: Path) -> None:
    path = _write(tmp_path, 'when = "always"\n')
    message = r"discrepancy #1 has when='always'; known conditions: bce_saturated, softplus_exp_overflows"
    with pytest.raises(ValueError, match=message):
        load(path)


def test_an_unknown_activation_error_model_is_rejected_with_the_allowed_one(tmp_path: Path) -> None:
    path = _write(tmp_path, 'activation_error = "relative"\n')
    message = r"discrepancy #1 has activation_error='relative'; allowed: 'absolute'"
    with pytest.raises(ValueError, match=message):
        load(path)


def test_an_entry_without_a_reason_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "known.toml"
    path.write_text('[[discrepancy]]\ntest = "test_*"\nquantity = "dW"\n')
    with pytest.raises(ValueError, match=r"discrepancy #1 lacks reason"):
        load(path)


def test_brackets_in_a_test_pattern_are_literal() -> None:
    entry = _entry(test="test_*[torch*]")
    assert entry.explains(TEST_ID, ENTRY_ONLY, _case())
    # As an fnmatch character class, [torch*] would match this id's last character.
    assert not entry.explains("test_every_quantity_matches_reference_t", ENTRY_ONLY, _case())
    assert not entry.explains("test_every_quantity_matches_reference[jax-cpu-float32]", ENTRY_ONLY, _case())


def test_the_quantity_is_a_key_prefix() -> None:
    entry = _entry(quantity="delta")
    assert entry.explains(TEST_ID, ENTRY_ONLY, _case())
    same_finding_in_dW = _finding([1.0, 0.5 + 1e-6], [1.0, 0.5], 1e-7, 1e-5, key="dW[1]")
    assert not entry.explains(TEST_ID, same_finding_in_dW, _case())


def test_the_activations_filter_needs_one_of_its_activations_in_the_case() -> None:
    entry = _entry(activations=("sigmoid", "gelu"))
    assert entry.explains(TEST_ID, ENTRY_ONLY, _case(("sigmoid", "identity")))
    assert not entry.explains(TEST_ID, ENTRY_ONLY, _case(("tanh", "identity")))


def test_the_losses_filter_needs_the_case_to_use_one_of_its_losses() -> None:
    entry = _entry(losses=("bce_logits",))
    assert entry.explains(TEST_ID, ENTRY_ONLY, _case(("tanh", "identity"), loss="bce_logits"))
    assert not entry.explains(TEST_ID, ENTRY_ONLY, _case(("tanh", "identity"), loss="sse"))


def test_an_entry_without_max_relative_never_explains_a_tensor_wise_failure() -> None:
    entry = _entry()
    assert entry.explains(TEST_ID, ENTRY_ONLY, _case())
    assert not entry.explains(TEST_ID, TENSOR_WIDE, _case())


def test_max_relative_explains_only_small_relative_errors() -> None:
    assert ENTRY_ONLY.mismatched_relative == pytest.approx(1e-6)
    assert _entry(max_relative=1e-5).explains(TEST_ID, ENTRY_ONLY, _case())
    assert not _entry(max_relative=1e-7).explains(TEST_ID, ENTRY_ONLY, _case())
    assert not _entry(max_relative=1e-5).explains(TEST_ID, TENSOR_WIDE, _case())


def test_an_absolute_activation_entry_explains_only_errors_within_that_model() -> None:
    entry = _entry(absolute_activation=True)
    assert entry.explains(TEST_ID, ENTRY_ONLY, _case())
    # Beyond the absolute-activation allowance of one entry, but not of the tensor's largest.
    beyond_loose = Comparison("dE/dz of layer 1, Eq. 14", "delta[1]", "float32", np.array([1.0, 0.5 + 1e-4]),
                              np.array([1.0, 0.5]), np.full(2, 1e-7), np.array([1e-3, 1e-5]))
    assert not beyond_loose.tensor_failed and not beyond_loose.within_loose
    assert _entry().explains(TEST_ID, beyond_loose, _case())
    assert not entry.explains(TEST_ID, beyond_loose, _case())


def test_a_condition_explains_any_failure_but_only_in_the_cases_it_names() -> None:
    entry = _entry(losses=("bce",), when="bce_saturated")
    saturated, moderate = _one_sigmoid_unit(100.0), _one_sigmoid_unit(0.5)
    assert CONDITIONS["bce_saturated"](saturated) and not CONDITIONS["bce_saturated"](moderate)
    assert entry.explains(TEST_ID, TENSOR_WIDE, saturated)
    assert not entry.explains(TEST_ID, ENTRY_ONLY, moderate)


@pytest.mark.parametrize("body", ['forward_relative = 3e-8\n', 'activations = ["hardswish"]\nforward_relative = 0.5\n'])
def test_forward_relative_needs_activations_and_a_small_float(tmp_path: Path, body: str) -> None:
    with pytest.raises(ValueError, match=r"forward_relative=.*allowed: a float in \(0, 1e-3\)"):
        load(_write(tmp_path, body))


def test_forward_relative_explains_exactly_the_propagated_forward_error() -> None:
    # One hardswish layer under sse: delta = (a - t) g'(z), with every hardswish value off
    # by a relative 2.98e-8 (torch's CUDA float64 hardswish multiplies by float32's 1/6),
    # which a - t magnifies where it cancels.
    net = reference.Network((3, 4), ("hardswish",), loss="sse", reduction="sum")
    case = build_case(net, batch=3, dtype="float64", lr=0.1, seed=11, scales=(3.0, 1.0))
    record = reference.ACTIVATIONS["hardswish"]
    (W, b), = case.params
    z = case.x @ W + b
    a = record.fn(z)
    actual = (a * (1 + 2.98e-8) - case.t) * record.grad(z)
    expected = (a - case.t) * record.grad(z)
    comparison = Comparison("dE/dz of layer 1, Eq. 5", "delta[1]", "float64", actual, expected,
                            np.zeros_like(expected), np.zeros_like(expected))
    assert comparison.entry_failed
    kw = dict(test="test_*", quantity="", reason="r", activations=("hardswish",))
    assert Discrepancy(**kw, forward_relative=3e-8).explains("test_x", comparison, case)
    assert not Discrepancy(**kw, forward_relative=1e-10).explains("test_x", comparison, case)
