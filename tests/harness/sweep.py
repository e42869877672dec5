"""The range sweep: every activation and loss on a fixed grid over its whole range.

For a dtype, ``sweep_cases`` builds deterministic ``strategies.Case`` objects whose
batch rows put pre-activations (or logits) on a grid of numbers representable in that
dtype: 0, every kink and its three nearest neighbours on each side, both tails out past
where exp overflows and exp(-|z|) underflows in the dtype, the points where the common
formulas of a derivative cancel (1 + erf, 1 - tanh^2, s (1 - s), expm1 + 1,
log(1 + exp)), a linear grid over the O(1) region and a log-spaced grid from 1e-8 (or
the dtype's smallest normal) up.  Every weight matrix is the identity and every bias 0,
so z equals the grid point exactly.

* Per activation and parameter set (``strategies.ACTIVATION_ORDER`` x
  ``strategies.ACTIVATION_PARAMS``): a one-layer network, whose output delta
  g'(z) (a - t) is Eq. 5, and a two-layer one whose hidden layer carries g and whose
  output is linear, so that g' reaches delta (Eq. 14) and dW (Eq. 15) of the layer
  below.  t = g(z) - 1 (or less, where g is large) keeps a - t away from 0, so no row's
  g' is multiplied away.
* Per loss and reduction: three outputs per row carrying the grid's logit z, with
  targets 0, 1 and a soft value side by side (bce, bce_logits, sse, mse), or logits
  (z, 0, -z) with one-hot, soft and all-zero target rows in turn (ce, softmax_ce).

Rows the dtype cannot compute (``error_model.fits_dtype`` false, alone or in the batch
sum) are dropped.  Negative and non-negative rows go to separate cases of ``CHUNK``
rows each -- a long grid split, a short one padded by repeating its first row -- so a
framework that compiles per shape compiles one program per network, whatever the grid.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import ml_dtypes
import numpy as np

import reference
from adapters.interface import Result
from harness.crossval import expected_result, network_expression
from harness.error_model import (
    Bounds,
    Precision,
    both_bounds,
    error_bounds,
    fits_dtype,
    numpy_dtype,
    round_to,
)
from harness.strategies import ACTIVATION_ORDER, ACTIVATION_PARAMS, LOSS_ORDER, Case

CHUNK = 128  # rows per case: each sign of every grid below fits one chunk
LOG_POINTS = 48  # per sign, from 1e-8 (or the smallest normal) to past the exp edges
LINEAR = np.arange(0.5, 12.25, 0.5)  # the O(1) region, where formulas cancel most
KINK_NEIGHBOURS = 3  # representable numbers on each side of a kink
SOFT_TARGET = 0.3
LR = 0.1


@dataclass(frozen=True)
class SweepCase:
    """One case of the sweep, its label, its error bounds and the reference's answer."""

    label: str  # "gelu, one layer (Eq. 5), rows 1-256 of 231"
    case: Case
    bounds: tuple[Bounds, Bounds]  # strict and absolute-activation, as both_bounds
    expected: Result


def activation_settings() -> list[tuple[str, dict[str, float]]]:
    """Every activation with every parameter set the strategies draw, defaults filled
    in, each once (hardtanh's min_val >= max_val moved below, as strategies do)."""
    out: list[tuple[str, dict[str, float]]] = []
    for name in ACTIVATION_ORDER:
        choices = ACTIVATION_PARAMS.get(name, {})
        for values in itertools.product(*choices.values()):
            params = dict(zip(choices, values))
            if name == "hardtanh" and params["min_val"] >= params["max_val"]:
                params["min_val"] = params["max_val"] - 1.0
            full = {**reference.ACTIVATIONS[name].defaults, **params}
            if (name, full) not in out:
                out.append((name, full))
    return out


def _neighbours(point: float, dtype: str, steps: int) -> list[float]:
    """``point`` rounded to ``dtype`` and its ``steps`` nearest representable numbers on each side."""
    kind = numpy_dtype(dtype)
    here = np.array([point]).astype(kind)
    out = [float(here[0])]
    for direction in (-np.inf, np.inf):
        x, toward = here, np.array([direction]).astype(kind)
        for _ in range(steps):
            x = np.nextafter(x, toward)
            out.append(float(x[0]))
    return out


