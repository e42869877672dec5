"""Known discrepancies: entry-wise findings that are documented framework properties.

The file (``tests/suite/known_discrepancies.toml`` by default) lists entries such as::

    [[discrepancy]]
    test = "test_every_quantity_matches_reference[torch-*-float32]"   # fnmatch on the test id
    quantity = "delta"          # key prefix: loss, delta, dW, db, W_step, b_step
    activations = ["sigmoid"]   # optional: the case must use one of these
    reason = "why this is a property of the framework, with a reference"
    activation_error = "absolute"   # optional: explains only errors within the absolute-activation model
    max_relative = 1e-7             # optional: see below
    when = "bce_saturated"          # optional: a named condition on the case (CONDITIONS);
                                    # such an entry explains any failure in those cases
    forward_relative = 3e-8         # optional, with activations: their values err by this much

An entry explains entry-wise findings only, unless it also gives
``max_relative``: then it explains any failure whose mismatched entries all lie
within that difference relative to the tensor's largest magnitude -- the way to list a precisely characterised
framework finding (e.g. a float32 constant inside a float64 path, relative error
~3e-8) without exempting larger errors in the same cases.  ``forward_relative``
explains a failure whose entries all lie within the absolute-activation bound of the
computation with those activations' values erring by that relative amount: a forward
error that later kinks turn into any size (torch's CUDA hardswish in float64).  An entry
that matches nothing in a run is reported at the end of the run.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import reference
from harness.error_model import round_to


def _bce_saturated(case) -> bool:
    """A sigmoid output with a (1 - a) below 1e-12, or a rounding to 0 or 1 in the dtype."""
    if case.network.loss != "bce":
        return False
    z = reference.forward(case.network, case.params, case.x).z[-1]
    a = round_to(reference.activations.sigmoid(z), case.dtype)
    return bool(np.any(reference.activations.sigmoid_prime(z) < 1e-12) or np.any((a == 0) | (a == 1)))


def _softplus_exp_overflows(case) -> bool:
    """A softplus layer asked for the exact function (threshold = inf) whose exp(beta z)
    -- or its backward's dE/da exp(beta z), formed before the division by 1 + exp(beta z)
    -- overflows the dtype (torch float32: 86 exp(85) = inf although exp(85) is finite)."""
    limit = np.log(float(np.finfo(np.float64).max if case.dtype == "float64" else 3.0e38))
    if case.dtype == "float16":
        limit = np.log(65504.0)
    trace = reference.forward(case.network, case.params, case.x)
    deltas = reference.deltas(case.network, case.params, case.x, case.t)
    for (name, p), z, delta in zip(case.network.activations, trace.z, deltas):
        if name != "softplus" or not np.isinf(p["threshold"]):
            continue
        # 0 / 0 where sigmoid(beta z) underflows under a zero delta: NaN, never "overflows"
        # (exp(beta z) is tiny there).
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            grad_a = np.abs(delta) / reference.activations.sigmoid(p["beta"] * z)  # dE/da = delta / g'(z)
            log_grad = np.log(np.maximum(grad_a, 1.0))
        if np.any(p["beta"] * z + log_grad > limit - 1.0):
            return True
    return False


def _gelu_tanh_left_tail(case) -> bool:
    """A gelu_tanh layer with some z < -3, where 1 + tanh(u) < 0.008 cancels."""
    trace = reference.forward(case.network, case.params, case.x)
    return any(
        name == "gelu_tanh" and bool(np.any(z < -3.0))
        for (name, _), z in zip(case.network.activations, trace.z)
    )


def _bce_hessian_eps(case) -> bool:
    """A bce loss whose output makes 2e-12 / (a (1 - a))^2 -- the relative error the
    1e-12 added in torch's binary_cross_entropy double backward causes -- exceed the
    dtype's unit roundoff (always in float64; in float32 once |z| > ~5)."""
    if case.network.loss != "bce":
        return False
    z = reference.forward(case.network, case.params, case.x).z[-1]
    with np.errstate(divide="ignore", over="ignore"):
        predicted = 2e-12 / reference.activations.sigmoid_prime(z) ** 2
    return bool(np.max(predicted) > float(np.finfo(np.float64).eps if case.dtype == "float64" else 2.0**-24))


