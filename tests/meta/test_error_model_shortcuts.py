"""The error model's shortcuts give the bounds of its plain formulas, bit for bit.

``both_bounds`` runs the strict and the absolute-activation model in one pass,
``set_bounds`` runs the networks of a set stacked on a leading axis, and
``_Arith.apply`` looks at landmarks only for entries whose nearest landmark is within
reach.  None may change a bound: each is checked here against the plain version.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference
from harness.bounded_arithmetic import _landmark_spread
from harness.error_model import _GRID, both_bounds, error_bounds, set_bounds
from harness.strategies import build_case, case_sets, cases
from reference.activations import ACTIVATIONS


def _identical(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and np.array_equal(a, b, equal_nan=True)


@settings(max_examples=40, deadline=None)
@given(case=st.sampled_from(("float64", "float32", "float16", "bfloat16")).flatmap(lambda d: cases(dtype=d)))
def test_both_bounds_in_one_pass_equal_the_two_separate_passes(case):
    kw = dict(dtype=case.dtype, lr=case.lr)
    with np.errstate(all="ignore"):
        together = both_bounds(case.network, case.params, case.x, case.t, **kw)
        apart = [error_bounds(case.network, case.params, case.x, case.t, absolute=a, **kw) for a in (False, True)]
    for one, other in zip(together, apart):
        assert _identical(one.loss, other.loss) and one.max_magnitude == other.max_magnitude
        for key in ("deltas", "dW", "db", "stepped_W", "stepped_b"):
            for got, want in zip(getattr(one, key), getattr(other, key), strict=True):
                assert _identical(got, want), key


@settings(max_examples=40, deadline=None)
@given(drawn=st.sampled_from(("float64", "float32", "float16", "bfloat16")).flatmap(
    lambda d: case_sets(dtype=d, networks=6, width=(1, 12), batch=(1, 6))))
def test_a_set_stacked_gives_each_networks_own_bounds(drawn):
    with np.errstate(all="ignore"):
        stacked = set_bounds(drawn)
        alone = [both_bounds(c.network, c.params, c.x, c.t, dtype=c.dtype, lr=c.lr) for c in drawn]
    for pair, other_pair in zip(stacked, alone, strict=True):
        for one, other in zip(pair, other_pair):
            assert _identical(one.loss, other.loss) and _identical(one.max_magnitude, other.max_magnitude)
            for key in ("deltas", "dW", "db", "stepped_W", "stepped_b"):
                for got, want in zip(getattr(one, key), getattr(other, key), strict=True):
                    assert _identical(got, want), key


def test_a_set_of_different_networks_is_refused():
    net = reference.Network((2, 3), ("tanh",), loss="sse", reduction="sum")
    a = build_case(net, batch=2, dtype="float32", lr=0.1, seed=1, scales=(1.0, 1.0))
    b = build_case(net, batch=3, dtype="float32", lr=0.1, seed=2, scales=(1.0, 1.0))
    with pytest.raises(ValueError, match="one network, batch, dtype and learning rate"):
        set_bounds((a, b))


def _dense_spread(f, z, v, reach, landmarks, spread):
    """The plain formula: every entry against every landmark."""
    inside = np.abs(z[..., None] - landmarks) <= reach[..., None]
    return np.maximum(spread, np.max(np.where(inside, np.abs(f(landmarks) - v[..., None]), 0.0), axis=-1))


@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from(("relu6", "hardtanh", "tanh", "leaky_relu", "hardswish", "gelu", "silu")),
    derivative=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
    reach_exponent=st.sampled_from((-16.0, -8.0, -2.0, -1.5, -1.0, -0.5, 0.0, 1.0)),
    stacked=st.booleans(),
)
def test_landmark_shortcut_equals_the_full_landmark_table(name, derivative, seed, reach_exponent, stacked):
    rng = np.random.default_rng(seed)
    record = ACTIVATIONS[name]
    kinks = np.array(record.kinks(**record.defaults), dtype=np.float64)
    landmarks = np.concatenate([_GRID, kinks - 1e-9, kinks + 1e-9])
    # Points on, just beside and far from the landmarks, and the non-finite ones.
    z = np.concatenate([
        rng.choice(landmarks, 20) + rng.choice([0.0, 1e-16, -1e-16, 1e-9, -3e-9], 20),
        rng.uniform(-6, 6, 10), rng.uniform(-0.5, 0.5, 10), [np.inf, -np.inf, np.nan, 0.0],
    ]).reshape(4, 11)
    reach = 10.0 ** reach_exponent * rng.uniform(0, 2, (2, *z.shape) if stacked else z.shape)
    reach.flat[:3] = (0.0, np.inf, np.nan)
    # Points whose reach ends exactly on a landmark: the comparison's boundary.
    edge = rng.choice(landmarks, 5)
    z.flat[3:8] = edge + rng.choice([0.1, -0.1, 0.3], 5)
    reach.flat[3:8] = np.abs(z.flat[3:8] - edge)
    # Derivatives have bumps (tanh' at 0) that only a landmark inside the reach finds.
    f = lambda a: (record.grad if derivative else record.fn)(a, **record.defaults)  # noqa: E731
    with np.errstate(all="ignore"):
        v = f(z)
        spread = np.maximum(np.abs(f(z - reach) - v), np.abs(f(z + reach) - v))
        assert _identical(_landmark_spread(f, z, v, reach, landmarks, spread),
                          _dense_spread(f, z, v, reach, landmarks, spread))