def magnitudes(dtype: str) -> np.ndarray:
    """Positive grid magnitudes for ``dtype``: log-spaced from 1e-8 (or the smallest
    normal) to 1.1 x past where exp(z) overflows and exp(-z) underflows to 0, a linear
    grid on (0, 12], the points where common derivative formulas lose their accuracy in
    this dtype (each with neighbours at x0.5, 0.9, 1.1, 1.5), and far points beyond."""
    p = Precision.of(dtype)
    smallest = float(ml_dtypes.finfo(numpy_dtype(dtype)).smallest_subnormal)
    exp_overflow, exp_underflow = math.log(p.max), -math.log(smallest)
    hi = 1.1 * max(exp_overflow, exp_underflow)
    cancel = (
        0.5 * math.log(2.0 / p.u),  # 1 - tanh(z)^2: tanh rounds to 1
        math.log(1.0 / p.u),  # s (1 - s), log(1 + exp(-z)), expm1(-z) + 1: a term below u
        math.sqrt(2.0 * math.log(1.0 / p.u)),  # 1 + erf(-z / sqrt 2): erf rounds to -1
        math.sqrt(2.0 * exp_underflow),  # exp(-z^2 / 2) underflows (gelu's pdf term)
        -math.log(p.tiny), exp_overflow, exp_underflow,
    )
    near = [c * f for c in cancel for f in (0.5, 0.9, 1.0, 1.1, 1.5)]
    far = [f * hi for f in (2.0, 10.0)] + [p.max / 1e3]
    grid = np.concatenate([np.geomspace(max(1e-8, p.tiny), hi, LOG_POINTS), LINEAR, near, far])
    return grid[grid < p.max / 16]


def _scale(name: str, params: dict[str, float]) -> float:
    """How far the activation's features sit from those of its parameter-free form:
    softplus(beta z) / beta saturates at beta z, celu's exp(z / alpha) at z / alpha."""
    if name == "softplus":
        return 1.0 / params["beta"]
    if name == "celu":
        return params["alpha"]
    return 1.0


def activation_grid(name: str, params: dict[str, float], dtype: str) -> np.ndarray:
    """The sorted, distinct pre-activations of an activation's sweep in ``dtype``:
    0, +- the magnitudes (scaled to the activation's parameters), and every kink with
    its ``KINK_NEIGHBOURS`` representable neighbours on each side."""
    m = magnitudes(dtype) * _scale(name, params)
    points = [0.0, *m, *(-m)]
    for kink in reference.ACTIVATIONS[name].kinks(**params):
        points += _neighbours(kink, dtype, KINK_NEIGHBOURS)
    z = round_to(np.array(points), dtype)
    return np.unique(z[np.isfinite(z)])


