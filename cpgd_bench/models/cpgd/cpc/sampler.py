"""Stage-2 sampling: 50-step spaced DDPM, latent tiles with Gaussian blending, wavelet colour correction.

The authors' ``SpacedSampler`` (guided-diffusion respacing) keeps the training timesteps
``space_timesteps(1000, 50)`` and re-derives betas between them; each step samples the DDPM posterior
with the "fixed small" variance. diffusers' ``DDPMScheduler`` given the same timesteps computes the
same thing: ``beta_t = 1 - abar_t / abar_prev`` between consecutive kept steps, posterior mean
coefficients and variance from them, no noise at t = 0. The ldm "linear" schedule (linspace of
sqrt(beta), 0.00085 .. 0.012) is diffusers' ``scaled_linear``. ``tests/test_cpc_sampler.py`` checks the
equivalence against a direct implementation of the respaced posterior.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler

from cpgd_bench.models.cpgd.cpc.configs import CPCArch
from cpgd_bench.tiling import window_starts

EpsFn = Callable[[torch.Tensor, torch.Tensor, slice, slice], torch.Tensor]


def space_timesteps(num_timesteps: int, steps: int) -> list[int]:
    """The ``steps`` training timesteps guided-diffusion's respacing keeps (single section), ascending."""
    if not 1 <= steps <= num_timesteps:
        raise ValueError(f"cannot space {num_timesteps} diffusion steps into {steps}")
    stride = 1.0 if steps == 1 else (num_timesteps - 1) / (steps - 1)
    taken, cursor = [], 0.0
    for _ in range(steps):
        taken.append(round(cursor))
        cursor += stride
    return sorted(set(taken))


def make_scheduler(arch: CPCArch, steps: int) -> DDPMScheduler:
    """A DDPMScheduler over ``space_timesteps(T, steps)`` matching the authors' SpacedSampler (eps, fixed small)."""
    scheduler = DDPMScheduler(
        num_train_timesteps=arch.train_timesteps,
        beta_start=arch.beta_start,
        beta_end=arch.beta_end,
        beta_schedule="scaled_linear",
        prediction_type="epsilon",
        variance_type="fixed_small",
        clip_sample=False,
    )
    scheduler.set_timesteps(timesteps=space_timesteps(arch.train_timesteps, steps)[::-1])
    return scheduler


def gaussian_weights(height: int, width: int) -> torch.Tensor:
    """Tile blending weights (height, width): a separable Gaussian with sigma = 0.1 x tile size, peak at the centre."""
    def axis(n: int) -> torch.Tensor:
        x = torch.arange(n, dtype=torch.float64)
        return torch.exp(-((x - (n - 1) / 2) ** 2) / (2 * (0.1 * n) ** 2))

    return (axis(height)[:, None] * axis(width)[None, :]).float()


def tile_spans(size: int, tile: int, stride: int) -> list[tuple[int, int]]:
    """Tile ``[start, end)`` spans of length ``min(tile, size)`` every ``stride``; the last one ends at ``size``."""
    return [(s, s + min(tile, size)) for s in window_starts(size, tile, stride)]


def tiled(eps_fn: EpsFn, x: torch.Tensor, t: torch.Tensor, tile: int | None, stride: int) -> torch.Tensor:
    """Apply ``eps_fn(x_tile, t, rows, cols)`` on overlapping latent tiles and blend with Gaussian weights."""
    height, width = x.shape[-2:]
    if tile is None:
        return eps_fn(x, t, slice(None), slice(None))
    out = torch.zeros_like(x)
    total = x.new_zeros(height, width)
    for y0, y1 in tile_spans(height, tile, stride):
        for x0, x1 in tile_spans(width, tile, stride):
            rows, cols = slice(y0, y1), slice(x0, x1)
            w = gaussian_weights(y1 - y0, x1 - x0).to(x)
            out[..., rows, cols] += eps_fn(x[..., rows, cols], t, rows, cols) * w
            total[rows, cols] += w
    return out / total


@torch.no_grad()
def sample(
    eps_fn: EpsFn,
    shape: tuple[int, ...],
    scheduler: DDPMScheduler,
    tile: int | None = 64,
    stride: int = 32,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    x_t: torch.Tensor | None = None,
) -> torch.Tensor:
    """Run the reverse process from Gaussian noise (or ``x_t``) of ``shape`` over ``scheduler.timesteps``.

    ``eps_fn(x_tile, t, rows, cols)`` predicts eps for a latent tile, slicing its own conditions with
    ``rows``/``cols`` (latent coordinates; the coding prior lives on the latent grid, so it stays aligned).
    """
    x = torch.randn(shape, generator=generator, device=device, dtype=torch.float32) if x_t is None else x_t
    for step in scheduler.timesteps:
        t = torch.full((shape[0],), int(step), device=device, dtype=torch.long)
        eps = tiled(lambda xt, tt, r, c: eps_fn(xt.to(dtype), tt, r, c).float(), x, t, tile, stride)
        x = scheduler.step(eps, int(step), x, generator=generator).prev_sample
    return x


def _wavelet_blur(image: torch.Tensor, radius: int) -> torch.Tensor:
    kernel = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]], dtype=image.dtype, device=image.device)
    kernel = (kernel / 16).expand(image.shape[1], 1, 3, 3)
    padded = F.pad(image, (radius,) * 4, mode="replicate")
    return F.conv2d(padded, kernel, groups=image.shape[1], dilation=radius)


def wavelet_split(image: torch.Tensor, levels: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """(high, low) frequency parts of (N, C, H, W) by an a-trous wavelet of ``levels`` dilated 3x3 blurs."""
    high = torch.zeros_like(image)
    for i in range(levels):
        low = _wavelet_blur(image, 2**i)
        high += image - low
        image = low
    return high, image


def wavelet_color_fix(generated: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Keep ``generated``'s high frequencies and take the low frequencies (colour) from ``reference``."""
    return wavelet_split(generated)[0] + wavelet_split(reference)[1]


def pad_to(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Replicate-pad (..., H, W) at the bottom/right to multiples of ``multiple``; returns (padded, (H, W))."""
    height, width = x.shape[-2:]
    ph, pw = -height % multiple, -width % multiple
    if ph or pw:
        flat = x.reshape(-1, *x.shape[-3:]) if x.ndim > 4 else x
        flat = F.pad(flat, (0, pw, 0, ph), mode="replicate")
        x = flat.reshape(*x.shape[:-2], height + ph, width + pw)
    return x, (height, width)

