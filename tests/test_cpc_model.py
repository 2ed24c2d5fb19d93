"""CPC model on the tiny random SD config: shapes per level, the zero-mask identity, the mask's effect."""

from __future__ import annotations

import copy

import pytest
import torch

from cpgd_bench.models.cpgd.cpc import attention as cpc_attention
from cpgd_bench.models.cpgd.cpc.attention import level_prior, self_attentions
from cpgd_bench.models.cpgd.cpc.configs import TINY
from cpgd_bench.models.cpgd.cpc.controlnet import build_controlnet, control_residuals
from cpgd_bench.models.cpgd.cpc.model import CPCModel, coding_prior

torch.set_num_threads(1)
H, W = 16, 24  # latent (128 x 192 px): non-square, so a wrong level size would show


@pytest.fixture(scope="module")
def model() -> CPCModel:
    return CPCModel.random(TINY, seed=0)


def _inputs(frames: int = 2, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "noisy": torch.randn(frames, 4, H, W, generator=g),
        "timesteps": torch.tensor([500] * frames),
        "text": torch.randn(frames, 77, TINY.unet["cross_attention_dim"], generator=g),
        "cond_latent": torch.randn(frames, 4, H, W, generator=g),
        "coding_prior": torch.rand(frames, 3, H, W, generator=g) * 2 - 1,
    }


