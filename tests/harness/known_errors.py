"""The error a known-discrepancies file raises, apart from ``known`` so that the
reproducer table's check (``reproducer_cases``) can raise it too."""

from __future__ import annotations


class KnownFileError(ValueError):
    """A known-discrepancies file that cannot be used as written."""
