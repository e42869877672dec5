"""Every known discrepancy is proven by its own reproducer, on every installed target it names.

Inside the entry's version range the finding must show -- some quantity of the
reproducer's case disagrees with the reference -- and be explained by that entry and by
no other.  Outside its range the test says so and skips: the entry does not apply.  A
finding that no longer shows fails the test: the framework fixed it, and the entry's
``versions`` should stop where it stopped.  Staleness is decided here, deterministically,
rather than by whether a random search happened to draw the finding.
"""

from __future__ import annotations

import pytest

from harness import reproducers, state
from harness.selection import Variant


def _variant(config, target: str, raw) -> Variant:
    loaded = {t.name: t for t in config.stash[state.TARGETS]}
    if target not in loaded:
        pytest.skip(f"target {target!r} is not selected in this run")
    if loaded[target].adapter is None:
        pytest.skip(f"target {target!r}: {loaded[target].missing}")
    adapter = loaded[target].adapter
    kind = raw.get("device", "cpu")
    devices = [d for d in adapter.devices() if d.split(":")[0] == kind]
    if not devices:
        pytest.skip(f"{target} reports no {kind!r} device")
    return Variant(target, devices[0], raw["dtype"], adapter)


def _say(recorder, entry, target: str, verdict: str) -> None:
    """The reproducer's verdict, for the run summary and the report."""
    recorder.results.reproducers.setdefault(entry.id, {})[target] = verdict


def test_known_discrepancy_reproduces(known_reproducer, pytestconfig, recorder):
    entry, target = known_reproducer
    applies, why = entry.version_verdict
    if not applies:
        _say(recorder, entry, target, f"out of range ({why})")
        pytest.skip(f"{entry.id}: out of range: {why}; the entry does not apply")
    raw = entry.reproducer
    variant = _variant(pytestconfig, target, raw)
    result, crash = reproducers.run(variant, raw)
    found = reproducers.verdict(entry, variant, raw, pytestconfig.stash[state.KNOWN], crash, result)
    if not found.shows:
        _say(recorder, entry, target, "does not reproduce")
        pytest.fail(f"{entry.id} does not reproduce on {target} ({entry.version_verdict[1]}): "
                    f"{found.message}; fixed? narrow `versions` in {entry.source}")
    if not found.explained:
        _say(recorder, entry, target, "shows, not explained by its entry")
        pytest.fail(f"{entry.id} shows on {target} but its entry does not explain it ({why}):\n{found.message}")
    if found.others:
        _say(recorder, entry, target, f"also explained by {', '.join(found.others)}")
        pytest.fail(f"{entry.id}'s finding is also explained by {', '.join(found.others)}: entries overlap; "
                    "narrow them so that each finding has one explanation")
    _say(recorder, entry, target, "reproduces")