def _activation_rows(name: str, params: dict[str, float], z: np.ndarray, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """x = z (one column) and t = g(z) - s, s = max(1, 16 u |g|) rounded, so a - t
    stays near s: at least 1, and never rounded away where g is large."""
    g = reference.ACTIVATIONS[name].fn(z, **params)
    s = np.maximum(1.0, 16.0 * Precision.of(dtype).u * np.abs(g))
    return z[:, None], round_to(g - s, dtype)[:, None]


def _loss_rows(loss: str, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """Logit rows and targets for a loss of three outputs (see the module docstring)."""
    m = round_to(magnitudes(dtype), dtype)
    z = np.unique(np.concatenate([[0.0], m, -m]))
    n = len(z)
    if loss in ("ce", "softmax_ce"):
        x = np.stack([z, np.zeros(n), -z], axis=1)
        kinds = np.array([[1.0, 0, 0], [0, 0, 1.0], [0.2, SOFT_TARGET, 0.5], [0, 0, 0]])
        return x, round_to(kinds[np.arange(n) % len(kinds)], dtype)
    x = np.repeat(z[:, None], 3, axis=1)
    t = np.tile([0.0, 1.0, SOFT_TARGET], (n, 1))
    return x, round_to(t, dtype)


def identity_case(network: reference.Network, x, t, dtype: str) -> Case:
    """A case of ``network`` with identity weights and zero biases (z = x in every layer
    that a square identity maps), on rows ``x`` and targets ``t`` already in ``dtype``:
    how the sweep builds its cases, and how a failure message rebuilds one."""
    sizes = network.sizes
    params = [(np.eye(a, b), np.zeros(b)) for a, b in zip(sizes[:-1], sizes[1:])]
    x, t = np.asarray(x, np.float64), np.asarray(t, np.float64)
    if not (np.array_equal(round_to(x, dtype), x) and np.array_equal(round_to(t, dtype), t)):
        raise ValueError(f"x and t must be representable in dtype={dtype!r}; round them first")
    return Case(network, params, x, t, dtype, LR, 0, (1.0,) * len(sizes), "sweep")


def rebuild_expression(case: Case) -> str:
    """Python that rebuilds ``case`` with the suite's modules (run from tests/)."""
    return (f"sweep.identity_case({network_expression(case.network)}, x={case.x.tolist()!r}, "
            f"t={case.t.tolist()!r}, dtype={case.dtype!r})")


def _computable(network: reference.Network, x: np.ndarray, t: np.ndarray, dtype: str) -> np.ndarray:
    """Per row: whether the dtype can compute it alone -- ``fits_dtype`` of a batch of
    one, for every row at once (the error model takes networks stacked on a leading axis)."""
    proto = identity_case(network, x[:1], t[:1], dtype)
    params = [(np.broadcast_to(W, (len(x), *W.shape)), np.broadcast_to(b, (len(x), *b.shape))) for W, b in proto.params]
    with np.errstate(all="ignore"):
        b = error_bounds(network, params, x[:, None, :], t[:, None, :], dtype=dtype, lr=LR)
    p = Precision.of(dtype)
    fits = np.isfinite(b.max_magnitude) & (b.max_magnitude * 16.0 < p.max) & np.isfinite(b.loss)
    for a in (*b.deltas, *b.dW, *b.db, *b.stepped_W, *b.stepped_b):
        fits &= np.isfinite(a.reshape(len(x), -1)).all(axis=1)
    return fits


def _chunks(label: str, network: reference.Network, x: np.ndarray, t: np.ndarray, dtype: str) -> list[SweepCase]:
    """The computable rows in ``CHUNK``-row cases.  A chunk whose batch sum overflows
    although each row fits keeps the most rows, smallest |x| first, that fit together."""
    keep = _computable(network, x, t, dtype)
    x, t = x[keep], t[keep]
    out = []
    # Negative and non-negative rows in separate cases: a known discrepancy conditioned on
    # one tail (``when = ...`` in the known-discrepancy file) then leaves the other checked.
    signs = (np.flatnonzero(x[:, 0] < 0), np.flatnonzero(x[:, 0] >= 0))
    for rows in (part for side in signs for part in np.array_split(side, max(1, -(-len(side) // CHUNK)))):
        if not len(rows):
            continue
        by_size = rows[np.argsort(np.abs(x[rows]).max(axis=1), kind="stable")]
        best = _fitting(network, x[rows], t[rows], dtype)
        lo, hi = 1, (len(rows) - 1 if best is None else 0)
        while lo <= hi:
            mid = (lo + hi) // 2  # binary search: how many of the smallest rows fit together
            chosen = np.sort(by_size[:mid])
            found = _fitting(network, x[chosen], t[chosen], dtype)
            if found:
                best, lo = found, mid + 1
            else:
                hi = mid - 1
        if best is not None:
            case, both, n = best
            z = case.x[:n]
            text = f"{label}: {n} rows, z in [{z.min():.4g}, {z.max():.4g}]"
            out.append(SweepCase(text, case, both, expected_result(case)))
    return out


def _fitting(network: reference.Network, x: np.ndarray, t: np.ndarray, dtype: str):
    """(the padded case of these rows, its bounds, the row count), or None where the
    dtype cannot compute the rows together."""
    case = _padded(network, x, t, dtype)
    with np.errstate(all="ignore"):
        both = both_bounds(network, case.params, case.x, case.t, dtype=dtype, lr=LR)
    return (case, both, len(x)) if fits_dtype(both[0], dtype) else None


def _padded(network: reference.Network, x: np.ndarray, t: np.ndarray, dtype: str) -> Case:
    fill = CHUNK - len(x)
    return identity_case(network, np.concatenate([x, np.repeat(x[:1], fill, 0)]),
                         np.concatenate([t, np.repeat(t[:1], fill, 0)]), dtype)


def activation_cases(name: str, params: dict[str, float], dtype: str) -> list[SweepCase]:
    """The one-layer (Eq. 5) and two-layer (Eq. 14) sweeps of one activation setting."""
    x, t = _activation_rows(name, params, activation_grid(name, params, dtype), dtype)
    text = name + "".join(f", {k}={v:g}" for k, v in params.items())
    one = reference.Network([1, 1], [(name, params)], loss="sse", reduction="sum")
    two = reference.Network([1, 1, 1], [(name, params), "identity"], loss="sse", reduction="sum")
    return (_chunks(f"{text}, one layer (Eq. 5)", one, x, t, dtype)
            + _chunks(f"{text}, hidden layer of two (Eq. 14)", two, x, t, dtype))


def loss_cases(loss: str, reduction: str, dtype: str) -> list[SweepCase]:
    """A loss's sweep: its output activation (identity where it has none) on three outputs."""
    x, t = _loss_rows(loss, dtype)
    output = reference.OUTPUT_ACTIVATION_FOR_LOSS.get(loss, "identity")
    network = reference.Network([3, 3], [output], loss=loss, reduction=reduction)
    return _chunks(f"loss {loss}, reduction {reduction}", network, x, t, dtype)


@functools.lru_cache(maxsize=4)
def sweep_cases(dtype: str) -> tuple[SweepCase, ...]:
    """Every case of the sweep for ``dtype``: each activation setting, then each loss and
    reduction.  Built once per dtype and process (every target shares it)."""
    if dtype not in ("float64", "float32", "float16", "bfloat16"):
        raise ValueError(f"dtype={dtype!r}; expected one of float64, float32, float16, bfloat16")
    out: list[SweepCase] = []
    for name, params in activation_settings():
        out += activation_cases(name, params, dtype)
    for loss in LOSS_ORDER:
        for reduction in ("sum", "mean"):
            out += loss_cases(loss, reduction, dtype)
    return tuple(out)
