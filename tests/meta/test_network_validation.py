"""The contract validates a network once, when it is built: ``NetworkSpec`` and
``Problem`` reject what no adapter can run, with an error naming the value and what
would be accepted, so every target -- torch's and jax's alike -- refuses the same
networks with the same words."""

from __future__ import annotations

import numpy as np
import pytest

from adapters.interface import Activation, NetworkSpec, Problem
from adapters.registry import load_target

TARGETS = ["torch", "torch-func", "jax", "jax-jit"]


def _problem(*acts: Activation, loss: str = "sse", reduction: str = "sum", sizes=(2, 3, 1)) -> Problem:
    spec = NetworkSpec(sizes, acts, loss, reduction)
    params = [(np.ones((a, b)), np.zeros(b)) for a, b in zip(sizes[:-1], sizes[1:])]
    return Problem(spec, params, np.ones((4, sizes[0])), np.zeros((4, sizes[-1])))


@pytest.mark.parametrize("target", TARGETS)
def test_an_unknown_activation_parameter_is_rejected_for_every_target(target: str) -> None:
    pytest.importorskip("torch" if target.startswith("torch") else "jax")
    adapter = load_target(target)
    with pytest.raises(ValueError, match=r"activation 'relu' of layer 1 has no parameter 'slope'; its parameters: none"):
        adapter.compute(_problem(Activation("relu", {"slope": 0.1}), Activation("identity")),
                        device="cpu", dtype="float64", lr=0.1)
    with pytest.raises(ValueError, match=r"activation 'elu' of layer 1 has no parameter 'beta'; its parameters: alpha"):
        adapter.compute(_problem(Activation("elu", {"beta": 1.0}), Activation("identity")),
                        device="cpu", dtype="float64", lr=0.1)


@pytest.mark.parametrize("target", TARGETS)
def test_a_known_activation_parameter_reaches_every_target(target: str) -> None:
    pytest.importorskip("torch" if target.startswith("torch") else "jax")
    problem = _problem(Activation("leaky_relu", {"slope": 0.5}), Activation("identity"))
    problem.x[:] = -1.0  # every hidden unit on the negative side, where the slope shows
    deltas = load_target(target).compute(problem, device="cpu", dtype="float64", lr=0.1).deltas
    assert deltas[1].ravel() == pytest.approx([-3.0] * 4)  # 3 units of -0.5 x 2 inputs, t = 0


def test_an_unknown_activation_is_rejected_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown activation 'swish' for layer 2; known activations: identity, sigmoid"):
        _problem(Activation("tanh"), Activation("swish"))


def test_a_parameter_that_is_not_a_real_number_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"parameter slope=nan of activation 'leaky_relu' \(layer 1\) must be a real"):
        _problem(Activation("leaky_relu", {"slope": float("nan")}), Activation("identity"))


def test_an_output_only_activation_on_a_hidden_layer_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"activation 'softmax' of layer 1 is allowed on the output layer \(2\) only"):
        _problem(Activation("softmax"), Activation("softmax"), loss="ce", sizes=(2, 3, 2))


def test_an_unknown_loss_or_reduction_is_rejected_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown loss 'hinge'; known losses: sse, mse, bce, bce_logits, ce, softmax_ce"):
        _problem(Activation("tanh"), Activation("identity"), loss="hinge")
    with pytest.raises(ValueError, match=r"unknown reduction 'max'; known reductions: sum, mean"):
        _problem(Activation("tanh"), Activation("identity"), reduction="max")


def test_a_loss_with_the_wrong_output_activation_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"loss 'bce' needs output activation 'sigmoid', not 'identity'"):
        _problem(Activation("tanh"), Activation("identity"), loss="bce")


def test_one_activation_per_layer_is_required() -> None:
    with pytest.raises(ValueError, match=r"activations has 1 entries but sizes \(2, 3, 1\) make 2 layers; give one per layer"):
        _problem(Activation("tanh"))


def test_bad_widths_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"sizes\[1\] is 0; every width must be an integer >= 1"):
        NetworkSpec((2, 0, 1), (Activation("tanh"), Activation("identity")), "sse")


def test_parameters_of_the_wrong_shape_are_rejected() -> None:
    spec = NetworkSpec((2, 3, 1), (Activation("tanh"), Activation("identity")), "sse")
    good = [(np.ones((2, 3)), np.zeros(3)), (np.ones((3, 1)), np.zeros(1))]
    with pytest.raises(ValueError, match=r"layer 1 has W of shape \(3, 2\) and b of shape \(3,\); sizes \(2, 3, 1\) need \(2, 3\)"):
        Problem(spec, [(np.ones((3, 2)), np.zeros(3)), good[1]], np.ones((4, 2)), np.zeros((4, 1)))
    with pytest.raises(ValueError, match=r"params has 1 layers but the network has 2"):
        Problem(spec, good[:1], np.ones((4, 2)), np.zeros((4, 1)))
    with pytest.raises(ValueError, match=r"x has shape \(4, 3\); give \(batch, 2\)"):
        Problem(spec, good, np.ones((4, 3)), np.zeros((4, 1)))
    with pytest.raises(ValueError, match=r"t has shape \(5, 1\); x's batch and sizes \(2, 3, 1\) need \(4, 1\)"):
        Problem(spec, good, np.ones((4, 2)), np.zeros((5, 1)))


def test_an_empty_batch_is_a_valid_problem() -> None:
    """A data-parallel part may hold no rows when there are more shards than examples."""
    spec = NetworkSpec((2, 1), (Activation("identity"),), "sse")
    Problem(spec, [(np.ones((2, 1)), np.zeros(1))], np.ones((0, 2)), np.zeros((0, 1)))
