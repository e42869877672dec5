"""The run report: its content, its atomic replacement, xdist merging, the matrix merge.

The subprocess tests run pytest itself (the report is written at the end of a run),
on small test files in a temporary directory or on the torch float64 quantity tests.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import matrix, report
from harness import post_experiments as pe
from harness.report import Outcome, RunData, write_report
from harness.results import Record

ROOT = Path(__file__).resolve().parents[2]
CASE = "Case(sizes=(2, 1), activations=('tanh',), loss='sse', batch=1)"


def _run_data(ratio: float = 0.5, outcome: str = "passed") -> RunData:
    env = {"versions": {"numpy": "2", "torch": "2.13.0"}, "profile": "dev", "max_examples": 10, "seed": 7,
           "targets": {"torch": {"framework": "torch", "version": "2.13.0", "devices": ["cpu"],
                                 "precision": {"cpu": "highest"}}},
           "variants": [{"id": "torch-cpu-float32", "target": "torch", "device": "cpu", "dtype": "float32"}]}
    records = [Record("test_q[torch-cpu-float32]", "torch", "cpu", "float32", q, ("tanh",), ratio * k, ratio / 10,
                      None, CASE) for k, q in enumerate(("loss", "delta", "dW"), 1)]
    records.append(Record("test_q[torch-cpu-float32]", "torch", "cpu", "float32", "db", ("sigmoid",), 3.0, 0.1,
                          "torch forms sigmoid' from the rounded output", CASE))
    records += [Record("test_q[torch-cpu-float16]", "torch", "cpu", "float16", "dW", ("relu",), x, x, None, CASE)
                for x in (0.0, math.inf, math.nan)]  # exact, a non-finite entry, no comparison possible
    outcomes = [Outcome("tests/t.py::test_q[torch-cpu-float32]", outcome, "", 0.1),
                Outcome("tests/t.py::test_reference[relu]", "passed", "", 0.1),
                Outcome("tests/t.py::test_q[torch-cuda-float32]", "skipped", "torch reports no 'cuda' device", 0.0)]
    return RunData(env, outcomes, records)


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def _leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.parent.iterdir() if p.name.startswith(f".{directory.name}.")]


def test_the_report_has_markdown_self_contained_html_json_and_plots(tmp_path):
    target = tmp_path / "deltacheck-report"
    write_report(target, _run_data())
    names = {p.name for p in target.iterdir()}
    assert {"report.md", "report.html", "results.json", "outcomes.png", "ratios.png", "worst.png"} <= names
    page = (target / "report.html").read_text()
    assert page.count("src='data:image/png;base64,") == 3 and ".png'" not in page
    text = (target / "report.md").read_text()
    assert "![" in text and "(ratios.png)" in text and "| torch | float32 | 1.5 |" in text
    assert "highest" in text and "seed 7" in text and "torch reports no 'cuda' device" in text


def test_results_json_reads_back_as_the_same_run(tmp_path):
    data = _run_data()
    write_report(tmp_path / "r", data, plots={})
    assert json.dumps(report.load(tmp_path / "r").to_json()) == json.dumps(data.to_json())  # nan != nan


def test_results_json_is_strict_json_with_inf_and_nan_as_strings(tmp_path):
    data = _run_data()
    data.records[0] = dataclasses.replace(data.records[0], entry_ratio=math.inf, tensor_ratio=math.nan)
    data.training_runs.append({"test": "t", "target": "torch", "device": "cpu", "dtype": "float32", "experiment": "XOR",
                               "passes": 1, "measure": "accuracy", "score": math.nan, "params": [[[[math.inf]], [0.5]]]})
    write_report(tmp_path / "r", data, plots={})

    def no_constants(token):
        raise AssertionError(f"results.json holds the non-JSON token {token}")

    text = (tmp_path / "r" / "results.json").read_text()
    json.loads(text, parse_constant=no_constants)
    back = report.load(tmp_path / "r")
    assert back.records[0].entry_ratio == math.inf and math.isnan(back.records[0].tensor_ratio)
    assert math.isnan(back.training_runs[-1]["score"]) and back.training_runs[-1]["params"][0][0] == [[math.inf]]


@pytest.mark.parametrize("interruption", [RuntimeError("plot failed"), KeyboardInterrupt()], ids=repr)
def test_a_write_that_fails_midway_leaves_the_previous_report(tmp_path, interruption):
    target = tmp_path / "deltacheck-report"
    write_report(target, _run_data(), plots={})
    before = _snapshot(target)

    def failing_plot(data, path):
        path.write_bytes(b"half a png")
        raise interruption

    with pytest.raises(type(interruption)):
        write_report(target, _run_data(ratio=0.9), plots={"outcomes.png": failing_plot})
    assert _snapshot(target) == before
    assert _leftovers(target) == []


def test_the_previous_report_stays_whole_until_the_new_one_is_complete(tmp_path):
    target = tmp_path / "deltacheck-report"
    write_report(target, _run_data(), plots={})
    before = _snapshot(target)
    seen = []

    def watching_plot(data, path):
        seen.append(_snapshot(target) == before and path.parent != target)
        return False

    write_report(target, _run_data(ratio=0.9), plots={"outcomes.png": watching_plot})
    assert seen == [True]
    assert _snapshot(target) != before and _leftovers(target) == []


def test_the_matrix_subdirectory_survives_a_new_report(tmp_path):
    target = tmp_path / "deltacheck-report"
    write_report(target / "matrix" / "jax0430", _run_data(), plots={})
    write_report(target, _run_data(), plots={})
    assert (target / "matrix" / "jax0430" / "results.json").is_file()


def test_the_matrix_shows_a_test_whose_outcome_changes_between_releases(tmp_path):
    for env, outcome in (("jax0430", "failed"), ("jax0102", "passed")):
        write_report(tmp_path / env, _run_data(outcome=outcome), plots={})
    text = matrix.write_matrix(tmp_path)
    assert (tmp_path / "matrix.md").read_text() == text
    assert "| test_q[torch-cpu-float32] | passed | failed |" in text
    assert "test_reference[relu]" not in text  # one outcome everywhere
    assert "| torch | float32 | 1.5 | 1.5 |" in text


def test_the_matrix_of_an_empty_directory_says_to_run_tox(tmp_path, capsys):
    assert matrix.main([str(tmp_path)]) == 2
    assert "run the matrix first" in capsys.readouterr().err


def _pytest(args: list[str], cwd: Path, storage: Path | None = None) -> subprocess.CompletedProcess:
    """pytest in a subprocess; ``storage``: hypothesis' example database and cache."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DELTACHECK_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests")])
    env["HYPOTHESIS_STORAGE_DIRECTORY"] = str(storage or cwd / ".hypothesis")
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], check=False, cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


