"""``case_sets``: several networks of one architecture per example, shrinking to one.

``check_quantities`` checks every network of a drawn set, so one architecture draw
(and one jax.jit compile) serves several networks.  A set must not hide anything a
single case would show: its networks differ only in their seed, a failing network
shrinks to a set of that network alone, and the minimal set is the minimal case.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, find, given, settings

from harness.strategies import case_sets, cases

SEARCH = settings(database=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def _architecture(case) -> str:
    return repr(case).replace(f"seed={case.seed},", "")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(drawn=case_sets(dtype="float32", networks=4, width=(1, 8), batch=(1, 4)))
def test_networks_of_a_set_share_the_architecture_and_differ_in_seed(drawn):
    assert 1 <= len(drawn) <= 4
    assert len({_architecture(c) for c in drawn}) == 1
    assert len({c.seed for c in drawn}) == len(drawn)


def test_the_minimal_set_is_the_minimal_case():
    (case,) = find(case_sets(), lambda s: True, settings=SEARCH)
    assert repr(case) == repr(find(cases(), lambda c: True, settings=SEARCH))
    assert case.network.sizes == (1, 1) and case.x.shape == (1, 1)


def test_a_failing_network_shrinks_to_a_set_of_itself():
    # "Fails" when some network's seed is odd: the first draws have several networks.
    found = find(case_sets(), lambda s: len(s) >= 3 and any(c.seed % 2 for c in s[1:]), settings=SEARCH)
    assert len(found) == 3  # the smallest set the predicate allows
    single = find(case_sets(), lambda s: any(c.seed % 2 for c in s), settings=SEARCH)
    assert len(single) == 1 and single[0].seed == 1 and single[0].network.sizes == (1, 1)


@pytest.mark.parametrize("networks", [0, -1, 2.5])
def test_a_set_size_below_one_is_rejected_by_name(networks):
    with pytest.raises(ValueError, match="networks="):
        find(case_sets(networks=networks), lambda s: True, settings=SEARCH)
