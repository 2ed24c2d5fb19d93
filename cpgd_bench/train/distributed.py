"""The process group for DDP under ``torchrun`` (one process per device); a no-op single process otherwise."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from cpgd_bench.errors import CpgdBenchError


class TrainingError(CpgdBenchError, RuntimeError):
    """Training cannot go on (e.g. the loss diverged); the message says why and what to change."""


@dataclass(frozen=True)
class DistContext:
    """This process's rank, the world size and its device."""

    rank: int
    world: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, device: str | None = None) -> DistContext:
        """Join the process group torchrun describes in RANK/WORLD_SIZE/LOCAL_RANK (nccl on CUDA, gloo on CPU)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
        wanted = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if wanted.type == "cuda" and wanted.index is None:
            wanted = torch.device("cuda", local if world > 1 else 0)
        if world > 1 and not dist.is_initialized():
            if wanted.type == "cuda":
                torch.cuda.set_device(wanted)
            dist.init_process_group("nccl" if wanted.type == "cuda" else "gloo", rank=rank, world_size=world)
        return cls(rank, world, wanted)

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()
