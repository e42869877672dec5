"""The interface's vocabulary -- activation names, their parameters and defaults, the
output-only activations, losses, reductions and the output activation each loss needs --
is the reference's, so an adapter written against ``adapters.interface`` describes the
networks the reference computes.  Adapters never import the reference; this test is
where the two meet."""

from __future__ import annotations

import reference
from adapters import interface


def test_activation_names_match_the_reference_in_order() -> None:
    assert list(interface.ACTIVATIONS) == list(reference.ACTIVATIONS)


def test_activation_parameters_and_defaults_match_the_reference() -> None:
    differ = {
        name: (dict(interface.ACTIVATIONS[name]), dict(record.defaults))
        for name, record in reference.ACTIVATIONS.items()
        if dict(interface.ACTIVATIONS.get(name, {})) != dict(record.defaults)
    }
    assert not differ, f"activation parameters (interface, reference) differ: {differ}"


def test_output_only_activations_match_the_reference() -> None:
    assert interface.OUTPUT_ONLY_ACTIVATIONS == {n for n, r in reference.ACTIVATIONS.items() if r.output_only}


def test_losses_and_reductions_match_the_reference() -> None:
    assert tuple(interface.LOSSES) == tuple(reference.LOSSES)
    assert tuple(interface.REDUCTIONS) == tuple(reference.REDUCTIONS)


def test_the_output_activation_each_loss_needs_matches_the_reference() -> None:
    assert dict(interface.OUTPUT_ACTIVATION_FOR_LOSS) == dict(reference.OUTPUT_ACTIVATION_FOR_LOSS)
