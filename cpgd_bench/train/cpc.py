"""Train CPC (stage 2): eps-prediction MSE, AdamW lr 1e-5, only the CPControlNet learns.

Config (YAML, ``manifests/train/cpc-*.yaml``)::

    seed: 0
    model: {arch: sd21-base, sd: null, diffbir: null, weights_dir: null, separate_qm: false,
            gradient_checkpointing: false}   # true: recompute UNet/ControlNet activations (less memory)
    stage1: null                 # CPFP weights: condition on the stage-1 output; null: on the input frames
    data: {split: train, input: decoded, crop: 512, clip_len: 4, batch_size: 4, workers: 2, augment: false,
           prompt_ratio: 0.5}
    hybrid: {ratio: 0.5, store: null, split: train}   # HQ-style samples: sharp frames + synthetic degradation
    degrade: {}                  # DegradeConfig ranges (cpgd_bench.data.degrade)
    optim: {lr: 1.0e-5, weight_decay: 0.01, steps: 30000}
    checkpoint_every: 1000
    threads: null

The hybrid mix (paper IV-B): each clip is, with probability ``hybrid.ratio``, an HQ-style sample --
the sharp frames of a clip from ``hybrid.store`` (default: the training store) degraded with the
CodeFormer-style pipeline -- else a deblurring sample (the store's decoded blurry frames). The
target is always the sharp clip; the coding prior is the store's (for HQ samples: the priors of the coded
sharp video, not of the degraded frames). Each clip gets the fixed prompt with probability ``prompt_ratio``,
else the empty prompt (the authors' 50 %). One timestep per clip (its frames attend to each other).
``arch: tiny-random`` trains the tiny random stand-in (tests, CPU smoke runs) without any weights.
Outputs in ``out``: ``last.pt`` (for ``--resume``), ``final.pt`` (control branch weights, diffusers
keys -- ``cpgd-bench run --model cpgd --weights final.pt``), ``log.jsonl``, ``config.yaml``. Training runs in
fp32 in one process (no torchrun/DDP, no mixed precision yet).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from torch.utils.data import DataLoader, Dataset

from cpgd_bench.data import CodingPriorDataset
from cpgd_bench.data.degrade import DegradeConfig, degrade
from cpgd_bench.models.cpgd.cpc.configs import ARCHS, PROMPT, VAE_FACTOR, CPCArch
from cpgd_bench.models.cpgd.cpc.controlnet import build_controlnet
from cpgd_bench.models.cpgd.cpc.model import CPCModel, coding_prior
from cpgd_bench.models.cpgd.cpc.weights import cpgd_files, load_control, load_sd
from cpgd_bench.models.cpgd.cpfp.checkpoint import save_atomic
from cpgd_bench.models.registry import Restorer
from cpgd_bench.train import base
from cpgd_bench.train.base import TrainConfigError
from cpgd_bench.train.distributed import TrainingError
from cpgd_bench.weights import WeightsError, find, load_torch, missing_message

FORMAT = "cpgd-bench/cpc-1"
DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "model": {"arch": "sd21-base", "sd": None, "diffbir": None, "weights_dir": None, "separate_qm": False,
              "gradient_checkpointing": False},
    "stage1": None,
    "data": {"split": "train", "input": "decoded", "crop": 512, "clip_len": 4, "batch_size": 4, "workers": 2,
             "augment": False, "prompt_ratio": 0.5},
    "hybrid": {"ratio": 0.5, "store": None, "split": "train"},
    "degrade": {},
    "optim": {"lr": 1.0e-5, "weight_decay": 0.01, "steps": 30_000},
    "checkpoint_every": 1000,
    "threads": None,
}  # fmt: skip


def load_config(path: Path) -> dict[str, Any]:
    """The YAML config merged over :data:`DEFAULTS`; unknown keys, a bad arch or crop are one-line errors."""
    config = base.load_config(path, DEFAULTS, "cpc", whole=("degrade",))
    if config["model"]["arch"] not in ARCHS:
        raise TrainConfigError(f"{path}: model.arch must be one of {sorted(ARCHS)}")
    if config["data"]["crop"] % (VAE_FACTOR * 8):
        raise TrainConfigError(f"{path}: data.crop must be a multiple of {VAE_FACTOR * 8}")
    DegradeConfig(**config["degrade"])
    return config


def build_model(config: dict[str, Any]) -> CPCModel:
    """The CPC model a config names: tiny random, or SD 2.1 + a control branch from DiffBIR v2.pth."""
    m = config["model"]
    arch: CPCArch = ARCHS[m["arch"]]
    if arch.name == "tiny-random":
        return CPCModel.random(arch, separate_qm=m["separate_qm"], seed=config["seed"])
    sd_names, control_names = cpgd_files()
    sd = find(sd_names, m["sd"], m["weights_dir"])
    control = find(control_names, m["diffbir"], m["weights_dir"])
    if sd is None or control is None:
        raise WeightsError(missing_message(sd_names if sd is None else control_names, m["weights_dir"]))
    unet, vae, text, tokenizer = load_sd(sd.path, arch)
    controlnet = build_controlnet(unet, coding_prior=True, separate_qm=m["separate_qm"])
    load_control(controlnet, control.path, dict(unet.config))
    return CPCModel(unet, vae, text, controlnet, arch, tokenizer_folder=tokenizer)


class _HybridClips(Dataset):
    """Item (seed, index, hq): a deblurring clip, or (hq) an HQ-style clip degraded with the seed's generator."""

    def __init__(self, deblur: CodingPriorDataset, hq: CodingPriorDataset, degrade_cfg: DegradeConfig) -> None:
        self.deblur, self.hq, self.degrade_cfg = deblur, hq, degrade_cfg

    def __getitem__(self, key: tuple[int, int, bool]) -> dict[str, torch.Tensor]:
        seed, index, hq = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            item = (self.hq if hq else self.deblur)[index]
        item.pop("key")
        if hq:
            item["lq"] = degrade(item["gt"], torch.Generator().manual_seed(seed), self.degrade_cfg)
        item["prompt"] = torch.tensor(float(torch.rand((), generator=torch.Generator().manual_seed(seed + 1))))
        return item


