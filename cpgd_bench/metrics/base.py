"""The metric interface: a named callable on float (N,C,H,W) frames in [0, 1] returning one score per frame."""

from __future__ import annotations

import abc
import math

import torch

from cpgd_bench.metrics.errors import MetricInputError

_EPS = 1e-6


def check_frames(x: object, what: str, channels: tuple[int, ...] = (1, 3)) -> torch.Tensor:
    """Validate a float (N,C,H,W) tensor in [0, 1]; raise a one-line MetricInputError otherwise."""
    if not isinstance(x, torch.Tensor):
        raise MetricInputError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise MetricInputError(
            f"{what} has dtype {x.dtype}; metrics take float frames in [0, 1] (divide uint8 frames by 255)"
        )
    if x.ndim != 4 or x.shape[1] not in channels:
        raise MetricInputError(f"{what} has shape {tuple(x.shape)}; expected (N, C, H, W) with C in {channels}")
    if x.numel() == 0:
        raise MetricInputError(f"{what} is empty (shape {tuple(x.shape)})")
    lo, hi = (float(v) for v in torch.aminmax(x))  # one pass; NaN propagates
    if math.isnan(lo) or math.isnan(hi) or lo < -_EPS or hi > 1 + _EPS:
        raise MetricInputError(f"{what} has values in [{lo:.4g}, {hi:.4g}]; expected [0, 1] (clamp or rescale)")
    return x


class Metric(abc.ABC):
    """One image-quality metric. ``metric(pred, gt)`` -> (N,) float64 CPU tensor, one score per frame."""

    name: str
    higher_better: bool
    range: tuple[float, float]
    full_reference: bool = True
    channels: tuple[int, ...] = (1, 3)

    def __init__(self, device: str | torch.device | None = None) -> None:
        self.device = torch.device(device) if device else torch.device("cpu")

    def __call__(self, pred: torch.Tensor, gt: torch.Tensor | None = None) -> torch.Tensor:
        pred = check_frames(pred, f"{self.name}: prediction", self.channels)
        if self.full_reference:
            if gt is None:
                raise MetricInputError(f"{self.name} is a full-reference metric; pass the ground-truth frames")
            gt = check_frames(gt, f"{self.name}: ground truth", self.channels)
            if gt.shape != pred.shape:
                raise MetricInputError(
                    f"{self.name}: prediction {tuple(pred.shape)} and ground truth {tuple(gt.shape)} differ in shape"
                )
            gt = gt.to(self.device)
        with torch.no_grad():
            out = self._compute(pred.to(self.device), gt)
        return out.detach().reshape(-1).to("cpu", torch.float64)

    @abc.abstractmethod
    def _compute(self, pred: torch.Tensor, gt: torch.Tensor | None) -> torch.Tensor:
        """Scores of validated frames already on ``self.device``."""

    def weights_sha256(self) -> dict[str, str]:
        """sha256 of each weight file in use (``{}`` for metrics without weights)."""
        return {}

    def __repr__(self) -> str:
        direction = "higher" if self.higher_better else "lower"
        return f"<{type(self).__name__} {self.name!r}: {direction} is better, range {self.range}>"
