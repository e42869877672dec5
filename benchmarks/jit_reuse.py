"""What reusing one jax.jit program across activations would cost: compile time and
call time of a training-gradient program whose activations are fixed (as jax-jit
compiles now, one program per network) against one whose every layer picks its
activation at run time with ``jax.lax.switch`` over all of them (one program per
depth, loss and shapes, reusable across activations).

    python benchmarks/jit_reuse.py [--depths 1,3,6] [--width 32] [--batch 16]

Both programs are ``jax.jit(jax.value_and_grad(E))`` of an sse network with
``precision=HIGHEST`` matmuls, in float64, built from the jax adapter's own
activation table; parameters of parametrized activations are run-time scalars in the
switch program.  Printed: seconds of the first call (trace + compile + run), wall and
CPU, and ms per further call (median of 20).
"""

from __future__ import annotations

import argparse
import statistics
import time

import common
import jax
import jax.numpy as jnp
import numpy as np
import optax

from adapters.interface import ACTIVATIONS
from adapters.jax_common import activation_code

PARAMS = {"slope": 0.01, "alpha": 1.0, "beta": 1.0, "threshold": 20.0, "min_val": -1.0, "max_val": 1.0}


# The adapter picks these two by their parameters' values in Python; at run time they
# are the general forms.
RUN_TIME = {
    "softplus": lambda p: lambda z: jnp.where(p["beta"] * z > p["threshold"], z,
                                              jax.nn.softplus(p["beta"] * z) / p["beta"]),
    "hardtanh": lambda p: lambda z: jnp.clip(z, p["min_val"], p["max_val"]),
}


def _branches() -> list:
    """Every hidden activation as ``f(z, p)``, its parameters read from ``p`` at run time."""
    keys = list(PARAMS)

    def branch(name):
        make = RUN_TIME.get(name, lambda p: activation_code(name, p).fn)
        return lambda z, p: make({k: p[i] for i, k in enumerate(keys)})(z)

    return [branch(name) for name in ACTIVATIONS if name != "softmax"]


def program(depth: int, switch: bool):
    branches = _branches()
    fixed = [branches[i % len(branches)] for i in range(1, depth + 1)]

    def loss(params, x, t, which, p):
        a = x
        for layer, (w, b) in enumerate(params):
            z = jnp.matmul(a, w, precision=jax.lax.Precision.HIGHEST) + b
            a = jax.lax.switch(which[layer], branches, z, p) if switch else fixed[layer](z, p)
        return jnp.sum(optax.l2_loss(a, t))

    return jax.jit(jax.value_and_grad(loss))


def measure(depth: int, switch: bool, width: int, batch: int) -> tuple[float, float, float]:
    rng = np.random.default_rng(depth)
    params = [(rng.standard_normal((width, width)), rng.standard_normal(width)) for _ in range(depth)]
    args = (params, rng.standard_normal((batch, width)), rng.standard_normal((batch, width)),
            np.arange(1, depth + 1, dtype=np.int32), np.array(list(PARAMS.values())))
    fn = program(depth, switch)
    start, cpu = time.perf_counter(), time.process_time()
    jax.block_until_ready(fn(*args))
    first, first_cpu = time.perf_counter() - start, time.process_time() - cpu
    calls = []
    for _ in range(20):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        calls.append(time.perf_counter() - start)
    return first, first_cpu, statistics.median(calls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", default="1,3,6")
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    print(common.machine())
    measure(1, False, 2, 2)  # JAX's own start-up, not charged to the first program
    for depth in map(int, args.depths.split(",")):
        for switch in (False, True):
            first, first_cpu, call = measure(depth, switch, args.width, args.batch)
            kind = f"lax.switch over {len(_branches())} activations" if switch else "fixed activations"
            print(f"depth {depth}, {kind:<34} first call {first:6.2f} s ({first_cpu:5.2f} s CPU), then {1e3 * call:6.3f} ms per call "
                  f"[{common.load()}]", flush=True)


if __name__ == "__main__":
    main()
