"""Cost against peers: checking one network with deltacheck, torch.autograd.gradcheck
(slow and fast mode) and jax.test_util.check_grads, in float64.

    python benchmarks/peers.py [--repeats 5]

Networks: small 8-16-4 (batch 8) and wide 256-256-10 (batch 64), tanh hidden layer,
identity output, sse loss summed over the batch.  deltacheck's time is one example of
the suite's check: the error model (``both_bounds``, ``fits_dtype``), the adapter's
``compute``, the reference (``expected_result``), ``comparisons`` and every verdict
(``Recorder.check``, with the known discrepancies).
gradcheck checks the gradient of the same loss with respect to W1, b1, W2, b2 (slow: the
full numerical Jacobian, two loss evaluations per parameter; fast: one random
projection); check_grads (order 1, ``modes=["rev"]``) one random VJP against central
differences.  Each figure is the median of ``--repeats`` runs after one warm-up run, and
the warm-up (first call: jax-jit's XLA compile, jax's per-op compiles) is shown too;
slow-mode gradcheck of the wide network, which takes minutes, runs once.
"""

from __future__ import annotations

import argparse
import statistics
import time

import common
import numpy as np

import reference
from harness.compare import comparisons
from harness.crossval import expected_result, problem_of
from harness.error_model import both_bounds, fits_dtype
from harness.strategies import build_case

NETWORKS = {"small 8-16-4, batch 8": ((8, 16, 4), 8), "wide 256-256-10, batch 64": ((256, 256, 10), 64)}


def make_case(sizes: tuple[int, ...], batch: int):
    net = reference.Network(sizes, ("tanh", "identity"), loss="sse", reduction="sum")
    scales = (1.0,) + tuple(1.0 / np.sqrt(n) for n in sizes[:-1])
    return build_case(net, batch=batch, dtype="float64", lr=0.1, seed=0, scales=scales)


def deltacheck_once(v, case) -> None:
    bounds, loose = both_bounds(case.network, case.params, case.x, case.t, dtype=case.dtype, lr=case.lr)
    assert fits_dtype(bounds, case.dtype)
    result = v.adapter.compute(problem_of(case), device="cpu", dtype=case.dtype, lr=case.lr)
    comps = comparisons(case, result, expected_result(case), bounds, loose)
    failed = [c.key for c in common.recorder(v, 0).check(v, case, comps)]
    assert not failed, failed


def gradcheck_once(case, fast: bool) -> None:
    import torch

    inputs = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for W, b in case.params for a in (W, b)]
    x, t = torch.tensor(case.x), torch.tensor(case.t)

    def loss(W1, b1, W2, b2):
        z2 = torch.tanh(x @ W1 + b1) @ W2 + b2
        return 0.5 * ((z2 - t) ** 2).sum()

    assert torch.autograd.gradcheck(loss, inputs, fast_mode=fast)


def check_grads_once(case) -> None:
    import jax
    import jax.numpy as jnp
    from jax.test_util import check_grads

    jax.config.update("jax_enable_x64", True)
    x, t = jnp.asarray(case.x), jnp.asarray(case.t)

    def loss(params):
        (W1, b1), (W2, b2) = params
        z2 = jnp.tanh(x @ W1 + b1) @ W2 + b2
        return 0.5 * jnp.sum((z2 - t) ** 2)

    check_grads(loss, ([tuple(map(jnp.asarray, p)) for p in case.params],), order=1, modes=["rev"])


def timed(fn, repeats: int) -> tuple[float, float]:
    """Seconds of the first call and the median of ``repeats`` further calls."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    runs = [first]
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return first, statistics.median(runs[1:] or runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(common.machine())
    torch_v, jit_v = common.variant("torch", "float64"), common.variant("jax-jit", "float64")
    for label, (sizes, batch) in NETWORKS.items():
        case = make_case(sizes, batch)
        n_params = sum(W.size + b.size for W, b in case.params)
        print(f"{label} ({n_params} parameters), float64:")
        checks = {
            "deltacheck, torch target (all quantities, every entry)": lambda: deltacheck_once(torch_v, case),
            "deltacheck, jax-jit target": lambda: deltacheck_once(jit_v, case),
            "torch gradcheck, fast_mode=False": lambda: gradcheck_once(case, False),
            "torch gradcheck, fast_mode=True": lambda: gradcheck_once(case, True),
            "jax check_grads, order 1, modes rev": lambda: check_grads_once(case),
        }
        for name, fn in checks.items():
            # The full numerical Jacobian of a wide network takes minutes: one call.
            once = "fast_mode=False" in name and n_params > 10_000
            try:
                first, median = timed(fn, 0 if once else args.repeats)
            except AssertionError as exc:  # a peer's false alarm (its random projection) is a result too
                print(f"    {name:<56} raised: {' '.join(str(exc).split())[:160]} [{common.load()}]", flush=True)
                continue
            how = "one call" if once else f"median of {args.repeats}; first call {1e3 * first:.2f} ms"
            print(f"    {name:<56} {1e3 * (first if once else median):10.2f} ms ({how}) [{common.load()}]", flush=True)


if __name__ == "__main__":
    main()
