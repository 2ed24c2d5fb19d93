"""Stage-2 sampling: spaced DDPM equivalence, tiles, colour fix, and the cpgd restorer end to end (tiny SD)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from cpgd_bench.models.cpgd.cpc.configs import SD21_BASE, TINY
from cpgd_bench.models.cpgd.cpc.model import CPCModel
from cpgd_bench.models.cpgd.cpc.sampler import (
    gaussian_weights,
    make_scheduler,
    space_timesteps,
    tile_spans,
    tiled,
    wavelet_color_fix,
)
from cpgd_bench.models.cpgd.cpc.weights import diffusers_to_ldm
from cpgd_bench.models.cpgd.pipeline import STAGE1_ONLY, CPGDRestorer
from cpgd_bench.models.input import InputRestorer
from cpgd_bench.models.registry import get_model

torch.set_num_threads(1)


def test_space_timesteps_matches_guided_diffusion() -> None:
    steps = space_timesteps(1000, 50)
    assert len(steps) == 50 and steps[:5] == [0, 20, 41, 61, 82] and steps[-1] == 999
    assert space_timesteps(1000, 1000) == list(range(1000))
    with pytest.raises(ValueError, match="cannot space"):
        space_timesteps(10, 11)


def test_ddpm_scheduler_equals_respaced_posterior() -> None:
    """diffusers' DDPMScheduler over the spaced steps == the authors' SpacedSampler maths (float64 reference)."""
    betas = np.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=np.float64) ** 2  # ldm "linear"
    abar = np.cumprod(1 - betas)
    used = space_timesteps(1000, 50)
    abar_r = abar[used]
    betas_r = 1 - abar_r / np.append(1.0, abar_r[:-1])
    scheduler = make_scheduler(SD21_BASE, 50)
    assert scheduler.timesteps.tolist() == used[::-1]
    x_ref = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = x_ref.float()
    for i in reversed(range(50)):
        eps_fn = lambda z: 0.3 * z + 0.1  # noqa: E731 - any deterministic "model"
        prev = 1.0 if i == 0 else abar_r[i - 1]
        x0 = np.sqrt(1 / abar_r[i]) * x_ref - np.sqrt(1 / abar_r[i] - 1) * eps_fn(x_ref)
        mean = (betas_r[i] * np.sqrt(prev) * x0 + (1 - prev) * np.sqrt(1 - betas_r[i]) * x_ref) / (1 - abar_r[i])
        var = betas_r[i] * (1 - prev) / (1 - abar_r[i])
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(i))
        x_ref = mean + (np.sqrt(var) * noise.double() if i > 0 else 0)
        x = scheduler.step(eps_fn(x), used[i], x, generator=torch.Generator().manual_seed(i)).prev_sample
        torch.testing.assert_close(x.double(), x_ref, rtol=1e-4, atol=1e-4)


def test_tiles_cover_and_blend_exactly() -> None:
    assert tile_spans(90, 64, 32) == [(0, 64), (26, 90)]
    assert tile_spans(160, 64, 32) == [(0, 64), (32, 96), (64, 128), (96, 160)]
    assert tile_spans(40, 64, 32) == [(0, 40)]
    w = gaussian_weights(64, 64)
    assert w.shape == (64, 64) and float(w.min()) > 0 and torch.equal(w, w.flip(0)) and torch.equal(w, w.flip(1))
    x = torch.randn(2, 4, 90, 160)
    seen = torch.zeros(90, 160)

    def fn(tile, t, rows, cols):
        seen[rows, cols] += 1
        return tile * 2 + t.view(-1, 1, 1, 1)

    out = tiled(fn, x, torch.tensor([1.0, 2.0]), 64, 32)
    torch.testing.assert_close(out, x * 2 + torch.tensor([1.0, 2.0]).view(-1, 1, 1, 1))
    assert int(seen.min()) >= 1 and int(seen.max()) == 4


def test_wavelet_colour_fix_takes_low_frequencies_from_reference() -> None:
    ref = torch.rand(1, 3, 40, 56, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(wavelet_color_fix(ref + 0.3, ref), ref, rtol=0, atol=1e-5)  # a colour cast is removed
    detail = torch.full_like(ref, -0.1)
    detail[..., ::2, :] = 0.1  # zero-mean finest-scale texture survives
    fixed = wavelet_color_fix(ref + detail, ref)
    assert float((fixed - ref - detail).abs().mean()) < 0.02


def _clip(frames: int = 3, size: int = 64) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {
        "lq": torch.rand(frames, 3, size, size, generator=g),
        "flow_prev": torch.randn(frames, 2, size, size, generator=g),
        "flow_next": torch.randn(frames, 2, size, size, generator=g),
        "flow_valid": torch.ones(frames, 2, size, size),
        "residual": torch.rand(frames, 1, size, size, generator=g),
    }


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny SD 2.1-shaped diffusers folder and a tiny DiffBIR-v2-shaped IRControlNet file."""
    root = tmp_path_factory.mktemp("weights")
    model = CPCModel.random(TINY, seed=0)
    for name in ("unet", "vae", "text_encoder"):
        getattr(model, name).save_pretrained(root / "sd" / name)
    with torch.no_grad():
        for name, p in model.controlnet.named_parameters():
            if "controlnet_" in name:  # zero convs as after training, so stage 2 changes the frames
                p.copy_(torch.randn_like(p) * 0.05)
    ldm = diffusers_to_ldm(model.controlnet.state_dict(), TINY.unet)
    torch.save({k: v for k, v in ldm.items() if ".mask." not in k}, root / "v2.pth")
    return root / "sd", root / "v2.pth"


