"""Stage-2 weights: IRControlNet key mapping round trip, loading paths, one-line errors."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint

from cpgd_bench.models.cpgd.cpc.configs import TINY
from cpgd_bench.models.cpgd.cpc.controlnet import build_controlnet, control_residuals
from cpgd_bench.models.cpgd.cpc.model import CPCModel
from cpgd_bench.models.cpgd.cpc.weights import (
    cpgd_files,
    diffusers_to_ldm,
    ldm_to_diffusers,
    load_control,
    load_sd,
)
from cpgd_bench.weights import WeightsError, find, load_table

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model() -> CPCModel:
    m = CPCModel.random(TINY, seed=0)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():  # a "trained" branch: no zero tensors left, so every key is checked by value
        for p in m.controlnet.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return m


def irc_state(model: CPCModel) -> dict[str, torch.Tensor]:
    """A tiny IRControlNet (DiffBIR v2.pth layout): ldm keys, no CPC mask layers."""
    ldm = diffusers_to_ldm(model.controlnet.state_dict(), TINY.unet)
    return {k: v for k, v in ldm.items() if ".attn1.mask." not in k}


def test_ldm_key_names_follow_diffbir(model: CPCModel) -> None:
    ldm = diffusers_to_ldm(model.controlnet.state_dict(), TINY.unet)
    c0 = TINY.unet["block_out_channels"][0]
    assert ldm["input_blocks.0.0.weight"].shape == (c0, 8, 3, 3)  # cat(noisy latent, condition latent)
    expected = [
        "time_embed.0.weight", "time_embed.2.bias", "input_blocks.1.0.in_layers.0.weight",
        "input_blocks.1.0.in_layers.2.weight", "input_blocks.1.0.emb_layers.1.weight",
        "input_blocks.1.0.out_layers.3.weight", "input_blocks.1.1.proj_in.weight",
        "input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight",
        "input_blocks.1.1.transformer_blocks.0.attn1.mask.weight",
        "input_blocks.1.1.transformer_blocks.0.ff.net.0.proj.weight", "input_blocks.2.0.op.weight",
        "input_blocks.5.0.skip_connection.weight", "middle_block.1.transformer_blocks.0.attn2.to_k.weight",
        "middle_block.2.out_layers.3.bias", "zero_convs.0.0.weight", "zero_convs.7.0.bias", "middle_block_out.0.weight",
    ]  # fmt: skip
    assert set(expected) <= set(ldm)
    assert not any(k.startswith("input_hint_block") for k in ldm)
    zero_convs = [k for k in ldm if k.startswith("zero_convs.") and k.endswith("weight")]
    assert len(zero_convs) == 8  # conv_in + 4 levels x 1 resnet + 3 downsamplers


def test_round_trip_and_agreement_with_diffusers_converter(model: CPCModel) -> None:
    state = model.controlnet.state_dict()
    ldm = diffusers_to_ldm(state, TINY.unet)
    back = ldm_to_diffusers(ldm, TINY.unet)
    assert set(back) == set(state)
    assert all(torch.equal(back[k], state[k]) for k in state)
    # diffusers' own ldm ControlNet converter (an independent implementation) maps every shared key the same way
    irc = {k: v for k, v in ldm.items() if ".mask." not in k}
    ref = convert_controlnet_checkpoint(irc, dict(model.controlnet.config))
    ref = {k: v for k, v in ref.items() if v is not None and k != "conv_in.weight"}
    assert set(ref) == {k for k in back if ".cp_mask." not in k and k not in ("conv_in.weight",
                                                                              "controlnet_cond_embedding.weight")}
    assert all(torch.equal(ref[k], back[k]) for k in ref)


def test_irc_checkpoint_initialises_cpc_branch(model: CPCModel, tmp_path: Path) -> None:
    path = tmp_path / "v2.pth"
    torch.save(irc_state(model), path)
    fresh = build_controlnet(model.unet, coding_prior=True)
    missing = load_control(fresh, path, TINY.unet)
    assert missing and all(".cp_mask." in k for k in missing)
    assert all(float(fresh.get_submodule(k.rsplit(".", 1)[0]).weight.detach().abs().max()) == 0 for k in missing)
    plain = copy.deepcopy(model.controlnet)
    for m in plain.modules():
        if hasattr(m, "cp_mask"):
            m.cp_mask.weight.data.zero_()
    g = torch.Generator().manual_seed(0)
    x = [torch.randn(2, 4, 8, 8, generator=g), torch.tensor([10, 10]), torch.randn(2, 77, 32, generator=g),
         torch.randn(2, 4, 8, 8, generator=g), torch.rand(2, 3, 8, 8, generator=g)]
    with torch.no_grad():
        a, _ = control_residuals(fresh, *x, num_frames=2)
        b, _ = control_residuals(plain, *x, num_frames=2)
    for u, v in zip(a, b, strict=True):
        torch.testing.assert_close(u, v, rtol=0, atol=0)


def test_trained_checkpoint_with_wrapper_loads(model: CPCModel, tmp_path: Path) -> None:
    path = tmp_path / "final.pt"
    torch.save({"format": "cpgd-bench/cpc-1", "controlnet": model.controlnet.state_dict(), "step": 3}, path)
    fresh = build_controlnet(model.unet, coding_prior=True)
    assert load_control(fresh, path, TINY.unet) == []
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in model.controlnet.state_dict().items())


def test_wrong_control_checkpoints_are_one_line_errors(model: CPCModel, tmp_path: Path) -> None:
    bad = irc_state(model)
    bad["input_blocks.0.0.weight"] = bad["input_blocks.0.0.weight"][:, :4]  # a plain SD encoder copy
    torch.save(bad, tmp_path / "a.pth")
    with pytest.raises(WeightsError, match="expected 8") as e:
        load_control(build_controlnet(model.unet), tmp_path / "a.pth", TINY.unet)
    assert "\n" not in str(e.value)
    torch.save({"foo.weight": torch.zeros(1)}, tmp_path / "b.pth")
    with pytest.raises(WeightsError, match="does not fit the control branch"):
        load_control(build_controlnet(model.unet), tmp_path / "b.pth", TINY.unet)


def test_missing_and_corrupt_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CPGD_BENCH_WEIGHTS", raising=False)
    monkeypatch.chdir(tmp_path)
    assert find(("v2.pth",), None, tmp_path) is None
    with pytest.raises(WeightsError, match=r"does not exist; get v2.pth \(https://huggingface.co/lxq007") as e:
        find(("v2.pth",), tmp_path / "nope.pth")
    assert "\n" not in str(e.value)
    (tmp_path / "v2-1_512-ema-pruned.ckpt").write_bytes(b"not the checkpoint")
    with pytest.raises(WeightsError, match="expected 88ecb782"):
        find(("v2-1_512-ema-pruned.ckpt",), None, tmp_path)


def test_every_stage2_entry_names_a_source_and_a_digest_or_says_why_not() -> None:
    table = load_table()
    sd_names, control_names = cpgd_files()
    assert sd_names[0] == "v2-1_512-ema-pruned.ckpt" and control_names == ["v2.pth"]  # the authors' files first
    for name in (*sd_names, *control_names):
        entry = table.files[name]
        assert entry.source.startswith("https://") and entry.licence
        assert (len(entry.sha256) == 64) if entry.sha256 else entry.unverified


def test_sd_from_diffusers_folder(model: CPCModel, tmp_path: Path) -> None:
    folder = tmp_path / "sd"
    model.unet.save_pretrained(folder / "unet")
    model.vae.save_pretrained(folder / "vae")
    model.text_encoder.save_pretrained(folder / "text_encoder")
    unet, vae, text, tokenizer = load_sd(folder, TINY)
    assert tokenizer == folder
    assert all(torch.equal(unet.state_dict()[k], v) for k, v in model.unet.state_dict().items())
    assert all(torch.equal(text.state_dict()[k], v) for k, v in model.text_encoder.state_dict().items())
    with pytest.raises(WeightsError, match="not a diffusers SD folder"):
        load_sd(tmp_path, TINY)
    torch.save({"state_dict": {"x": torch.zeros(1)}}, tmp_path / "x.ckpt")
    with pytest.raises(WeightsError, match="no ldm UNet keys"):
        load_sd(tmp_path / "x.ckpt", TINY)