# Named conditions on a case that an entry can require (``when = "..."``).
CONDITIONS: dict[str, Callable[[object], bool]] = {
    "bce_saturated": _bce_saturated,
    "softplus_exp_overflows": _softplus_exp_overflows,
    "gelu_tanh_left_tail": _gelu_tanh_left_tail,
    "bce_hessian_eps": _bce_hessian_eps,
}


@dataclass(frozen=True)
class Discrepancy:
    test: str
    quantity: str
    reason: str
    activations: tuple[str, ...] = ()
    losses: tuple[str, ...] = ()
    max_relative: float | None = None
    absolute_activation: bool = False
    when: str | None = None
    forward_relative: float | None = None  # the activations' values err by this much, relative

    def explains_case(self, test_id: str, case) -> bool:
        """Test id, activations, losses and condition match (any quantity)."""
        activations = {name for name, _ in case.network.activations}
        return (
            fnmatch.fnmatchcase(test_id, self.test.replace("[", "[[]"))  # brackets are literal
            and (not self.activations or bool(activations & set(self.activations)))
            and (not self.losses or case.network.loss in self.losses)
            and (self.when is None or CONDITIONS[self.when](case))
        )

    def explains(self, test_id: str, comparison, case) -> bool:
        if not (comparison.key.startswith(self.quantity) and self.explains_case(test_id, case)):
            return False
        if self.when is not None:
            return True
        if self.forward_relative is not None:
            return _within_forward_error(comparison, case, {a: self.forward_relative for a in self.activations})
        if self.absolute_activation and not comparison.within_loose:
            return False
        if self.max_relative is None:
            return not comparison.tensor_failed
        return comparison.mismatched_relative <= self.max_relative


def _within_forward_error(comparison, case, forward_errors: dict[str, float]) -> bool:
    """Every entry within SAFETY x the absolute-activation bound of a computation whose
    named activations' values carry their own relative error (error_model's
    ``forward_errors``): the finding propagated through the whole derivation, kinks and
    cancellations included, beside the absolute-activation findings it meets on the way
    (torch's tanh' = 1 - y^2 of a tanh layer whose input it shifted).  First-order
    quantities only."""
    from harness.error_model import SAFETY, error_bounds

    match = re.fullmatch(r"(loss|delta|dW|db|W_step|b_step)(?:\[(\d+)\])?", comparison.key)
    if match is None:
        return False
    bounds = error_bounds(case.network, case.params, case.x, case.t, dtype=case.dtype, lr=case.lr,
                          absolute=True, forward_errors=forward_errors)
    allowed = SAFETY * bounds.of(match[1], int(match[2] or 1) - 1)
    return bool(np.all(comparison.diff <= allowed))


def _activation_error(value: str | None, path: Path, i: int) -> bool:
    if value not in (None, "absolute"):
        raise ValueError(f"{path}: discrepancy #{i + 1} has activation_error={value!r}; allowed: 'absolute'")
    return value == "absolute"


def _condition(name: str | None, path: Path, i: int) -> str | None:
    if name is not None and name not in CONDITIONS:
        raise ValueError(
            f"{path}: discrepancy #{i + 1} has when={name!r}; known conditions: {', '.join(CONDITIONS)}"
        )
    return name


def _forward_relative(raw: dict, path: Path, i: int) -> float | None:
    value = raw.get("forward_relative")
    if value is not None and not (raw.get("activations") and isinstance(value, float) and 0 < value < 1e-3):
        raise ValueError(f"{path}: discrepancy #{i + 1} has forward_relative={value!r}; allowed: a float in "
                         "(0, 1e-3), with the activations it applies to")
    return value


def load(path: Path) -> list[Discrepancy]:
    if not path.exists():
        return []
    data = tomllib.loads(path.read_text())
    entries = []
    for i, raw in enumerate(data.get("discrepancy", [])):
        missing = {"test", "quantity", "reason"} - set(raw)
        if missing:
            raise ValueError(f"{path}: discrepancy #{i + 1} lacks {', '.join(sorted(missing))}")
        entries.append(
            Discrepancy(raw["test"], raw["quantity"], raw["reason"],
                        tuple(raw.get("activations", ())), tuple(raw.get("losses", ())),
                        raw.get("max_relative"), _activation_error(raw.get("activation_error"), path, i),
                        _condition(raw.get("when"), path, i), _forward_relative(raw, path, i))
        )
    return entries
