"""Cross-checked examples per second, per target and dtype, and where the time goes.

    python benchmarks/throughput.py [--targets torch,jax-jit] [--dtypes float32] [--seconds 20] [--networks 8]
    python benchmarks/throughput.py --targets torch --dtypes float64 --profile 300

Hypothesis drives the cases exactly as the suite's ``check_quantities`` does
(``@given(drawn=case_sets(dtype=..., networks=K))`` under ``@settings(max_examples=N)``:
each example one architecture and 1-K networks of it, K as the suite uses for the target
(``crossval.networks_per_example``: 16, 64 for jax, 128 for jax-jit) unless ``--networks``
says otherwise, the ``ci`` strategy restricted to small networks: widths <= 32, batch
<= 16, depth 1-6; ``--networks 1`` draws one case per example, as ``cases`` does), and for each network the body runs the suite's
stages with a clock around each: the error model
(``set_bounds`` of the example's networks, and ``fits_dtype`` of each), the adapter (``compute``), the reference
(``expected_result``), the comparison (``comparisons`` and every verdict) and the
reporting (``Recorder.check``).  Generation is what is left of the wall time: drawing
the case and hypothesis' own engine.  A short pilot run estimates the rate, so each
target and dtype gets about ``--seconds``.  Rates count cross-checked networks.
``--profile N`` runs N examples of one target and dtype under cProfile instead.
"""

from __future__ import annotations

import argparse
import time

import common  # noqa: F401  (pins threads before any framework is imported)
from hypothesis import assume, given, seed, settings
from hypothesis.errors import UnsatisfiedAssumption

from harness.compare import comparisons
from harness.crossval import compute_or_reject, expected_result, networks_per_example
from harness.error_model import fits_dtype, set_bounds
from harness.strategies import case_sets

SUITE_STAGES = ("generation", "error model", "reference", "comparison", "reporting")
STAGES = ("generation", "error model", "adapter", "reference", "comparison", "reporting")
GOALS = {"torch": 800.0, "jax-jit": 100.0}


def run(v, strategy, n: int, run_seed: int) -> dict:
    """``n`` examples of ``v`` under hypothesis; seconds per stage and counters."""
    clock, rec, unsupported = common.Clock(), common.recorder(v, run_seed), []
    stats = {"examples": 0, "drawn": 0, "checked": 0, "failures": [], "explained crashes": 0, "failed": 0, "errors": [], "compile_calls": [], "plain_calls": []}
    jax_stats = _jax_counter(v.target)

    @settings(max_examples=n)
    @seed(run_seed)
    @given(drawn=strategy)
    def body(drawn):
        stats["examples"] += 1
        checked = sum([one(case, b) for case, b in zip(drawn, clock.timed("error model", set_bounds, drawn))])
        assume(checked)

    def one(case, both) -> bool:
        stats["drawn"] += 1
        bounds, loose = both
        if not clock.timed("error model", fits_dtype, bounds, case.dtype):
            return False
        before = jax_stats()
        start = time.perf_counter()
        try:
            result = compute_or_reject(v, case, unsupported, variant_recorder=rec)
        except UnsatisfiedAssumption:  # a crash a known finding explains, or unsupported: as the suite
            stats["explained crashes"] += 1
            return False
        except Exception as exc:  # noqa: BLE001  a framework error: counted, shown, not fatal
            stats["errors"].append(f"{type(exc).__name__}: {str(exc).splitlines()[0]} in {case!r}")
            return False
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
        stats["failures"] += [f"{c.describe()}\n      in {case!r}" for c in failing[:1]]
        return True

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


def generation_only(dtype: str, strategy, n: int, run_seed: int) -> tuple[float, float]:
    """Seconds per example, and networks per example, of hypothesis drawing cases into
    an empty body."""
    networks = []

    @settings(max_examples=n)
    @seed(run_seed)
    @given(drawn=strategy)
    def body(drawn):
        networks.append(len(drawn))

    start = time.perf_counter()
    body()
    return (time.perf_counter() - start) / n, sum(networks) / len(networks)


def strategy_of(dtype: str, width: int, batch: int, networks: int):
    return case_sets(dtype=dtype, width=(1, width), batch=(1, batch), networks=networks)


