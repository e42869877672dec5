"""Cost of the reference's gradients against the matmul lower bound.

    python benchmarks/reference_cost.py [--repeats 5]

For wide tanh networks (widths 256-1024, batch 256, 2 or 3 weight layers, identity
output, sse), the time of ``reference.gradients`` (forward, deltas, dW and db) divided
by the time NumPy's matmul needs for the same products at the same shapes: the forward
``A @ W``, the deltas' ``delta @ W.T`` (Eq. 14, every layer but the first) and the
weight gradients ``A.T @ delta`` (Eqs. 6, 15).  That matmul time is the lower bound
for any implementation that calls the same BLAS; the rest of the reference's time is
element-wise work (tanh, tanh', the loss) and argument checks.  Both are the minimum
of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import time

import common
import numpy as np

import reference

SHAPES = [((256, 256, 256), 256), ((512, 512, 512), 256), ((1024, 1024, 1024), 256),
          ((256, 256, 256, 256), 256), ((512, 512, 512, 512), 256), ((1024, 1024, 1024, 1024), 256)]


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def matmuls(params, x) -> tuple[list, int]:
    """The products ``reference.gradients`` makes, as thunks on same-shaped arrays, and their FLOPs."""
    rng = np.random.default_rng(1)
    batch, thunks, flops = x.shape[0], [], 0
    a = x
    for layer, (W, _) in enumerate(params):
        n_in, n_out = W.shape
        d = rng.standard_normal((batch, n_out))
        thunks.append(lambda a=a, W=W: a @ W)  # Eq. 3
        thunks.append(lambda a=a, d=d: a.T @ d)  # Eqs. 6, 15
        flops += 4 * batch * n_in * n_out
        if layer > 0:
            thunks.append(lambda d=d, W=W: d @ W.T)  # Eq. 14
            flops += 2 * batch * n_in * n_out
        a = rng.standard_normal((batch, n_out))
    return thunks, flops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(common.machine())
    print(f"{'sizes':<26} {'batch':>5} {'GFLOP':>7} {'reference':>10} {'matmuls':>9} {'GFLOP/s':>8} {'ratio':>6}")
    for sizes, batch in SHAPES:
        rng = np.random.default_rng(0)
        params = [(rng.standard_normal((a, b)) / np.sqrt(a), rng.standard_normal(b)) for a, b in zip(sizes[:-1], sizes[1:])]
        x, t = rng.standard_normal((batch, sizes[0])), rng.standard_normal((batch, sizes[-1]))
        net = reference.Network(sizes, ("tanh",) * (len(sizes) - 2) + ("identity",), loss="sse")
        ref = best(lambda: reference.gradients(net, params, x, t), args.repeats)
        thunks, flops = matmuls(params, x)
        bound = best(lambda: [f() for f in thunks], args.repeats)
        print(f"{str(sizes):<26} {batch:>5} {flops / 1e9:7.3f} {1e3 * ref:8.2f}ms {1e3 * bound:7.2f}ms "
              f"{flops / bound / 1e9:8.2f} {ref / bound:6.2f}  [{common.load()}]", flush=True)


if __name__ == "__main__":
    main()
