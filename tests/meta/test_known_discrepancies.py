"""harness.known: the known-discrepancies file is strict, every entry is versioned, bounded
and scoped to what it names, and a finding explains only what it describes."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import reference
from adapters.interface import Result
from harness.compare import Comparison, comparisons
from harness.conditions import CONDITIONS
from harness.crossval import expected_result
from harness.error_model import both_bounds
from harness.known import Discrepancy, KnownFileError, explain_failure, load
from harness.strategies import build_case

ROOT = Path(__file__).resolve().parents[2]
KNOWN_FILE = ROOT / "tests" / "suite" / "known_discrepancies.toml"
REPRO = '[discrepancy.reproducer]\nnetwork = { sizes = [1, 1], activations = ["tanh"] }\ndtype = "float32"\n' \
        'x = [[12.0]]\nparams = [[[[1.0]], [0.0]]]\nt = [[0.0]]\n'
GOOD = ('[[discrepancy]]\nid = "x-tanh"\ntargets = ["torch"]\nversions = { numpy = ">=1" }\nactivations = ["tanh"]\n'
        'activation_error = "absolute"\nreason = "a documented property of the framework, with numbers and a reference"\n')


def _write(tmp_path: Path, body: str, reproducer: str = REPRO) -> Path:
    path = tmp_path / "known.toml"
    path.write_text(body + reproducer)
    return path


def _entry(**fields) -> Discrepancy:
    base = dict(id="e", targets=("torch",), versions={"numpy": ">=1"}, reason="r", activations=("sigmoid",))
    return Discrepancy(**{**base, **fields})


def test_the_real_file_parses_and_every_entry_is_versioned_bounded_and_reproducible() -> None:
    entries = load([KNOWN_FILE])
    assert entries
    for d in entries:
        assert d.versions and d.targets and (d.activations or d.losses) and d.reproducer, d.id
        assert sum(x is not None and x is not False for x in
                   (d.max_relative, d.absolute_activation or None, d.forward_relative, d.predicted)) == 1, d.id


def test_a_good_entry_loads(tmp_path: Path) -> None:
    (entry,) = load([_write(tmp_path, GOOD)])
    assert entry.id == "x-tanh" and entry.absolute_activation and entry.in_range


@pytest.mark.parametrize(("body", "message"), [
    (GOOD.replace("activations =", "actvations ="), r"unknown key\(s\) actvations; allowed keys: id, targets"),
    (GOOD.replace('versions = { numpy = ">=1" }\n', ""), r"lacks versions"),
    (GOOD.replace('activations = ["tanh"]\n', ""), r"names no activations and no losses, so it would cover every case"),
    (GOOD.replace('activation_error = "absolute"\n', 'when = "bce_saturated"\n'),
     r"needs exactly one bound of max_relative, activation_error, forward_relative, predicted; it has none"),
    (GOOD.replace('">=1"', '"about 1"'), r"versions = .*PEP 440 specifiers"),
    (GOOD.replace('targets = ["torch"]', 'targets = "torch"'), r"targets = 'torch'; allowed: a non-empty list of names"),
    (GOOD.replace('activation_error = "absolute"', 'max_relative = 2.0'), r"max_relative = 2.0; allowed: a number in \(0, 1\]"),
    (GOOD + 'when = "always"\n', r"when = 'always'; allowed: 'bce_saturated'"),
    (GOOD.replace("reason = \"a documented", "reason = \"short\"\n#"), r"reason = 'short'; allowed: a real reason"),
    (GOOD + 'raises = { type = "RuntimeError" }\n', r"raises = .*allowed: \{ type = \"ExceptionName\", match ="),
])
def test_a_bad_entry_is_a_one_line_error_naming_the_file_and_the_entry(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(KnownFileError, match=message) as error:
        load([_write(tmp_path, body)])
    assert str(error.value).startswith(f"{tmp_path / 'known.toml'}: entry #1") and "\n" not in str(error.value)


def test_a_missing_file_and_a_syntax_error_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(KnownFileError, match=r"absent.toml: no such known-discrepancies file"):
        load([tmp_path / "absent.toml"])
    bad = tmp_path / "bad.toml"
    bad.write_text("[[discrepancy]\nid = 1\n")
    with pytest.raises(KnownFileError, match=r"bad.toml: not valid TOML: .*line 1"):
        load([bad])


def test_a_reproducer_that_does_not_build_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(KnownFileError, match=r"reproducer does not build: unknown activation 'tanhh'"):
        load([_write(tmp_path, GOOD, REPRO.replace('"tanh"', '"tanhh"'))])


def test_a_bad_file_is_a_usage_error_before_any_test_runs(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace("activations =", "actvations ="))
    run = subprocess.run([sys.executable, "-m", "pytest", "tests/meta/test_reference_errors.py", "-p", "no:xdist",
                          "--known-discrepancies", str(path), "--report-dir", "none", "-q"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == pytest.ExitCode.USAGE_ERROR, run.stdout + run.stderr
    assert f"ERROR: {path}: entry #1 (x-tanh): unknown key(s) actvations" in run.stderr


def test_an_entry_applies_only_inside_its_version_range() -> None:
    inside, outside = _entry(versions={"numpy": ">=1"}), _entry(versions={"numpy": "<1"})
    assert inside.in_range and not outside.in_range
    assert "is outside <1" in outside.version_verdict[1]
    assert not _entry(versions={"no-such-distribution": ">=0"}).in_range


def _case(activations=("sigmoid", "identity"), loss: str = "sse", dtype: str = "float32"):
    net = reference.Network((2, 3, 1), activations, loss=loss)
    return build_case(net, batch=2, dtype=dtype, lr=0.1, seed=0, scales=(1.0, 1.0, 1.0))


def test_an_entry_applies_to_the_targets_devices_dtypes_and_activations_it_names() -> None:
    case = _case()
    entry = _entry(devices=("cpu",), dtypes=("float32",))
    assert entry.applies("torch", "cpu", "float32", "test_x[torch-cpu-float32]", case)
    assert not entry.applies("torch-func", "cpu", "float32", "test_x", case)  # a target it does not name
    assert not entry.applies("mine", "cpu", "float32", "test_x", case)  # an outside adapter's target
    assert not entry.applies("torch", "cuda:0", "float32", "test_x", case)
    assert not entry.applies("torch", "cpu", "float64", "test_x", case)
    assert not entry.applies("torch", "cpu", "float32", "test_x", _case(("tanh", "identity")))


def _framework_result(case, wrong: dict):
    """What a framework returns whose activation derivatives are ``wrong[name](z, g', g)``:
    the reference's own computation with those derivatives swapped in."""
    import reference.backprop as backprop

    saved = backprop.ACTIVATIONS
    patched = dict(saved)
    for name, fault in wrong.items():
        record = saved[name]
        patched[name] = dataclasses.replace(
            record, grad=lambda z, _r=record, _f=fault, **p: _f(z, _r.grad(z, **p), _r.fn(z, **p)))
    backprop.ACTIVATIONS = patched
    try:
        return expected_result(case)
    finally:
        backprop.ACTIVATIONS = saved


def _sigmoid_from_output(z, grad, value):
    y = value.astype(np.float32).astype(np.float64)  # sigmoid' = y (1 - y) from the rounded output
    return y * (1 - y)


def _gelu_zero_tail(z, grad, value):
    return np.where(z < -4.0, 0.0, grad)  # jax 0.4.33's 1 + erf cancelling, in float32


def _comparisons_of(case, result: Result):
    bounds, loose = both_bounds(case.network, case.params, case.x, case.t, dtype=case.dtype, lr=case.lr)
    return comparisons(case, result, expected_result(case), bounds, loose)


def test_a_sigmoid_exemption_never_covers_a_wrong_gelu_derivative_beside_it() -> None:
    net = reference.Network((3, 4, 2), ("gelu", "sigmoid"), loss="sse")
    case = build_case(net, batch=6, dtype="float32", lr=0.1, seed=5, scales=(1.0, 3.0, 10.0))
    entry = _entry(activations=("sigmoid",), absolute_activation=True)
    applies = lambda e: e.applies("torch", "cpu", "float32", "test_x", case)  # noqa: E731
    # The sigmoid finding alone: explained.
    finding = [c for c in _comparisons_of(case, _framework_result(case, {"sigmoid": _sigmoid_from_output})) if c.failed]
    assert finding and all(explain_failure([entry], applies, c, case) == [entry] for c in finding)
    # With gelu' zeroed below -4 as well (an absolute error of a few u, which the
    # whole-network absolute-activation model would allow): the gelu layer's delta fails.
    both = _framework_result(case, {"sigmoid": _sigmoid_from_output, "gelu": _gelu_zero_tail})
    unexplained = [c for c in _comparisons_of(case, both) if c.failed and not explain_failure([entry], applies, c, case)]
    assert [c.key for c in unexplained if c.key == "delta[1]"]
    assert all(c.within_loose for c in unexplained)
    # The same wrong gelu is explained only once an entry names gelu.
    gelu = _entry(id="g", activations=("gelu",), absolute_activation=True)
    assert all(explain_failure([entry, gelu], applies, c, case) for c in _comparisons_of(case, both) if c.failed)


def test_entries_for_two_activations_of_one_network_explain_their_findings_together() -> None:
    net = reference.Network((3, 4, 2), ("tanh", "sigmoid"), loss="sse")
    case = build_case(net, batch=6, dtype="float32", lr=0.1, seed=5, scales=(1.0, 10.0, 10.0))
    tanh_from_output = lambda z, grad, value: 1 - value.astype(np.float32).astype(np.float64) ** 2  # noqa: E731
    result = _framework_result(case, {"sigmoid": _sigmoid_from_output, "tanh": tanh_from_output})
    entries = [_entry(id="t", activations=("tanh",), absolute_activation=True),
               _entry(id="s", activations=("sigmoid",), absolute_activation=True)]
    applies = lambda e: e.applies("torch", "cpu", "float32", "test_x", case)  # noqa: E731
    failing = [c for c in _comparisons_of(case, result) if c.failed]
    assert failing and all(explain_failure(entries, applies, c, case) for c in failing)


def _finding(actual, expected, allowed: float, loose: float, key: str = "delta[1]") -> Comparison:
    e = np.asarray(expected, np.float64)
    return Comparison("dE/dz of layer 1, Eq. 14", key, "float32", np.asarray(actual, np.float64), e,
                      np.full(e.shape, allowed), np.full(e.shape, loose))


ENTRY_ONLY = _finding([1.0, 0.5 + 1e-6], [1.0, 0.5], allowed=1e-7, loose=1e-5)


def test_max_relative_explains_only_small_relative_errors_in_the_quantities_named() -> None:
    case = _case()
    assert _entry(max_relative=1e-5).explains(ENTRY_ONLY, case)
    assert not _entry(max_relative=1e-7).explains(ENTRY_ONLY, case)
    assert not _entry(max_relative=1e-5, quantities=("dW",)).explains(ENTRY_ONLY, case)


def test_nonfinite_explains_only_the_inf_and_nan_entries() -> None:
    case = _case()
    overflow = _finding([np.inf, 0.5], [1.0, 0.5], allowed=1e-7, loose=1e-5)
    also_off = _finding([np.inf, 0.6], [1.0, 0.5], allowed=1e-7, loose=1e-5)
    entry = _entry(nonfinite=True, max_relative=1e-6)
    assert entry.explains(overflow, case) and not entry.explains(also_off, case)
    assert not _entry(max_relative=1e-6).explains(overflow, case)


def test_a_crash_is_explained_only_by_the_exception_an_entry_names() -> None:
    from harness.known import Raises

    raises = Raises("RuntimeError", "between 0 and 1")
    assert raises.matches(RuntimeError("all elements of input should be between 0 and 1"))
    assert not raises.matches(RuntimeError("CUDA error: device-side assert triggered"))
    assert not raises.matches(ValueError("between 0 and 1"))


def test_the_bce_hessian_condition_uses_each_dtypes_own_roundoff() -> None:
    # z = -6: 2e-12 / (a (1 - a))^2 = 3.3e-7 -- above float32's u (6e-8), below float16's (4.9e-4).
    net = reference.Network((1, 1), ("sigmoid",), loss="bce")
    case = build_case(net, batch=1, dtype="float32", lr=0.1, seed=0, scales=(1.0, 1.0))
    case = dataclasses.replace(case, params=[(np.array([[1.0]]), np.zeros(1))], x=np.array([[-6.0]]))
    assert CONDITIONS["bce_hessian_eps"](case)
    assert not CONDITIONS["bce_hessian_eps"](dataclasses.replace(case, dtype="float16"))
    assert not CONDITIONS["bce_hessian_eps"](dataclasses.replace(case, dtype="bfloat16"))
