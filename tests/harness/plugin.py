"""deltacheck's pytest plugin: options, profiles, parametrization, run summary.

``conftest.py`` loads this module; the hooks stay thin and delegate to
``selection`` (what runs), ``known`` (documented discrepancies) and ``results``
(what each comparison recorded).
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from adapters.interface import DTYPES
from harness import known, results, selection, state

HEALTH = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large]
settings.register_profile("dev", max_examples=10, deadline=None, print_blob=True, suppress_health_check=HEALTH)
settings.register_profile(
    "ci", max_examples=60, deadline=None, print_blob=True, derandomize=True, database=None,
    suppress_health_check=HEALTH,
)
settings.register_profile("thorough", max_examples=1000, deadline=None, print_blob=True, suppress_health_check=HEALTH)

# Relative example budgets: un-jitted jax compiles every primitive per new shape
# (~1 s an example here), jax-jit the whole function (0.15-0.9 s a new shape).
TARGET_BUDGET = {"jax": 0.1, "jax-jit": 0.3}
PROJECT_KNOWN = Path(__file__).parents[1] / "suite" / "known_discrepancies.toml"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("deltacheck")
    group.addoption("--frameworks", help="comma-separated frameworks or targets (env DELTACHECK_FRAMEWORKS); default all")
    group.addoption("--devices", help="comma-separated device kinds or names, e.g. cpu,cuda:0 (env DELTACHECK_DEVICES); default every reported device")
    group.addoption("--dtypes", help=f"comma-separated dtypes from {','.join(DTYPES)} (env DELTACHECK_DTYPES); default all")
    group.addoption("--adapter", action="append", default=[], help="import path of an extra adapter module defining TARGETS (env DELTACHECK_ADAPTER, comma-separated)")
    group.addoption("--known-discrepancies", action="append", default=[], metavar="FILE",
                    help=f"a file of known discrepancies, read beside the project's {PROJECT_KNOWN} (repeatable; "
                         "an outside adapter's entries name its own targets)")
    group.addoption("--no-project-discrepancies", action="store_true",
                    help="do not read the project's known-discrepancies file (judge every target by --known-discrepancies alone)")


PROFILES = ("dev", "ci", "thorough")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    profile = config.getoption("hypothesis_profile", None)
    if profile is None:
        settings.load_profile("ci" if os.environ.get("CI") else "dev")
    else:
        try:
            settings.get_profile(profile)
        except Exception:  # hypothesis raises InvalidArgument for an unregistered name
            raise pytest.UsageError(f"--hypothesis-profile names {profile!r}; known profiles: "
                                    f"{', '.join(PROFILES)}") from None
        settings.load_profile(profile)  # before hypothesis's own plugin, so the seed below sees it
    external = tuple(config.getoption("adapter")) + selection.split_option(None, "DELTACHECK_ADAPTER", ())
    try:
        loaded = selection.load_all(tuple(dict.fromkeys(external)))
        frameworks = selection.split_option(config.getoption("frameworks"), "DELTACHECK_FRAMEWORKS", ())
        targets = selection.select_targets(loaded, frameworks or None)
        devices = selection.split_option(config.getoption("devices"), "DELTACHECK_DEVICES", ())
        dtypes = selection.check_dtypes(selection.split_option(config.getoption("dtypes"), "DELTACHECK_DTYPES", DTYPES))
        config.stash[state.VARIANTS] = selection.variants(targets, devices or None, dtypes)
    except selection.UsageError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[state.TARGETS] = targets
    files = [] if config.getoption("no_project_discrepancies") else [PROJECT_KNOWN]
    files += [Path(f) for f in config.getoption("known_discrepancies")]
    try:
        config.stash[state.KNOWN] = known.load(list(dict.fromkeys(files)))
    except known.KnownFileError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[state.SEED] = _run_seed(config)
    config.stash[state.RESULTS] = results.Results()


def _run_seed(config: pytest.Config) -> int:
    """--hypothesis-seed, else the seed the xdist controller chose, else 0 under a
    derandomized profile (``ci``: the same cases on every run), else a fresh one:
    every worker of a run draws the examples a serial run would."""
    seed = config.getoption("hypothesis_seed", None)
    if seed is None:
        seed = getattr(config, "workerinput", {}).get("deltacheck_seed")
    if seed is None and settings().derandomize:
        seed = 0
    return int(seed) if seed is not None else random.SystemRandom().randrange(2**31)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:  # pytest-xdist, on the controller
    node.workerinput["deltacheck_seed"] = node.config.stash[state.SEED]


def pytest_report_header(config: pytest.Config) -> list[str]:
    profile = settings.get_current_profile_name()
    lines = [
        f"deltacheck: hypothesis profile {profile!r} ({settings().max_examples} examples per test), "
        f"seed {config.stash[state.SEED]} (rerun with --hypothesis-seed={config.stash[state.SEED]})",
        f"deltacheck: dtypes {', '.join(sorted({v.dtype for v in config.stash[state.VARIANTS]}, key=DTYPES.index))}",
    ]
    for t in config.stash[state.TARGETS]:
        if t.adapter is None:
            lines.append(f"deltacheck: {t.name}: skipped, {t.missing}")
            continue
        devices = t.adapter.devices()
        modes = "; ".join(f"{d}: {t.adapter.precision_mode(d)}" for d in devices)
        lines.append(f"deltacheck: {t.name} ({t.framework} {t.adapter.version()}) devices {', '.join(devices)}; precision {modes}")
    return lines


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "variant" in metafunc.fixturenames:
        vs = metafunc.config.stash[state.VARIANTS]
        metafunc.parametrize("variant", [_param(v, v.id) for v in vs], ids=[v.id for v in vs])
    if "target_device" in metafunc.fixturenames:
        seen: dict[str, selection.Variant] = {}
        for v in metafunc.config.stash[state.VARIANTS]:
            seen.setdefault(f"{v.target}-{v.device}", v)
        metafunc.parametrize("target_device", [_param(v, k) for k, v in seen.items()], ids=list(seen))


    if "known_reproducer" in metafunc.fixturenames:
        params = [pytest.param((entry, target), id=f"{entry.id}-{target}")
                  for entry in metafunc.config.stash[state.KNOWN] for target in entry.targets]
        metafunc.parametrize("known_reproducer", params)


def _param(v: selection.Variant, id_: str) -> Any:
    marks = [pytest.mark.skip(reason=v.skip_reason)] if v.skip_reason else []
    return pytest.param(v, marks=marks, id=id_)


def example_budget(config: pytest.Config, target: str) -> int:
    return max(2, round(settings().max_examples * TARGET_BUDGET.get(target, 1.0)))


@pytest.fixture
def run_seed(request: pytest.FixtureRequest) -> int:
    return request.config.stash[state.SEED]


@pytest.fixture
def recorder(request: pytest.FixtureRequest) -> results.Recorder:
    config = request.config
    return results.Recorder(config.stash[state.RESULTS], request.node.nodeid, request.node.name,
                            config.stash[state.KNOWN], config.stash[state.SEED], settings.get_current_profile_name())


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    res: results.Results = config.stash[state.RESULTS]
    for line in res.summary_lines(config.stash[state.KNOWN]):
        terminalreporter.write_line(line)
