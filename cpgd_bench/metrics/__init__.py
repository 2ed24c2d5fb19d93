"""Metrics and the evaluation protocol: one registry, PSNR/SSIM variants, LPIPS, NIQE, MUSIQ with offline weights.

>>> from cpgd_bench.metrics import get_metric                          # doctest: +SKIP
>>> get_metric("psnr")(pred, gt)                     # float (N,3,H,W) in [0,1] -> (N,) scores

Scoring saved frames against a store under a protocol is :func:`cpgd_bench.eval.score_predictions`.
"""

from cpgd_bench.metrics.base import Metric
from cpgd_bench.metrics.errors import MetricInputError, ProtocolError, UnknownMetricError, WeightsError
from cpgd_bench.metrics.protocol import Protocol, load_protocol, protocol_names
from cpgd_bench.metrics.registry import get_metric, metric_info, metric_names

__all__ = [
    "Metric",
    "MetricInputError",
    "Protocol",
    "ProtocolError",
    "UnknownMetricError",
    "WeightsError",
    "get_metric",
    "load_protocol",
    "metric_info",
    "metric_names",
    "protocol_names",
]
