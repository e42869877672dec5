"""The run's report: every test outcome and comparison record, written once per run.

``--report-dir DIR`` (env ``DELTACHECK_REPORT_DIR``; default ``deltacheck-report``;
``none`` writes nothing) receives ``report.md``, a self-contained ``report.html``,
``results.json`` and the plots, replacing the previous report only once the new one
is complete.  A run that was interrupted, hit an internal error, or ran no test
writes nothing.  For a JUnit XML file use pytest's own ``--junitxml=PATH``.

Under pytest-xdist (``-n auto``) every worker sends its records to the controller
(``workeroutput``), which merges them, prints the run summary and writes the report.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections import Counter
from importlib import metadata
from typing import Any

import pytest
from hypothesis import settings

from harness import results, state
from harness.report import write_report
from harness.report_data import Outcome, RunData, column_of

DEFAULT_DIR = "deltacheck-report"
PACKAGES = ("numpy", "hypothesis", "pytest", "pytest-xdist", "torch", "jax", "jaxlib", "optax", "ml_dtypes", "mpmath")
WRITTEN_ON = (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
PAYLOAD = "deltacheck_results"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("deltacheck").addoption(
        "--report-dir",
        help=f"directory for the run's report (env DELTACHECK_REPORT_DIR); default {DEFAULT_DIR}; 'none' disables",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(ReportPlugin(config), "deltacheck_report")


def report_dir(config: pytest.Config) -> str | None:
    value = config.getoption("report_dir") or os.environ.get("DELTACHECK_REPORT_DIR") or DEFAULT_DIR
    return None if value.lower() == "none" else value


def versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "platform": platform.platform()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def environment(config: pytest.Config) -> dict[str, Any]:
    """Versions, targets with their devices and precision modes, and the run's settings."""
    targets = {}
    for t in config.stash[state.TARGETS]:
        devices = t.adapter.devices() if t.adapter else []
        targets[t.name] = {
            "framework": t.framework, "version": t.adapter.version() if t.adapter else None, "missing": t.missing,
            "devices": devices, "precision": {d: t.adapter.precision_mode(d) for d in devices} if t.adapter else {},
        }
    seed = config.stash[state.SEED]
    profile = settings.get_current_profile_name()
    return {
        "versions": versions(), "targets": targets,
        "variants": [{"id": v.id, "target": v.target, "device": v.device, "dtype": v.dtype, "skip": v.skip_reason}
                     for v in config.stash[state.VARIANTS]],
        "profile": profile, "max_examples": settings().max_examples, "seed": seed,
        "args": list(config.invocation_params.args),
        "rerun": " ".join(["pytest", *_without_seed(config.invocation_params.args),
                           f"--hypothesis-profile={profile}", f"--hypothesis-seed={seed}"]),
    }


def _without_seed(args: tuple[str, ...]) -> list[str]:
    """The run's arguments less the hypothesis profile and seed (the rerun command sets them)."""
    out, skip = [], False
    for arg in args:
        if not skip and not arg.startswith(("--hypothesis-seed", "--hypothesis-profile")):
            out.append(arg)
        skip = arg in ("--hypothesis-seed", "--hypothesis-profile")
    return out


def outcome_of(rep: pytest.TestReport) -> Outcome | None:
    """The test's outcome from one phase's report: the call, or a setup that did not
    pass (a skip or an error), or a teardown that failed."""
    if not (rep.when == "call" or (rep.when == "setup" and not rep.passed) or (rep.when == "teardown" and rep.failed)):
        return None
    if hasattr(rep, "wasxfail"):
        return Outcome(rep.nodeid, "xfailed" if rep.skipped else "xpassed", str(rep.wasxfail), rep.duration)
    if rep.skipped:
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        return Outcome(rep.nodeid, "skipped", reason.removeprefix("Skipped: "), rep.duration)
    if rep.failed:
        return Outcome(rep.nodeid, "failed" if rep.when == "call" else "error", _message(rep), rep.duration)
    return Outcome(rep.nodeid, "passed", "", rep.duration)


def _message(rep: pytest.TestReport | pytest.CollectReport) -> str:
    """The exception's first line, or the last ``E`` line of a collection error."""
    crash = getattr(rep.longrepr, "reprcrash", None)
    if crash is not None:
        return crash.message.strip().split("\n", 1)[0][:300]
    lines = str(rep.longrepr).strip().splitlines() or [""]
    errors = [line[1:].strip() for line in lines if line.startswith("E ")]
    return (errors[-1] if errors else lines[0])[:300]


class ReportPlugin:
    """Hooks registered per run; on an xdist worker only the hand-over to the controller acts."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.outcomes: dict[str, Outcome] = {}
        self.started = time.time()
        self.per_worker: Counter = Counter()
        self.written: str | None = None

    @property
    def is_worker(self) -> bool:
        return hasattr(self.config, "workerinput")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        found = outcome_of(report)
        if found is not None:
            self.outcomes[found.nodeid] = found

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:  # a module that cannot be imported (xdist, --continue-on-collection-errors)
            self.outcomes[report.nodeid] = Outcome(report.nodeid, "error", _message(report))

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        payload = getattr(node, "workeroutput", {}).get(PAYLOAD)
        if payload is None:
            return
        doc = json.loads(payload)
        merged: results.Results = self.config.stash[state.RESULTS]
        self.per_worker[node.gateway.id] += merged.merge(doc)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        res: results.Results = self.config.stash[state.RESULTS]
        if self.is_worker:
            self.config.workeroutput[PAYLOAD] = json.dumps(res.payload())  # type: ignore[attr-defined]  # set by xdist
            return
        target = report_dir(self.config)
        if target is None or exitstatus not in WRITTEN_ON or not self.outcomes:
            return
        env = environment(self.config)
        env.update(started=time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started)),
                   duration_s=time.time() - self.started, exitstatus=int(exitstatus),
                   workers=dict(self.per_worker) or {"main": len(res.records)},
                   known_discrepancies=res.known_rows(self.config.stash[state.KNOWN]))
        data = RunData(env, list(self.outcomes.values()), list(res.records), list(res.training_runs))
        seconds = write_report(self.config.invocation_params.dir / target, data)
        self.written = f"deltacheck: report in {target}/report.html ({len(data.records)} records, written in {seconds:.1f} s)"

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        env = {"variants": [{"id": v.id, "target": v.target, "device": v.device}
                            for v in self.config.stash[state.VARIANTS]]}
        per_target: dict[str, Counter] = {}
        for o in self.outcomes.values():
            column = column_of(o.param, env)
            target = next((v["target"] for v in env["variants"] if column in (v["id"], f"{v['target']}-{v['device']}")),
                          "reference")
            per_target.setdefault(target, Counter())[o.outcome] += 1
        for target, counts in per_target.items():
            terminalreporter.write_line(
                f"deltacheck: {target:<12} " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
        if self.written:
            terminalreporter.write_line(self.written)