def _draw(sizes: tuple[int, int], batch: int, ratio: float) -> Callable[[torch.Generator], list[tuple[int, int, bool]]]:
    """A step's ``batch`` (item seed, clip index, HQ-style) triples: HQ-style with probability ``ratio``."""

    def draw(g: torch.Generator) -> list[tuple[int, int, bool]]:
        hq = (torch.rand(batch, generator=g) < ratio).tolist()
        seeds = torch.randint(2**62, (batch,), generator=g).tolist()
        return [(s, int(torch.randint(sizes[h], (), generator=g)), h) for s, h in zip(seeds, hq, strict=True)]

    return draw


def prepare_batch(model: CPCModel, batch: dict[str, torch.Tensor], prompt_ratio: float) -> dict[str, Any]:
    """Clips (B, T, ...) -> frame-flattened latents, prior, text embeddings for :func:`eps_loss`."""
    b, t = batch["gt"].shape[:2]
    device = model.unet.device

    def flat(x: torch.Tensor) -> torch.Tensor:
        return x.flatten(0, 1).to(device)

    target = model.encode_image(flat(batch["gt"]))
    cond = model.encode_image(flat(batch["lq"]))
    cp = coding_prior(flat(batch["flow_prev"]), flat(batch["flow_valid"]), flat(batch["residual"]), target.shape[-2:])
    prompts = [PROMPT if float(p) < prompt_ratio else "" for p in batch["prompt"]]
    text = model.encode_text(prompts).repeat_interleave(t, dim=0)
    return {"target": target, "cond": cond, "cp": cp.to(model.dtype), "text": text, "clips": b, "frames": t}


def eps_loss(
    model: CPCModel, prepared: dict[str, Any], noise_scheduler: DDPMScheduler, timesteps: torch.Tensor,
    noise: torch.Tensor,
) -> torch.Tensor:
    """MSE between the true and predicted eps at per-clip ``timesteps`` (B,) with ``noise`` like the target."""
    t = timesteps.to(noise.device).repeat_interleave(prepared["frames"])
    noisy = noise_scheduler.add_noise(prepared["target"], noise, t)
    eps = model(noisy, t, prepared["text"], prepared["cond"], prepared["cp"], num_frames=prepared["frames"])
    return F.mse_loss(eps.float(), noise.float())


