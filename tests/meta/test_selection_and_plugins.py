"""The plugin as a user meets it: selection options and their environment
variables, usage errors that list what exists, an adapter from outside the
repository, skips that say what is missing, and the report header.

Each test runs pytest on the real cross-validation module.  Runs that only
collect, or whose tests are all skipped, run in this process (a subprocess would
spend ~4 s re-importing torch and jax for each); the two that need a fresh
interpreter -- one executing an outside adapter's tests, one without jax -- run in
a subprocess, with the dev profile, one dtype and a fixed seed.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
from pathlib import Path

import pytest
from hypothesis import settings

from adapters.interface import DTYPES
from adapters.registry import FRAMEWORK_OF_TARGET

pytest_plugins = ["pytester"]

_MISSING = [name for name in ("torch", "jax") if importlib.util.find_spec(name) is None]
NEEDS_TORCH = pytest.mark.skipif(
    "torch" in _MISSING, reason="torch is not installed: the outside adapter wraps torch's target"
)
NEEDS_BOTH = pytest.mark.skipif(
    bool(_MISSING), reason=f"the header check needs torch and jax; not installed: {', '.join(_MISSING)}"
)
NEEDS_ONE = pytest.mark.skipif(
    len(_MISSING) == 2, reason="an unknown device is judged against an installed framework's devices"
)

REPO = Path(__file__).resolve().parents[2]
SUITE = REPO / "tests" / "suite" / "test_cross_validation.py"
KNOWN_FILE = REPO / "tests" / "suite" / "known_discrepancies.toml"
ENVIRONMENT = ("DELTACHECK_FRAMEWORKS", "DELTACHECK_DEVICES", "DELTACHECK_DTYPES", "DELTACHECK_ADAPTER", "CI")
ARGS = ("-p", "no:cacheprovider")
UNKNOWN_FRAMEWORK = (
    "ERROR: --frameworks names 'nope'; known targets: torch, torch-func, jax, jax-jit; "
    "known frameworks: jax, torch"
)
UNKNOWN_DTYPE = f"ERROR: --dtypes names 'float8'; known dtypes: {', '.join(DTYPES)}"

MINI_TORCH = '''"""An adapter from outside deltacheck: torch's eager target under its own name."""
from adapters.torch_adapter import TARGETS as _TORCH


class MiniTorch:
    name = "mini-torch"
    framework = "mini-torch"

    def __init__(self):
        self._torch = _TORCH["torch"]

    def version(self):
        return "mini-" + self._torch.version()

    def devices(self):
        return ["cpu"]

    def precision_mode(self, device):
        return self._torch.precision_mode(device)

    def compute(self, problem, *, device, dtype, lr):
        return self._torch.compute(problem, device=device, dtype=dtype, lr=lr)

    def train(self, problem, *, device, dtype, lr, steps):
        return self._torch.train(problem, device=device, dtype=dtype, lr=lr, steps=steps)


