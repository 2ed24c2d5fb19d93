"""CPFP weight files: the architecture and the state dict in one ``torch.save`` dict, loaded with weights_only.

A weight file (``final.pt``, the bundled demo weights) holds ``{"format", "arch", "model", "step"}``; a
training checkpoint (``last.pt``) adds the optimizer, scheduler and RNG state, and loads the same way.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from cpgd_bench.models.cpgd.cpfp.model import CPFP, CPFPConfig
from cpgd_bench.models.registry import ModelError
from cpgd_bench.weights import load_torch

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
    payload = load_torch(path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelError(f"{path} is not a CPFP weight file (format {FORMAT!r}); use `cpgd-bench train --stage cpfp`")
    for key, kind in (("arch", dict), ("model", dict), ("step", int)):
        value = payload.get(key, 0) if key == "step" else payload.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ModelError(f"CPFP weights {path} have no {kind.__name__} {key!r} (got {type(value).__name__}); "
                             "write them with `cpgd-bench train --stage cpfp`")
    return payload


def _shape_mismatch(config: CPFPConfig, state: dict[Any, Any]) -> str | None:
    """How ``state``'s keys/shapes differ from the network ``config`` declares (built on the meta device: no memory)."""
    with torch.device("meta"):
        declared = {k: tuple(v.shape) for k, v in CPFP(config).state_dict().items()}
    given = {k: tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__ for k, v in state.items()}
    missing, unexpected = sorted(declared.keys() - given.keys()), sorted(map(str, given.keys() - declared.keys()))
    if missing or unexpected:
        return f"missing {missing[:2]}, unexpected {unexpected[:2]}"
    wrong = next((k for k in declared if declared[k] != given[k]), None)
    return None if wrong is None else f"{wrong}: {given[wrong]} in the file, {declared[wrong]} declared"


def load_cpfp(path: Path, device: str | torch.device = "cpu") -> tuple[CPFP, dict[str, Any]]:
    """Build the network a weight file describes and load its weights; returns (model in eval mode, payload).

    The declared architecture is checked option by option and against the stored tensors' shapes before
    any memory is allocated: a malformed file is a one-line ModelError naming it.
    """
    payload = read_payload(path)
    try:
        config = CPFPConfig.from_dict(payload["arch"])
    except ValueError as e:  # ConfigError, AlignmentError
        raise ModelError(f"CPFP weights {path} declare an invalid architecture: {e}") from None
    detail = _shape_mismatch(config, payload["model"])
    if detail is not None:
        raise ModelError(f"CPFP weights {path} do not match the architecture they declare ({detail})")
    model = CPFP(config)
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as e:
        detail = " ".join(str(e).split())[:200]
        raise ModelError(f"CPFP weights {path} do not match the architecture they declare ({detail})") from None
    return model.to(device).eval(), payload
