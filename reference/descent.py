"""Gradient descent: Eq. 7 as one step, a K-step full-batch loop and the post's
online loop."""

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
    """The post's online loop: Eq. 7 after every single example, the learning rate
    multiplied by ``anneal`` between passes; examples visited in a fresh random order
    each pass when ``rng`` is given, in stored order otherwise.

    Returns the final parameters and the loss of the whole batch after each pass.
    """
    _check_lr(lr)
    if not 0.0 < anneal <= 1.0:
        raise ValueError(f"anneal={anneal!r} must lie in (0, 1]")
    history = []
    for _ in range(epochs):
        order = rng.permutation(len(x)) if rng is not None else range(len(x))
        for i in order:
            params = sgd_step(params, gradients(net, params, x[i : i + 1], t[i : i + 1]), lr)
        history.append(loss(net, params, x, t))
        lr *= anneal
    return params, history