SMALL_SUITE = '''
import pytest

def test_passes(): pass
def test_fails(): assert 1 == 2, "one is not two"
def test_skips(): pytest.skip("nothing to do here")
@pytest.mark.xfail(reason="a known convention")
def test_xfails(): assert False
'''


@pytest.fixture
def small_suite(tmp_path: Path) -> Path:
    (tmp_path / "conftest.py").write_text('pytest_plugins = ("harness.plugin", "harness.report_plugin")\n')
    (tmp_path / "test_small.py").write_text(SMALL_SUITE)
    return tmp_path


def test_a_run_records_every_outcome_and_skip_reason(small_suite):
    (small_suite / "test_broken.py").write_text("import a_module_that_does_not_exist\n")
    run = _pytest(["--report-dir", "out", "--frameworks", "torch", "--continue-on-collection-errors"], small_suite)
    assert run.returncode == 1, run.stdout + run.stderr
    outcomes = {o.name: (o.outcome, o.reason) for o in report.load(small_suite / "out").outcomes}
    assert outcomes == {"test_passes": ("passed", ""), "test_fails": ("failed", "AssertionError: one is not two"),
                        "test_skips": ("skipped", "nothing to do here"), "test_xfails": ("xfailed", "a known convention"),
                        "test_broken.py": ("error", "ModuleNotFoundError: No module named 'a_module_that_does_not_exist'")}


def test_report_dir_none_writes_nothing(small_suite):
    _pytest(["--report-dir=none"], small_suite)
    assert not (small_suite / "deltacheck-report").exists()


@pytest.mark.parametrize("where", ["in a test", "while writing the report"])
def test_an_interrupted_run_leaves_the_previous_report(small_suite, where):
    target = small_suite / "out"
    write_report(target, _run_data(), plots={})
    before = _snapshot(target)
    if where == "in a test":
        (small_suite / "test_small.py").write_text("def test_interrupted():\n    raise KeyboardInterrupt\n")
    else:
        (small_suite / "conftest.py").write_text(
            'pytest_plugins = ("harness.plugin", "harness.report_plugin")\nfrom harness import report_plots\n\n'
            "def _interrupt(data, path):\n    raise KeyboardInterrupt\n\n"
            'report_plots.PLOTS = {"outcomes.png": _interrupt}\n')
    run = _pytest(["--report-dir", "out"], small_suite)
    assert run.returncode != 0, run.stdout + run.stderr
    assert _snapshot(target) == before and _leftovers(target) == []


# The framework of the xdist test: two targets on the cpu, so each worker runs one.
INSTALLED = [name for name in ("torch", "jax") if importlib.util.find_spec(name) is not None]


