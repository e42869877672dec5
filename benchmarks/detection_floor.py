"""Detection floor: the smallest error in one activation derivative the suite catches.

    python benchmarks/detection_floor.py [--dtypes float64,float32] [--runs 20] [--steps 6]

The bug: tanh'(z) multiplied by (1 + eps) where z > 0.5 (``injected.InjectedTorch``, the
real torch target otherwise).  For each dtype, bisection over log10(eps) finds the
smallest eps that the ``ci`` budget (60 examples of ``case_sets(dtype=..., networks=16)``,
the cross-validation's strategy for torch: each example one architecture and up to 16
networks of it) catches in at least 95% of ``--runs`` seeded runs; and again with the
strategy's activations restricted to tanh (``activations=("tanh",)``), which
measures the check's sensitivity once the strategy reaches the bug.  A run
catches the bug when some example fails the suite's check (``Recorder.check`` with the
real known discrepancies, the tanh entry excepted: the planted derivative is accurate
from z) *and* the same example passes with eps = 0 -- so a framework finding that no
known discrepancy explains is not counted as a detection; how often such findings fail
a run is printed as the control.

The peers get the same bug in float64 and the same criterion over ``--runs`` seeded
small tanh networks: ``torch.autograd.gradcheck`` (fast_mode False and True, default
tolerances) and ``jax.test_util.check_grads`` (order 1, modes rev).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time

import common
import torch
from hypothesis import assume, given, reject, seed, settings
from injected import InjectedTorch, jax_loss, peer_problem, torch_loss

from adapters.interface import Unsupported
from harness import known
from harness.compare import comparisons
from harness.crossval import expected_result, networks_per_example, problem_of
from harness.error_model import fits_dtype, set_bounds
from harness.selection import Variant
from harness.strategies import case_sets

CI_BUDGET = 60


class Caught(Exception):
    """An example failed with the bug and passes without it."""


def _known_without_tanh() -> list:
    out = []
    for d in known.load([common.KNOWN_FILE]):
        if "tanh" in d.activations:
            d = dataclasses.replace(d, activations=tuple(a for a in d.activations if a != "tanh"))
        out.append(d)
    return out


def _failing(v: Variant, rec, case, bounds, loose) -> bool:
    try:
        result = v.adapter.compute(problem_of(case), device="cpu", dtype=case.dtype, lr=case.lr)
    except Unsupported:
        reject()
    except Exception:  # noqa: BLE001  a framework error, with or without the bug
        return True
    return bool(rec.check(v, case, comparisons(case, result, expected_result(case), bounds, loose)))


def suite_run(dtype: str, eps: float, run_seed: int, discrepancies: list, strategy) -> tuple[bool, bool]:
    """(caught, control failed): one ci-budget run of the suite's check on the planted bug."""
    buggy = Variant("torch", "cpu", dtype, InjectedTorch(eps))
    correct = Variant("torch", "cpu", dtype, InjectedTorch(0.0))
    rec = common.recorder(buggy, run_seed, discrepancies)
    control = {"failed": False}

    @settings(max_examples=CI_BUDGET)
    @seed(run_seed)
    @given(drawn=strategy)
    def body(drawn):
        fits = 0
        for case, (bounds, loose) in zip(drawn, set_bounds(drawn)):
            if not fits_dtype(bounds, dtype):
                continue
            fits += 1
            if _failing(buggy, rec, case, bounds, loose):
                if not _failing(correct, rec, case, bounds, loose):
                    raise Caught(repr(case))
                control["failed"] = True
        assume(fits)

    try:
        body()
    except Caught:
        return True, control["failed"]
    return False, control["failed"]


def _strategy(dtype: str, **kw):
    return case_sets(dtype=dtype, networks=networks_per_example("torch"), **kw)


def tanh_share(dtype: str, n: int = 300) -> float:
    """The share of the ci strategy's architectures with a tanh layer, hidden or output."""
    seen = []

    @settings(max_examples=n)
    @seed(0)
    @given(drawn=_strategy(dtype))
    def body(drawn):
        seen.append(any(name == "tanh" for name, _ in drawn[0].network.activations))

    body()
    return sum(seen) / len(seen)


