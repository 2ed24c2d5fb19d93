"""One registry of metrics by name: direction, display, and a lazy factory (heavy libraries load on first use).

Adding a metric is one :class:`MetricInfo` here plus its implementation; scoring, protocols and the
leaderboard (title, arrow, decimals, ranking direction) all read this entry.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from pathlib import Path

import torch

from cpgd_bench.metrics.base import Metric
from cpgd_bench.metrics.errors import UnknownMetricError


@dataclass(frozen=True)
class MetricInfo:
    """What the registry knows about a metric without building it."""

    name: str
    factory: str  # "module:callable", called with (weights_dir=..., device=...) or (variant, device=...)
    higher_better: bool
    full_reference: bool
    needs_weights: bool
    description: str
    title: str  # column title in tables and plots
    decimals: int  # digits shown in leaderboards
    unit: str = ""  # shown on plot axes

    def label(self, unit: bool = False) -> str:
        """``TITLE ↑`` / ``TITLE ↓`` (``unit``: ``PSNR (dB) ↑``)."""
        shown = f"{self.title} ({self.unit})" if unit and self.unit else self.title
        return f"{shown} {'↑' if self.higher_better else '↓'}"


_REGISTRY: dict[str, MetricInfo] = {}


def register_metric(info: MetricInfo) -> None:
    """Add a metric to the registry (names are unique)."""
    if info.name in _REGISTRY:
        raise ValueError(f"metric {info.name!r} is already registered")
    _REGISTRY[info.name] = info


def metric_names() -> list[str]:
    """Registered metric names, sorted."""
    return sorted(_REGISTRY)


def metric_info(name: str) -> MetricInfo:
    """Registry entry of ``name``; unknown names get a one-line error suggesting the closest one."""
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise UnknownMetricError(f"unknown metric {name!r}; {hint}known: {', '.join(metric_names())}")
    return _REGISTRY[name]


def get_metric(name: str, weights_dir: Path | None = None, device: str | torch.device | None = None) -> Metric:
    """Build metric ``name`` on ``device`` (default CPU); weights: :func:`cpgd_bench.weights.resolve`."""
    info = metric_info(name)
    module, attr = info.factory.split(":")
    cls = getattr(importlib.import_module(module), attr)
    if info.needs_weights:
        return cls(weights_dir=weights_dir, device=device)
    if attr == "SSIM":
        return cls(name, device=device)
    return cls(device=device)


for _info in (
    MetricInfo("psnr", "cpgd_bench.metrics.fidelity:PSNR", True, True, False, "PSNR in dB, 10*log10(1/MSE)",
               "PSNR", 2, "dB"),
    MetricInfo(
        "ssim", "cpgd_bench.metrics.fidelity:SSIM", True, True, False,
        "SSIM, MATLAB/BasicSR style: per channel, 11x11 Gaussian sigma 1.5, valid borders", "SSIM", 4,
    ),
    MetricInfo(
        "ssim_skimage", "cpgd_bench.metrics.fidelity:SSIM", True, True, False,
        "SSIM of scikit-image with its defaults (7x7 uniform window, sample covariance)", "SSIM (skimage)", 4,
    ),
    MetricInfo(
        "ssim_bsst", "cpgd_bench.metrics.fidelity:SSIM", True, True, False,
        "SSIM of the CPGD/BSSTNet code (ssim_calculate): 3-D Gaussian sigma 1.5 over C x H x W", "SSIM (BSST)", 4,
    ),
    MetricInfo("lpips", "cpgd_bench.metrics.perceptual:LPIPS", False, True, True, "LPIPS v0.1, AlexNet", "LPIPS", 4),
    MetricInfo("niqe", "cpgd_bench.metrics.perceptual:NIQE", False, False, True, "NIQE (MATLAB pristine model)",
               "NIQE", 3),
    MetricInfo("musiq", "cpgd_bench.metrics.perceptual:MUSIQ", True, False, True, "MUSIQ, KonIQ-10k checkpoint",
               "MUSIQ", 3),
):  # fmt: skip
    register_metric(_info)
