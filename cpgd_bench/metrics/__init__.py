"""Metrics and the evaluation protocol: PSNR/SSIM variants, LPIPS, NIQE, MUSIQ with offline weights.

>>> from cpgd_bench.metrics import get_metric, score_predictions      # doctest: +SKIP
>>> get_metric("psnr")(pred, gt)                     # float (N,3,H,W) in [0,1] -> (N,) scores
>>> score_predictions(Path("runs/x/predictions.zarr"), Path("data/stores/sample.zarr"), "test").write("out")
"""

from cpgd_bench.metrics.base import Metric
from cpgd_bench.metrics.errors import MetricInputError, ProtocolError, UnknownMetricError, WeightsError
from cpgd_bench.metrics.protocol import Protocol, load_protocol, protocol_names
from cpgd_bench.metrics.registry import get_metric, metric_info, metric_names
from cpgd_bench.metrics.scoring import ScoreResult, score_predictions

__all__ = [
    "Metric",
    "MetricInputError",
    "Protocol",
    "ProtocolError",
    "ScoreResult",
    "UnknownMetricError",
    "WeightsError",
    "get_metric",
    "load_protocol",
    "metric_info",
    "metric_names",
    "protocol_names",
    "score_predictions",
]
