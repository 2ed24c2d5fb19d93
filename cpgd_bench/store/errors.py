"""The store's error type: one-line messages that name the path and the fix."""

from __future__ import annotations

from cpgd_bench.errors import CpgdBenchError


class StoreError(CpgdBenchError):
    """A coding-prior store is missing, malformed, of another format version, or misused."""
