"""Hypothesis strategies for deltacheck cases.

A *case* is a network, its parameters, a batch, targets, a dtype and a learning
rate.  Hypothesis draws the architecture choices (each draw labelled, choices
listed simplest first) and a seed; NumPy fills the arrays from that seed at
log-uniform scales, so an example costs one architecture draw rather than one draw
per weight, and a failing case still shrinks: toward fewer layers, narrower
layers, a smaller batch, the first activation (identity) and loss (sse), scale 1
and seed 0.  The minimal case is the one-layer, width-one network.

Arrays are rounded to the dtype under test before anything sees them, so the
reference (float64) and the framework start from the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import strategies as st

import reference
from harness.bounded_arithmetic import round_to

# Simplest first: hypothesis shrinks toward the start of each list.
ACTIVATION_ORDER = (
    "identity", "tanh", "sigmoid", "relu", "leaky_relu", "elu", "selu", "celu",
    "softplus", "gelu", "gelu_tanh", "silu", "mish", "softsign", "hardtanh", "relu6",
    "hardsigmoid", "hardswish", "log_sigmoid",
)
LOSS_ORDER = ("sse", "mse", "bce_logits", "bce", "softmax_ce", "ce")
ACTIVATION_PARAMS: dict[str, dict[str, tuple[float, ...]]] = {
    "leaky_relu": {"slope": (0.01, 0.2, 1.5)},
    "elu": {"alpha": (1.0, 0.5, 2.0)},
    "celu": {"alpha": (1.0, 0.5, 2.0)},
    "softplus": {"beta": (1.0, 2.0, 0.5), "threshold": (math.inf, 20.0)},
    "hardtanh": {"min_val": (-1.0, -2.0), "max_val": (1.0, 0.5)},
}
# Exponents (base 10) of the per-layer weight scale and the input scale.  Wide
# enough that pre-activations reach |z| in the tens, and, for float16/bfloat16,
# products near their underflow and overflow edges; cases whose intermediates
# overflow the dtype are rejected by the tests, not generated skewed.
SCALE_EXPONENTS = {
    "float64": (0.0, -1.0, 0.5, 1.0, -3.0, 1.5),
    "float32": (0.0, -1.0, 0.5, 1.0, -3.0, 1.5),
    "float16": (0.0, -1.0, 0.5, 1.0, -2.0, 1.5),
    "bfloat16": (0.0, -1.0, 0.5, 1.0, -3.0, 1.5),
}
LEARNING_RATES = (0.1, 1.0, 0.01)


@dataclass(frozen=True)
class Case:
    """One drawn problem; prints as a record a person can read and rerun."""

    network: reference.Network
    params: list[tuple[np.ndarray, np.ndarray]] = field(repr=False)
    x: np.ndarray = field(repr=False)
    t: np.ndarray = field(repr=False)
    dtype: str
    lr: float
    seed: int
    scales: tuple[float, ...]
    targets: str = "hard"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # hypothesis' printer
        printer.text(repr(self))

    def __repr__(self) -> str:
        net = self.network
        acts = tuple(name if not p else (name, dict(p)) for name, p in net.activations)
        return (
            f"Case(sizes={net.sizes}, activations={acts}, loss={net.loss!r}, "
            f"reduction={net.reduction!r}, batch={self.x.shape[0]}, dtype={self.dtype!r}, "
            f"lr={self.lr}, seed={self.seed}, scales={self.scales}, targets={self.targets!r})"
        )


def _activation(draw: st.DrawFn, layer: str, names: tuple[str, ...]) -> object:
    name = draw(st.sampled_from(names), label=f"activation of {layer}")
    choices = ACTIVATION_PARAMS.get(name)
    if not choices:
        return name
    params = {
        key: draw(st.sampled_from(values), label=f"{name}.{key} of layer {layer}")
        for key, values in choices.items()
    }
    if name == "hardtanh" and params["min_val"] >= params["max_val"]:
        params["min_val"] = params["max_val"] - 1.0
    return (name, params)


def _targets(rng: np.random.Generator, loss: str, shape: tuple[int, int], kind: str) -> np.ndarray:
    if loss in ("sse", "mse"):
        return rng.standard_normal(shape)
    if loss in ("bce", "bce_logits"):
        return rng.integers(0, 2, shape).astype(float) if kind == "hard" else rng.uniform(0, 1, shape)
    if kind == "hard":
        return np.eye(shape[1])[rng.integers(0, shape[1], shape[0])]
    p = rng.dirichlet(np.ones(shape[1]), size=shape[0])
    return p


def _array(rng: np.random.Generator, shape: tuple[int, ...], scale: float) -> np.ndarray:
    # Log-uniform magnitudes over two decades around the scale, random signs.
    magnitude = scale * 10.0 ** rng.uniform(-1.0, 1.0, shape)
    return np.where(rng.random(shape) < 0.5, -magnitude, magnitude) / math.sqrt(10.0)


@st.composite
def _layer(draw: st.DrawFn, width: tuple[int, int], activations: tuple[str, ...], exponents: tuple[float, ...]
           ) -> tuple[int, bool, object, float]:
    """One weight layer: its output width (or the previous layer's, making it square),
    its activation and its weight scale.  Drawn as one list element, so shrinking
    deletes whole layers without shifting the other draws."""
    n_out = draw(st.integers(*width), label="width")
    square = draw(st.booleans(), label="same width as its input (a square layer)")
    activation = _activation(draw, "this layer", activations)
    scale = 10.0 ** draw(st.sampled_from(exponents), label="weight scale")
    return n_out, square, activation, scale


@st.composite
def cases(
    draw: st.DrawFn,
    *,
    dtype: str = "float64",
    depth: tuple[int, int] = (1, 6),
    width: tuple[int, int] = (1, 64),
    batch: tuple[int, int] = (1, 32),
    activations: tuple[str, ...] = ACTIVATION_ORDER,
    losses: tuple[str, ...] = LOSS_ORDER,
    reductions: tuple[str, ...] = ("sum", "mean"),
) -> Case:
    """A random network, parameters, batch and targets, rounded to ``dtype``.

    The loss comes from ``losses``, the depth, widths and batch from the inclusive
    ranges given (an output layer for ``ce``/``softmax_ce`` gets at least 2 units), an
    activation per hidden layer from ``activations``, the output activation as the
    loss requires (or drawn, for ``sse``/``mse``, softmax included).  Layers are list
    elements, each possibly square.  Shrinks toward the one-layer, width-one ``sse``
    network of batch 1.
    """
    (case,) = _draw_cases(draw, None, dtype=dtype, depth=depth, width=width, batch=batch,
                          activations=activations, losses=losses, reductions=reductions)
    return case


@st.composite
def case_sets(
    draw: st.DrawFn,
    *,
    networks: int = 8,
    dtype: str = "float64",
    depth: tuple[int, int] = (1, 6),
    width: tuple[int, int] = (1, 64),
    batch: tuple[int, int] = (1, 32),
    activations: tuple[str, ...] = ACTIVATION_ORDER,
    losses: tuple[str, ...] = LOSS_ORDER,
    reductions: tuple[str, ...] = ("sum", "mean"),
) -> tuple[Case, ...]:
    """1 to ``networks`` cases of one architecture (sizes, activations, loss,
    reduction, batch, learning rate, scales, target kind), each filled from its own
    seed; otherwise drawn as ``cases`` draws one.  One example checks several networks
    for the price of one architecture draw (and, under jax.jit, one compile).  Shrinks
    toward a single network -- the failing one -- and then as ``cases`` shrinks."""
    if not (isinstance(networks, int) and networks >= 1):
        raise ValueError(f"networks={networks!r}; expected an int >= 1 (the most networks per example)")
    return tuple(_draw_cases(draw, networks, dtype=dtype, depth=depth, width=width, batch=batch,
                             activations=activations, losses=losses, reductions=reductions))


def _draw_cases(draw: st.DrawFn, networks: int | None, *, dtype: str, depth: tuple[int, int],
                width: tuple[int, int], batch: tuple[int, int], activations: tuple[str, ...],
                losses: tuple[str, ...], reductions: tuple[str, ...]) -> list[Case]:
    """The draws of ``cases``, in its order: one seed, or (``networks``) a list of 1 to
    ``networks`` distinct seeds in its place."""
    _validate(dtype=dtype, depth=depth, width=width, batch=batch, activations=activations,
              losses=losses, reductions=reductions)
    exponents = SCALE_EXPONENTS[dtype]
    if width[1] < 2:  # cross-entropies need >= 2 outputs
        losses = tuple(loss for loss in losses if loss not in ("ce", "softmax_ce"))
        if not losses:
            raise ValueError(f"losses {('ce', 'softmax_ce')} need an output of >= 2 units; width={width!r}")
    loss = draw(st.sampled_from(losses), label="loss")
    reduction = draw(st.sampled_from(reductions), label="reduction")
    # Half the draws from the smallest batches: batch 1 is where shape bugs hide
    # (a squeezed axis, a sum over the wrong dimension), and it is 1 of 32 sizes.
    n = draw(st.one_of(st.integers(batch[0], min(batch[1], batch[0] + 1)), st.integers(*batch)), label="batch")
    lr = draw(st.sampled_from(LEARNING_RATES), label="learning rate")
    kind = "hard" if loss in ("sse", "mse") else draw(st.sampled_from(("hard", "soft")), label="target kind")
    seed = st.integers(0, 2**32 - 1)
    if networks is None:
        seeds = [draw(seed, label="seed")]
    else:
        # A list of 1 to ``networks`` seeds averages about 4 whatever ``networks`` is (hypothesis
        # keeps lists short); a drawn least size spreads the sets over the whole range and
        # still shrinks to one network: the least size to 1, then the other seeds deleted.
        least = draw(st.integers(1, networks), label="fewest networks")
        seeds = draw(st.lists(seed, min_size=least, max_size=networks, unique=True), label="seeds, one per network")
    sizes = [draw(st.integers(*width), label="input width")]
    scales = [10.0 ** draw(st.sampled_from(exponents), label="input scale")]
    layers = draw(st.lists(_layer(width, activations, exponents), min_size=depth[0], max_size=depth[1]),
                  label="layers")
    acts: list[object] = []
    for n_out, square, activation, scale in layers:
        sizes.append(sizes[-1] if square else n_out)
        acts.append(activation)
        scales.append(scale)
    if loss in ("ce", "softmax_ce"):
        sizes[-1] = max(sizes[-1], 2)
    output: object = reference.OUTPUT_ACTIVATION_FOR_LOSS.get(loss)
    if output is None:
        outputs = activations + (("softmax",) if sizes[-1] >= 2 else ())
        output = _activation(draw, "the output layer", outputs)
    acts[-1] = output
    network = reference.Network(sizes, acts, loss=loss, reduction=reduction)
    return [build_case(network, batch=n, dtype=dtype, lr=lr, seed=seed, scales=tuple(scales), targets=kind)
            for seed in seeds]


def build_case(
    network: reference.Network, *, batch: int, dtype: str, lr: float, seed: int,
    scales: tuple[float, ...], targets: str = "hard",
) -> Case:
    """The arrays of a case, filled from ``seed``: rebuilds any printed ``Case`` record."""
    rng = np.random.default_rng(seed)
    sizes = network.sizes
    # Weights are divided by sqrt(fan-in) so that a layer's pre-activations sit at its
    # drawn scale whatever its width: the scales, not the widths, decide how far into
    # the tails a case reaches.
    params = [
        (round_to(_array(rng, (a, b), scales[i + 1] / math.sqrt(a)), dtype),
         round_to(_array(rng, (b,), scales[i + 1]), dtype))
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))
    ]
    x = round_to(_array(rng, (batch, sizes[0]), scales[0] * math.sqrt(10.0)), dtype)
    t = round_to(_targets(rng, network.loss, (batch, sizes[-1]), targets), dtype)
    return Case(network, params, x, t, dtype, lr, seed, tuple(scales), targets)


def _validate(*, dtype: str, depth: tuple[int, int], width: tuple[int, int], batch: tuple[int, int],
              activations: tuple[str, ...], losses: tuple[str, ...], reductions: tuple[str, ...]) -> None:
    if dtype not in SCALE_EXPONENTS:
        raise ValueError(f"dtype={dtype!r}; expected one of {', '.join(SCALE_EXPONENTS)}")
    for name, (lo, hi) in (("depth", depth), ("width", width), ("batch", batch)):
        if not 1 <= lo <= hi:
            raise ValueError(f"{name}={(lo, hi)!r}; expected (low, high) with 1 <= low <= high")
    unknown = [a for a in activations if a not in ACTIVATION_ORDER]
    if unknown or not activations:
        raise ValueError(
            f"activations={activations!r}; choose a non-empty subset of {ACTIVATION_ORDER}"
        )
    unknown = [loss for loss in losses if loss not in LOSS_ORDER]
    if unknown or not losses:
        raise ValueError(f"losses={losses!r}; choose a non-empty subset of {LOSS_ORDER}")
    if not reductions or any(r not in ("sum", "mean") for r in reductions):
        raise ValueError(f"reductions={reductions!r}; choose a non-empty subset of ('sum', 'mean')")
