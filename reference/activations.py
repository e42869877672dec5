"""Activation functions and their derivatives as functions of z (companion post).

Each activation is one record: the function g, its derivative g' written as a
function of the pre-activation z, the points where g' is undefined (kinks), and the
value the reference takes there.  Tests read these records instead of scattering
special cases.

Accuracy: the post writes sigmoid' = g(1 - g) and tanh' = 1 - g^2.  Those forms lose
all relative accuracy once g rounds to 1 (|z| > ~19 for tanh in float64: the exact
derivative is ~1e-16 but 1 - g^2 is 0).  The reference instead evaluates every
derivative from z with exp(-|z|), expm1, logaddexp and erfc, so each value is
accurate to a few ulps relative to itself over the whole finite range -- or, where
the function itself is ill-conditioned (gelu and gelu_tanh for z << 0, derivatives
near their roots), exact for an input within a few ulps of z -- with no overflow or
invalid-value warnings.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

Array = np.ndarray
_SELU_SCALE = 1.0507009873554804934193349852946
_SELU_ALPHA = 1.6732632423543772848170429916717
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_TANH_C = 0.044715
# Beyond this |z| every smooth activation here is saturated in float64 (its
# derivative is exactly 0 or 1), so clipping avoids overflow in z**2 and z**3.
_SATURATED = 1.0e4

_erfc = np.frompyfunc(math.erfc, 1, 1)


def sigmoid(z: Array) -> Array:
    """1 / (1 + exp(-z)), from exp(-|z|) so that neither branch overflows."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def sigmoid_prime(z: Array) -> Array:
    """sigma(z) sigma(-z) = e / (1 + e)^2 with e = exp(-|z|): accurate in both tails,
    where the post's g(1 - g) returns 0 once g rounds to 1 (z > ~37)."""
    e = np.exp(-np.abs(z))
    return e / (1.0 + e) ** 2


def softplus(z: Array) -> Array:
    """log(1 + exp(z)) = max(z, 0) + log1p(exp(-|z|))."""
    return np.logaddexp(0.0, z)


def _tanh_prime(z: Array) -> Array:
    """sech^2(z) = 4 e / (1 + e)^2 with e = exp(-2|z|); 1 - tanh^2 is 0 beyond |z| ~ 19."""
    e = np.exp(-2.0 * np.abs(z))
    return 4.0 * e / (1.0 + e) ** 2


def norm_cdf(z: Array) -> Array:
    """Phi(z) = erfc(-z / sqrt 2) / 2: no cancellation for z << 0, unlike 1 + erf."""
    return 0.5 * np.asarray(_erfc(-np.asarray(z) / math.sqrt(2.0)), dtype=np.float64)


def norm_pdf(z: Array) -> Array:
    zc = np.clip(z, -_SATURATED, _SATURATED)
    return np.exp(-0.5 * zc * zc) / math.sqrt(2.0 * math.pi)


def _gelu_tanh_arg(z: Array) -> Array:
    """2u with u = sqrt(2/pi) (z + 0.044715 z^3): the tanh form's 1 + tanh(u) = 2 sigma(2u)."""
    zc = np.clip(z, -_SATURATED, _SATURATED)
    return 2.0 * _SQRT_2_OVER_PI * (zc + _GELU_TANH_C * zc**3)


def _gelu_tanh(z: Array) -> Array:
    return z * sigmoid(_gelu_tanh_arg(z))


def _gelu_tanh_prime(z: Array) -> Array:
    zc = np.clip(z, -_SATURATED, _SATURATED)
    v = _gelu_tanh_arg(z)
    dv = 2.0 * _SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_TANH_C * zc * zc)
    return sigmoid(v) + zc * sigmoid_prime(v) * dv


def _mish(z: Array) -> Array:
    return z * np.tanh(softplus(z))


def _mish_prime(z: Array) -> Array:
    sp = softplus(z)
    return np.tanh(sp) + z * _tanh_prime(sp) * sigmoid(z)


def _not_elementwise() -> Array:
    raise TypeError("softmax has no element-wise derivative; backpropagate with softmax_vjp")


def _where(cond: Array, yes: Array | float, no: Array | float) -> Array:
    return np.where(cond, yes, no).astype(np.float64)


@dataclass(frozen=True)
class Activation:
    """One activation: g(z), g'(z), kinks and the convention at each kink.

    ``fn`` and ``grad`` take ``(z, **params)``; ``kinks`` takes ``**params`` and
    returns the z values where g is not differentiable; ``kink_convention`` says what
    ``grad`` returns there and which frameworks agree.
    """

    name: str
    fn: Callable[..., Array]
    grad: Callable[..., Array]
    defaults: Mapping[str, float] = field(default_factory=dict)
    kinks: Callable[..., tuple[float, ...]] = lambda **_: ()
    kink_convention: str = ""
    output_only: bool = False


def _softplus_beta(z: Array, beta: float, threshold: float) -> Array:
    linear = beta * z > threshold
    return _where(linear, z, softplus(beta * z) / beta)


def _softplus_beta_prime(z: Array, beta: float, threshold: float) -> Array:
    return _where(beta * z > threshold, 1.0, sigmoid(beta * z))