def test_three_step_sample_end_to_end(weights: tuple[Path, Path]) -> None:
    sd, diffbir = weights
    restorer = CPGDRestorer(sd=sd, diffbir=diffbir, arch="tiny-random", stage1=InputRestorer(), device="cpu",
                            steps=3, chunk=2)
    clip = _clip(frames=3)
    out = restorer.restore(clip)
    assert out.shape == (3, 3, 64, 64) and torch.isfinite(out).all()
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    assert float((out - clip["lq"]).abs().mean()) > 1e-3
    torch.testing.assert_close(restorer.restore(clip), out)  # seeded: reproducible
    prov = restorer.provenance()
    assert prov["label"] == "cpgd" and prov["weights"].endswith("v2.pth") and len(prov["weights_sha256"]) == 64
    odd = {k: v[..., :56, :40] for k, v in _clip(frames=1).items()}  # padded to the latent grid and cropped back
    assert restorer.restore(odd).shape == (1, 3, 56, 40)


def test_guidance_path_runs(weights: tuple[Path, Path]) -> None:
    sd, diffbir = weights
    restorer = CPGDRestorer(sd=sd, diffbir=diffbir, arch="tiny-random", stage1=InputRestorer(), device="cpu",
                            steps=2, cfg=2.0, tile=None)
    assert restorer.restore(_clip(frames=1)).shape == (1, 3, 64, 64)


def test_without_sd_weights_returns_stage1(tmp_path: Path, monkeypatch, caplog) -> None:
    monkeypatch.delenv("CPGD_BENCH_WEIGHTS", raising=False)
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.WARNING):
        restorer = get_model("cpgd", stage1=InputRestorer(), weights_dir=tmp_path)
    assert isinstance(restorer, CPGDRestorer)
    messages = [r.getMessage() for r in caplog.records if "cpgd" in r.getMessage()]
    assert len(messages) == 1 and "\n" not in messages[0] and "v2-1_512-ema-pruned.ckpt" in messages[0]
    clip = _clip(frames=2)
    torch.testing.assert_close(restorer.restore(clip), clip["lq"])
    assert restorer.provenance()["label"] == STAGE1_ONLY == "cpgd (stage 1 only: no SD weights)"


def test_sd_without_control_weights_is_a_one_line_error(weights: tuple[Path, Path], tmp_path: Path, monkeypatch):
    from cpgd_bench.weights import WeightsError

    monkeypatch.delenv("CPGD_BENCH_WEIGHTS", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(WeightsError, match="no v2.pth in .*lxq007/DiffBIR-v2") as e:
        CPGDRestorer(sd=weights[0], arch="tiny-random", stage1=InputRestorer(), weights_dir=tmp_path)
    assert "\n" not in str(e.value)


def test_branch_trained_with_separate_qm_is_recognised(weights: tuple[Path, Path], tmp_path: Path) -> None:
    from cpgd_bench.models.cpgd.cpc.attention import self_attentions
    from cpgd_bench.models.cpgd.cpc.controlnet import build_controlnet

    branch = build_controlnet(CPCModel.random(TINY).unet, coding_prior=True, separate_qm=True)
    torch.save({"controlnet": branch.state_dict()}, tmp_path / "final.pt")
    restorer = CPGDRestorer(weights=tmp_path / "final.pt", sd=weights[0], arch="tiny-random", stage1=InputRestorer(),
                            device="cpu")
    assert all(hasattr(a, "to_qm") for a in self_attentions(restorer.model.controlnet))
    assert restorer.provenance()["weights"].endswith("final.pt")
