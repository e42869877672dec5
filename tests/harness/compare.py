"""The one comparison helper: framework result against reference, per entry.

Each quantity gets two verdicts:

* entry-wise -- some entry is off by more than its *own* allowed error
  (``SAFETY`` x its error-model bound).  This catches a gradient that is exactly 0
  where the true value is tiny but not zero, or a wrong derivative on part of an
  activation's range that a batch sum would dilute.
* tensor-wise -- some entry is off by more than the *largest* allowed error of the
  tensor under the absolute-activation model (which also allows derivatives with an
  absolute error of a few u, as formed from rounded outputs): an error big enough to
  change training.

Both fail by default.  A failure raises ``Mismatch`` with the quantity named by its
equation, the mismatch statistics, the allowed value and where it came from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from harness.error_model import SAFETY, Bounds, Precision, error_bounds

if TYPE_CHECKING:
    import reference
    from adapters.interface import Result
    from harness.strategies import Case

Array = np.ndarray


class Mismatch(AssertionError):
    """A framework's quantity disagrees with the reference beyond the error model."""


@dataclass(frozen=True)
class Comparison:
    """One quantity compared; its statistics are computed once (the arrays never change)."""

    quantity: str  # e.g. "dE/dW of layer 2, Eq. 15"
    key: str  # short machine name, e.g. "dW[2]"
    dtype: str
    actual: Array
    expected: Array
    allowed: Array  # per entry: SAFETY * strict bound
    allowed_loose: Array  # per entry: SAFETY * absolute-activation bound
    # Per entry, the size of what the quantity is formed from, for ``mismatched_relative``:
    # |W| + lr |dW| for a step (default: |expected|).
    scale: Array | None = None
    # The allowance per entry under a scoped error model: ``scoped(names, forward_errors)``
    # is SAFETY x the bound with the absolute-activation model applied only to the named
    # activations and losses, and the given activations' own relative errors
    # (``known.within_model``); None where the quantity's builder cannot recompute it.
    scoped: Callable[[frozenset[str], tuple], Array] | None = field(default=None, repr=False, compare=False)

    def restricted(self, mask: Array) -> Comparison:
        """The same comparison over the entries where ``mask`` holds, the others set equal."""
        keep = np.asarray(mask, bool)
        return replace(self, actual=np.where(keep, self.actual, self.expected), scoped=self.scoped)

    @cached_property
    def diff(self) -> Array:
        with np.errstate(invalid="ignore"):
            d = np.abs(self.actual - self.expected)
        return np.where(np.isnan(d), np.inf, d)

    @cached_property
    def entry_ratio(self) -> float:
        """Largest |actual - expected| / allowed over the entries (0 where both are 0)."""
        return float(np.max(_ratio(self.diff, self.allowed), initial=0.0))

    @property
    def within_loose(self) -> bool:
        """Every entry within its absolute-activation allowance."""
        return bool(np.all(self.diff <= self.allowed_loose))

    @cached_property
    def tensor_ratio(self) -> float:
        """Largest |actual - expected| over the tensor's largest absolute-activation allowed error."""
        d = self.diff
        top = float(np.max(self.allowed_loose, initial=0.0))
        worst = float(np.max(d, initial=0.0))
        return 0.0 if worst == 0 else (np.inf if top == 0 else worst / top)

    @cached_property
    def mismatched_relative(self) -> float:
        """The largest difference among the entries beyond their allowed error, relative
        to the tensor's largest magnitude -- of ``scale`` where given: a step W - lr dW
        whose result cancels to far below W inherits an error relative to lr dW, and is
        measured against |W| + lr |dW| (a one-entry step of 2.9e-4 from W = -0.0594)."""
        d = self.diff
        over = d > self.allowed
        if not over.any():
            return 0.0
        top = float(np.max(np.abs(self.expected) if self.scale is None else self.scale, initial=0.0))
        worst = float(np.max(d[over]))
        return 0.0 if worst == 0 else (np.inf if top == 0 or not np.isfinite(worst) else worst / top)

    @property
    def entry_failed(self) -> bool:
        return self.entry_ratio > 1.0

    @property
    def tensor_failed(self) -> bool:
        return self.tensor_ratio > 1.0

    @property
    def failed(self) -> bool:
        return self.entry_failed or self.tensor_failed

    @property
    def verdict(self) -> str:
        if self.tensor_failed:
            return "wrong (tensor-wise and entry-wise)" if self.entry_failed else "wrong (tensor-wise)"
        return "inaccurate (entry-wise)" if self.entry_failed else "ok"

    def describe(self) -> str:
        d = self.diff
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            over = d > self.allowed
            rel = np.where(d == 0, 0.0, d / np.abs(self.expected))
            ratio = _ratio(d, self.allowed)
        worst = np.unravel_index(int(np.argmax(ratio)), d.shape) if d.size else ()
        big_abs = np.unravel_index(int(np.argmax(d)), d.shape) if d.size else ()
        big_rel = np.unravel_index(int(np.argmax(rel)), d.shape) if d.size else ()
        p = Precision.of(self.dtype)
        return "\n".join(
            [
                f"{self.quantity}: {self.verdict}",
                f"  mismatched entries: {int(over.sum())} of {d.size}",
                f"  greatest absolute difference: {_g(d[big_abs])} at index {_idx(big_abs)}",
                f"  greatest relative difference: {_g(rel[big_rel])} at index {_idx(big_rel)}",
                f"  worst entry {_idx(worst)}: framework {_g(self.actual[worst])}, "
                f"reference {_g(self.expected[worst])}, allowed +-{_g(self.allowed[worst])} "
                f"(error/allowed = {_g(ratio[worst])})",
                f"  tensor-wise: error/allowed = {_g(self.tensor_ratio)} against the tensor's "
                f"largest allowed error {_g(float(np.max(self.allowed_loose, initial=0.0)))} "
                "(absolute-activation model)",
                f"  allowed = {SAFETY:g} x the error model's bound for {self.dtype} "
                f"(u = {p.u:.3g}, smallest normal {p.tiny:.3g}); see docs/error-model.md",
            ]
        )


