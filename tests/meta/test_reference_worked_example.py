"""A network small enough to work by hand: 2 inputs, 2 tanh hidden units, 1 linear
output, sum of squared errors (Eq. 1), one example, one step of Eq. 7."""

from __future__ import annotations

import math

import numpy as np
import pytest

import reference

NET = reference.Network(sizes=(2, 2, 1), activations=("tanh", "identity"), loss="sse")
X = np.array([[1.0, 0.5]])
T = np.array([[0.5]])
W1 = np.array([[0.5, -0.3], [0.2, 0.4]])  # w_ij: input i -> hidden unit j
B1 = np.array([0.1, -0.1])
W2 = np.array([[0.7], [-0.6]])  # w_jk: hidden unit j -> output k
B2 = np.array([0.05])
LR = 0.1

# The hand computation of the docstring below, rounded to 6 significant digits.
HAND = {
    "z1": [0.7, -0.2], "a1": [0.604368, -0.197375], "z2": 0.591483, "E": 0.00418454,
    "delta2": 0.0914826, "delta1": [0.0406474, -0.0527512],
    "dW2": [[0.0552892], [-0.0180564]], "db2": [0.0914826],
    "dW1": [[0.0406474, -0.0527512], [0.0203237, -0.0263756]], "db1": [0.0406474, -0.0527512],
    "W2_new": [[0.694471], [-0.598194]], "b2_new": [0.0408517],
    "W1_new": [[0.495935, -0.294725], [0.197968, 0.402638]], "b1_new": [0.0959353, -0.0947249],
}


def _by_hand_in_float64() -> dict:
    """The same computation with math.tanh, scalar by scalar, unrounded."""
    x, t = X[0], T[0, 0]
    z1 = [B1[j] + x[0] * W1[0, j] + x[1] * W1[1, j] for j in range(2)]
    a1 = [math.tanh(z) for z in z1]
    z2 = B2[0] + a1[0] * W2[0, 0] + a1[1] * W2[1, 0]
    delta2 = (z2 - t) * 1.0
    delta1 = [(1.0 - a1[j] ** 2) * delta2 * W2[j, 0] for j in range(2)]
    dW2 = [[delta2 * a1[j]] for j in range(2)]
    dW1 = [[delta1[j] * x[i] for j in range(2)] for i in range(2)]
    return {
        "z1": z1, "a1": a1, "z2": z2, "E": 0.5 * (z2 - t) ** 2, "delta2": delta2, "delta1": delta1,
        "dW2": dW2, "db2": [delta2], "dW1": dW1, "db1": delta1,
        "W2_new": [[W2[j, 0] - LR * dW2[j][0]] for j in range(2)], "b2_new": [B2[0] - LR * delta2],
        "W1_new": [[W1[i, j] - LR * dW1[i][j] for j in range(2)] for i in range(2)],
        "b1_new": [B1[j] - LR * delta1[j] for j in range(2)],
    }


def _reference() -> dict:
    params = [(W1, B1), (W2, B2)]
    trace = reference.forward(NET, params, X)
    deltas = reference.deltas(NET, params, X, T)
    (dW1, db1), (dW2, db2) = reference.gradients(NET, params, X, T)
    (W1_new, b1_new), (W2_new, b2_new) = reference.sgd_step(params, [(dW1, db1), (dW2, db2)], lr=LR)
    return {
        "z1": trace.z[0][0], "a1": trace.a[0][0], "z2": trace.z[1][0, 0], "E": reference.loss(NET, params, X, T),
        "delta2": deltas[1][0, 0], "delta1": deltas[0][0], "dW2": dW2, "db2": db2, "dW1": dW1, "db1": db1,
        "W2_new": W2_new, "b2_new": b2_new, "W1_new": W1_new, "b1_new": b1_new,
    }


@pytest.mark.parametrize("quantity", list(HAND))
def test_reference_matches_the_hand_computation(quantity: str) -> None:
    """x = (1, 0.5), t = 0.5, W1 = [[0.5, -0.3], [0.2, 0.4]], b1 = (0.1, -0.1),
    W2 = [[0.7], [-0.6]], b2 = 0.05, eta = 0.1.

    Forward (Eqs. 2-4; z_k adds b_k, typo 2):
      z1 = b1 + x W1   = (0.1 + 0.5 + 0.1, -0.1 - 0.3 + 0.2) = (0.7, -0.2)
      a1 = tanh(z1)    = (0.604368, -0.197375)
      z2 = b2 + a1 W2  = 0.05 + 0.423057 + 0.118425 = 0.591483 = a2 (identity)
      E  = 1/2 (a2 - t)^2 = 1/2 (0.0914826)^2 = 0.00418454      (Eq. 1)
    Output delta (Eq. 5, g' = 1):
      delta2 = (a2 - t) * 1 = 0.0914826
    Hidden deltas (Eq. 14, tanh' = 1 - tanh^2 = (0.634740, 0.961043)):
      delta1 = (0.634740 * 0.0914826 * 0.7, 0.961043 * 0.0914826 * (-0.6))
             = (0.0406474, -0.0527512)
    Gradients (Eqs. 6, 8 and 15, 18; the sum runs over a_i, typo 1):
      dE/dW2 = a1^T delta2 = (0.0552892, -0.0180564)^T,  dE/db2 = 0.0914826
      dE/dW1 = x^T delta1  = [[0.0406474, -0.0527512], [0.0203237, -0.0263756]]
      dE/db1 = delta1      = (0.0406474, -0.0527512)
    One step (Eq. 7, w <- w - 0.1 dE/dw):
      W2 = (0.694471, -0.598194)^T,  b2 = 0.0408517
      W1 = [[0.495935, -0.294725], [0.197968, 0.402638]],  b1 = (0.0959353, -0.0947249)

    The reference matches these rounded numbers to 1e-5 relative, and the same
    computation in unrounded float64 (math.tanh) to 1e-12 relative.
    """
    got = np.asarray(_reference()[quantity], np.float64)
    np.testing.assert_allclose(got, np.reshape(HAND[quantity], got.shape), rtol=1e-5, atol=0,
                               err_msg=f"{quantity} against the docstring's hand computation")
    np.testing.assert_allclose(got, np.reshape(_by_hand_in_float64()[quantity], got.shape), rtol=1e-12,
                               atol=0, err_msg=f"{quantity} against the same computation with math.tanh")
