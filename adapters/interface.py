"""The narrow interface every framework adapter implements.

An adapter receives a NumPy float64 problem -- a network description, its
parameters, a batch ``x`` and targets ``t`` -- whose values are already
representable in the dtype under test.  It casts them to that dtype on the
requested device, computes with its framework's autodiff and returns NumPy
float64 results.  Tests compare those results with ``reference/``; adapters never
import it.

Vocabulary shared with ``reference/`` (``tests/meta/test_vocabulary.py`` checks the two agree):

* activations -- ``ACTIVATIONS`` maps each name to its parameters and defaults;
  ``softmax`` is allowed on the output layer only.
* losses -- ``LOSSES``; ``OUTPUT_ACTIVATION_FOR_LOSS`` says which output
  activation a loss requires, if any.
* reductions -- ``"sum"`` (the post's sum over examples) and ``"mean"`` (the
  frameworks' default: the mean over all elements for the element-wise losses
  ``mse``, ``bce``, ``bce_logits``; the mean over examples for ``sse``, ``ce``,
  ``softmax_ce``).
* dtypes -- ``DTYPES``.

Beyond ``compute`` and ``train``, a target may implement any of the optional methods
of ``HigherOrder`` (forward mode, Hessian-vector products, per-example and
data-parallel gradients, the post's online training loop); the tests skip, naming the
method, where it does not.

A network is validated once, here: ``NetworkSpec`` and ``Problem`` reject an unknown
activation, parameter, loss or reduction and mismatched shapes when they are built, so
every adapter receives a well-formed problem and none checks it again.

A framework outside this repository plugs in by exposing, from any importable
module, ``TARGETS: dict[str, Adapter]``; ``adapters.registry`` loads it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

import numpy as np

ACTIVATIONS: Mapping[str, Mapping[str, float]] = MappingProxyType(
    {
        "identity": {},
        "sigmoid": {},
        "tanh": {},
        "relu": {},
        "leaky_relu": {"slope": 0.01},
        "elu": {"alpha": 1.0},
        "selu": {},
        "celu": {"alpha": 1.0},
        "softplus": {"beta": 1.0, "threshold": float("inf")},
        "gelu": {},
        "gelu_tanh": {},
        "silu": {},
        "mish": {},
        "softsign": {},
        "hardtanh": {"min_val": -1.0, "max_val": 1.0},
        "relu6": {},
        "hardsigmoid": {},
        "hardswish": {},
        "log_sigmoid": {},
        "softmax": {},
    }
)
OUTPUT_ONLY_ACTIVATIONS = frozenset({"softmax"})
LOSSES = ("sse", "mse", "bce", "bce_logits", "ce", "softmax_ce")
OUTPUT_ACTIVATION_FOR_LOSS: Mapping[str, str] = MappingProxyType(
    {"bce": "sigmoid", "bce_logits": "identity", "ce": "softmax", "softmax_ce": "identity"}
)
REDUCTIONS = ("sum", "mean")
DTYPES = ("float64", "float32", "float16", "bfloat16")

Params = list[tuple[np.ndarray, np.ndarray]]


class Unsupported(Exception):
    """The target cannot run this combination (dtype, device, activation...).

    Tests turn it into a skip that carries the message, so say what is missing.
    """


@dataclass(frozen=True)
class Activation:
    """One layer's activation: a name from ``ACTIVATIONS`` and its parameters (those
    left out take the defaults).  ``NetworkSpec`` checks both."""

    name: str
    params: Mapping[str, float] = field(default_factory=dict)

    def param(self, key: str) -> float:
        return float(self.params.get(key, ACTIVATIONS[self.name][key]))


def _check_activation(act: object, layer: int, n_layers: int) -> None:
    """``act`` names a known activation with known, real-valued parameters, and an
    output-only activation sits on the output layer."""
    if not isinstance(act, Activation):
        raise ValueError(f"activation of layer {layer} is {act!r}; give an Activation(name, params)")
    if act.name not in ACTIVATIONS:
        raise ValueError(
            f"unknown activation {act.name!r} for layer {layer}; known activations: {', '.join(ACTIVATIONS)}"
        )
    allowed = ACTIVATIONS[act.name]
    for key, value in act.params.items():
        if key not in allowed:
            raise ValueError(
                f"activation {act.name!r} of layer {layer} has no parameter {key!r}; "
                f"its parameters: {', '.join(allowed) or 'none'}"
            )
        if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating) or math.isnan(value):
            raise ValueError(
                f"parameter {key}={value!r} of activation {act.name!r} (layer {layer}) must be a real number"
            )
    if act.name in OUTPUT_ONLY_ACTIVATIONS and layer < n_layers:
        raise ValueError(
            f"activation {act.name!r} of layer {layer} is allowed on the output layer ({n_layers}) only"
        )


@dataclass(frozen=True)
class NetworkSpec:
    """A fully connected network: ``sizes[0]`` inputs, ``sizes[-1]`` outputs, one
    activation per layer, a loss from ``LOSSES`` and a reduction from ``REDUCTIONS``.
    Built only if valid: the one check every adapter relies on."""

    sizes: tuple[int, ...]
    activations: tuple[Activation, ...]
    loss: str
    reduction: str = "sum"

    def __post_init__(self) -> None:
        if len(self.sizes) < 2:
            raise ValueError(f"sizes={self.sizes!r} has {len(self.sizes)} entries; give at least (n_input, n_output)")
        for i, n in enumerate(self.sizes):
            if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
                raise ValueError(f"sizes[{i}] is {n!r}; every width must be an integer >= 1")
        n_layers = len(self.sizes) - 1
        if len(self.activations) != n_layers:
            raise ValueError(
                f"activations has {len(self.activations)} entries but sizes {self.sizes} make "
                f"{n_layers} layers; give one per layer"
            )
        for layer, act in enumerate(self.activations, start=1):
            _check_activation(act, layer, n_layers)
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; known losses: {', '.join(LOSSES)}")
        if self.reduction not in REDUCTIONS:
            raise ValueError(f"unknown reduction {self.reduction!r}; known reductions: {', '.join(REDUCTIONS)}")
        required, output = OUTPUT_ACTIVATION_FOR_LOSS.get(self.loss), self.activations[-1].name
        if required is not None and output != required:
            raise ValueError(f"loss {self.loss!r} needs output activation {required!r}, not {output!r}")


@dataclass(frozen=True)
class Problem:
    """A network, its parameters ``[(W, b), ...]`` with ``W`` of shape (n_in, n_out),
    a batch ``x`` of shape (batch, n_in) and targets ``t`` of shape (batch, n_out),
    all float64 holding values exactly representable in the dtype under test.  Built
    only if the shapes agree with the network (a batch may be empty)."""

    network: NetworkSpec
    params: Params
    x: np.ndarray
    t: np.ndarray

    def __post_init__(self) -> None:
        sizes = self.network.sizes
        if len(self.params) != len(sizes) - 1:
            raise ValueError(
                f"params has {len(self.params)} layers but the network has {len(sizes) - 1}; "
                "give one (W, b) pair per layer"
            )
        for layer, ((w, b), n_in, n_out) in enumerate(zip(self.params, sizes[:-1], sizes[1:]), start=1):
            if np.shape(w) != (n_in, n_out) or np.shape(b) != (n_out,):
                raise ValueError(
                    f"layer {layer} has W of shape {np.shape(w)} and b of shape {np.shape(b)}; "
                    f"sizes {sizes} need {(n_in, n_out)} and {(n_out,)}"
                )
        batch = np.shape(self.x)[0] if np.ndim(self.x) == 2 else None
        if np.shape(self.x) != (batch, sizes[0]):
            raise ValueError(f"x has shape {np.shape(self.x)}; give (batch, {sizes[0]}) for sizes {sizes}")
        if np.shape(self.t) != (batch, sizes[-1]):
            raise ValueError(f"t has shape {np.shape(self.t)}; x's batch and sizes {sizes} need {(batch, sizes[-1])}")


@dataclass
class Result:
    """What an adapter returns, all as NumPy float64.

    * ``loss`` -- the reduced loss E (Eq. 1 for ``sse`` with ``sum``).
    * ``deltas`` -- dE/dZ of every layer, shape (batch, n_out): Eq. 5, Eq. 14.
    * ``grads`` -- ``[(dE/dW, dE/db), ...]``: Eqs. 6, 8, 15, 18.
    * ``stepped`` -- parameters after one gradient-descent step: Eq. 7.
    """

    loss: float
    deltas: list[np.ndarray]
    grads: Params
    stepped: Params


@runtime_checkable
class Adapter(Protocol):
    """One target: a framework driven one particular way (``torch``, ``jax-jit``...)."""

    name: str
    framework: str

    def version(self) -> str:
        """The framework's version string."""
        ...

    def devices(self) -> list[str]:
        """Every device the framework reports, e.g. ``["cpu", "cuda:0"]``."""
        ...

    def precision_mode(self, device: str) -> str:
        """The matmul precision in force on ``device``, for the report header."""
        ...

    def compute(self, problem: Problem, *, device: str, dtype: str, lr: float) -> Result:
        """Loss, deltas, gradients and one SGD step (learning rate ``lr``)."""
        ...

    def train(
        self, problem: Problem, *, device: str, dtype: str, lr: float, steps: int
    ) -> list[Params]:
        """Parameters after each of ``steps`` full-batch gradient-descent steps."""
        ...


