"""The ``input`` model: returns the decoded frames unchanged, the floor every method must beat."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from cpgd_bench.models.registry import ModelError, Restorer


class InputRestorer(Restorer):
    """Identity on ``lq``; it has no weights and runs anywhere."""

    name = "input"

    def __init__(self, weights: Path | None = None, device: str | None = None) -> None:
        if weights is not None:
            raise ModelError(f"model 'input' takes no weights, got --weights {weights}; drop the option")
        self.device = device

    def restore(self, clip: dict[str, torch.Tensor]) -> torch.Tensor:
        return clip["lq"].clamp(0.0, 1.0)

    def provenance(self) -> dict[str, Any]:
        return {**super().provenance(), "notes": "decoded frames, no restoration"}
