"""What every benchmark shares: thread pinning, import paths, the machine line,
variants, recorders and the hypothesis profile the benchmarks run under.

Import this module before any framework: it pins every thread pool to one thread
(``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``, ``OPENBLAS_NUM_THREADS`` = 1 and
``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false``), as ``conftest.py`` does for the
test suite, unless the environment already sets them.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
# Only real XLA flags: XLA stops reading at the first token without "--".
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")

ROOT = Path(__file__).resolve().parent.parent
for _path in (ROOT, ROOT / "tests"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from hypothesis import HealthCheck, Phase, settings  # noqa: E402

from adapters.registry import load_target  # noqa: E402
from harness import known, results  # noqa: E402
from harness.selection import Variant  # noqa: E402

TARGETS = ("torch", "torch-func", "jax", "jax-jit")
DTYPES = ("float64", "float32", "float16", "bfloat16")
KNOWN_FILE = ROOT / "tests" / "suite" / "known_discrepancies.toml"
TEST_NAME = "test_every_quantity_matches_reference"

# The ci profile's settings but random (each run seeded explicitly) and, unless asked,
# without shrinking: a benchmark counts and times examples, it does not minimise them.
settings.register_profile(
    "bench", deadline=None, database=None, derandomize=False, print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    phases=(Phase.explicit, Phase.generate),
)
settings.register_profile("bench-shrink", parent=settings.get_profile("bench"), phases=tuple(Phase))
settings.load_profile("bench")


def variant(target: str, dtype: str, device: str = "cpu") -> Variant:
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; known targets: {', '.join(TARGETS)}")
    return Variant(target, device, dtype, load_target(target))


def recorder(v: Variant, run_seed: int, discrepancies: list | None = None) -> results.Recorder:
    """A recorder named as the cross-validation test of ``v``, so the known
    discrepancies' test patterns match as they do under pytest."""
    name = f"{TEST_NAME}[{v.id}]"
    found = known.load([KNOWN_FILE]) if discrepancies is None else discrepancies
    return results.Recorder(results.Results(), f"benchmarks::{name}", name, found, run_seed, "bench")


def split(value: str | None, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    """A comma-separated option, each name checked against ``allowed``."""
    if value is None:
        return allowed
    names = tuple(v.strip() for v in value.split(",") if v.strip())
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        raise SystemExit(f"{what}={value!r}; choose from {', '.join(allowed)}")
    return names


def load() -> str:
    """The 1-, 5- and 15-minute load averages, as printed beside every figure."""
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f}"


def machine() -> str:
    """nproc, CPU, Python and library versions, threads and the load, in one block."""
    import hypothesis
    import numpy

    lines = [
        f"machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}",
        f"versions: numpy {numpy.__version__}, hypothesis {hypothesis.__version__}"
        + "".join(f", {name} {_version(name)}" for name in ("torch", "jax", "optax")),
        "threads: " + ", ".join(f"{v}={os.environ[v]}" for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"))
        + f", XLA_FLAGS={os.environ['XLA_FLAGS']!r}",
        f"{load()} (other processes share this machine; figures scale with it)",
        f"date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
    ]
    return "\n".join(lines)


def _version(module: str) -> str:
    try:
        return __import__(module).__version__
    except ImportError:
        return "not installed"


class Clock:
    """Accumulated seconds and counts per named stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds
        self.counts[stage] = self.counts.get(stage, 0) + 1

    def timed(self, stage: str, fn, *args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.add(stage, time.perf_counter() - start)