def _randomise(controlnet: torch.nn.Module, seed: int = 3) -> None:
    """Make the zero-initialised parts non-zero so residuals carry signal (weights as after training)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in controlnet.named_parameters():
            if "controlnet_" in name and "cp_mask" not in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def test_shapes_through_every_level(model: CPCModel, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[int, ...]] = []
    original = cpc_attention.level_prior

    def recording(prior: torch.Tensor, tokens: int) -> torch.Tensor:
        out = original(prior, tokens)
        seen.append(tuple(out.shape))
        return out

    monkeypatch.setattr(cpc_attention, "level_prior", recording)
    x = _inputs(frames=2)
    down, mid = control_residuals(model.controlnet, **x, num_frames=2)
    # the UNet's own skip features have exactly these shapes, level by level
    skips = [(32, 16, 24), (32, 16, 24), (32, 8, 12), (32, 8, 12), (32, 4, 6), (64, 4, 6), (64, 2, 3), (64, 2, 3)]
    assert [tuple(d.shape[1:]) for d in down] == skips
    assert tuple(mid.shape) == (2, 64, 2, 3)
    # the prior reaches every transformer (3 cross-attention levels + mid) resized to that level
    assert seen == [(2, 16 * 24, 3), (2, 8 * 12, 3), (2, 4 * 6, 3), (2, 2 * 3, 3)]
    assert len(self_attentions(model.controlnet)) == 4
    eps = model(x["noisy"], x["timesteps"], x["text"], x["cond_latent"], x["coding_prior"], num_frames=2)
    assert eps.shape == (2, 4, H, W)


def test_zero_mask_equals_branch_without_cpc(model: CPCModel) -> None:
    cpc = copy.deepcopy(model.controlnet)
    _randomise(cpc)
    plain = build_controlnet(model.unet, coding_prior=False)
    missing = plain.load_state_dict(cpc.state_dict(), strict=False)
    assert all(".cp_mask." in k for k in missing.unexpected_keys) and not missing.missing_keys
    x = _inputs(frames=3)
    with torch.no_grad():
        down_c, mid_c = control_residuals(cpc, **x, num_frames=3)
        down_p, mid_p = control_residuals(plain, **{**x, "coding_prior": None}, num_frames=3)
        down_1, _ = control_residuals(cpc, **x, num_frames=1)  # IRControlNet proper: per-frame attention
        down_q, _ = control_residuals(plain, **{**x, "coding_prior": None}, num_frames=1)
    for a, b in zip(down_c + [mid_c], down_p + [mid_p], strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for a, b in zip(down_1, down_q, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert max(float(d.abs().max()) for d in down_c) > 1e-3  # the comparison is not between zeros


def test_nonzero_mask_changes_output(model: CPCModel) -> None:
    cpc = copy.deepcopy(model.controlnet)
    _randomise(cpc)
    x = _inputs()
    with torch.no_grad():
        before, _ = control_residuals(cpc, **x, num_frames=2)
        for attn in self_attentions(cpc):
            attn.cp_mask.weight.normal_(0, 0.5)
        after, _ = control_residuals(cpc, **x, num_frames=2)
        other, _ = control_residuals(cpc, **{**x, "coding_prior": x["coding_prior"].flip(-1)}, num_frames=2)
    assert (after[1] - before[1]).abs().max() > 1e-4  # first transformer level onwards
    assert (after[0] - before[0]).abs().max() == 0  # conv_in residual sits before any attention
    assert (other[-1] - after[-1]).abs().max() > 1e-4  # the output follows the prior, not just the weights


def test_separate_qm_starts_as_shared_and_trains_apart(model: CPCModel) -> None:
    shared = copy.deepcopy(model.controlnet)
    separate = build_controlnet(model.unet, coding_prior=True, separate_qm=True)
    _randomise(shared)
    separate.load_state_dict(shared.state_dict(), strict=False)
    g = torch.Generator().manual_seed(5)
    for a, b in zip(self_attentions(shared), self_attentions(separate), strict=True):
        w = torch.randn(a.cp_mask.weight.shape, generator=g)
        a.cp_mask.weight.data.copy_(w)
        b.cp_mask.weight.data.copy_(w)
        torch.testing.assert_close(b.to_qm.weight, b.to_q.weight)
    x = _inputs()
    with torch.no_grad():
        ref, _ = control_residuals(shared, **x, num_frames=2)
        out, _ = control_residuals(separate, **x, num_frames=2)
        torch.testing.assert_close(out[-1], ref[-1], rtol=1e-5, atol=1e-5)
        for attn in self_attentions(separate):
            attn.to_qm.weight.mul_(2)
        moved, _ = control_residuals(separate, **x, num_frames=2)
    assert (moved[-1] - ref[-1]).abs().max() > 1e-4


def test_cross_frame_attention_mixes_frames_only_when_asked(model: CPCModel) -> None:
    cpc = copy.deepcopy(model.controlnet)
    _randomise(cpc)
    x = _inputs(frames=2)
    y = {k: v.clone() for k, v in x.items()}
    y["cond_latent"][1] += 1.0  # change frame 1 only
    with torch.no_grad():
        per_a, _ = control_residuals(cpc, **x, num_frames=1)
        per_b, _ = control_residuals(cpc, **y, num_frames=1)
        joint_a, _ = control_residuals(cpc, **x, num_frames=2)
        joint_b, _ = control_residuals(cpc, **y, num_frames=2)
    assert torch.equal(per_a[-1][0], per_b[-1][0])  # per frame: frame 0 does not see frame 1
    assert (joint_a[-1][0] - joint_b[-1][0]).abs().max() > 1e-5  # joint: it does
    with pytest.raises(ValueError, match="3-frame clips"):
        control_residuals(cpc, **x, num_frames=3)


def test_coding_prior_normalisation() -> None:
    flow = torch.zeros(2, 2, 8, 8)
    flow[0, 0] = -6.0
    flow[1, 1] = 3.0
    valid = torch.ones(2, 2, 8, 8)
    valid[1, 0, :4] = 0  # no previous reference there
    residual = torch.full((2, 1, 8, 8), 0.5)
    residual[0, 0, 0, 0] = 0.75  # r = +256 at 10 bit -> |r| / 512 = 0.5
    cp = coding_prior(flow, valid, residual)
    assert cp.shape == (2, 3, 8, 8)
    assert float(cp[0, 0].min()) == -1.0 and float(cp[1, 1, 4:].max()) == 0.5
    assert float(cp[1, 1, :4].abs().max()) == 0.0
    assert float(cp[0, 2, 0, 0]) == pytest.approx(0.5) and float(cp[0, 2, 1, 1]) == 0.0
    assert coding_prior(flow, valid, residual, size=(2, 2)).shape == (2, 3, 2, 2)


def test_level_prior_rejects_a_mismatched_level() -> None:
    with pytest.raises(ValueError, match="does not match an attention level"):
        level_prior(torch.zeros(1, 3, 16, 24), 50)


def test_frozen_parts_and_train_mode(model: CPCModel) -> None:
    assert not any(p.requires_grad for m in (model.unet, model.vae, model.text_encoder) for p in m.parameters())
    assert all(p.requires_grad for p in model.controlnet.parameters())
    model.train()
    assert model.controlnet.training and not model.unet.training and not model.vae.training
    model.eval()
