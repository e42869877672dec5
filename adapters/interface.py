"""The narrow interface every framework adapter implements.

An adapter receives a NumPy float64 problem -- a network description, its
parameters, a batch ``x`` and targets ``t`` -- whose values are already
representable in the dtype under test.  It casts them to that dtype on the
requested device, computes with its framework's autodiff and returns NumPy
float64 results.  Tests compare those results with ``reference/``; adapters never
import it.

Vocabulary shared with ``reference/`` (a test checks the two agree):

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

A framework outside this repository plugs in by exposing, from any importable
module, ``TARGETS: dict[str, Adapter]``; see ``load_targets``.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol, runtime_checkable

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
    """One layer's activation: a name from ``ACTIVATIONS`` and its parameters."""

    name: str
    params: Mapping[str, float] = field(default_factory=dict)

    def param(self, key: str) -> float:
        return float(self.params.get(key, ACTIVATIONS[self.name][key]))


@dataclass(frozen=True)
class NetworkSpec:
    """A fully connected network: ``sizes[0]`` inputs, ``sizes[-1]`` outputs."""

    sizes: tuple[int, ...]
    activations: tuple[Activation, ...]
    loss: str
    reduction: str = "sum"


@dataclass(frozen=True)
class Problem:
    """A network, its parameters ``[(W, b), ...]`` with ``W`` of shape (n_in, n_out),
    a batch ``x`` of shape (batch, n_in) and targets ``t`` of shape (batch, n_out),
    all float64 holding values exactly representable in the dtype under test."""

    network: NetworkSpec
    params: Params
    x: np.ndarray
    t: np.ndarray


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


def capability(adapter: Adapter, method: str):
    """``adapter``'s bound ``method`` (one of ``HIGHER_ORDER_METHODS``); ``Unsupported``
    when the target does not implement it."""
    if method not in HIGHER_ORDER_METHODS:
        raise ValueError(f"unknown method {method!r}; optional methods: {', '.join(HIGHER_ORDER_METHODS)}")
    bound = getattr(adapter, method, None)
    if bound is None:
        raise Unsupported(f"target {getattr(adapter, 'name', adapter)!r} does not implement {method}")
    return bound


BUILTIN_TARGETS: Mapping[str, str] = MappingProxyType(
    {
        "torch": "adapters.torch_adapter",
        "torch-func": "adapters.torch_adapter",
        "jax": "adapters.jax_adapter",
        "jax-jit": "adapters.jax_adapter",
    }
)
FRAMEWORK_OF_TARGET: Mapping[str, str] = MappingProxyType(
    {"torch": "torch", "torch-func": "torch", "jax": "jax", "jax-jit": "jax"}
)


def load_targets(module_path: str) -> dict[str, Adapter]:
    """Import ``module_path`` and return its ``TARGETS`` mapping.

    Raises ``ImportError`` when the module (or its framework) cannot be imported,
    and ``TypeError`` when the module exposes no valid ``TARGETS``.
    """
    module = importlib.import_module(module_path)
    targets = getattr(module, "TARGETS", None)
    if not isinstance(targets, Mapping) or not targets:
        raise TypeError(
            f"adapter module {module_path!r} must define TARGETS, a non-empty dict "
            f"mapping target names to Adapter objects; found {targets!r}"
        )
    for name, adapter in targets.items():
        if not isinstance(adapter, Adapter):
            raise TypeError(
                f"TARGETS[{name!r}] in {module_path!r} is {adapter!r}, which lacks the "
                "Adapter methods (version, devices, precision_mode, compute, train)"
            )
    return dict(targets)


def load_target(name: str) -> Adapter:
    """Load one built-in target by name (``torch``, ``torch-func``, ``jax``, ``jax-jit``)."""
    if name not in BUILTIN_TARGETS:
        raise ValueError(
            f"unknown target {name!r}; known targets: {', '.join(BUILTIN_TARGETS)}"
        )
    return load_targets(BUILTIN_TARGETS[name])[name]


def check_dtype(dtype: str) -> None:
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; known dtypes: {', '.join(DTYPES)}")


def layer_shapes(sizes: Sequence[int]) -> list[tuple[tuple[int, int], tuple[int]]]:
    """The ``(W.shape, b.shape)`` of each layer for ``sizes``."""
    return [((n_in, n_out), (n_out,)) for n_in, n_out in zip(sizes[:-1], sizes[1:])]


def picklable(problem: Problem) -> Problem:
    """``problem`` with plain-dict activation parameters, for another process (a
    mappingproxy does not pickle)."""
    acts = tuple(dataclasses.replace(a, params=dict(a.params)) for a in problem.network.activations)
    return dataclasses.replace(problem, network=dataclasses.replace(problem.network, activations=acts))


def check_shards(shards: object, unit: str) -> int:
    """``shards`` as an int, or ValueError unless it is a positive integer (``unit``
    names what a shard is: ranks, devices)."""
    if isinstance(shards, bool) or not isinstance(shards, int | np.integer) or shards < 1:
        raise ValueError(f"shards must be a positive integer (the number of {unit}), got {shards!r}")
    return int(shards)
