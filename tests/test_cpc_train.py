"""Stage-2 training: the eps loss falls after a step, only the control branch learns, the degradation, the loop."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cpgd_bench.data.degrade import DegradeConfig, degrade, gaussian_kernel
from cpgd_bench.models.cpgd.cpc.configs import TINY
from cpgd_bench.models.cpgd.cpc.controlnet import build_controlnet
from cpgd_bench.models.cpgd.cpc.model import CPCModel
from cpgd_bench.models.cpgd.cpc.weights import load_control
from cpgd_bench.train.cpc import TrainConfigError, eps_loss, load_config, noise_schedule, prepare_batch, train

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]


def _batch(clips: int = 2, frames: int = 2, size: int = 64) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    gt = torch.rand(clips, frames, 3, size, size, generator=g)
    return {
        "gt": gt,
        "lq": (gt + 0.1 * torch.randn(gt.shape, generator=g)).clamp(0, 1),
        "flow_prev": torch.randn(clips, frames, 2, size, size, generator=g),
        "flow_valid": torch.ones(clips, frames, 2, size, size),
        "residual": torch.rand(clips, frames, 1, size, size, generator=g),
        "prompt": torch.tensor([0.2, 0.9]),
    }


@pytest.mark.parametrize("checkpointing", [False, True])
def test_one_step_lowers_the_loss_and_trains_only_the_control_branch(checkpointing: bool) -> None:
    model = CPCModel.random(TINY, seed=0)
    if checkpointing:
        model.enable_gradient_checkpointing()
    prepared = prepare_batch(model, _batch(), prompt_ratio=0.5)
    assert prepared["cond"].shape == prepared["target"].shape == (4, 4, 8, 8) and prepared["text"].shape[0] == 4
    schedule = noise_schedule(TINY)
    g = torch.Generator().manual_seed(1)
    timesteps = torch.randint(1000, (2,), generator=g)
    noise = torch.randn(prepared["target"].shape, generator=g)
    frozen = {k: v.clone() for k, v in model.unet.state_dict().items()}
    control = {k: v.clone() for k, v in model.controlnet.state_dict().items()}
    optimizer = torch.optim.AdamW(model.controlnet.parameters(), lr=1e-4)
    model.train()
    before = eps_loss(model, prepared, schedule, timesteps, noise)
    before.backward()
    optimizer.step()
    with torch.no_grad():
        after = eps_loss(model, prepared, schedule, timesteps, noise)
    assert float(after) < float(before.detach())
    assert all(torch.equal(model.unet.state_dict()[k], v) for k, v in frozen.items())
    changed = [k for k, v in model.controlnet.state_dict().items() if not torch.equal(v, control[k])]
    assert any("controlnet_down_blocks" in k for k in changed)
    assert not any(p.grad is not None for p in model.unet.parameters())


def test_degradation_is_seeded_bounded_and_clip_consistent() -> None:
    frames = torch.rand(1, 3, 48, 40, generator=torch.Generator().manual_seed(0)).repeat(3, 1, 1, 1)
    a = degrade(frames, torch.Generator().manual_seed(5))
    b = degrade(frames, torch.Generator().manual_seed(5))
    c = degrade(frames, torch.Generator().manual_seed(6))
    assert a.shape == frames.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert float(a.min()) >= 0 and float(a.max()) <= 1 and float((a - frames).abs().mean()) > 0.02
    # one blur/scale/quality per clip: identical frames differ only by their noise
    quiet = degrade(frames, torch.Generator().manual_seed(5), DegradeConfig(noise=(0.0, 0.0)))
    torch.testing.assert_close(quiet[0], quiet[2])
    k = gaussian_kernel(21, 2.0, 5.0, 0.3)
    assert abs(float(k.sum()) - 1) < 1e-5 and not torch.allclose(k, k.T)
    with pytest.raises(ValueError, match="odd"):
        DegradeConfig(kernel_size=4)
    with pytest.raises(ValueError, match=r"\(T, 3, H, W\)"):
        degrade(torch.zeros(3, 8, 8), torch.Generator())


def test_configs(tmp_path: Path) -> None:
    paper = load_config(ROOT / "manifests" / "train" / "cpc-paper.yaml")
    assert paper["optim"]["lr"] == 1e-5 and paper["data"]["crop"] == 512 and paper["data"]["clip_len"] == 4
    assert paper["model"]["arch"] == "sd21-base" and paper["hybrid"]["ratio"] == 0.5
    assert load_config(ROOT / "manifests" / "train" / "cpc-tiny.yaml")["model"]["arch"] == "tiny-random"
    bad = tmp_path / "bad.yaml"
    bad.write_text("stage: cpc\noptim: {learning_rate: 1}\n")
    with pytest.raises(TrainConfigError, match="unknown optim.learning_rate"):
        load_config(bad)
    bad.write_text("stage: cpc\ndata: {crop: 100}\n")
    with pytest.raises(TrainConfigError, match="multiple of 64"):
        load_config(bad)
    with pytest.raises(TrainConfigError, match="not found"):
        load_config(tmp_path / "none.yaml")
    bad.write_text("stage: cpfp\n")
    with pytest.raises(TrainConfigError, match="is not a cpc training config"):
        load_config(bad)


def test_training_loop_on_the_sample_store(sample_store: Path, tmp_path: Path) -> None:
    config = ROOT / "manifests" / "train" / "cpc-tiny.yaml"
    final = train(config, sample_store, tmp_path, device="cpu", max_steps=1)
    train(config, sample_store, tmp_path, resume=True, device="cpu", max_steps=2)
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2] and all(r["loss"] > 0 for r in log)
    branch = build_controlnet(CPCModel.random(TINY).unet)
    assert load_control(branch, final, TINY.unet) == []
    with pytest.raises(TrainConfigError, match="no .*last.pt"):
        train(config, sample_store, tmp_path / "fresh", resume=True, device="cpu")
    with pytest.raises(TrainConfigError, match="already holds a run"):  # the one run-directory policy of both stages
        train(config, sample_store, tmp_path, device="cpu", max_steps=1)


def test_stage1_output_conditions_training(
    sample_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cpgd_bench.models.input import InputRestorer
    from cpgd_bench.train import cpc

    seen: list[set[str]] = []

    class Recording(InputRestorer):
        def restore(self, clip: dict[str, torch.Tensor]) -> torch.Tensor:
            seen.append(set(clip))
            return super().restore(clip)

    monkeypatch.setattr(cpc, "_stage1", lambda weights, device: Recording())
    cpc.train(ROOT / "manifests" / "train" / "cpc-tiny.yaml", sample_store, tmp_path, device="cpu", max_steps=1)
    assert len(seen) == 2  # one call per clip of the batch, without the target frames
    assert all("gt" not in keys and {"lq", "flow_prev", "residual"} <= keys for keys in seen)
