"""Error types of the metrics package: one-line messages that name the thing and the fix."""

from __future__ import annotations


class MetricInputError(ValueError):
    """Frames given to a metric or the scorer have the wrong shape, dtype, range, or are missing."""


class WeightsError(RuntimeError):
    """A metric's weight file is missing, or present with the wrong sha256."""


class ProtocolError(ValueError):
    """An evaluation protocol is unknown or malformed."""


class UnknownMetricError(ValueError):
    """A metric name is not in the registry."""
