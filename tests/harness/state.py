"""What the plugins keep for a run, as keys of ``config.stash``.

``plugin`` fills every key in ``pytest_configure``; ``report_plugin``, the fixtures and
the tests that need the run's selection read them from there.
"""

from __future__ import annotations

import pytest

from harness.known import Discrepancy
from harness.results import Results
from harness.selection import LoadedTarget, Variant

VARIANTS = pytest.StashKey[list[Variant]]()  # what the tests are parametrized over
TARGETS = pytest.StashKey[list[LoadedTarget]]()  # the selected targets, loaded or with why not
KNOWN = pytest.StashKey[list[Discrepancy]]()  # every known-discrepancy entry read
SEED = pytest.StashKey[int]()  # the run's hypothesis seed, shared with the xdist workers
RESULTS = pytest.StashKey[Results]()  # what every comparison recorded
