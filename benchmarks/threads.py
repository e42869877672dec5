"""Thread pinning: the same work with every thread pool at one thread, and unpinned.

    python benchmarks/threads.py [--repeats 200]

Each configuration runs in a fresh process (thread pools are sized at import):
``pinned`` sets ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``, ``OPENBLAS_NUM_THREADS`` = 1
and ``XLA_FLAGS`` as ``conftest.py`` and ``benchmarks/common.py`` do; ``unpinned``
leaves every library its default (one thread per core).  Work: NumPy matmuls of
64x64 and 256x256, and one torch ``compute`` of the 8-16-4 network of
``peers.py`` (batch 8) in a process that has also imported jax (as the test suite's
processes do).  Printed: median wall ms per call and the process' CPU ms per call.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

PINNED = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
          "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false"}

CHILD = r"""
import json, statistics, sys, time
import numpy as np
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/tests", sys.argv[1] + "/benchmarks"]
repeats = int(sys.argv[2])
def timed(fn):
    fn()
    walls, cpu = [], time.process_time()
    for _ in range(repeats):
        start = time.perf_counter(); fn(); walls.append(time.perf_counter() - start)
    return 1e3 * statistics.median(walls), 1e3 * (time.process_time() - cpu) / repeats
out = {}
for n in (64, 256):
    a = np.random.default_rng(0).standard_normal((n, n))
    out[f"numpy matmul {n}x{n}"] = timed(lambda: a @ a)
import jax, torch
from peers import make_case
from harness.crossval import problem_of
from adapters.registry import load_target
case, target = make_case((8, 16, 4), 8), load_target("torch")
out["torch compute 8-16-4, jax imported"] = timed(lambda: target.compute(problem_of(case), device="cpu", dtype="float64", lr=0.1))
out["torch threads"] = (torch.get_num_threads(), torch.get_num_interop_threads())
print(json.dumps(out))
"""


def run(pinned: bool, repeats: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in PINNED}
    if pinned:
        env.update(PINNED)
    root = str(Path(__file__).resolve().parent.parent)
    done = subprocess.run([sys.executable, "-c", CHILD, root, str(repeats)], env=env, capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import common  # the machine line (pins this process only, not the children)

    print(common.machine().split("\n", 3)[0], f"cores {os.cpu_count()}", common.load(), sep="; ")
    results = {label: run(label == "pinned", args.repeats) for label in ("unpinned", "pinned")}
    for work in results["pinned"]:
        if work == "torch threads":
            print("torch threads (intra-op, inter-op): " + ", ".join(f"{k} {tuple(r[work])}" for k, r in results.items()))
            continue
        cells = ", ".join(f"{k} {r[work][0]:.3f} ms wall / {r[work][1]:.3f} ms CPU" for k, r in results.items())
        print(f"{work:<38} {cells}")
    print(common.load())


if __name__ == "__main__":
    main()