def _gradcheck(eps: float, run_seed: int, fast: bool) -> bool:
    params, x, t = peer_problem(run_seed)
    inputs = [torch.tensor(p, requires_grad=True) for p in params]
    return not torch.autograd.gradcheck(torch_loss(x, t, eps), inputs, fast_mode=fast, raise_exception=False)


def _check_grads(eps: float, run_seed: int) -> bool:
    import jax.numpy as jnp
    import numpy as np
    from jax.test_util import check_grads

    params, x, t = peer_problem(run_seed)
    np.random.seed(run_seed)  # check_grads draws its random direction from NumPy's global state
    try:
        check_grads(jax_loss(x, t, eps), ([jnp.asarray(p) for p in params],), order=1, modes=["rev"])
    except AssertionError:
        return True
    return False


def rate(flags, runs: int) -> tuple[int, int]:
    """Runs caught out of those tried; stops once more than 5% have been missed."""
    caught = tried = 0
    for i in range(runs):
        caught += flags(i)
        tried += 1
        if tried - caught > math.floor(0.05 * runs):
            break
    return caught, tried


def floor(flags, runs: int, lo: float, hi: float, steps: int, log) -> float:
    """Bisection over log10(eps) in [lo, hi] for the smallest eps caught in >= 95% of runs."""
    caught, tried = rate(lambda i: flags(10.0**hi, i), runs)
    log(hi, caught, tried)
    if caught < 0.95 * runs:
        return math.inf
    for _ in range(steps):
        mid = (lo + hi) / 2
        caught, tried = rate(lambda i: flags(10.0**mid, i), runs)
        log(mid, caught, tried)
        lo, hi = (lo, mid) if caught >= 0.95 * runs else (mid, hi)
    return 10.0**hi


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtypes", help=f"comma-separated, from {','.join(common.DTYPES)}; default all")
    parser.add_argument("--runs", type=int, default=20, help="seeded runs per eps (default 20)")
    parser.add_argument("--steps", type=int, default=6, help="bisection steps over log10(eps) (default 6)")
    args = parser.parse_args()
    dtypes = common.split(args.dtypes, common.DTYPES, "--dtypes")
    print(common.machine())
    print(f"{args.runs} seeded runs per eps; {args.steps} bisection steps over log10(eps) in [-17, 0]")
    discrepancies = _known_without_tanh()

    def log_to(name):
        return lambda e, c, n: print(f"    {name}: eps 1e{e:+.2f}: caught in {c} of {n} runs", flush=True)

    for dtype in dtypes:
        print(f"ci strategy, {dtype}: {tanh_share(dtype):.0%} of drawn cases have a tanh layer", flush=True)
        for label, strategy in (("ci strategy", _strategy(dtype)),
                                ("tanh-only strategy", _strategy(dtype, activations=("tanh",)))):
            start, controls = time.perf_counter(), []

            def flags(eps, i, dtype=dtype, strategy=strategy):
                caught, control = suite_run(dtype, eps, i, discrepancies, strategy)
                controls.append(control)
                return caught

            found = floor(flags, args.runs, -17.0, 0.0, args.steps, log_to(f"deltacheck {dtype} {label}"))
            print(f"deltacheck, torch, {dtype}, {label}: floor eps = {found:.3g} "
                  f"(control: {sum(controls)} of {len(controls)} runs also met an unexplained framework "
                  f"finding) in {time.perf_counter() - start:.0f} s [{common.load()}]", flush=True)
    peers = {
        "torch gradcheck fast_mode=False": lambda eps, i: _gradcheck(eps, i, False),
        "torch gradcheck fast_mode=True": lambda eps, i: _gradcheck(eps, i, True),
        "jax check_grads order 1 rev": _check_grads,
    }
    for name, flags in peers.items():
        found = floor(flags, args.runs, -17.0, 0.0, args.steps, log_to(name))
        print(f"{name}, float64: floor eps = {found:.3g} [{common.load()}]", flush=True)


if __name__ == "__main__":
    main()
