"""Cross-checked examples per second, per target and dtype, and where the time goes.

    python benchmarks/throughput.py [--targets torch,jax-jit] [--dtypes float32] [--seconds 20]

Hypothesis drives the cases exactly as the suite's ``check_quantities`` does
(``@given(case=cases(dtype=...))`` under ``@settings(max_examples=N)``, the ``ci``
strategy restricted to small networks: widths <= 32, batch <= 16, depth 1-6), and
the body runs the suite's stages with a clock around each: the error model
(``both_bounds`` and ``fits_dtype``), the adapter (``compute``), the reference
(``expected_result``), the comparison (``comparisons`` and every verdict) and the
reporting (``Recorder.check``).  Generation is what is left of the wall time: drawing
the case and hypothesis' own engine.  A short pilot run estimates the rate, so each
target and dtype gets about ``--seconds``.
"""

from __future__ import annotations

import argparse
import time

import common  # noqa: F401  (pins threads before any framework is imported)
from hypothesis import assume, given, reject, seed, settings

from compare import comparisons
from crossval import compute_or_reject, expected_result
from error_model import both_bounds, fits_dtype
from strategies import cases

SUITE_STAGES = ("generation", "error model", "reference", "comparison", "reporting")
STAGES = ("generation", "error model", "adapter", "reference", "comparison", "reporting")
GOALS = {"torch": 800.0, "jax-jit": 100.0}


def run(v, strategy, n: int, run_seed: int) -> dict:
    """``n`` examples of ``v`` under hypothesis; seconds per stage and counters."""
    clock, rec, unsupported = common.Clock(), common.recorder(v, run_seed), []
    stats = {"drawn": 0, "checked": 0, "failed": 0, "errors": [], "compile_calls": [], "plain_calls": []}
    jax_stats = _jax_counter(v.target)

    @settings(max_examples=n)
    @seed(run_seed)
    @given(case=strategy)
    def body(case):
        stats["drawn"] += 1
        bounds, loose = clock.timed("error model", both_bounds, case.network, case.params, case.x, case.t,
                                    dtype=case.dtype, lr=case.lr)
        fits = clock.timed("error model", fits_dtype, bounds, case.dtype)
        assume(fits)
        before = jax_stats()
        start = time.perf_counter()
        try:
            result = compute_or_reject(v, case, unsupported)
        except Exception as exc:  # noqa: BLE001  a framework error: counted, shown, not fatal
            stats["errors"].append(f"{type(exc).__name__}: {str(exc).splitlines()[0]} in {case!r}")
            reject()
        finally:
            took = time.perf_counter() - start
            clock.add("adapter", took)
            stats["compile_calls" if jax_stats() > before else "plain_calls"].append(took)
        expected = clock.timed("reference", expected_result, case)
        comps = clock.timed("comparison", comparisons, case, result, expected, bounds, loose)
        clock.timed("comparison", lambda: [(c.entry_ratio, c.tensor_ratio) for c in comps])
        # Recorder.check computes each verdict again; that repeat is timed apart and
        # taken off both the reporting time and the wall time.
        clock.timed("repeat", lambda: [(c.entry_ratio, c.tensor_ratio) for c in comps])
        failing = clock.timed("reporting", rec.check, v, case, comps)
        stats["checked"] += 1
        stats["failed"] += bool(failing)

    start, cpu = time.perf_counter(), time.process_time()
    body()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    repeat = clock.seconds.pop("repeat", 0.0)
    clock.seconds["reporting"] = max(0.0, clock.seconds.get("reporting", 0.0) - repeat)
    wall -= 2 * repeat
    timed = sum(clock.seconds.get(s, 0.0) for s in STAGES[1:])
    clock.seconds["generation"] = wall - timed
    return {"wall": wall, "cpu": cpu - 2 * repeat, "seconds": clock.seconds, **stats, "compiles": jax_stats()}


def _jax_counter(target: str):
    if target != "jax-jit":
        return lambda: 0
    from adapters.jax_adapter import compile_stats

    start = compile_stats()["compiles"]
    return lambda: compile_stats()["compiles"] - start


