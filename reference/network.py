"""The network description and the checks that reject bad input early."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .activations import ACTIVATIONS

LOSSES = ("sse", "mse", "bce", "bce_logits", "ce", "softmax_ce")
# The output activation a loss is defined on, where it requires one.
OUTPUT_ACTIVATION_FOR_LOSS: Mapping[str, str] = {
    "bce": "sigmoid",
    "bce_logits": "identity",
    "ce": "softmax",
    "softmax_ce": "identity",
}
REDUCTIONS = ("sum", "mean")

ActivationSpec = tuple[str, Mapping[str, float]]
Params = list[tuple[np.ndarray, np.ndarray]]


def _normalise_activation(entry: object, layer: int) -> ActivationSpec:
    if isinstance(entry, str):
        name, params = entry, {}
    elif isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[1], Mapping):
        name, params = entry[0], dict(entry[1])
    else:
        raise ValueError(
            f"activations[{layer}] is {entry!r}; give a name such as 'tanh' or a pair "
            "(name, {parameter: value}) such as ('leaky_relu', {'slope': 0.1})"
        )
    if name not in ACTIVATIONS:
        raise ValueError(
            f"unknown activation {name!r} for layer {layer + 1}; "
            f"known activations: {', '.join(ACTIVATIONS)}"
        )
    defaults = ACTIVATIONS[name].defaults
    for key, value in params.items():
        if key not in defaults:
            allowed = ", ".join(defaults) or "none"
            raise ValueError(
                f"activation {name!r} of layer {layer + 1} has no parameter {key!r}; "
                f"its parameters: {allowed}"
            )
        if not isinstance(value, (int, float)) or math.isnan(value):
            raise ValueError(
                f"parameter {key}={value!r} of activation {name!r} (layer {layer + 1}) "
                "must be a real number"
            )
    merged = {**defaults, **{k: float(v) for k, v in params.items()}}
    return name, merged


@dataclass(frozen=True, init=False)
class Network:
    """A fully connected network: ``sizes`` = (n_input, n_hidden..., n_output),
    one activation per weight layer, a loss and a batch reduction.

    ``activations`` entries are names (``"tanh"``) or ``(name, {param: value})``
    pairs; they are stored with every parameter filled in from the defaults.
    ``reduction="sum"`` is the post's sum over examples; ``"mean"`` is the
    frameworks' default (see ``reference.losses``).
    """

    sizes: tuple[int, ...]
    activations: tuple[ActivationSpec, ...]
    loss: str
    reduction: str

    def __init__(
        self,
        sizes: Sequence[int],
        activations: Sequence[object],
        loss: str = "sse",
        reduction: str = "sum",
    ) -> None:
        sizes = tuple(sizes)
        if len(sizes) < 2:
            raise ValueError(
                f"sizes={sizes!r} has {len(sizes)} entries; give at least (n_input, n_output)"
            )
        for i, n in enumerate(sizes):
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
                raise ValueError(f"sizes[{i}] is {n!r}; every width must be an integer >= 1")
        n_layers = len(sizes) - 1
        if isinstance(activations, str) or len(activations) != n_layers:
            count = "a string" if isinstance(activations, str) else f"{len(activations)} entries"
            raise ValueError(
                f"activations has {count} but the network has {n_layers} layers; "
                "give one per layer"
            )
        acts = tuple(_normalise_activation(a, i) for i, a in enumerate(activations))
        for i, (name, _) in enumerate(acts[:-1]):
            if ACTIVATIONS[name].output_only:
                raise ValueError(
                    f"activation {name!r} of layer {i + 1} is allowed on the output layer only"
                )
        _check_loss(loss, reduction, acts[-1][0], sizes[-1])
        object.__setattr__(self, "sizes", tuple(int(n) for n in sizes))
        object.__setattr__(self, "activations", acts)
        object.__setattr__(self, "loss", loss)
        object.__setattr__(self, "reduction", reduction)

    @property
    def n_layers(self) -> int:
        return len(self.sizes) - 1


def _check_loss(loss: str, reduction: str, output: str, n_out: int) -> None:
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; known losses: {', '.join(LOSSES)}")
    if reduction not in REDUCTIONS:
        raise ValueError(
            f"unknown reduction {reduction!r}; known reductions: {', '.join(REDUCTIONS)}"
        )
    required = OUTPUT_ACTIVATION_FOR_LOSS.get(loss)
    if required is not None and output != required:
        raise ValueError(
            f"loss {loss!r} needs output activation {required!r}, not {output!r}"
        )
    if loss in ("ce", "softmax_ce") and n_out < 2:
        raise ValueError(
            f"loss {loss!r} on a {n_out}-unit output is meaningless (softmax over one unit "
            "is constant); use 'bce' or 'bce_logits' for one output, or >= 2 outputs"
        )


def check_params(net: Network, params: Params) -> None:
    """Parameter shapes chain: W of layer l is (sizes[l-1], sizes[l]), b is (sizes[l],)."""
    if len(params) != net.n_layers:
        raise ValueError(
            f"params has {len(params)} layers but the network has {net.n_layers}; "
            "give one (W, b) pair per layer"
        )
    for layer, (pair, n_in, n_out) in enumerate(zip(params, net.sizes[:-1], net.sizes[1:]), 1):
        W, b = (np.asarray(p) for p in pair)
        if W.shape != (n_in, n_out) or b.shape != (n_out,):
            raise ValueError(
                f"layer {layer} has W of shape {W.shape} and b of shape {b.shape}; "
                f"sizes {net.sizes} need W {(n_in, n_out)} and b {(n_out,)}"
            )
        _check_finite(f"W of layer {layer}", W)
        _check_finite(f"b of layer {layer}", b)


def check_batch(net: Network, x: np.ndarray, t: np.ndarray | None = None) -> None:
    """x is (batch, n_in) and t is (batch, n_out), both finite; t in the loss's domain."""
    if x.ndim != 2 or x.shape[1] != net.sizes[0] or x.shape[0] < 1:
        raise ValueError(
            f"x has shape {x.shape}; the network needs (batch >= 1, {net.sizes[0]})"
        )
    _check_finite("x", x)
    if t is None:
        return
    if t.shape != (x.shape[0], net.sizes[-1]):
        raise ValueError(
            f"t has shape {t.shape}; with x of batch {x.shape[0]} the network needs "
            f"{(x.shape[0], net.sizes[-1])}"
        )
    _check_finite("t", t)
    if net.loss in ("bce", "bce_logits") and ((t < 0) | (t > 1)).any():
        raise ValueError(f"loss {net.loss!r} needs targets in [0, 1]; t holds {t.min()}..{t.max()}")
    if net.loss in ("ce", "softmax_ce") and (t < 0).any():
        raise ValueError(f"loss {net.loss!r} needs non-negative targets; t holds {t.min()}")


def _check_finite(what: str, array: np.ndarray) -> None:
    bad = ~np.isfinite(array)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{what} holds {int(bad.sum())} non-finite value(s), first {float(array[index])!r} at "
            f"index {index}; every value must be finite"
        )
