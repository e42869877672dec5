"""The post's own experiments, run with ``reference.train_online``.

The runs -- data, networks, initial parameters, learning rates, annealing, passes
and visiting order -- are defined once in ``post_experiments`` (see its docstring),
which ``test_post_training_runs.py`` replays on every framework.  AND and OR are
linearly separable; XOR and RING are not, so a single-layer network cannot learn
them.  Every seed is fixed.
"""

from __future__ import annotations

import numpy as np
import pytest

import reference
from harness import post_experiments as pe

LEARNABLE = [("AND", 0), ("OR", 0), ("AND", 4), ("OR", 4), ("XOR", 4), ("RING", 4)]


def classify(problem: str, hidden: int) -> tuple[float, float, list[float]]:
    """(accuracy, loss before training, loss after each pass)."""
    return _run(f"{problem}-hidden{hidden}")


def regress(target: str) -> tuple[float, float, list[float]]:
    """(RMS error against the noiseless target on a grid of [-5, 5], loss before
    training, loss after each pass)."""
    return _run(target)


def _run(name: str) -> tuple[float, float, list[float]]:
    run = pe.experiment(name)
    params, history = pe.reference_run(name)
    return run.score(params), reference.loss(run.network, run.params, run.x, run.t), history


@pytest.mark.parametrize(("problem", "hidden"), LEARNABLE, ids=[f"{p}-hidden{h}" for p, h in LEARNABLE])
def test_online_training_reduces_the_loss_severalfold(problem: str, hidden: int) -> None:
    """Where the network can learn the problem, E (Eq. 1, summed over the data)
    falls to under a quarter of its starting value."""
    _, before, history = classify(problem, hidden)
    assert history[-1] < before / 4, f"{problem}, {hidden} hidden: E {before:.4g} -> {history[-1]:.4g}"


@pytest.mark.parametrize("problem", ["XOR", "RING"])
def test_online_training_reduces_the_loss_even_where_a_line_cannot_separate(problem: str) -> None:
    """Without a hidden layer XOR and RING are not learned, yet E still falls
    (the unit settles near the best it can do)."""
    _, before, history = classify(problem, 0)
    assert history[-1] < before, f"{problem}, no hidden layer: E {before:.4g} -> {history[-1]:.4g}"


@pytest.mark.parametrize("target", list(pe.CURVES))
def test_regression_loss_falls_to_the_noise_level(target: str) -> None:
    """E per example ends below 0.02 -- four times the noise's own 1/2 sd^2 =
    0.005, room for |x|'s corner, which tanh units round off -- from over 1
    before training."""
    _, before, history = regress(target)
    n = pe.N
    assert history[-1] / n < 0.02 and before / n > 1, f"{target}: E/N {before / n:.4g} -> {history[-1] / n:.4g}"


@pytest.mark.parametrize("name", pe.NAMES)
def test_each_run_reaches_the_posts_result(name: str) -> None:
    """AND and OR are learned by both architectures, XOR and RING only with the
    hidden layer, and each regression is within RMS 0.2 of its noiseless curve
    (``post_experiments.EXPECTED``; the noise sd is 0.1)."""
    run = pe.experiment(name)
    score = run.score(pe.reference_run(name)[0])
    assert run.expected.met(score), f"{name}: {run.expected.measure} {score:.3g}, expected {run.expected}"


@pytest.mark.parametrize("name", ["XOR-hidden4", "sin"])
def test_train_online_takes_exactly_the_steps_of_its_schedule(name: str) -> None:
    """Replaying ``reference.schedule`` with Eq. 7 one example at a time gives
    ``train_online``'s parameters bit for bit: the schedule a framework replays is the
    reference's loop, not a copy of it."""
    run = pe.experiment(name)
    params = run.params
    for n, lr in run.schedule(epochs=3):
        params = reference.sgd_step(params, reference.gradients(run.network, params, run.x[n:n + 1], run.t[n:n + 1]), lr)
    looped, _ = run.train_reference(epochs=3)
    for (W, b), (lW, lb) in zip(params, looped):
        assert np.array_equal(W, lW) and np.array_equal(b, lb), f"{name}: schedule replay differs from train_online"


def test_a_shorter_schedule_is_a_prefix_of_the_longer_one() -> None:
    run = pe.experiment("AND-hidden4")
    assert run.schedule(epochs=2) == run.schedule(epochs=5)[: 2 * pe.N]
    assert [lr for _, lr in run.schedule(epochs=3)[:: pe.N]] == [0.5, 0.5 * 0.99, 0.5 * 0.99 * 0.99]


def test_an_unknown_experiment_is_rejected_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown experiment 'XOR-hidden3'; known experiments: AND-hidden0"):
        pe.experiment("XOR-hidden3")
