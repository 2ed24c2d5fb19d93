"""CPFP weight files: the architecture and the state dict in one ``torch.save`` dict, loaded with weights_only.

A weight file (``final.pt``, the bundled demo weights) holds ``{"format", "arch", "model", "step"}``; a
training checkpoint (``last.pt``) adds the optimizer, scheduler and RNG state, and loads the same way.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from cpgd_bench.models.cpgd.cpfp import CPFP, CPFPConfig
from cpgd_bench.models.registry import ModelError

FORMAT = "cpgd-bench/cpfp-1"


def save_atomic(payload: dict[str, Any], path: Path) -> Path:
    """``torch.save`` to a temporary file, then rename: a crash never leaves a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def weights_payload(model: CPFP, step: int) -> dict[str, Any]:
    """The inference part of a checkpoint: format tag, architecture, state dict and training step."""
    return {"format": FORMAT, "arch": model.config.to_dict(), "model": model.state_dict(), "step": step}


def read_payload(path: Path) -> dict[str, Any]:
    """Load a weight file or checkpoint (weights_only) and check it is a CPFP one; one-line errors."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"CPFP weights {path} not found; pass a file written by `cpgd-bench train --stage cpfp`")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle/zip errors differ by torch version; all mean "not a weight file"
        raise ModelError(f"CPFP weights {path} cannot be read ({type(e).__name__}); is it a torch.save file?") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelError(f"{path} is not a CPFP weight file (format {FORMAT!r}); use `cpgd-bench train --stage cpfp`")
    return payload


def load_cpfp(path: Path, device: str | torch.device = "cpu") -> tuple[CPFP, dict[str, Any]]:
    """Build the network a weight file describes and load its weights; returns (model in eval mode, payload)."""
    payload = read_payload(path)
    model = CPFP(CPFPConfig.from_dict(dict(payload["arch"])))
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as e:
        detail = " ".join(str(e).split())[:200]
        raise ModelError(f"CPFP weights {path} do not match the architecture they declare ({detail})") from None
    return model.to(device).eval(), payload