def train_step(
    model: CPCModel, optimizer: torch.optim.Optimizer, prepared: dict[str, Any], noise_scheduler: DDPMScheduler,
    generator: torch.Generator,
) -> float:
    """One optimisation step on a prepared batch with random timesteps and noise; returns the loss."""
    timesteps = torch.randint(noise_scheduler.config.num_train_timesteps, (prepared["clips"],), generator=generator)
    noise = torch.randn(prepared["target"].shape, generator=generator).to(prepared["target"])
    loss = eps_loss(model, prepared, noise_scheduler, timesteps, noise)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def noise_schedule(arch: CPCArch) -> DDPMScheduler:
    """The training noise schedule of SD 2.1-base (ldm 'linear' = diffusers 'scaled_linear')."""
    return DDPMScheduler(
        num_train_timesteps=arch.train_timesteps, beta_start=arch.beta_start, beta_end=arch.beta_end,
        beta_schedule="scaled_linear", prediction_type="epsilon", clip_sample=False,
    )


def train(
    config: Path, store: Path, out: Path, resume: bool = False, device: str | None = None,
    max_steps: int | None = None,
) -> Path:
    """Train the CPC control branch as ``config`` says on ``store``; returns ``out/final.pt``."""
    cfg = load_config(config)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise TrainConfigError("multi-process (torchrun) training of cpc is not implemented; run one process")
    if cfg["threads"]:
        torch.set_num_threads(int(cfg["threads"]))
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    out = Path(out)
    last = base.open_run(out, resume, cfg, "cpc")
    data, hybrid = cfg["data"], cfg["hybrid"]
    deblur = CodingPriorDataset(store, data["split"], data["clip_len"], data["crop"], data["input"], data["augment"])
    hq = CodingPriorDataset(hybrid["store"] or store, hybrid["split"], data["clip_len"], data["crop"], data["input"],
                            data["augment"])
    for name, ds in (("store", deblur), ("hybrid store", hq)):
        if not ds.has_gt:
            raise TrainConfigError(f"{name} {ds.store_path} split {ds.split!r} has no sharp frames to train on")
    model = build_model(cfg).to(dev)
    if cfg["model"]["gradient_checkpointing"]:
        model.enable_gradient_checkpointing()
    stage1 = _stage1(cfg["stage1"], dev)
    optimizer = torch.optim.AdamW(
        model.controlnet.parameters(), lr=cfg["optim"]["lr"], weight_decay=cfg["optim"]["weight_decay"]
    )
    start = 0
    if resume:
        state = load_torch(last)
        model.controlnet.load_state_dict(state["controlnet"])
        optimizer.load_state_dict(state["optimizer"])
        start = int(state["step"])
    steps = min(cfg["optim"]["steps"], max_steps) if max_steps else cfg["optim"]["steps"]
    sampler = base.StepBatches(_draw((len(deblur), len(hq)), data["batch_size"], hybrid["ratio"]), cfg["seed"], start,
                               steps)  # fmt: skip
    loader = DataLoader(_HybridClips(deblur, hq, DegradeConfig(**cfg["degrade"])), batch_sampler=sampler,
                        num_workers=data["workers"], persistent_workers=False)
    schedule = noise_schedule(model.arch)
    model.train()
    step = start
    with open(out / "log.jsonl", "a") as log:
        for step, batch in enumerate(loader, start=start + 1):
            if stage1 is not None:
                with torch.no_grad():
                    batch["lq"] = torch.stack([
                        stage1.restore({k: v[i] for k, v in batch.items() if k not in ("prompt", "gt")}).cpu()
                        for i in range(batch["lq"].shape[0])
                    ])
            prepared = prepare_batch(model, batch, data["prompt_ratio"])
            generator = torch.Generator().manual_seed(cfg["seed"] * 7919 + step)
            loss = train_step(model, optimizer, prepared, schedule, generator)
            if not torch.isfinite(torch.tensor(loss)):
                raise TrainingError(f"loss became {loss} at step {step}; lower optim.lr in {config}")
            log.write(json.dumps({"step": step, "loss": loss, "lr": cfg["optim"]["lr"]}) + "\n")
            if step % cfg["checkpoint_every"] == 0 or step == steps:
                save_atomic({"controlnet": model.controlnet.state_dict(), "optimizer": optimizer.state_dict(),
                             "step": step}, last)  # fmt: skip
    weights = {"format": FORMAT, "arch": model.arch.name, "separate_qm": cfg["model"]["separate_qm"],
               "controlnet": model.controlnet.state_dict(), "step": step}
    return save_atomic(weights, out / "final.pt")


def _stage1(weights: str | None, device: torch.device) -> Restorer | None:
    """The frozen stage-1 restorer whose output conditions stage 2 (None: condition on the input frames)."""
    if weights is None:
        return None
    from cpgd_bench.models.registry import get_model

    return get_model("cpfp", weights=Path(weights), device=str(device))
