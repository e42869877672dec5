"""Gradient descent: Eq. 7 as one step, a K-step full-batch loop, and the post's
online loop with its visiting order and annealed learning rate (``schedule``)."""

from __future__ import annotations

import math

import numpy as np

from .backprop import gradients, loss
from .network import Network, Params


def _check_lr(lr: float) -> None:
    if not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr < 0:
        raise ValueError(f"learning rate lr={lr!r} must be a finite number >= 0")


def sgd_step(params: Params, grads: Params, lr: float) -> Params:
    """w <- w - eta dE/dw, and likewise for every bias -- Eq. 7."""
    _check_lr(lr)
    if len(params) != len(grads):
        raise ValueError(
            f"params has {len(params)} layers but grads has {len(grads)}; give one per layer"
        )
    return [(W - lr * dW, b - lr * db) for (W, b), (dW, db) in zip(params, grads)]  # Eq. 7


def train(net: Network, params: Params, x: np.ndarray, t: np.ndarray, *, lr: float, steps: int) -> list[Params]:
    """``steps`` full-batch steps of Eq. 7; returns the parameters after each step."""
    _check_lr(lr)
    if steps < 0:
        raise ValueError(f"steps={steps!r} must be >= 0")
    history = []
    for _ in range(steps):
        params = sgd_step(params, gradients(net, params, x, t), lr)
        history.append(params)
    return history


def schedule(
    n_examples: int, *, lr: float, epochs: int, anneal: float = 1.0, rng: np.random.Generator | None = None
) -> list[tuple[int, float]]:
    """The post's online visiting order: one ``(example index, learning rate)`` pair per
    step of Eq. 7, ``epochs`` passes over ``n_examples`` examples, each pass in a fresh
    random order drawn from ``rng`` (stored order without one), the learning rate
    multiplied by ``anneal`` between passes.

    ``train_online`` follows exactly this list, so a framework that replays it takes the
    same steps bit for bit; the first ``p`` passes of a longer schedule are the schedule
    of ``p`` passes.
    """
    _check_lr(lr)
    if not 0.0 < anneal <= 1.0:
        raise ValueError(f"anneal={anneal!r} must lie in (0, 1]")
    if not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs={epochs!r} must be an integer >= 0")
    steps: list[tuple[int, float]] = []
    for _ in range(epochs):
        order = rng.permutation(n_examples) if rng is not None else range(n_examples)
        steps += [(int(i), lr) for i in order]
        lr *= anneal
    return steps


def train_online(
    net: Network,
    params: Params,
    x: np.ndarray,
    t: np.ndarray,
    *,
    lr: float,
    epochs: int,
    anneal: float = 1.0,
    rng: np.random.Generator | None = None,
) -> tuple[Params, list[float]]:
    """The post's online loop: Eq. 7 after every single example, in the order and with
    the learning rates of ``schedule`` (a fresh random order each pass when ``rng`` is
    given, the learning rate multiplied by ``anneal`` between passes).

    Returns the final parameters and the loss of the whole batch after each pass.
    """
    steps = schedule(len(x), lr=lr, epochs=epochs, anneal=anneal, rng=rng)
    history = []
    for p in range(epochs):
        for i, eta in steps[p * len(x) : (p + 1) * len(x)]:
            params = sgd_step(params, gradients(net, params, x[i : i + 1], t[i : i + 1]), eta)  # Eq. 7
        history.append(loss(net, params, x, t))
    return params, history
