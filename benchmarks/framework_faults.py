"""Detection reliability: README's main job under faults planted in torch and jax.

    python benchmarks/framework_faults.py [--framework torch|jax] [--seeds 10] [--first-seed 0] [--faults a,b]

For each fault of ``faults.py`` (an activation whose forward is the framework's own and
whose derivative is wrong on part of its range, or a linear layer whose weight gradient
is wrong) and each seed, runs README's main job -- the range sweep, the
cross-validation and the kink conventions under ``--hypothesis-profile ci`` -- in a
fresh process with ``-x`` (stop at the first failure) for ``torch`` (the torch and
torch-func targets) or ``jax-jit``, the fault installed by ``-p faults``.  Prints per
fault the kill rate (runs that failed) and the median seconds from the start of pytest
to its exit at the first failure, and which test failed first.  ``--control`` adds one
run per framework without a fault, which must pass.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAIN_JOB = ("tests/suite/test_range_sweep.py", "tests/suite/test_cross_validation.py", "tests/suite/test_kink_conventions.py")
TARGETS = {"torch": "torch", "jax": "jax-jit"}
sys.path.insert(0, str(ROOT / "benchmarks"))


def run(fault: str | None, framework: str, seed: int) -> tuple[int, float, str]:
    """(pytest's exit code, wall seconds, the first failing test's id or '')."""
    env = {**os.environ, "DELTACHECK_FAULT": fault or "", "DELTACHECK_REPORT_DIR": "none",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "benchmarks"), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "pytest", "-p", "faults", *MAIN_JOB, "--frameworks", TARGETS[framework],
               "--hypothesis-profile", "ci", "--hypothesis-seed", str(seed), "-x", "-q", "-p", "no:xdist"]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    failed = re.search(r"^FAILED (\S+)", done.stdout, re.MULTILINE)
    return done.returncode, seconds, failed[1].split("::")[-1] if failed else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", choices=("torch", "jax"), action="append")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--faults", help="comma-separated fault names (default: all of the framework's)")
    parser.add_argument("--control", action="store_true", help="also one run without a fault per framework")
    args = parser.parse_args()
    import faults

    seeds = f"{args.first_seed}-{args.first_seed + args.seeds - 1}"
    print(f"load {os.getloadavg()[0]:.2f} at start; seeds {seeds}; main job: {' '.join(MAIN_JOB)}")
    print("| fault | framework | what | killed | median s to first failure (range) | first failing test |")
    print("| --- | --- | --- | ---: | ---: | --- |")
    for framework in args.framework or ("torch", "jax"):
        table = faults.faults(framework)
        names = args.faults.split(",") if args.faults else list(table)
        for name in names:
            if name not in table:
                raise SystemExit(f"--faults names {name!r}; known {framework} faults: {', '.join(table)}")
            runs = [run(name, framework, seed) for seed in range(args.first_seed, args.first_seed + args.seeds)]
            killed = [s for rc, s, _ in runs if rc == 1]
            tests = sorted({t.split("[")[0] for rc, _, t in runs if rc == 1})
            errors = [rc for rc, _, _ in runs if rc not in (0, 1)]
            span = f"{statistics.median(killed):.1f} ({min(killed):.1f}-{max(killed):.1f})" if killed else "-"
            note = f"; exit codes {errors}" if errors else ""
            print(f"| {name} | {TARGETS[framework]} | {table[name].what} | {len(killed)}/{len(runs)}{note} | "
                  f"{span} | {', '.join(tests)} |", flush=True)
        if args.control:
            rc, seconds, failed = run(None, framework, 0)
            print(f"| (no fault) | {TARGETS[framework]} | control | exit {rc} {failed} | {seconds:.1f} | |", flush=True)
    print(f"load {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
