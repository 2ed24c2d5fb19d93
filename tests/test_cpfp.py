"""CPFP network on tiny shapes: exact MV warps, the paper's init identities, gradients, every alignment option."""

from __future__ import annotations

import pytest
import torch

from cpgd_bench.data import backward_warp
from cpgd_bench.models.cpgd.cpfp.alignment import ALIGNMENTS, AlignmentError, FlowProvider
from cpgd_bench.models.cpgd.cpfp.model import CPFA, CPFP, ConfigError, CPFPConfig

TINY = dict(channels=8, deform_groups=2, encoder_blocks=1, fusion_blocks=1, decoder_blocks=1)


def clip(b: int = 1, t: int = 3, h: int = 32, w: int = 40, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "lq": torch.rand(b, t, 3, h, w, generator=g),
        "flow_prev": 2 * torch.randn(b, t, 2, h, w, generator=g),
        "flow_next": 2 * torch.randn(b, t, 2, h, w, generator=g),
        "flow_valid": (torch.rand(b, t, 2, h, w, generator=g) > 0.2).float(),
        "residual": 0.5 + 0.1 * torch.randn(b, t, 1, h, w, generator=g),
    }


def test_exact_translation_flow_warps_exactly() -> None:
    """A feature map shifted by an integer translation is recovered exactly by warping with that MV flow."""
    torch.manual_seed(0)
    prev = torch.rand(1, 6, 20, 24)
    dx, dy = 3, -2  # frame t shows prev at p + (dx, dy)
    cur = torch.roll(prev, shifts=(-dy, -dx), dims=(2, 3))
    flow = torch.tensor([float(dx), float(dy)]).view(1, 2, 1, 1).expand(1, 2, 20, 24)
    warped = backward_warp(prev, flow)
    inner = (slice(None), slice(None), slice(2, -2), slice(3, -3))  # away from the rolled-in border
    torch.testing.assert_close(warped[inner], cur[inner], rtol=0, atol=1e-5)


def test_dcn_with_mv_offsets_and_unit_mask_equals_the_warp() -> None:
    """Offsets = MV and a centre-tap identity kernel make the deformable conv the same exact warp."""
    from torchvision.ops import deform_conv2d

    torch.manual_seed(1)
    c, h, w = 4, 16, 20
    prev = torch.rand(1, c, h, w)
    flow = torch.zeros(1, 2, h, w)
    flow[:, 0], flow[:, 1] = 2.0, 1.0
    weight = torch.zeros(c, c, 3, 3)
    weight[torch.arange(c), torch.arange(c), 1, 1] = 1.0
    offset = flow.flip(1).repeat(1, 9, 1, 1)
    out = deform_conv2d(prev, offset, weight, padding=1, mask=torch.ones(1, 9, h, w))
    inner = (slice(None), slice(None), slice(0, h - 2), slice(0, w - 3))
    torch.testing.assert_close(out[inner], backward_warp(prev, flow)[inner], rtol=0, atol=1e-5)


def test_zero_initialised_heads_give_mv_offsets_and_residual_mask() -> None:
    """Eq. 2/3 at init: C_o = C_m = 0, so O = V (as (dy, dx) per tap and group) and M = R."""
    torch.manual_seed(2)
    block = CPFA(channels=8, deform_groups=2, fusion_blocks=1, use_residual=True)
    n, h, w = 2, 10, 12
    neighbour, own = torch.randn(n, 8, h, w), torch.randn(n, 8, h, w)
    flow, valid, res = torch.randn(n, 2, h, w), torch.ones(n, 1, h, w), torch.rand(n, 1, h, w)
    warped, offset, mask = block.align_params(neighbour, own, flow, valid, res)
    assert offset.shape == (n, 2 * 2 * 9, h, w) and mask.shape == (n, 2 * 9, h, w)
    pairs = offset.view(n, 18, 2, h, w)
    torch.testing.assert_close(pairs[:, :, 0], flow[:, 1:2].expand(-1, 18, -1, -1))  # dy
    torch.testing.assert_close(pairs[:, :, 1], flow[:, 0:1].expand(-1, 18, -1, -1))  # dx
    torch.testing.assert_close(mask, res.expand(-1, 18, -1, -1))
    torch.testing.assert_close(warped, backward_warp(neighbour, flow))

    no_res = CPFA(channels=8, deform_groups=2, fusion_blocks=1, use_residual=False)
    _, _, mask = no_res.align_params(neighbour, own, flow, valid, res)
    torch.testing.assert_close(mask, torch.ones_like(mask))  # w/o CRs: an unweighted DCN


