"""Bad input is rejected with a ValueError that names the value and says what
would be accepted -- one test per mistake."""

from __future__ import annotations

import math

import numpy as np
import pytest

import reference

NET = reference.Network((2, 3, 1), ("tanh", "identity"), loss="sse")
PARAMS = [(np.full((2, 3), 0.1), np.zeros(3)), (np.full((3, 1), 0.1), np.zeros(1))]
X = np.ones((4, 2))
T = np.zeros((4, 1))


def test_unknown_activation_is_rejected_with_the_known_ones_listed() -> None:
    with pytest.raises(ValueError, match=r"unknown activation 'swish' for layer 1; known activations: identity, sigmoid, tanh, relu"):
        reference.Network((2, 1), ("swish",))


def test_unknown_loss_is_rejected_with_the_known_ones_listed() -> None:
    with pytest.raises(ValueError, match=r"unknown loss 'hinge'; known losses: sse, mse, bce, bce_logits, ce, softmax_ce"):
        reference.Network((2, 1), ("identity",), loss="hinge")


def test_activation_count_must_match_the_layer_count() -> None:
    with pytest.raises(ValueError, match=r"activations has 1 entries but the network has 2 layers; give one per layer"):
        reference.Network((2, 3, 1), ("tanh",))


def test_parameter_shapes_that_do_not_chain_are_rejected() -> None:
    bad = [PARAMS[0], (np.zeros((2, 1)), np.zeros(1))]
    with pytest.raises(ValueError, match=r"layer 2 has W of shape \(2, 1\).*need W \(3, 1\) and b \(1,\)"):
        reference.gradients(NET, bad, X, T)


def test_x_of_the_wrong_shape_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"x has shape \(4, 3\); the network needs \(batch >= 1, 2\)"):
        reference.gradients(NET, PARAMS, np.ones((4, 3)), T)


def test_t_of_the_wrong_shape_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"t has shape \(4, 2\); with x of batch 4 the network needs \(4, 1\)"):
        reference.gradients(NET, PARAMS, X, np.zeros((4, 2)))


def _poisoned(where: str, value: float):
    x, t = X.copy(), T.copy()
    params = [(W.copy(), b.copy()) for W, b in PARAMS]
    target = {"x": x, "t": t, "W of layer 1": params[0][0], "b of layer 2": params[1][1]}[where]
    target.flat[-1] = value
    return params, x, t


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("where", ["x", "t", "W of layer 1", "b of layer 2"])
def test_non_finite_values_are_rejected_where_they_sit(where: str, value: float) -> None:
    params, x, t = _poisoned(where, value)
    with pytest.raises(ValueError, match=rf"^{where} holds 1 non-finite value\(s\), first {value!r}.*every value must be finite"):
        reference.gradients(NET, params, x, t)


def test_width_below_one_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"sizes\[1\] is 0; every width must be an integer >= 1"):
        reference.Network((2, 0, 1), ("tanh", "identity"))


def test_unknown_reduction_is_rejected_with_the_known_ones_listed() -> None:
    with pytest.raises(ValueError, match=r"unknown reduction 'max'; known reductions: sum, mean"):
        reference.Network((2, 1), ("identity",), reduction="max")


def test_softmax_cross_entropy_on_one_output_unit_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"loss 'ce' on a 1-unit output is meaningless.*use 'bce' or 'bce_logits'"):
        reference.Network((2, 1), ("softmax",), loss="ce")


def test_bce_needs_a_sigmoid_output() -> None:
    with pytest.raises(ValueError, match=r"loss 'bce' needs output activation 'sigmoid', not 'tanh'"):
        reference.Network((2, 1), ("tanh",), loss="bce")


def test_softmax_on_a_hidden_layer_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"activation 'softmax' of layer 1 is allowed on the output layer only"):
        reference.Network((2, 3, 2), ("softmax", "identity"))


@pytest.mark.parametrize("call", ["sgd_step", "train", "train_online"])
def test_negative_learning_rate_is_rejected(call: str) -> None:
    grads = reference.gradients(NET, PARAMS, X, T)
    run = {
        "sgd_step": lambda: reference.sgd_step(PARAMS, grads, lr=-0.1),
        "train": lambda: reference.train(NET, PARAMS, X, T, lr=-0.1, steps=1),
        "train_online": lambda: reference.train_online(NET, PARAMS, X, T, lr=-0.1, epochs=1),
    }[call]
    with pytest.raises(ValueError, match=r"learning rate lr=-0.1 must be a finite number >= 0"):
        run()


def test_unknown_activation_parameter_is_rejected_with_the_known_ones_listed() -> None:
    with pytest.raises(ValueError, match=r"activation 'elu' of layer 1 has no parameter 'beta'; its parameters: alpha"):
        reference.Network((2, 1), (("elu", {"beta": 2.0}),))
