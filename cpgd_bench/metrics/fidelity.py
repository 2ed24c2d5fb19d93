"""PSNR and the SSIM variants the field uses, batched in torch (CPU or GPU), float64.

- ``psnr``: 10·log10(1/MSE) over all channels and pixels of a frame (BasicSR ``calculate_psnr``);
  identical frames give ``inf``, as BasicSR does (pyiqa adds eps=1e-8 to the MSE instead, which biases it).
- ``ssim``: MATLAB / BasicSR ``calculate_ssim``: per channel, 11×11 Gaussian σ=1.5, 'valid' filtering,
  channels averaged. (pyiqa's SSIM clamps the contrast term at 0 with a ReLU, so it differs wherever that
  term is negative; this one does not.)
- ``ssim_skimage``: scikit-image ``structural_similarity`` with its defaults (7×7 uniform window, sample
  covariance), computed by scikit-image itself, per frame on CPU.
- ``ssim_bsst``: the CPGD/BSSTNet code's ``ssim_calculate``: one 3-D Gaussian filter (σ=1.5, radius 6,
  scipy's ``reflect`` boundary) over the whole C×H×W array, constants for data range 1, mean of the map.
  Its value does not depend on RGB vs BGR order (the filter and boundary are symmetric along C). On CPU
  it runs scipy's ``gaussian_filter`` on float32 exactly as that code does; on GPU a float64 torch port.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from cpgd_bench.metrics.base import Metric
from cpgd_bench.metrics.errors import MetricInputError

C1 = 0.01**2
C2 = 0.03**2


def rgb_to_y(x: torch.Tensor) -> torch.Tensor:
    """Luma Y of ITU-R BT.601 in studio range, as MATLAB ``rgb2ycbcr`` and BasicSR: (N,3,H,W) -> (N,1,H,W) in [0,1]."""
    w = torch.tensor([65.481, 128.553, 24.966], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (16.0 + (x * w).sum(dim=1, keepdim=True)) / 255.0


def gaussian_kernel(radius: int, sigma: float) -> list[float]:
    """Normalised 1-D Gaussian of ``2*radius+1`` taps (= cv2.getGaussianKernel / scipy's kernel), in float64."""
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return (g / g.sum()).tolist()


def _reflect_index(n: int, radius: int, device: torch.device) -> torch.Tensor:
    """Indices of scipy.ndimage 'reflect' (d c b a | a b c d | d c b a) padding, valid even when radius > n."""
    i = torch.arange(-radius, n + radius, device=device) % (2 * n)
    return torch.where(i >= n, 2 * n - 1 - i, i)


def _filter_axes(x: torch.Tensor, kernel: list[float], axes: tuple[int, ...], reflect: bool) -> torch.Tensor:
    """Correlate ``x`` with the 1-D ``kernel`` along each axis in turn: 'reflect'-padded, or 'valid' (shrinks).

    Shifted-slice multiply-adds rather than conv1d (several times faster on CPU in float64); a short axis
    (the colour axis) is filtered as one small matrix product.
    """
    radius = (len(kernel) - 1) // 2
    for axis in axes:
        size = x.shape[axis]
        if reflect and size <= radius:
            index = _reflect_index(size, radius, x.device)
            mix = torch.zeros(size, size, dtype=x.dtype, device=x.device)
            for k, w in enumerate(kernel):
                mix[torch.arange(size), index[torch.arange(size) + k]] += w
            x = torch.tensordot(x, mix, dims=([axis], [1])).movedim(-1, axis)
            continue
        if reflect:
            x = x.index_select(axis, _reflect_index(size, radius, x.device))
        n = x.shape[axis] - 2 * radius
        out = x.narrow(axis, 0, n) * kernel[0]
        for k in range(1, len(kernel)):
            out.add_(x.narrow(axis, k, n), alpha=kernel[k])
        x = out
    return x


def _ssim_map(x: torch.Tensor, y: torch.Tensor, blur) -> torch.Tensor:
    mu1, mu2 = blur(x), blur(y)
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    s1 = blur(x * x) - mu1_sq
    s2 = blur(y * y) - mu2_sq
    s12 = blur(x * y) - mu12
    return ((2 * mu12 + C1) * (2 * s12 + C2)) / ((mu1_sq + mu2_sq + C1) * (s1 + s2 + C2))


def psnr(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of (N,C,H,W) frames in [0,1]; ``inf`` for identical frames.

    Computed in the input dtype (float32: within 1e-6 dB of float64 at 720p, twice as fast), returned as float64.
    """
    diff = pred - gt
    mse = torch.mean(diff * diff, dim=(1, 2, 3)).double()
    return 10.0 * torch.log10(1.0 / mse)


def ssim_matlab(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """MATLAB/BasicSR SSIM: per channel, 11×11 Gaussian σ=1.5, 'valid' borders, mean over channels and pixels."""
    if min(pred.shape[-2:]) < 11:
        raise MetricInputError(f"ssim needs frames of at least 11x11 pixels, got {tuple(pred.shape[-2:])}")
    kernel = gaussian_kernel(5, 1.5)
    return _ssim_map(pred.double(), gt.double(), lambda t: _filter_axes(t, kernel, (2, 3), False)).mean(dim=(1, 2, 3))


def ssim_bsst_torch(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """``ssim_calculate`` in torch, float64, batched (the GPU path): 3-D Gaussian σ=1.5, radius 6, 'reflect'."""
    kernel = gaussian_kernel(6, 1.5)
    blur = lambda t: _filter_axes(t, kernel, (1, 2, 3), True)  # noqa: E731
    return _ssim_map(pred.double(), gt.double(), blur).mean(dim=(1, 2, 3))


def ssim_bsst_scipy(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """``ssim_calculate`` with scipy's ``gaussian_filter`` on float32 arrays, as the paper's code (the CPU path)."""
    from scipy.ndimage import gaussian_filter

    out = []
    for p, g in zip(pred.detach().cpu().float().numpy(), gt.detach().cpu().float().numpy(), strict=True):
        mu1, mu2 = gaussian_filter(p, 1.5), gaussian_filter(g, 1.5)
        s1 = gaussian_filter(p * p, 1.5) - mu1 * mu1
        s2 = gaussian_filter(g * g, 1.5) - mu2 * mu2
        s12 = gaussian_filter(p * g, 1.5) - mu1 * mu2
        ssim_map = ((2 * mu1 * mu2 + C1) * (2 * s12 + C2)) / ((mu1 * mu1 + mu2 * mu2 + C1) * (s1 + s2 + C2))
        out.append(float(ssim_map.mean(dtype=np.float64)))
    return torch.tensor(out, dtype=torch.float64)


def ssim_bsst(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """The CPGD/BSSTNet ``ssim_calculate``: scipy on CPU (the paper's own arithmetic), torch float64 on GPU."""
    return ssim_bsst_scipy(pred, gt) if pred.device.type == "cpu" else ssim_bsst_torch(pred, gt)


def ssim_skimage(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """scikit-image ``structural_similarity`` with its defaults, data range 1, channels averaged (CPU)."""
    from skimage.metrics import structural_similarity

    if min(pred.shape[-2:]) < 7:
        raise MetricInputError(f"ssim_skimage needs frames of at least 7x7 pixels, got {tuple(pred.shape[-2:])}")
    p = pred.detach().cpu().double().numpy()
    g = gt.detach().cpu().double().numpy()
    return torch.from_numpy(
        np.array([structural_similarity(a, b, channel_axis=0, data_range=1.0) for a, b in zip(p, g, strict=True)])
    )


class PSNR(Metric):
    name = "psnr"
    higher_better = True
    range = (0.0, math.inf)

    def _compute(self, pred: torch.Tensor, gt: torch.Tensor | None) -> torch.Tensor:
        return psnr(pred, gt)


class SSIM(Metric):
    """SSIM in one of the variants above, chosen by ``variant`` (the registry names them)."""

    higher_better = True
    range = (-1.0, 1.0)
    _FUNCTIONS = {"ssim": ssim_matlab, "ssim_skimage": ssim_skimage, "ssim_bsst": ssim_bsst}

    def __init__(self, variant: str = "ssim", device: str | torch.device | None = None) -> None:
        super().__init__(device)
        self.name = variant
        self._fn = self._FUNCTIONS[variant]

    def _compute(self, pred: torch.Tensor, gt: torch.Tensor | None) -> torch.Tensor:
        return self._fn(pred, gt)
