"""Bounded arithmetic: values that carry a bound on the absolute error a dtype
computation of them may reach, and the operations of the derivation on them -- sums of
products, element-wise products and differences, and functions evaluated over an error
interval (see ``tests/harness/error_model.py`` for the model these implement)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import ml_dtypes
import numpy as np

Array = np.ndarray
ACTIVATION_ULPS = 4.0  # libm-quality evaluation of exp, log, tanh, erf and friends

_NUMPY_DTYPES = {
    "float64": np.dtype(np.float64),
    "float32": np.dtype(np.float32),
    "float16": np.dtype(np.float16),
    "bfloat16": np.dtype(ml_dtypes.bfloat16),
}


@dataclass(frozen=True)
class Precision:
    """Unit roundoff ``u`` and smallest normal ``tiny`` of a dtype."""

    name: str
    u: float
    tiny: float
    max: float

    @classmethod
    def of(cls, dtype: str) -> Precision:
        if dtype not in _NUMPY_DTYPES:
            raise ValueError(f"unknown dtype {dtype!r}; known dtypes: {', '.join(_NUMPY_DTYPES)}")
        info = ml_dtypes.finfo(_NUMPY_DTYPES[dtype])
        return cls(dtype, float(info.eps) / 2.0, float(info.tiny), float(info.max))


def numpy_dtype(dtype: str) -> np.dtype:
    return _NUMPY_DTYPES[dtype]


def round_to(array: Array, dtype: str) -> Array:
    """``array`` rounded to ``dtype`` and held in float64 (exactly representable)."""
    return np.asarray(array, np.float64).astype(_NUMPY_DTYPES[dtype]).astype(np.float64)


@dataclass(frozen=True)
class Bounded:
    """A value and a bound on the absolute error a dtype computation of it may carry."""

    v: Array
    e: Array


class _Arith:
    """Bounded arithmetic in one dtype.  ``both``: errors of the strict and the
    absolute-activation model side by side, on a leading axis of 2."""

    def __init__(self, p: Precision, absolute: bool | frozenset[str] = False, both: bool = False) -> None:
        """``absolute``: True for the absolute-activation model, or the set of activation
        and loss names it applies to (a known finding's scope; every other activation and
        loss keeps the strict model)."""
        self.p = p
        self.absolute = bool(absolute)
        self.scope = None if isinstance(absolute, bool) else frozenset(absolute)
        self.both = both

    def loose_for(self, name: str) -> bool:
        """Whether the absolute-activation model (alone or beside the strict one) applies to
        the activation or loss ``name``."""
        return self.both or (self.absolute and (self.scope is None or name in self.scope))

    def exact(self, v: Array) -> Bounded:
        return Bounded(np.asarray(v, np.float64), np.zeros((2, *np.shape(v)) if self.both else np.shape(v)))

    def loosen(self, e: Array, extra: Array | float, name: str) -> Array:
        """``e`` plus ``extra`` under the absolute-activation model of ``name`` only."""
        if self.both:
            e = np.array(e, dtype=np.float64, copy=True)
            e[1] = e[1] + extra
            return e
        return e + extra if self.loose_for(name) else e

    def affine(self, a: Bounded, W: Array, b: Array | None = None,
               eW: Array | None = None, eb: Array | None = None) -> Bounded:
        """a @ W (+ b): n = accumulation length of each entry; ``eW``/``eb`` are errors
        the parameters themselves carry (a trajectory's earlier steps), else 0."""
        absW = np.abs(W)
        n = W.shape[-2] + (b is not None)
        b = None if b is None else b[..., None, :]  # (out,) or, for a stack of networks, (S, 1, out)
        mag = np.abs(a.v) @ absW + (0.0 if b is None else np.abs(b))
        v = a.v @ W + (0.0 if b is None else b)
        e = a.e @ absW + n * self.p.u * mag + n * self.p.tiny
        if eW is not None:
            e = e + (np.abs(a.v) + a.e) @ eW
        if eb is not None:
            e = e + eb
        return Bounded(v, e)

    def outer_sum(self, a: Bounded, d: Bounded) -> Bounded:
        """a.T @ d, both carrying errors: the weight gradient of Eqs. 6 and 15."""
        n = a.v.shape[-2]
        abs_aT = np.swapaxes(np.abs(a.v), -1, -2)
        mag = abs_aT @ np.abs(d.v)
        ae = np.swapaxes(a.e, -1, -2)
        e = abs_aT @ d.e + ae @ np.abs(d.v) + ae @ d.e
        return Bounded(np.swapaxes(a.v, -1, -2) @ d.v, e + n * self.p.u * mag + n * self.p.tiny)

    def column_sum(self, d: Bounded) -> Bounded:
        n = d.v.shape[-2]
        mag = np.abs(d.v).sum(axis=-2)
        return Bounded(d.v.sum(axis=-2), d.e.sum(axis=-2) + n * self.p.u * mag + n * self.p.tiny)

    def mul(self, x: Bounded, y: Bounded) -> Bounded:
        v = x.v * y.v
        e = np.abs(x.v) * y.e + x.e * np.abs(y.v) + x.e * y.e
        return Bounded(v, e + self.p.u * np.abs(v) + self.p.tiny)

    def sub(self, x: Bounded, y: Bounded) -> Bounded:
        v = x.v - y.v
        return Bounded(v, x.e + y.e + self.p.u * np.abs(v) + self.p.tiny)

    def scale(self, x: Bounded, s: float) -> Bounded:
        v = x.v * s
        return Bounded(v, x.e * abs(s) + self.p.u * np.abs(v) + self.p.tiny)

    def apply(self, f: Callable[[Array], Array], x: Bounded, terms: Callable[[Array], Array] | None = None,
              landmarks: Array | None = None) -> Bounded:
        """f evaluated at x: the largest change of f over x +- (e + c u |x|), plus rounding
        relative to ``terms(x)`` -- the sum of the magnitudes of the terms f adds up,
        where they cancel -- or to |f(x)|.

        The change is taken at both ends of the interval and at every landmark inside
        it (kinks from both sides, and a grid over [-4, 4] where the activations and
        their derivatives have their bumps and extrema), so a bump such as relu6' or
        sigmoid' inside a wide interval is not missed."""
        v = f(x.v)
        scale = np.abs(v) if terms is None else terms(x.v)
        reach = x.e + ACTIVATION_ULPS * self.p.u * np.abs(x.v)
        with np.errstate(invalid="ignore", over="ignore"):
            lo, hi = f(x.v - reach), f(x.v + reach)
            spread = np.maximum(np.abs(lo - v), np.abs(hi - v))
            if landmarks is not None and landmarks.size:
                spread = _landmark_spread(f, x.v, v, reach, landmarks, spread)
        spread = np.where(np.isfinite(spread), spread, np.inf)
        return Bounded(v, spread + ACTIVATION_ULPS * self.p.u * scale + self.p.tiny)


def _landmark_spread(f, z: Array, v: Array, reach: Array, landmarks: Array, spread: Array) -> Array:
    """``spread`` raised, entry by entry, to |f(L) - f(z)| for every landmark L with
    |z - L| <= reach.  Only entries whose *nearest* landmark is within reach can have
    one: |fl(z - L)| is monotone in L on either side of z, so its minimum over the
    landmarks sits at one of z's two neighbours in sorted order, and the test below is
    the very comparison the full (entries x landmarks) table would make.  The few
    entries that pass get that table; the bounds are the same, bit for bit."""
    padded = _sorted_padded(landmarks)  # [L_0, L_0, ..., L_n-1, L_n-1]
    at_index = np.searchsorted(padded[1:-1], z, side="left")
    near = np.minimum(np.abs(z - padded[at_index]), np.abs(z - padded[at_index + 1])) <= reach
    if not near.any():
        return spread
    shape = np.broadcast_shapes(near.shape, v.shape, spread.shape)
    near, z, v, reach, spread = (np.broadcast_to(a, shape) for a in (near, z, v, reach, spread))
    zs, vs, rs = z[near], v[near], reach[near]
    inside = np.abs(zs[:, None] - landmarks) <= rs[:, None]
    jump = np.max(np.where(inside, np.abs(f(landmarks) - vs[:, None]), 0.0), axis=-1)
    spread = np.array(spread, dtype=np.float64, copy=True)
    spread[near] = np.maximum(spread[near], jump)
    return spread


_PADDED: dict[bytes, Array] = {}


def _sorted_padded(landmarks: Array) -> Array:
    """The landmarks sorted, with the first and last repeated at either end, so that
    index i and i + 1 are the neighbours of a point searchsorted places at i."""
    key = landmarks.tobytes()
    if key not in _PADDED:
        order = np.sort(landmarks)
        _PADDED[key] = np.concatenate([order[:1], order, order[-1:]])
    return _PADDED[key]
