"""Train CPFP (stage 1): L1 loss, Adam, cosine learning rate, random crops, checkpoints, resume, validation, DDP.

Config (YAML, ``manifests/train/cpfp-*.yaml``)::

    seed: 0
    model: {...}                 # CPFPConfig options (cpgd_bench.models.cpgd.cpfp.model)
    raft_weights: null           # RAFT state dict, needed by alignment raft / raft-mv-init
    data: {split: train, input: decoded, crop: 256, clip_len: 7, batch_size: 8, workers: 2, augment: true,
           compact: true}         # compact: block-resolution flows, uint8/int16 pixels, expanded on the device
    optim: {lr: 1.0e-4, betas: [0.9, 0.99], eta_min: 1.0e-7, steps: 300000, grad_clip: null}
    val: {split: test, every: 5000, clip_len: 24}
    checkpoint_every: 5000
    threads: null                # torch CPU threads (null: torch's default)

``batch_size`` is global: under ``torchrun`` each of the N processes takes ``batch_size / N`` clips.
The data stream is a pure function of (seed, step): clip choices and crops are drawn from generators
seeded by the step, so a resumed run, any number of DataLoader workers or processes see the same data.
Outputs in ``out``: ``last.pt`` (full checkpoint, for ``--resume``), ``final.pt`` (weights only),
``log.jsonl`` (loss, lr, validation PSNR) and ``config.yaml``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from cpgd_bench.data import CodingPriorDataset
from cpgd_bench.models.cpgd.cpfp.alignment import load_raft_weights
from cpgd_bench.models.cpgd.cpfp.checkpoint import read_payload, save_atomic, weights_payload
from cpgd_bench.models.cpgd.cpfp.model import CPFP, CPFPConfig
from cpgd_bench.train import base
from cpgd_bench.train.base import TrainConfigError
from cpgd_bench.train.distributed import DistContext, TrainingError

PRIORS = ("flow_prev", "flow_next", "flow_valid", "residual")
DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "model": {},
    "raft_weights": None,
    "data": {"split": "train", "input": "decoded", "crop": 256, "clip_len": 7, "batch_size": 8, "workers": 2,
             "augment": True, "compact": True},
    "optim": {"lr": 1.0e-4, "betas": [0.9, 0.99], "eta_min": 1.0e-7, "steps": 300_000, "grad_clip": None},
    "val": {"split": "test", "every": 5000, "clip_len": 24},
    "checkpoint_every": 5000,
    "threads": None,
}  # fmt: skip


def load_config(path: Path) -> dict[str, Any]:
    """The YAML config at ``path`` merged over :data:`DEFAULTS`; model options are checked before any data is read."""
    config = base.load_config(path, DEFAULTS, "cpfp", whole=("model",))
    CPFPConfig.from_dict(config["model"])
    return config


class _SeededClips(Dataset):
    """Items keyed by (seed, index): the dataset's random crop and flips are drawn from that seed."""

    def __init__(self, dataset: CodingPriorDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        seed, index = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            item = self.dataset[index]
        item.pop("key")
        return item


def _draw(size: int, batch: int, rank: int, world: int) -> Callable[[torch.Generator], list[tuple[int, int]]]:
    """This rank's share of a step's ``batch`` (item seed, clip index) pairs."""
    per_rank = batch // world
    mine = slice(rank * per_rank, (rank + 1) * per_rank)

    def draw(g: torch.Generator) -> list[tuple[int, int]]:
        indices = torch.randint(size, (batch,), generator=g).tolist()
        seeds = torch.randint(2**62, (batch,), generator=g).tolist()
        return list(zip(seeds[mine], indices[mine], strict=True))

    return draw


def psnr(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Per-frame RGB PSNR (dB) of (N, 3, H, W) images in [0, 1]."""
    mse = ((pred.clamp(0, 1) - gt) ** 2).flatten(1).mean(1)
    return -10.0 * torch.log10(mse.clamp_min(1e-10))


@torch.no_grad()
def validate(model: CPFP, store: Path, split: str, clip_len: int, device: torch.device) -> dict[str, float]:
    """Mean per-frame PSNR of the model and of its input over every frame of ``split`` (full frames)."""
    dataset = CodingPriorDataset(store, split, clip_len=1, crop=None, augment=False, mode="test")
    shortest = min(seq.frames for seq in dataset.sequences)
    dataset = CodingPriorDataset(store, split, clip_len=min(clip_len, shortest), crop=None, augment=False, mode="test")
    if not dataset.has_gt:
        raise TrainConfigError(f"validation split {split!r} of {store} has no sharp frames; set val.split")
    was_training = model.training
    model.eval()
    seen: set[tuple[str, int]] = set()
    scores, inputs = [], []
    for item in dataset:
        new = [i for i, f in enumerate(item["key"]["frames"].tolist()) if (item["key"]["sequence"], f) not in seen]
        seen.update((item["key"]["sequence"], f) for f in item["key"]["frames"][new].tolist())
        batch = {k: item[k][None].to(device) for k in ("lq", *PRIORS)}
        out = model(**batch)[0, new].cpu()
        scores.append(psnr(out, item["gt"][new]))
        inputs.append(psnr(item["lq"][new], item["gt"][new]))
    model.train(was_training)
    return {"val_psnr": float(torch.cat(scores).mean()), "input_psnr": float(torch.cat(inputs).mean()),
            "val_frames": len(seen)}  # fmt: skip


def _checkpoint(
    model: CPFP, optimizer: torch.optim.Optimizer, scheduler: Any, step: int, config: dict[str, Any]
) -> dict[str, Any]:
    return {**weights_payload(model, step), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "config": config, "torch_rng": torch.get_rng_state()}  # fmt: skip


def train(
    config: Path,
    store: Path,
    out: Path,
    resume: bool = False,
    device: str | None = None,
    max_steps: int | None = None,
) -> Path:
    """Train CPFP as ``config`` says on ``store``; checkpoints in ``out``; returns the path of ``final.pt``.

    ``resume`` continues from ``out/last.pt``; ``max_steps`` stops after that step (the cosine schedule
    still spans ``optim.steps``), e.g. to train in chunks or for a smoke test.
    """
    cfg = load_config(config)
    out = Path(out)
    ctx = DistContext.from_env(device)
    try:
        return _train(cfg, Path(config), Path(store), out, resume, ctx, max_steps)
    finally:
        ctx.close()


def _train(
    cfg: dict[str, Any], config: Path, store: Path, out: Path, resume: bool, ctx: DistContext, max_steps: int | None
) -> Path:
    data, optim, val = cfg["data"], cfg["optim"], cfg["val"]
    if cfg["threads"]:
        torch.set_num_threads(int(cfg["threads"]))
    if data["batch_size"] % ctx.world:
        raise TrainConfigError(f"{config}: data.batch_size {data['batch_size']} is not a multiple of {ctx.world} ranks")
    torch.manual_seed(cfg["seed"])
    model = CPFP(CPFPConfig.from_dict(cfg["model"]))
    if model.flow.raft is not None:
        if not cfg["raft_weights"]:
            alignment = model.config.alignment
            raise TrainConfigError(f"{config}: alignment {alignment!r} needs raft_weights: <path to RAFT .pth>")
        load_raft_weights(model.flow.raft, Path(cfg["raft_weights"]))
    model.to(ctx.device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=optim["lr"], betas=tuple(optim["betas"]))
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=optim["steps"], eta_min=optim["eta_min"])
    step = 0
    last = base.open_run(out, resume, cfg, "cpfp", ctx.is_main)
    if resume:
        state = read_payload(last)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        step = int(state["step"])
    end = min(optim["steps"], max_steps) if max_steps is not None else optim["steps"]

    compact = {"prior_resolution": "block", "dtype": "stored"} if data["compact"] else {}
    clips = CodingPriorDataset(store, data["split"], clip_len=data["clip_len"], crop=data["crop"],
                               input=data["input"], augment=data["augment"], mode="train", **compact)  # fmt: skip
    draw = _draw(len(clips), data["batch_size"], ctx.rank, ctx.world)
    batches = base.StepBatches(draw, cfg["seed"], step, end)
    loader = DataLoader(_SeededClips(clips), batch_sampler=batches, num_workers=data["workers"],
                        persistent_workers=False, pin_memory=ctx.device.type == "cuda")  # fmt: skip
    net: torch.nn.Module = model
    if ctx.world > 1:
        net = DistributedDataParallel(model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
    model.train()
    log = out / "log.jsonl"
    bar = tqdm(total=end, initial=step, desc="cpfp", disable=not ctx.is_main, dynamic_ncols=True)
    started = time.monotonic()
    for batch in loader:
        batch = clips.expand({k: v.to(ctx.device, non_blocking=True) for k, v in batch.items()})  # on the device
        pred = net(**{k: batch[k] for k in ("lq", *PRIORS)})
        loss = F.l1_loss(pred, batch["gt"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if optim["grad_clip"]:
            torch.nn.utils.clip_grad_norm_(trainable, optim["grad_clip"])
        optimizer.step()
        scheduler.step()
        step += 1
        if not math.isfinite(loss.item()):
            raise TrainingError(f"training diverged at step {step} (loss {loss.item()}); lower optim.lr, set grad_clip")
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}")
        record: dict[str, Any] = {"step": step, "loss": loss.item(), "lr": scheduler.get_last_lr()[0],
                                  "elapsed_s": round(time.monotonic() - started, 1)}  # fmt: skip
        if ctx.is_main and (step % val["every"] == 0 or step == end):
            record.update(validate(model, store, val["split"], val["clip_len"], ctx.device))
            bar.write(f"step {step}: val PSNR {record['val_psnr']:.3f} dB (input {record['input_psnr']:.3f} dB)")
        if ctx.is_main and (step % cfg["checkpoint_every"] == 0 or step == end):
            save_atomic(_checkpoint(model, optimizer, scheduler, step, cfg), last)
        if ctx.is_main:
            with open(log, "a") as f:
                f.write(json.dumps(record) + "\n")
    bar.close()
    final = out / "final.pt"
    if ctx.is_main:
        save_atomic(weights_payload(model, step), final)
    ctx.barrier()
    return final
