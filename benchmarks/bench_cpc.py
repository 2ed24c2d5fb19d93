"""CPC (stage 2) speed: seconds per 1280x720 frame and peak GPU memory, SD 2.1-base architecture, fp16, 50 steps.

Random weights (the architecture, not the numbers, sets the cost): one chunk of 6 frames (the authors'
test chunk) through VAE encode, 50 spaced-DDPM steps over 64-latent tiles with stride 32 (each step runs
the CPControlNet and the UNet on every tile), VAE decode and wavelet colour correction. Stage 1 is not
included (identity input). Without CUDA it reports 'skipped: no GPU'.
"""

from __future__ import annotations

import time

import torch

FRAMES, HEIGHT, WIDTH, STEPS = 6, 720, 1280, 50


def run() -> dict:
    if not torch.cuda.is_available():
        return {"status": "skipped: no GPU"}
    from cpgd_bench.models.cpgd.cpc.configs import SD21_BASE
    from cpgd_bench.models.cpgd.cpc.model import CPCModel
    from cpgd_bench.models.cpgd.cpc.sampler import tile_spans
    from cpgd_bench.models.cpgd.pipeline import SamplingOptions, cpc_restore

    device = torch.device("cuda")
    model = CPCModel.random(SD21_BASE).to(device, torch.float16).eval()
    g = torch.Generator().manual_seed(0)
    clip = {
        "flow_prev": torch.randn(FRAMES, 2, HEIGHT, WIDTH, generator=g) * 4,
        "flow_valid": torch.ones(FRAMES, 2, HEIGHT, WIDTH),
        "residual": 0.5 + 0.05 * torch.randn(FRAMES, 1, HEIGHT, WIDTH, generator=g),
    }
    stage1 = torch.rand(FRAMES, 3, HEIGHT, WIDTH, generator=g)
    warm = SamplingOptions(steps=1, chunk=FRAMES)
    cpc_restore(model, stage1[:, :, :512, :512], {k: v[..., :512, :512] for k, v in clip.items()}, warm)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    out = cpc_restore(model, stage1, clip, SamplingOptions(steps=STEPS, chunk=FRAMES))
    torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    latent_h, latent_w = -(-HEIGHT // 64) * 8, WIDTH // 8
    tiles = len(tile_spans(latent_h, 64, 32)) * len(tile_spans(latent_w, 64, 32))
    return {
        "device": torch.cuda.get_device_name(),
        "frames": FRAMES,
        "size": f"{WIDTH}x{HEIGHT}",
        "steps": STEPS,
        "latent_tiles_per_step": tiles,
        "seconds_per_frame": round(seconds / FRAMES, 2),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
        "output_finite": bool(torch.isfinite(out).all()),
    }


if __name__ == "__main__":
    print(run())