def _elu(z: Array, alpha: float) -> Array:
    return _where(z > 0, z, alpha * np.expm1(np.minimum(z, 0.0)))


def _elu_prime(z: Array, alpha: float) -> Array:
    return _where(z > 0, 1.0, alpha * np.exp(np.minimum(z, 0.0)))


def _celu(z: Array, alpha: float) -> Array:
    return _where(z > 0, z, alpha * np.expm1(np.minimum(z, 0.0) / alpha))


def _celu_prime(z: Array, alpha: float) -> Array:
    return _where(z > 0, 1.0, np.exp(np.minimum(z, 0.0) / alpha))


def _hardswish_prime(z: Array) -> Array:
    return _where(z <= -3.0, 0.0, _where(z < 3.0, z / 3.0 + 0.5, 1.0))


_RECORDS = (
    Activation("identity", lambda z: z * 1.0, lambda z: np.ones_like(z)),
    Activation("sigmoid", sigmoid, sigmoid_prime),
    Activation("tanh", np.tanh, _tanh_prime),
    Activation(
        "relu", lambda z: np.maximum(z, 0.0), lambda z: _where(z > 0, 1.0, 0.0),
        kinks=lambda: (0.0,), kink_convention="g'(0) = 0",
    ),
    Activation(
        "leaky_relu",
        lambda z, slope: _where(z >= 0, z, slope * z),
        lambda z, slope: _where(z > 0, 1.0, slope),
        {"slope": 0.01}, lambda slope: (0.0,), "g'(0) = slope (the left derivative)",
    ),
    Activation(
        "elu", _elu, _elu_prime, {"alpha": 1.0}, lambda alpha: (0.0,),
        "g'(0) = alpha (the left derivative)",
    ),
    Activation(
        "selu",
        lambda z: _SELU_SCALE * _elu(z, _SELU_ALPHA),
        lambda z: _SELU_SCALE * _elu_prime(z, _SELU_ALPHA),
        kinks=lambda: (0.0,), kink_convention="g'(0) = scale * alpha (the left derivative)",
    ),
    Activation(
        "celu", _celu, _celu_prime, {"alpha": 1.0}, lambda alpha: (0.0,),
        "g'(0) = 1 (both one-sided derivatives are 1; g'' jumps)",
    ),
    Activation(
        "softplus", _softplus_beta, _softplus_beta_prime,
        {"beta": 1.0, "threshold": math.inf},
        lambda beta, threshold: () if math.isinf(threshold) else (threshold / beta,),
        "at beta z = threshold the smooth branch: g' = sigma(threshold)",
    ),
    Activation("gelu", lambda z: z * norm_cdf(z), lambda z: norm_cdf(z) + z * norm_pdf(z)),
    Activation("gelu_tanh", _gelu_tanh, _gelu_tanh_prime),
    Activation(
        "silu", lambda z: z * sigmoid(z), lambda z: sigmoid(z) * (1.0 + z * sigmoid(-z))
    ),
    Activation("mish", _mish, _mish_prime),
    Activation(
        # g' squared after the division: (1 + |z|)^2 overflows for |z| > 1.3e154.
        "softsign", lambda z: z / (1.0 + np.abs(z)), lambda z: (1.0 / (1.0 + np.abs(z))) ** 2
    ),
    Activation(
        "hardtanh",
        lambda z, min_val, max_val: np.clip(z, min_val, max_val),
        lambda z, min_val, max_val: _where((z > min_val) & (z < max_val), 1.0, 0.0),
        {"min_val": -1.0, "max_val": 1.0}, lambda min_val, max_val: (min_val, max_val),
        "g' = 0 at both corners",
    ),
    Activation(
        "relu6", lambda z: np.clip(z, 0.0, 6.0),
        lambda z: _where((z > 0) & (z < 6.0), 1.0, 0.0),
        kinks=lambda: (0.0, 6.0), kink_convention="g' = 0 at 0 and at 6",
    ),
    Activation(
        "hardsigmoid", lambda z: np.clip(z + 3.0, 0.0, 6.0) / 6.0,
        lambda z: _where((z > -3.0) & (z < 3.0), 1.0 / 6.0, 0.0),
        kinks=lambda: (-3.0, 3.0), kink_convention="g' = 0 at -3 and at 3",
    ),
    Activation(
        "hardswish", lambda z: z * np.clip(z + 3.0, 0.0, 6.0) / 6.0, _hardswish_prime,
        kinks=lambda: (-3.0, 3.0),
        kink_convention="g'(-3) = 0 (left derivative), g'(3) = 1 (right derivative)",
    ),
    Activation("log_sigmoid", lambda z: -softplus(-z), lambda z: sigmoid(-z)),
    Activation("softmax", lambda z: softmax(z), lambda z: _not_elementwise(), output_only=True),
)
ACTIVATIONS: Mapping[str, Activation] = MappingProxyType({a.name: a for a in _RECORDS})


def softmax(z: Array) -> Array:
    """Row-wise softmax, shifted by the row maximum so exp never overflows."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def softmax_vjp(a: Array, g: Array) -> Array:
    """dE/dz from dE/da through softmax's Jacobian: a * (g - sum_k g_k a_k)."""
    return a * (g - (g * a).sum(axis=-1, keepdims=True))