def measure(target: str, dtype: str, seconds: float, run_seed: int, strategy) -> dict:
    v = common.variant(target, dtype)
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
        f"{target:<10} {dtype:<9} {rate:8.1f} networks/s ({checked / max(r['cpu'], 1e-9):.1f} per CPU second)"
        + (f" (goal {goal:g}: {'met' if rate >= goal else 'MISSED'})" if goal else "")
        + f"  [{checked} cross-checked of {r['drawn']} drawn in {r['examples']} hypothesis examples, {wall:.1f} s, "
        f"{r['cpu'] / wall:.0%} of it on this process' CPU; {r['failed']} failing, {len(r['errors'])} framework errors, "
        f"{r['explained crashes']} crashes explained by known discrepancies; {r['load']}]",
        "    ms per cross-checked network: " + ", ".join(f"{s} {per[s]:.2f}" for s in STAGES),
        f"    suite share {100 * suite / wall:.0f}% (goal <= 50%), framework (adapter) "
        f"{100 * r['seconds'].get('adapter', 0.0) / wall:.0f}%",
    ]
    lines += [f"    framework error (network skipped): {e}" for e in r["errors"][:3]]
    lines += ["    failing (not explained by a known discrepancy): " + "\n      ".join(f.splitlines())
              for f in r["failures"][:3]]
    if target == "jax-jit":
        comp, plain = r["compile_calls"], r["plain_calls"]
        mean_c = sum(comp) / len(comp) if comp else 0.0
        mean_p = sum(plain) / len(plain) if plain else 0.0
        lines.append(
            f"    compiles: {r['compiles']} in {len(comp) + len(plain)} adapter calls = "
            f"{100 * r['compiles'] / max(len(comp) + len(plain), 1):.0f} per 100 networks, every one at its "
            f"drawn shape (100% unpadded); a call that compiles takes {1e3 * mean_c:.0f} ms, one that reuses "
            f"{1e3 * mean_p:.1f} ms (compiling: {100 * sum(comp) / wall:.0f}% of the wall time)"
        )
    return lines


def profile(target: str, dtype: str, strategy, n: int, run_seed: int) -> None:
    """``n`` examples under cProfile (after a warm-up): where the time goes, by function."""
    import cProfile
    import pstats

    v = common.variant(target, dtype)
    run(v, strategy, 3, run_seed + 1)
    profiler = cProfile.Profile()
    profiler.runcall(run, v, strategy, n, run_seed)
    stats = pstats.Stats(profiler)
    stats.sort_stats("cumulative").print_stats(40)
    stats.sort_stats("tottime").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", help=f"comma-separated, from {','.join(common.TARGETS)}; default all")
    parser.add_argument("--dtypes", help="comma-separated; default float64,float32")
    parser.add_argument("--seconds", type=float, default=20.0, help="about this long per target and dtype")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--width", type=int, default=32, help="largest layer width (default 32)")
    parser.add_argument("--batch", type=int, default=16, help="largest batch (default 16)")
    parser.add_argument("--networks", type=int, help="most networks per hypothesis example (default: the suite's for the target)")
    parser.add_argument("--profile", type=int, metavar="N", help="profile N examples of the first target and dtype")
    args = parser.parse_args()
    targets = common.split(args.targets, common.TARGETS, "--targets")
    dtypes = common.split(args.dtypes, common.DTYPES, "--dtypes") if args.dtypes else ("float64", "float32")
    print(common.machine())
    def networks(target: str) -> int:
        return args.networks or networks_per_example(target)

    print(f"strategy: case_sets(dtype=..., width=(1, {args.width}), batch=(1, {args.batch}), "
          f"networks={args.networks or 'per target, as the suite'}), depth 1-6; seed {args.seed}")
    if args.profile:
        k = networks(targets[0])
        profile(targets[0], dtypes[0], strategy_of(dtypes[0], args.width, args.batch, k), args.profile, args.seed)
        return
    for dtype in dtypes:
        for k in sorted({networks(t) for t in targets}):
            gen, per = generation_only(dtype, strategy_of(dtype, args.width, args.batch, k), 200, args.seed)
            print(f"hypothesis alone (empty body, 200 examples, {dtype}, networks={k}): {1e3 * gen:.2f} ms per "
                  f"example, {per:.2f} networks per example [{common.load()}]")
    for target in targets:
        for dtype in dtypes:
            strategy = strategy_of(dtype, args.width, args.batch, networks(target))
            r = measure(target, dtype, args.seconds, args.seed, strategy)
            print(f"[{target}: up to {networks(target)} networks per example]")
            print("\n".join(report(target, dtype, r)), flush=True)

if __name__ == "__main__":
    main()
