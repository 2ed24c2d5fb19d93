"""Metrics at 720p: frames/s through cpgd-bench's wrappers vs calling pyiqa (or the reference code) directly.

Same frames, same process, same thread count; ratio = our time / direct time (target <= 1.1). References:
pyiqa for psnr (``psnr``), ssim (``ssimc``: MATLAB-style per channel), lpips, niqe, musiq (and, for lpips,
the ``lpips`` package our wrapper calls, so its own overhead shows apart from the two implementations); scipy's
``gaussian_filter`` formulation of the paper code for ssim_bsst; scikit-image for ssim_skimage.
LPIPS/NIQE need real weights (``$CPGD_BENCH_WEIGHTS`` or ../shared/iqa/weights); MUSIQ runs with random
weights (its checkpoint is not available here), the same random file for both sides.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import numpy as np
import torch
import yaml

from cpgd_bench.metrics import WeightsError, get_metric
from cpgd_bench.weights import table as weights_module

HEIGHT, WIDTH = 720, 1280
FRAMES = int(os.environ.get("BENCH_METRICS_FRAMES", "2"))
REPEATS = int(os.environ.get("BENCH_METRICS_REPEATS", "3"))
SLOW = {"ssim", "musiq"}  # pyiqa's ssimc (float64, full 11x11 conv) and MUSIQ: 10 s+ per 720p frame, 1 frame once


def _frames(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A 720p photograph under small shifts, and a noisy copy, on uint8 levels."""
    from skimage import data, transform

    img = torch.from_numpy(transform.resize(data.astronaut(), (HEIGHT + 16, WIDTH + 16), anti_aliasing=True)).float()
    gt = torch.stack([img[i : i + HEIGHT, 2 * i : 2 * i + WIDTH] for i in range(n)]).permute(0, 3, 1, 2)
    gen = torch.Generator().manual_seed(0)
    pred = (gt + 0.03 * torch.randn(gt.shape, generator=gen)).clamp(0, 1)
    return (pred * 255).round() / 255, (gt * 255).round() / 255


