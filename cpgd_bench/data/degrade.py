"""Synthetic degradation of sharp video frames: blur -> downsample -> noise -> JPEG -> resize back.

The CodeFormer / Real-ESRGAN first-order pipeline the CPGD-Net paper uses to turn HQ-Video frames into
stage-2 training pairs (the authors' ``dataset/codeformer.py`` has it commented out). Defaults follow
CodeFormer's training options: 41-tap isotropic/anisotropic Gaussian blur with sigma in [0.1, 10],
downsampling by [0.8, 8], Gaussian noise sigma [0, 20] / 255, JPEG quality [30, 90]. One parameter
draw per clip (the same blur, scale and quality on every frame, as a camera would give), fresh noise
per frame; everything comes from the ``torch.Generator`` passed in, so a seed reproduces a clip.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from cpgd_bench.data.errors import DataError


@dataclass(frozen=True)
class DegradeConfig:
    """Parameter ranges (inclusive) of :func:`degrade`."""

    kernel_size: int = 41
    blur_sigma: tuple[float, float] = (0.1, 10.0)
    aniso_prob: float = 0.5
    downsample: tuple[float, float] = (0.8, 8.0)
    noise: tuple[float, float] = (0.0, 20.0)  # sigma on the 0..255 scale
    jpeg: tuple[int, int] = (30, 90)

    def __post_init__(self) -> None:
        if self.kernel_size % 2 == 0 or self.kernel_size < 3:
            raise DataError(f"degradation kernel_size must be odd and >= 3, got {self.kernel_size}")
        if not 1 <= self.jpeg[0] <= self.jpeg[1] <= 100:
            raise DataError(f"JPEG quality range must lie in [1, 100], got {self.jpeg}")


def _uniform(g: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=g))


def gaussian_kernel(size: int, sigma_x: float, sigma_y: float, theta: float) -> torch.Tensor:
    """A normalised (size, size) Gaussian with axis sigmas ``sigma_x``/``sigma_y`` rotated by ``theta`` radians."""
    r = torch.arange(size, dtype=torch.float64) - size // 2
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    c, s = math.cos(theta), math.sin(theta)
    u, v = c * xx + s * yy, -s * xx + c * yy
    k = torch.exp(-0.5 * ((u / sigma_x) ** 2 + (v / sigma_y) ** 2))
    return (k / k.sum()).float()


def _blur(frames: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    pad = kernel.shape[-1] // 2
    weight = kernel.to(frames).expand(frames.shape[1], 1, *kernel.shape)
    padded = F.pad(frames, (pad,) * 4, mode="reflect" if min(frames.shape[-2:]) > pad else "replicate")
    return F.conv2d(padded, weight, groups=frames.shape[1])


def _jpeg(frames: torch.Tensor, quality: int) -> torch.Tensor:
    out = []
    for f in (frames.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy():
        buffer = io.BytesIO()
        Image.fromarray(f).save(buffer, format="JPEG", quality=quality)
        out.append(np.asarray(Image.open(buffer).convert("RGB")))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).to(frames) / 255


def degrade(frames: torch.Tensor, generator: torch.Generator, config: DegradeConfig | None = None) -> torch.Tensor:
    """Degrade a clip (T, 3, H, W) in [0, 1]; returns the same shape in [0, 1] (CPU tensors)."""
    cfg = config or DegradeConfig()
    if frames.ndim != 4 or frames.shape[1] != 3:
        raise ValueError(f"degrade expects (T, 3, H, W) frames, got {tuple(frames.shape)}")
    height, width = frames.shape[-2:]
    sx = _uniform(generator, *cfg.blur_sigma)
    aniso = float(torch.rand((), generator=generator)) < cfg.aniso_prob
    sy = _uniform(generator, *cfg.blur_sigma) if aniso else sx
    theta = _uniform(generator, 0.0, math.pi) if aniso else 0.0
    scale = _uniform(generator, *cfg.downsample)
    sigma = _uniform(generator, *cfg.noise) / 255
    quality = int(torch.randint(cfg.jpeg[0], cfg.jpeg[1] + 1, (), generator=generator))
    x = _blur(frames.float(), gaussian_kernel(cfg.kernel_size, sx, sy, theta))
    small = (max(1, round(height / scale)), max(1, round(width / scale)))
    x = F.interpolate(x, size=small, mode="bilinear", align_corners=False, antialias=scale > 1)
    x = (x + sigma * torch.randn(x.shape, generator=generator)).clamp(0, 1)
    x = _jpeg(x, quality)
    return F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False).clamp(0, 1)