@pytest.mark.skipif(not INSTALLED, reason="neither torch nor jax is installed")
def test_a_run_on_two_xdist_workers_matches_a_serial_run_with_the_controllers_seed(tmp_path):
    """No seed is given to the xdist run: its workers must use the seed its
    controller chose, or their examples would differ from the serial run's.  Each
    run starts from an empty example database: examples saved by earlier runs are
    replayed first and would make the drawn cases differ."""
    select = ["tests/suite/test_cross_validation.py", "--frameworks", INSTALLED[0], "--dtypes", "float64",
              "--devices", "cpu", "--hypothesis-profile=dev", "-k", "quantity"]
    parallel = _pytest([*select, "-n", "2", "--report-dir", str(tmp_path / "xdist")], ROOT, tmp_path / "db-xdist")
    assert parallel.returncode in (0, 1), parallel.stdout + parallel.stderr
    merged = report.load(tmp_path / "xdist")
    serial = _pytest([*select, f"--hypothesis-seed={merged.environment['seed']}",
                      "--report-dir", str(tmp_path / "serial")], ROOT, tmp_path / "db-serial")
    assert serial.returncode == parallel.returncode, serial.stdout + serial.stderr
    alone = report.load(tmp_path / "serial")
    assert {(o.nodeid, o.outcome) for o in merged.outcomes} == {(o.nodeid, o.outcome) for o in alone.outcomes}
    workers = merged.environment["workers"]
    assert set(workers) == {"gw0", "gw1"} and min(workers.values()) > 0, workers
    key = lambda r: (r.test, r.quantity, r.case, r.entry_ratio)
    assert set(map(key, merged.records)) == set(map(key, alone.records))
    assert "largest error/allowed per target and dtype" in parallel.stdout
    assert "deltacheck: report in" in parallel.stdout


def test_report_generation_of_a_typical_run_takes_under_three_seconds(tmp_path):
    """Processor time, so that other processes on a busy machine do not count."""
    data = _run_data()
    data.records *= 1000  # 7,000 comparisons: a dev-profile run of every jax target
    start = time.process_time()
    write_report(tmp_path / "r", data)
    assert time.process_time() - start < 3.0


TRAINING_SUITE = '''
from harness import post_experiments as pe
import pytest

@pytest.mark.parametrize("name", ["AND-hidden0", "XOR-hidden4", "RING-hidden4", "sin", "abs"])
def test_records_a_model(recorder, name):
    run = pe.experiment(name)
    for target in ("reference", "torch", "jax"):
        recorder.record_training_run(target, "cpu", "float32", name, 0, "accuracy", run.score(run.params), run.params)
'''
TRAINING_FIGURES = ("training_classification.png", "training_regression.png")


def _training_data() -> RunData:
    data = _run_data()
    for name in ("XOR-hidden0", "XOR-hidden4", "abs"):
        run = pe.experiment(name)
        for target in ("reference", "torch", "jax-jit"):
            data.training_runs.append({"test": "t", "target": target, "device": "cpu", "dtype": "float32",
                                       "experiment": name, "passes": 0, "measure": "accuracy",
                                       "score": run.score(run.params),
                                       "params": [[W.tolist(), b.tolist()] for W, b in run.params]})
    return data


def test_the_report_draws_the_trained_models_of_the_posts_training_runs(tmp_path):
    write_report(tmp_path / "r", _training_data())
    text = (tmp_path / "r" / "report.md").read_text()
    assert all(f"({name})" in text and (tmp_path / "r" / name).is_file() for name in TRAINING_FIGURES), text
    assert (tmp_path / "r" / "report.html").read_text().count("src='data:image/png;base64,") == 5
    assert report.load(tmp_path / "r").training_runs == _training_data().training_runs


def test_a_run_without_training_runs_draws_no_training_figures(tmp_path):
    write_report(tmp_path / "r", _run_data())
    assert not any((tmp_path / "r" / name).exists() for name in TRAINING_FIGURES)


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_trained_models_reach_the_report_from_every_worker(small_suite, workers):
    """Under xdist the controller runs no test: the models it draws came from the workers."""
    (small_suite / "test_small.py").write_text(TRAINING_SUITE)
    run = _pytest(["--report-dir", "out", "--frameworks", "torch", *workers], small_suite)
    assert run.returncode == 0, run.stdout + run.stderr
    runs = report.load(small_suite / "out").training_runs
    assert sorted({(r["experiment"], r["target"]) for r in runs}) == sorted(
        (name, target) for name in ("AND-hidden0", "XOR-hidden4", "RING-hidden4", "sin", "abs")
        for target in ("reference", "torch", "jax")) and len(runs) == 15
    text = (small_suite / "out" / "report.md").read_text()
    assert all(f"({name})" in text and (small_suite / "out" / name).is_file() for name in TRAINING_FIGURES), text