TARGETS = {"mini-torch": MiniTorch()}
'''
# Loaded with -p before the deltacheck plugin: `import jax` then fails, as on a
# machine where jax is not installed (Python's own way to block an import).
HIDE_JAX = 'import sys\n\nsys.modules["jax"] = None\n'


@pytest.fixture(autouse=True)
def _no_selection_from_the_outer_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ENVIRONMENT:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DELTACHECK_REPORT_DIR", "none")


@pytest.fixture(autouse=True)
def _outer_hypothesis_profile():
    """An in-process run loads its own hypothesis profile, which is global: restore ours.
    (In-process runs never pass --hypothesis-seed, which would force a global seed.)"""
    profile = settings.get_current_profile_name()
    yield
    settings.load_profile(profile)


def _pytest(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_inprocess(str(SUITE), *ARGS, *args)


def _pytest_subprocess(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(str(SUITE), *ARGS, *args, timeout=300)


def _collected_ids(result: pytest.RunResult) -> list[str]:
    """The parametrization ids of every collected test, from ``--co -q`` output."""
    return [m.group(1) for line in result.outlines if (m := re.search(r"::\w+\[(.+)\]$", line))]


def _outside_adapter(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """Adapter modules in a directory of their own, on PYTHONPATH (for a subprocess)
    and on sys.path (for an in-process run)."""
    outside = pytester.mkdir("outside")
    (outside / "mini_torch_adapter.py").write_text(MINI_TORCH)
    (outside / "no_targets_adapter.py").write_text('"""Forgot TARGETS."""\nNAME = "nothing"\n')
    monkeypatch.setenv("PYTHONPATH", str(outside))
    pytester.syspathinsert(outside)


@pytest.mark.parametrize(
    ("args", "environment", "message"),
    [
        (["--frameworks", "nope"], {}, UNKNOWN_FRAMEWORK),
        ([], {"DELTACHECK_FRAMEWORKS": "nope"}, UNKNOWN_FRAMEWORK),
        (["--dtypes", "float8"], {}, UNKNOWN_DTYPE),
        ([], {"DELTACHECK_DTYPES": "float32,float8"}, UNKNOWN_DTYPE),
        pytest.param(["--devices", "quantum"], {},
                     "ERROR: --devices names 'quantum'; * devices are kinds cpu, * or names such as *",
                     marks=NEEDS_ONE),
    ],
    ids=["frameworks-option", "frameworks-env", "dtypes-option", "dtypes-env", "devices-option"],
)
def test_an_unknown_selection_is_a_usage_error_listing_what_exists(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
    args: list[str], environment: dict[str, str], message: str,
) -> None:
    for var, value in environment.items():
        monkeypatch.setenv(var, value)
    result = _pytest(pytester, "--co", "-q", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


@pytest.mark.parametrize("how", ["options", "environment", "keyword"])
def test_jax_in_float32_selects_only_the_jax_float32_variants(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    args = ["--co", "-q"]
    if how == "options":
        args += ["--frameworks", "jax", "--dtypes", "float32"]
    elif how == "environment":
        monkeypatch.setenv("DELTACHECK_FRAMEWORKS", "jax")
        monkeypatch.setenv("DELTACHECK_DTYPES", "float32")
    else:
        args += ["-k", "jax and float32"]
    result = _pytest(pytester, *args)
    assert result.ret == pytest.ExitCode.OK
    ids = _collected_ids(result)
    assert ids and all(re.fullmatch(r"jax(-jit)?-\w+(:\d+)?-float32", i) for i in ids), ids
    result.stdout.fnmatch_lines([
        "*::test_every_quantity_matches_reference[[]jax-cpu-float32]",
        "*::test_every_quantity_matches_reference[[]jax-jit-cpu-float32]",
    ])


@NEEDS_TORCH
def test_an_adapter_from_outside_the_repository_plugs_in_and_its_tests_pass(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _outside_adapter(pytester, monkeypatch)
    # mini-torch is torch underneath: torch's documented findings hold for it too, but the
    # project's entries name torch's targets, so its author lists them for mini-torch.
    known = pytester.path / "known.toml"
    known.write_text(KNOWN_FILE.read_text().replace('id = "', 'id = "mini-')
                     .replace('targets = ["torch", "torch-func"]', 'targets = ["mini-torch"]')
                     .replace('targets = ["torch"]', 'targets = ["mini-torch"]'))
    result = _pytest_subprocess(
        pytester, "--adapter", "mini_torch_adapter", "--frameworks", "mini-torch", "--dtypes", "float64",
        "--known-discrepancies", str(known), "--hypothesis-profile=dev", "--hypothesis-seed=0", "-v",
    )
    result.stdout.fnmatch_lines([
        "deltacheck: mini-torch (mini-torch mini-*) devices cpu; precision cpu: *",
        "*::test_every_quantity_matches_reference[[]mini-torch-cpu-float64] PASSED*",
    ])
    outcomes = result.parseoutcomes()
    assert result.ret == pytest.ExitCode.OK and outcomes.get("passed", 0) >= 1, outcomes
    assert set(outcomes) <= {"passed", "warnings"}, outcomes


@NEEDS_TORCH
def test_an_adapter_named_in_the_environment_is_collected(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _outside_adapter(pytester, monkeypatch)
    monkeypatch.setenv("DELTACHECK_ADAPTER", "mini_torch_adapter")
    result = _pytest(pytester, "--co", "-q", "--frameworks", "mini-torch")
    assert result.ret == pytest.ExitCode.OK
    assert set(_collected_ids(result)) == {f"mini-torch-cpu-{d}" for d in DTYPES}


def test_an_adapter_module_without_targets_is_a_usage_error_naming_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _outside_adapter(pytester, monkeypatch)
    result = _pytest(pytester, "--co", "-q", "--adapter", "no_targets_adapter")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: *'no_targets_adapter'*TARGETS*"])


def _header_devices(result: pytest.RunResult, target: str) -> list[str]:
    line = next(l for l in result.outlines if l.startswith(f"deltacheck: {target} ("))
    return re.search(r" devices (.*?); precision", line).group(1).split(", ")


@NEEDS_BOTH
def test_the_header_lists_targets_profile_and_seed_and_missing_devices_skip_with_a_reason(
    pytester: pytest.Pytester,
) -> None:
    result = _pytest(pytester, "--dtypes", "float32", "-rs", "-k", "mps or tpu", "--hypothesis-profile=dev")
    profile_and_seed = (
        r"deltacheck: hypothesis profile 'dev' \(10 examples per test\), "
        r"seed (\d+) \(rerun with --hypothesis-seed=\1\)"
    )
    result.stdout.re_match_lines([profile_and_seed, r"deltacheck: dtypes float32$"])
    for target, framework in FRAMEWORK_OF_TARGET.items():
        version = importlib.metadata.version(framework)
        result.stdout.fnmatch_lines([
            f"deltacheck: {target} ({framework} {version}) devices *; precision cpu: ?*"
        ])
    for framework, kind in (("torch", "mps"), ("jax", "tpu")):
        reported = _header_devices(result, framework)
        if not any(d.split(":")[0] == kind for d in reported):
            result.stdout.fnmatch_lines([
                f"SKIPPED [[]*] *: {framework} reports no '{kind}' device (it reports: {', '.join(reported)})"
            ])


def test_a_framework_that_is_not_installed_is_skipped_with_the_import_error(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(hide_jax=HIDE_JAX)
    result = _pytest_subprocess(pytester, "-p", "hide_jax", "--frameworks", "jax", "--dtypes", "float32", "-rs")
    missing = "jax is not installed (adapters.jax_adapter could not be imported: *)"
    result.stdout.fnmatch_lines([
        f"deltacheck: jax: skipped, {missing}",
        f"deltacheck: jax-jit: skipped, {missing}",
        f"SKIPPED [[]*] *: {missing}",
    ])
    outcomes = result.parseoutcomes()
    assert result.ret == pytest.ExitCode.OK and set(outcomes) == {"skipped"}, outcomes


def test_an_unknown_hypothesis_profile_is_a_usage_error_listing_the_profiles(pytester: pytest.Pytester) -> None:
    result = _pytest(pytester, "--co", "-q", "--hypothesis-profile", "nosuch")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --hypothesis-profile names 'nosuch'; known profiles: dev, ci, thorough"])


def test_the_ci_profile_draws_the_same_cases_without_the_ci_variable(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)
    result = _pytest(pytester, "--co", "--hypothesis-profile", "ci", "--frameworks", "torch")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["deltacheck: hypothesis profile 'ci' (60 examples per test), seed 0 *"])