def _ratio(diff: Array, allowed: Array) -> Array:
    """diff / allowed per entry: 0 where diff is 0, inf where a NaN or inf is not allowed."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        r = np.where(diff == 0, 0.0, diff / allowed)
    return np.where(np.isnan(r), np.inf, r)


def _g(value: float) -> str:
    return f"{float(value):.6g}"


def _idx(index: tuple) -> str:
    return "(" + ", ".join(str(int(i)) for i in index) + ")" if index else "()"


_NAMES = {
    "delta": ("dE/dz", 5, 14), "dW": ("dE/dW", 6, 15), "db": ("dE/db", 8, 18),
    "W_step": ("W after one step", 7, 7), "b_step": ("b after one step", 7, 7),
}


def quantity_name(key: str, layer: int, n_layers: int) -> str:
    """The quantity by its equation, e.g. ``dE/dz of layer 2, Eq. 14``."""
    if key == "loss":
        return "loss E, Eq. 1"
    what, output_eq, hidden_eq = _NAMES[key]
    n = layer + 1
    return f"{what} of layer {n}, Eq. {output_eq if n == n_layers else hidden_eq}"


def scoped_bounds(case: Case, params: reference.Params | None = None) -> Callable[[frozenset[str], tuple], Bounds]:
    """The case's bounds under a scoped error model, computed once per scope (on a known
    finding's failure path only)."""
    cache: dict[tuple, Bounds] = {}

    def bounds_for(scope: frozenset[str], forward: tuple) -> Bounds:
        if (scope, forward) not in cache:
            with np.errstate(over="ignore", invalid="ignore"):
                cache[scope, forward] = error_bounds(
                    case.network, case.params if params is None else params, case.x, case.t, dtype=case.dtype,
                    lr=case.lr, absolute=scope, forward_errors=dict(forward))
        return cache[scope, forward]

    return bounds_for


def comparisons(case: Case, result: Result, expected: Result, bounds: Bounds, loose: Bounds) -> list[Comparison]:
    """Every quantity of the derivation: E, deltas, dW, db and the stepped parameters."""
    L = case.network.n_layers
    scoped = scoped_bounds(case)

    def make(key: str, layer: int, actual: Array | float, wanted: Array | float, scale: Array | None = None
             ) -> Comparison:
        tag = key if key == "loss" else f"{key}[{layer + 1}]"
        return Comparison(
            quantity_name(key, layer, L), tag, case.dtype, np.asarray(actual, np.float64),
            np.asarray(wanted, np.float64), SAFETY * bounds.of(key, layer), SAFETY * loose.of(key, layer), scale,
            lambda scope, forward: SAFETY * scoped(scope, forward).of(key, layer),
        )

    def step_scale(param: Array, grad: Array) -> Array:
        return np.abs(np.asarray(param, np.float64)) + case.lr * np.abs(grad)

    out = [make("loss", 0, result.loss, expected.loss)]
    for l in range(L):
        (W, b), (dW, db) = case.params[l], expected.grads[l]
        out += [
            make("delta", l, result.deltas[l], expected.deltas[l]),
            make("dW", l, result.grads[l][0], dW),
            make("db", l, result.grads[l][1], db),
            make("W_step", l, result.stepped[l][0], expected.stepped[l][0], step_scale(W, dW)),
            make("b_step", l, result.stepped[l][1], expected.stepped[l][1], step_scale(b, db)),
        ]
    return with_ratios(out)


def with_ratios(comps: list[Comparison]) -> list[Comparison]:
    """Fill every comparison's ``entry_ratio`` and ``tensor_ratio`` at once, on the
    entries of all of them laid end to end: the same per-entry arithmetic as the
    properties (equal bit for bit), in a dozen NumPy calls instead of a dozen per
    quantity.  Quantities with no entries keep the lazy properties."""
    if not comps or any(c.actual.size == 0 for c in comps):
        return comps
    sizes = [c.actual.size for c in comps]
    starts = np.cumsum([0] + sizes[:-1])
    actual = np.concatenate([c.actual.ravel() for c in comps])
    expected = np.concatenate([c.expected.ravel() for c in comps])
    allowed = np.concatenate([c.allowed.ravel() for c in comps])
    loose = np.concatenate([c.allowed_loose.ravel() for c in comps])
    with np.errstate(invalid="ignore"):
        d = np.abs(actual - expected)
    d = np.where(np.isnan(d), np.inf, d)
    entry = np.maximum(np.maximum.reduceat(_ratio(d, allowed), starts), 0.0)
    worst = np.maximum(np.maximum.reduceat(d, starts), 0.0)
    top = np.maximum(np.maximum.reduceat(loose, starts), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        tensor = np.where(worst == 0, 0.0, np.where(top == 0, np.inf, worst / top))
    for c, e, t in zip(comps, entry.tolist(), tensor.tolist()):
        # cached_property stores in the instance dict; so do we (the dataclass is frozen).
        c.__dict__["entry_ratio"] = e
        c.__dict__["tensor_ratio"] = t
    return comps