def test_residual_term_is_zero_without_residual_and_saturates() -> None:
    model = CPFP(CPFPConfig(**TINY, residual_gain=8.0))
    res = torch.full((1, 1, 8, 8), 0.5)
    assert model.residual_term(res).abs().max() == 0
    res[..., :4, :4] = 0.5 + 64 / 1024  # |r| = 64 at 10 bit -> |2r-1| * 8 = 1
    term = model.residual_term(res)
    assert term.shape == (1, 1, 2, 2)
    torch.testing.assert_close(term[0, 0], torch.tensor([[1.0, 0.0], [0.0, 0.0]]))


def test_gradients_reach_every_block() -> None:
    torch.manual_seed(3)
    model = CPFP(CPFPConfig(**TINY, rounds=2))
    zero_init = [m for block in model.passes for m in (block.c_o, block.c_m)] + [model.decoder[-2]]
    for layer in zero_init:  # move the zero-initialised layers off zero so gradients reach what lies before
        torch.nn.init.normal_(layer.weight, std=0.01)
    x = clip(b=2, t=3)
    loss = (model(**x) - x["lq"].flip(-1)).abs().mean()
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize(
    ("alignment", "use_residual"), [(a, True) for a in ALIGNMENTS] + [("mv", False), ("none", False)]
)
def test_every_alignment_option_runs(alignment: str, use_residual: bool) -> None:
    torch.manual_seed(4)
    config = CPFPConfig(**TINY, alignment=alignment, use_residual=use_residual, raft_small=True, raft_iters=2)
    model = CPFP(config)
    x = clip(t=3, h=30, w=38)  # not a multiple of the feature scale: padded and cropped back
    out = model(**x)
    assert out.shape == x["lq"].shape and torch.isfinite(out).all()
    out.mean().backward()
    if model.flow.raft is not None:  # RAFT is frozen
        assert all(p.grad is None for p in model.flow.raft.parameters())


def test_untrained_model_returns_its_input() -> None:
    """The reconstruction head's last conv starts at zero: training starts from the identity."""
    torch.manual_seed(5)
    x = clip(h=30, w=38)
    out = CPFP(CPFPConfig(**TINY))(**x)
    torch.testing.assert_close(out, x["lq"])


def test_flow_providers() -> None:
    torch.manual_seed(6)
    cur, ref = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    mv, valid = torch.randn(2, 2, 32, 32), (torch.rand(2, 1, 32, 32) > 0.5).float()
    torch.testing.assert_close(FlowProvider("mv")(cur, ref, mv, valid), mv * valid)
    assert FlowProvider("none")(cur, ref, mv, valid).abs().max() == 0
    raft = FlowProvider("raft-mv-init", raft_iters=0, raft_small_net=True)
    assert raft.raft_iters == 0
    smooth = torch.zeros(2, 2, 32, 32)
    smooth[:, 0] = 3.0  # a constant flow survives the trip through RAFT's 1/8 grid with 0 updates
    out = raft(cur, ref, smooth, torch.ones_like(valid))
    torch.testing.assert_close(out, smooth, atol=1e-4, rtol=0)
    assert FlowProvider("raft").raft_iters == 20 and FlowProvider("raft-mv-init").raft_iters == 4


def test_bad_options_are_one_line_errors() -> None:
    with pytest.raises(AlignmentError, match="unknown alignment 'flow'"):
        CPFPConfig.from_dict({"alignment": "flow"})
    with pytest.raises(ConfigError, match="unknown CPFP model option"):
        CPFPConfig.from_dict({"chanels": 8})
    with pytest.raises(ConfigError, match="scale"):
        CPFPConfig.from_dict({"scale": 3})
