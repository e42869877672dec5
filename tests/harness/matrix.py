"""Merge the version matrix's reports into one table across versions.

Each tox environment of the matrix (``tox.ini``) writes its report into
``deltacheck-report/matrix/<env>/``.  This script reads every ``<env>/results.json``
there and writes ``matrix.md`` beside them, and prints it: the versions per
environment, the outcome counts, the largest error/allowed per target and dtype,
the known discrepancies each environment matched, and every test whose outcome
differs between environments (or that fails somewhere) -- a kink convention or a
known discrepancy that appears or disappears between releases shows there.

    python tests/harness/matrix.py [DIRECTORY]     # default deltacheck-report/matrix
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path

# As a script, import what pytest's ``pythonpath`` (pyproject.toml) makes importable.
sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parents[1])]

from harness.report import load, markdown  # noqa: E402 (after the path set-up)
from harness.report_data import Outcome, RunData, worst_first  # noqa: E402

DEFAULT_DIR = Path("deltacheck-report") / "matrix"
PACKAGES = ("python", "numpy", "jax", "jaxlib", "optax", "ml_dtypes", "torch", "hypothesis")
OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")
MAX_ROWS = 300
ABSENT = "-"


def load_runs(directory: Path) -> dict[str, RunData]:
    """Every environment's run under ``directory``, by environment name."""
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} does not exist; run the matrix first (tox), "
                                "or name the directory holding <env>/results.json")
    runs = {d.name: load(d) for d in sorted(directory.iterdir()) if (d / "results.json").is_file()}
    if not runs:
        raise FileNotFoundError(f"{directory} holds no <env>/results.json; run the matrix first (tox)")
    return runs


def _status(outcome: Outcome | None) -> str:
    """A framework that is not installed in an environment is absent there, not a difference."""
    if outcome is None or (outcome.outcome == "skipped" and "is not installed" in outcome.reason):
        return ABSENT
    return outcome.outcome


def differences(runs: dict[str, RunData]) -> list[list[str]]:
    """Tests whose outcome differs between the environments that ran them, or that
    fail in one: a row per test, a column per environment."""
    by_env = {env: {o.nodeid: o for o in run.outcomes} for env, run in runs.items()}
    nodeids = list(dict.fromkeys(n for outcomes in by_env.values() for n in outcomes))
    rows = []
    for nodeid in nodeids:
        statuses = [_status(by_env[env].get(nodeid)) for env in runs]
        present = {s for s in statuses if s != ABSENT}
        if len(present) > 1 or present & {"failed", "error", "xpassed"}:
            rows.append([nodeid.rsplit("::", 1)[-1], *statuses])
    return rows


def worst_table(runs: dict[str, RunData]) -> list[list[str]]:
    worst: dict[tuple[str, str], dict[str, float]] = {}
    for env, run in runs.items():
        for r in run.records:
            if r.known is None:
                cell = worst.setdefault((r.target, r.dtype), {})
                cell[env] = max(cell.get(env, 0.0), worst_first(r.entry_ratio))
    return [[t, d, *(f"{cells[e]:.3g}" if e in cells else ABSENT for e in runs)]
            for (t, d), cells in sorted(worst.items())]


def known_table(runs: dict[str, RunData]) -> list[list[str]]:
    """Comparisons that matched each known discrepancy, per target and environment."""
    counts: dict[tuple[str, str], Counter] = {}
    for env, run in runs.items():
        for r in run.records:
            if r.known is not None:
                counts.setdefault((r.target, r.known), Counter())[env] += 1
    return [[t, entry, *(str(c[e]) if c[e] else ABSENT for e in runs)]
            for (t, entry), c in sorted(counts.items())]


def entry_table(runs: dict[str, RunData]) -> list[list[str]]:
    """Per known entry and environment: out of range, or comparisons explained and the
    reproducer's verdict (from each run's ``known_discrepancies`` rows)."""
    cells: dict[str, dict[str, str]] = {}
    for env, run in runs.items():
        for entry_id, versions, explained, _largest, _crashes, reproducer in run.environment.get("known_discrepancies", []):
            if versions.startswith("out of range"):
                cells.setdefault(entry_id, {})[env] = "out of range"
            else:
                cells.setdefault(entry_id, {})[env] = f"{explained} explained; {reproducer}"
    return [[entry_id, *(c.get(e, ABSENT) for e in runs)] for entry_id, c in sorted(cells.items())]


def matrix_blocks(runs: dict[str, RunData]) -> list[tuple]:
    envs = list(runs)
    summary = []
    for env, run in runs.items():
        v = run.environment.get("versions", {})
        c = run.counts()
        summary.append([env, *(v.get(p, "?") for p in PACKAGES),
                        *(str(c.get(k, 0)) for k in OUTCOMES),
                        f"{run.environment.get('duration_s', 0):.0f}"])
    diff = differences(runs)
    blocks: list[tuple] = [
        ("h", 1, "deltacheck version matrix"),
        ("table", ["env", *PACKAGES, *OUTCOMES, "seconds"], summary),
        ("h", 2, "Largest entry-wise error/allowed per target and dtype (known discrepancies excluded)"),
        ("table", ["target", "dtype", *envs], worst_table(runs)),
        ("h", 2, "Known discrepancies per environment: in range or not, comparisons explained, reproducer"),
        ("table", ["entry", *envs], entry_table(runs) or [["-", *[ABSENT] * len(envs)]]),
        ("h", 2, "Comparisons explained by a known discrepancy"),
        ("table", ["target", "entry", *envs], known_table(runs) or [["-", "none matched", *[ABSENT] * len(envs)]]),
        ("h", 2, f"Tests whose outcome differs between environments, or that fail ({len(diff)})"),
        ("p", f"'{ABSENT}': not run there (the framework is not installed, or the test was not selected)."),
        ("table", ["test", *envs], diff[:MAX_ROWS] or [["none: every test has one outcome everywhere", *[""] * len(envs)]]),
    ]
    if len(diff) > MAX_ROWS:
        blocks.append(("p", f"... and {len(diff) - MAX_ROWS} more"))
    return blocks


def write_matrix(directory: Path) -> str:
    """Write ``directory/matrix.md`` (replacing it in one rename) and return its text."""
    text = markdown(matrix_blocks(load_runs(directory)))
    tmp = directory / f".matrix.md.tmp-{os.getpid()}"
    tmp.write_text(text)
    os.replace(tmp, directory / "matrix.md")
    return text


def main(argv: list[str]) -> int:
    directory = Path(argv[0]) if argv else DEFAULT_DIR
    try:
        print(write_matrix(directory))
    except (FileNotFoundError, ValueError) as exc:
        print(f"matrix: {exc}", file=sys.stderr)
        return 2
    print(f"written to {directory / 'matrix.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
