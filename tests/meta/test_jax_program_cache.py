"""The jax targets hold a bounded number of compiled shapes.

Every compiled program keeps its code mapped; a run through thousands of architectures
(a soak, the thorough profile) would otherwise reach the kernel's limit on memory maps
and XLA would fail with "LLVM compilation error: Cannot allocate memory".  Past
``MAX_LIVE_SHAPES`` the adapter drops every program; what it computes afterwards must be
the same, bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest

jax_adapter = pytest.importorskip("adapters.jax_adapter", reason="jax is not installed")
jax_common = pytest.importorskip("adapters.jax_common", reason="jax is not installed")

from adapters.interface import Activation, NetworkSpec, Problem  # noqa: E402


def _problem(width: int) -> Problem:
    rng = np.random.default_rng(width)
    net = NetworkSpec((2, width, 1), (Activation("tanh"), Activation("identity")), "sse")
    params = [(rng.standard_normal((2, width)), rng.standard_normal(width)),
              (rng.standard_normal((width, 1)), rng.standard_normal(1))]
    return Problem(net, params, rng.standard_normal((3, 2)), rng.standard_normal((3, 1)))


@pytest.mark.parametrize("name", ["jax", "jax-jit"])
def test_programs_are_dropped_past_the_limit_and_results_stay_the_same(monkeypatch, name):
    target = jax_adapter.JaxTarget(name, jit=name == "jax-jit")
    monkeypatch.setattr(jax_common, "MAX_LIVE_SHAPES", 2)
    before = jax_adapter.compile_stats()["flushes"]
    first = target.compute(_problem(3), device="cpu", dtype="float64", lr=0.1)
    for width in (4, 5, 6):  # three more shapes: at least one flush
        target.compute(_problem(width), device="cpu", dtype="float64", lr=0.1)
    assert jax_adapter.compile_stats()["flushes"] > before
    assert jax_common.program_stats()["live_shapes"] <= 2
    again = target.compute(_problem(3), device="cpu", dtype="float64", lr=0.1)
    assert again.loss == first.loss
    for a, b in zip(again.deltas + [g for pair in again.grads for g in pair], first.deltas + [g for pair in first.grads for g in pair]):
        assert np.array_equal(a, b)


def _ones_like(problem: Problem) -> list:
    return [(np.ones_like(W), np.ones_like(b)) for W, b in problem.params]


@pytest.mark.parametrize("name", ["jax", "jax-jit"])
def test_transform_functions_count_toward_the_limit_and_are_dropped_with_the_programs(monkeypatch, name):
    """jvp, hvp, per-example and online functions hold compiled programs too: their
    shapes count toward the same limit, and a flush drops the functions built so far."""
    jax_transforms = pytest.importorskip("adapters.jax_transforms")
    target = jax_adapter.JaxTarget(name, jit=name == "jax-jit")
    monkeypatch.setattr(jax_common, "MAX_LIVE_SHAPES", 2)
    first = target.hvp(_problem(3), _ones_like(_problem(3)), device="cpu", dtype="float64")
    built = list(jax_transforms._FUNCTIONS.values())
    before = jax_common.program_stats()["flushes"]
    for width in (4, 5, 6):  # three more shapes of hvp alone: at least one flush
        target.hvp(_problem(width), _ones_like(_problem(width)), device="cpu", dtype="float64")
    assert jax_common.program_stats()["flushes"] > before
    assert jax_common.program_stats()["live_shapes"] <= 2
    assert not any(f is g for f in built for g in jax_transforms._FUNCTIONS.values()), "a flush kept a built function"
    again = target.hvp(_problem(3), _ones_like(_problem(3)), device="cpu", dtype="float64")
    for (a_w, a_b), (b_w, b_b) in zip(again, first):
        assert np.array_equal(a_w, b_w) and np.array_equal(a_b, b_b)