def generation_only(dtype: str, strategy, n: int, run_seed: int) -> float:
    """Seconds per example of hypothesis drawing cases into an empty body."""

    @settings(max_examples=n)
    @seed(run_seed)
    @given(case=strategy)
    def body(case):
        pass

    start = time.perf_counter()
    body()
    return (time.perf_counter() - start) / n


def measure(target: str, dtype: str, seconds: float, run_seed: int, width: int, batch: int) -> dict:
    v = common.variant(target, dtype)
    strategy = cases(dtype=dtype, width=(1, width), batch=(1, batch))
    # A warm-up run, then runs grown until one lasts most of ``seconds``.
    run(v, strategy, 3, run_seed + 1)
    n = 4 if target.startswith("jax") else 20
    while True:
        out = run(v, strategy, n, run_seed)
        if out["wall"] >= 0.7 * seconds or n >= 10**6:
            break
        n = int(min(10 * n, n * seconds / max(out["wall"], 1e-3)) + 1)
    out["load"] = common.load()
    return out


def report(target: str, dtype: str, r: dict) -> list[str]:
    checked, wall = r["checked"], r["wall"]
    per = {s: 1e3 * r["seconds"].get(s, 0.0) / max(checked, 1) for s in STAGES}
    suite = sum(r["seconds"].get(s, 0.0) for s in SUITE_STAGES)
    goal = GOALS.get(target)
    rate = checked / wall
    lines = [
        f"{target:<10} {dtype:<9} {rate:8.1f} examples/s ({checked / max(r['cpu'], 1e-9):.1f} per CPU second)"
        + (f" (goal {goal:g}: {'met' if rate >= goal else 'MISSED'})" if goal else "")
        + f"  [{checked} cross-checked of {r['drawn']} drawn in {wall:.1f} s, {r['cpu'] / wall:.0%} of it on this process' CPU; {r['failed']} failing, {len(r['errors'])} framework errors; {r['load']}]",
        "    ms per cross-checked example: " + ", ".join(f"{s} {per[s]:.2f}" for s in STAGES),
        f"    suite share {100 * suite / wall:.0f}% (goal <= 50%), framework (adapter) "
        f"{100 * r['seconds'].get('adapter', 0.0) / wall:.0f}%",
    ]
    lines += [f"    framework error (example skipped): {e}" for e in r["errors"][:3]]
    if target == "jax-jit":
        comp, plain = r["compile_calls"], r["plain_calls"]
        mean_c = sum(comp) / len(comp) if comp else 0.0
        mean_p = sum(plain) / len(plain) if plain else 0.0
        lines.append(
            f"    compiles: {r['compiles']} in {len(comp) + len(plain)} adapter calls = "
            f"{100 * r['compiles'] / max(len(comp) + len(plain), 1):.0f} per 100 examples; a call that "
            f"compiles takes {1e3 * mean_c:.0f} ms, one that reuses {1e3 * mean_p:.1f} ms "
            f"(compiling: {100 * sum(comp) / wall:.0f}% of the wall time)"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", help=f"comma-separated, from {','.join(common.TARGETS)}; default all")
    parser.add_argument("--dtypes", help="comma-separated; default float64,float32")
    parser.add_argument("--seconds", type=float, default=20.0, help="about this long per target and dtype")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--width", type=int, default=32, help="largest layer width (default 32)")
    parser.add_argument("--batch", type=int, default=16, help="largest batch (default 16)")
    args = parser.parse_args()
    targets = common.split(args.targets, common.TARGETS, "--targets")
    dtypes = common.split(args.dtypes, common.DTYPES, "--dtypes") if args.dtypes else ("float64", "float32")
    print(common.machine())
    print(f"strategy: cases(dtype=..., width=(1, {args.width}), batch=(1, {args.batch})), depth 1-6; seed {args.seed}")
    for dtype in dtypes:
        strategy = cases(dtype=dtype, width=(1, args.width), batch=(1, args.batch))
        gen = generation_only(dtype, strategy, 200, args.seed)
        print(f"hypothesis alone (empty body, 200 cases, {dtype}): {1e3 * gen:.2f} ms per case [{common.load()}]")
    for target in targets:
        for dtype in dtypes:
            r = measure(target, dtype, args.seconds, args.seed, args.width, args.batch)
            print("\n".join(report(target, dtype, r)), flush=True)


if __name__ == "__main__":
    main()