def _best_pair(first: Callable[[], object], second: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Best-of-``repeats`` seconds of each, interleaved in ABBA order so that load drifts hit both alike."""
    times: dict[int, list[float]] = {0: [], 1: []}
    for r in range(repeats):
        for i in (0, 1) if r % 2 == 0 else (1, 0):
            t0 = time.perf_counter()
            (first, second)[i]()
            times[i].append(time.perf_counter() - t0)
    return min(times[0]), min(times[1])


def _weights_dir() -> Path | None:
    if os.environ.get(weights_module.ENV_VAR):
        return Path(os.environ[weights_module.ENV_VAR])
    shared = Path(__file__).resolve().parents[2] / "shared" / "iqa" / "weights"
    return shared if shared.is_dir() else None


def _pyiqa(name: str, **kwargs):
    import pyiqa

    with contextlib.redirect_stdout(io.StringIO()):
        return pyiqa.create_metric(name, device="cpu", **kwargs)


def _pyiqa_lpips(weights: dict[str, Path]):
    """pyiqa's LPIPS offline: its AlexNet constructor always downloads, so build it without weights, then load."""
    import torchvision

    from cpgd_bench.metrics.perceptual import load_alexnet_features

    original = torchvision.models.alexnet
    with mock.patch.object(torchvision.models, "alexnet", lambda **kw: original(weights=None)):
        metric = _pyiqa("lpips", pretrained_model_path=str(weights["linear"]))
    load_alexnet_features(metric.net.net, weights["backbone"])
    return metric


def _paper_ssim(pred: torch.Tensor, gt: torch.Tensor) -> list[float]:
    """The CPGD/BSSTNet ``ssim_calculate`` as that code computes it (scipy, float32), per frame."""
    from scipy.ndimage import gaussian_filter

    out = []
    for p, g in zip(pred.numpy(), gt.numpy(), strict=True):
        mu1, mu2 = gaussian_filter(p, 1.5), gaussian_filter(g, 1.5)
        s1, s2 = gaussian_filter(p * p, 1.5) - mu1 * mu1, gaussian_filter(g * g, 1.5) - mu2 * mu2
        s12 = gaussian_filter(p * g, 1.5) - mu1 * mu2
        out.append(float(np.mean(((2 * mu1 * mu2 + 1e-4) * (2 * s12 + 9e-4))
                                 / ((mu1 * mu1 + mu2 * mu2 + 1e-4) * (s1 + s2 + 9e-4)))))
    return out


def _skimage_ssim(pred: torch.Tensor, gt: torch.Tensor) -> list[float]:
    from skimage.metrics import structural_similarity

    return [structural_similarity(p, g, channel_axis=0, data_range=1.0)
            for p, g in zip(pred.double().numpy(), gt.double().numpy(), strict=True)]


def _random_musiq(tmp: Path) -> Path:
    """A random MUSIQ checkpoint and a weights table that accepts it (ours resolves and verifies it)."""
    from pyiqa.archs.musiq_arch import MUSIQ

    torch.manual_seed(0)
    ckpt = tmp / "musiq_koniq_ckpt-e95806b9.pth"
    torch.save(MUSIQ(pretrained=False).state_dict(), ckpt)
    table = yaml.safe_load(weights_module.TABLE_FILE.read_text())
    table["files"][ckpt.name]["sha256"] = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    (tmp / "weights.yaml").write_text(yaml.safe_dump(table))
    return tmp / "weights.yaml"


def run() -> dict:
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    pred, gt = _frames(FRAMES)
    weights_dir = _weights_dir()
    result: dict = {"frames": FRAMES, "size": f"{WIDTH}x{HEIGHT}", "threads": torch.get_num_threads()}
    cases: dict[str, tuple[Callable, Callable]] = {}
    ours = {name: get_metric(name) for name in ("psnr", "ssim", "ssim_bsst", "ssim_skimage")}
    psnr_ref, ssim_ref = _pyiqa("psnr"), _pyiqa("ssimc")
    cases["psnr"] = (lambda p, g: ours["psnr"](p, g), lambda p, g: psnr_ref(p, g))
    cases["ssim"] = (lambda p, g: ours["ssim"](p, g), lambda p, g: ssim_ref(p, g))
    cases["ssim_bsst"] = (lambda p, g: ours["ssim_bsst"](p, g), _paper_ssim)
    cases["ssim_skimage"] = (lambda p, g: ours["ssim_skimage"](p, g), _skimage_ssim)
    try:
        lpips_ours, niqe_ours = get_metric("lpips", weights_dir), get_metric("niqe", weights_dir)
        lpips_ref = _pyiqa_lpips(lpips_ours.weights)
        niqe_ref = _pyiqa("niqe", pretrained_model_path=str(niqe_ours.weights["model"]))
        cases["lpips"] = (lambda p, g: lpips_ours(p, g), lambda p, g: lpips_ref(p, g))
        # our LPIPS is the `lpips` package's network: its wrapper overhead is measured against that package too
        cases["lpips_vs_lpips_package"] = (
            lambda p, g: lpips_ours(p, g), lambda p, g: lpips_ours.net(p, g, normalize=True).flatten()
        )
        cases["niqe"] = (lambda p, g: niqe_ours(p), lambda p, g: niqe_ref(p))
    except WeightsError as e:
        result["lpips_niqe_skipped"] = str(e)
    with tempfile.TemporaryDirectory() as tmp, mock.patch.object(
        weights_module, "TABLE_FILE", _random_musiq(Path(tmp))
    ):
        musiq_ours = get_metric("musiq", Path(tmp))
        musiq_ref = _pyiqa("musiq", pretrained_model_path=str(musiq_ours.weights["model"]))
        cases["musiq"] = (lambda p, g: musiq_ours(p), lambda p, g: musiq_ref(p))
        for name, (mine, direct) in cases.items():
            n, repeats = (1, 1) if name in SLOW else (FRAMES, REPEATS)
            p, g = pred[:n], gt[:n]
            mine(p[..., :192, :192], g[..., :192, :192])  # warm-up (lazy imports, allocator) on a crop
            direct(p[..., :192, :192], g[..., :192, :192])
            t_ours, t_ref = _best_pair(lambda: mine(p, g), lambda: direct(p, g), repeats)  # noqa: B023
            result[f"{name}_fps_ours"] = round(n / t_ours, 3)
            result[f"{name}_fps_direct"] = round(n / t_ref, 3)
            result[f"{name}_ratio"] = round(t_ours / t_ref, 3)
    return result
