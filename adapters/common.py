"""What the built-in adapters share beyond the contract, with no framework in it: the
checks of the arguments the optional methods take, and the record pairing an
activation's code with its source text.

An outside adapter needs none of this; the contract is ``adapters.interface``.
"""

from __future__ import annotations

import dataclasses
import math
import pickle
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from adapters.interface import DTYPES, Params, Problem

Schedule = Sequence[tuple[int, float]]  # (example index, learning rate) per online step


@dataclass(frozen=True)
class ActivationCode:
    """One activation as an adapter runs it: ``fn``, the function of z it calls, and
    ``source``, the same call as Python text in ``z`` and the framework's public names,
    which a reproducer script prints so that it runs what was checked.  ``template``
    is that text with each parameter as a ``{name}`` field, filled from ``params`` only
    when ``source`` is read (a parameter may be a traced value while ``fn`` is built)."""

    template: str
    params: Mapping[str, float]
    fn: Callable[[Any], Any]

    @property
    def source(self) -> str:
        return self.template.format(**{key: literal(value) for key, value in self.params.items()})


def literal(value: float) -> str:
    """``value`` as Python source that evaluates to it exactly (``float('inf')`` for inf)."""
    text = repr(float(value))
    return text.replace("inf", "float('inf')") if math.isinf(value) else text


def check_dtype(dtype: str) -> None:
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; known dtypes: {', '.join(DTYPES)}")


def check_shards(shards: object, unit: str) -> int:
    """``shards`` as an int, or ValueError unless it is a positive integer (``unit``
    names what a shard is: ranks, devices)."""
    if isinstance(shards, bool) or not isinstance(shards, int | np.integer) or shards < 1:
        raise ValueError(f"shards must be a positive integer (the number of {unit}), got {shards!r}")
    return int(shards)


def check_like_params(what: str, given: Sequence, params: Params) -> None:
    """``given`` (a tangent, a vector) holds one (W-shaped, b-shaped) pair per layer."""
    if len(given) != len(params):
        raise ValueError(
            f"{what} has {len(given)} layers but the network has {len(params)}; "
            "give one (W, b) pair per layer"
        )
    for layer, ((w, b), pair) in enumerate(zip(params, given), 1):
        shapes = tuple(np.shape(a) for a in pair)
        if shapes != (np.shape(w), np.shape(b)):
            raise ValueError(
                f"{what} of layer {layer} has shapes {shapes}; the parameters have {np.shape(w)} and {np.shape(b)}"
            )


def check_like_x(tangent_x: np.ndarray, problem: Problem) -> None:
    if np.shape(tangent_x) != np.shape(problem.x):
        raise ValueError(f"tangent_x has shape {np.shape(tangent_x)}; x has {np.shape(problem.x)}, give the same")


def check_schedule(schedule: Schedule, batch: int) -> None:
    """Every entry of an online schedule is (an example index in [0, batch), a finite
    learning rate >= 0)."""
    for i, entry in enumerate(schedule):
        if not (isinstance(entry, tuple | list) and len(entry) == 2):
            raise ValueError(f"schedule[{i}] is {entry!r}; give a pair (example index, learning rate)")
        n, lr = entry
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or not 0 <= n < batch:
            raise ValueError(f"schedule[{i}] has example index {n!r}; give an integer 0 <= n < {batch}")
        if isinstance(lr, bool) or not isinstance(lr, int | float | np.floating) or not math.isfinite(lr) or lr < 0:
            raise ValueError(f"schedule[{i}] has learning rate {lr!r}; give a finite number >= 0")


def portable(err: BaseException, where: str, *, raised_as: BaseException | None = None) -> BaseException:
    """``err`` ready to cross back from a worker process: raised as ``raised_as`` if
    given, as a RuntimeError with its text if it does not pickle, and carrying the
    traceback ``where`` it happened as a note."""
    note = f"{where}:\n" + "".join(traceback.format_exception(err))
    err = err if raised_as is None else raised_as
    try:
        pickle.dumps(err)
    except Exception:
        err = RuntimeError(f"{type(err).__name__}: {err}")
    err.add_note(note)
    return err


def picklable(problem: Problem) -> Problem:
    """``problem`` with plain-dict activation parameters, for another process (a
    mappingproxy does not pickle)."""
    acts = tuple(dataclasses.replace(a, params=dict(a.params)) for a in problem.network.activations)
    return dataclasses.replace(problem, network=dataclasses.replace(problem.network, activations=acts))
