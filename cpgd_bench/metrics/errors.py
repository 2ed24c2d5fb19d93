"""Error types of the metrics package: one-line messages that name the thing and the fix."""

from __future__ import annotations

from cpgd_bench.errors import CpgdBenchError
from cpgd_bench.weights import WeightsError as WeightsError  # the one weights error, re-exported


class MetricInputError(CpgdBenchError, ValueError):
    """Frames given to a metric or the scorer have the wrong shape, dtype, range, or are missing."""


class ProtocolError(CpgdBenchError, ValueError):
    """An evaluation protocol is unknown or malformed."""


class UnknownMetricError(CpgdBenchError, ValueError):
    """A metric name is not in the registry."""
