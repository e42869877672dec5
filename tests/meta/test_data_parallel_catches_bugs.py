"""The data-parallel check catches broken data-parallel gradients: DDP under ``no_sync()``,
DDP's average returned for a summed loss, overlapping shards, ``shard_map`` without
``psum``, with ``pmean``, and padding rows counted as examples (``broken_data_parallel_*``);
and a shard count that is not a positive integer is rejected."""

from __future__ import annotations

import importlib

import pytest

import reference
from adapters.interface import Unsupported
from adapters.registry import load_target
from harness.compare import Mismatch
from harness.crossval import problem_of
from harness.data_parallel import check_data_parallel
from harness.strategies import Case, build_case


def _fixed_case() -> Case:
    """Five rows over two shards (parts of 3 and 2; jax pads the second), a sum loss; relu,
    whose derivative every framework forms exactly (tanh' is a known entry-wise finding)."""
    net = reference.Network((3, 4, 2), ("relu", "identity"), loss="sse", reduction="sum")
    return build_case(net, batch=5, dtype="float64", lr=0.1, seed=1, scales=(1.0, 1.0, 1.0))


def _framework_runner(framework: str):
    """(target name, the correct call, a runner of a broken function) for ``framework``."""
    if framework == "torch":
        pytest.importorskip("torch")
        from adapters import torch_distributed as dp

        return "torch", lambda fn, problem, shards: dp.on_ranks(fn, problem, "float64", shards)[0]
    pytest.importorskip("jax")
    from adapters import jax_sharded as js

    return "jax-jit", lambda fn, problem, shards: js.on_devices(fn, problem, "float64", shards, True)


# Names in tests/meta/broken_data_parallel_{framework}.py, imported only when their test runs.
BROKEN = [
    ("torch", "ddp_without_all_reduce"), ("torch", "ddp_average_of_sums"), ("torch", "ddp_overlapping_parts"),
    ("jax", "shard_map_without_psum"), ("jax", "shard_map_pmean"), ("jax", "padding_rows_counted"),
]


@pytest.mark.parametrize(("framework", "name"), BROKEN, ids=[f"{f}-{n}" for f, n in BROKEN])
def test_data_parallel_check_catches_a_broken_split_or_all_reduce(framework: str, name: str) -> None:
    target, run = _framework_runner(framework)
    broken = getattr(importlib.import_module(f"broken_data_parallel_{framework}"), name)
    case, shards = _fixed_case(), 2
    try:
        correct = load_target(target).data_parallel_grads(problem_of(case), device="cpu", dtype="float64", shards=shards)
    except Unsupported as exc:
        pytest.skip(str(exc))
    check_data_parallel(case, shards, correct)  # the control passes
    with pytest.raises(Mismatch, match=r"data-parallel dE/d[Wb] of layer \d \(Eq\. \d+, batch split over 2 shards"):
        check_data_parallel(case, shards, run(broken, problem_of(case), shards))


@pytest.mark.parametrize("target", ["torch", "torch-func", "jax", "jax-jit"])
@pytest.mark.parametrize("shards", [0, -1, 2.0, True])
def test_a_shard_count_that_is_not_a_positive_integer_is_rejected(target: str, shards) -> None:
    pytest.importorskip("torch" if target.startswith("torch") else "jax")
    with pytest.raises(ValueError, match=rf"shards must be a positive integer .*got {shards!r}"):
        load_target(target).data_parallel_grads(problem_of(_fixed_case()), device="cpu", dtype="float64", shards=shards)
