"""The range sweep catches faults planted in the frameworks themselves, on every run.

Each fault of ``FAULTS`` (``planted_faults.py``: a public torch or jax function whose
forward is the framework's own and whose derivative is wrong on part of its range) is
installed for one test with ``monkeypatch``; the sweep's cases of the activation it
touches (the identity's, for the linear layer) run through the framework's target with
the known discrepancies as shipped, and must fail naming that activation, a quantity by
its equation and a rerun command.  The control: the same cases pass without the fault.
The sweep is deterministic, so these hold for every seed.  jax runs un-jitted under a
target name of its own per fault, so no faulty program outlives its test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.registry import load_target
from harness import known, results, sweep
from harness.compare import Mismatch
from harness.planted_faults import faults
from harness.selection import Variant
from harness.sweep_check import run_sweep

KNOWN_FILE = Path(__file__).parents[1] / "suite" / "known_discrepancies.toml"
SWEEP_TEST = "test_every_activation_and_loss_matches_reference_across_its_range"
# (fault, the activation whose sweep cases it must fail, dtype)
FAULTS = (
    ("torch-gelu-left-tail-zeroed", "gelu", "float32"),
    ("torch-tanh-relative-1e-7", "tanh", "float64"),
    ("torch-softplus-float32-inside", "softplus", "float64"),
    ("torch-linear-dW-bfloat16", "identity", "float32"),
    ("jax-gelu-left-tail-zeroed", "gelu", "float32"),
    ("jax-matmul-dW-scale", "identity", "float64"),
)


def _variant(framework: str, dtype: str, fault: str | None) -> Variant:
    """The framework's target (torch, or un-jitted jax under a name of the fault's own)."""
    if framework == "torch":
        adapter = load_target("torch")
    else:
        from adapters.jax_adapter import JaxTarget

        adapter = JaxTarget(f"jax-planted-{fault}" if fault else "jax", jit=False)
    return Variant(adapter.name, "cpu", dtype, adapter)


def _run(framework: str, activation: str, dtype: str, fault: str | None) -> None:
    variant = _variant(framework, dtype, fault)
    name = f"{SWEEP_TEST}[{framework}-cpu-{dtype}]"  # the id the known discrepancies match
    recorder = results.Recorder(results.Results(), name, name, known.load([KNOWN_FILE]), 0, "ci")
    cases = [c for c in sweep.sweep_cases(dtype) if c.case.network.activations[0][0] == activation
             and c.case.network.loss == "sse"]
    run_sweep(variant, recorder, cases)


@pytest.mark.parametrize(("fault", "activation", "dtype"), FAULTS, ids=[f for f, _, _ in FAULTS])
def test_sweep_catches_each_planted_framework_fault(fault, activation, dtype, monkeypatch):
    framework = fault.split("-")[0]
    pytest.importorskip(framework)
    faults(framework)[fault].install(monkeypatch.setattr)
    with pytest.raises(Mismatch) as caught:
        _run(framework, activation, dtype, fault)
    message = str(caught.value)
    assert f"\n  - {activation}," in message, f"the failure does not name {activation}:\n{message}"
    assert "Eq. " in message, f"the failure does not name the quantity by its equation:\n{message}"
    assert "rerun exactly this test: " in message, f"the failure does not say how to rerun:\n{message}"


@pytest.mark.parametrize(("fault", "activation", "dtype"), FAULTS, ids=[f for f, _, _ in FAULTS])
def test_same_sweep_cases_pass_without_the_fault(fault, activation, dtype):
    framework = fault.split("-")[0]
    pytest.importorskip(framework)
    _run(framework, activation, dtype, None)