@dataclass
class Tangents:
    """What ``jvp`` returns, as NumPy float64: the directional derivative of the
    reduced loss E (``loss``) and of every layer's output a_l (``outputs``, each of
    shape (batch, n_out)) along a tangent on the parameters and the input."""

    loss: float
    outputs: list[np.ndarray]


@runtime_checkable
class HigherOrder(Protocol):
    """Optional methods beyond the single gradient.  A target may implement any subset;
    a method it lacks, or a combination it cannot run (``Unsupported``), becomes a
    skip naming what is missing.  Arguments and results are NumPy float64, as for
    ``compute``; ``problem``'s values are representable in ``dtype``, and so are the
    tangents and vectors passed in.

    * ``jvp`` -- forward mode: dE and every da_l along ``tangent`` = ``[(dW_l, db_l)]``
      and ``tangent_x`` (same shapes as the parameters and x).
    * ``hvp`` -- the Hessian of E in the parameters times ``vector`` = ``[(V_l, v_l)]``,
      returned in the same layout.
    * ``per_example_grads`` -- ``[(dW_l, db_l)]`` with shapes (batch, n_in, n_out) and
      (batch, n_out): the gradient of example n's term of E (the batch's reduction
      scale kept), whose sum over n is the batch gradient.
    * ``data_parallel_grads`` -- the batch gradient ``[(dW_l, db_l)]`` of E computed
      with the batch split, in order, into ``shards`` contiguous parts of sizes as
      equal as possible (``numpy.array_split``), one per worker or device, and the
      parts' gradients all-reduced.
    * ``train_online`` -- the post's online loop: for each ``(n, lr)`` of ``schedule``
      one gradient-descent step (Eq. 7) on example n alone (the one-row batch under
      ``problem``'s loss and reduction) with learning rate lr; the parameters after
      every step.
    """

    def jvp(self, problem: Problem, tangent: Params, tangent_x: np.ndarray, *, device: str,
            dtype: str) -> Tangents: ...

    def hvp(self, problem: Problem, vector: Params, *, device: str, dtype: str) -> Params: ...

    def per_example_grads(self, problem: Problem, *, device: str, dtype: str) -> Params: ...

    def data_parallel_grads(self, problem: Problem, *, device: str, dtype: str, shards: int) -> Params: ...

    def train_online(self, problem: Problem, *, device: str, dtype: str,
                     schedule: Sequence[tuple[int, float]]) -> list[Params]: ...


HIGHER_ORDER_METHODS = ("jvp", "hvp", "per_example_grads", "data_parallel_grads", "train_online")


def capability(adapter: Adapter, method: str) -> Callable[..., Any]:
    """``adapter``'s bound ``method`` (one of ``HIGHER_ORDER_METHODS``); ``Unsupported``
    when the target does not implement it."""
    if method not in HIGHER_ORDER_METHODS:
        raise ValueError(f"unknown method {method!r}; optional methods: {', '.join(HIGHER_ORDER_METHODS)}")
    bound = getattr(adapter, method, None)
    if bound is None:
        raise Unsupported(f"target {getattr(adapter, 'name', adapter)!r} does not implement {method}")
    return bound
