"""A tiny coding-prior store (translating textures with exact MVs) and tiny CPFP training configs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import yaml

from cpgd_bench.store import StoreWriter

from .test_dataset import T, translating_sequence
from .test_store_util import sequence_attrs

TINY_MODEL = {"channels": 8, "deform_groups": 2, "encoder_blocks": 1, "fusion_blocks": 1, "decoder_blocks": 1}


def degraded_sequence(seed: int) -> dict[str, np.ndarray]:
    """A translating texture whose decoded frames are the sharp ones plus noise."""
    arrays = translating_sequence(seed)
    noise = np.random.default_rng(seed + 100).normal(0, 12, arrays["sharp"].shape)
    arrays["decoded"] = np.clip(arrays["sharp"] + noise, 0, 255).astype(np.uint8)
    return arrays


def tiny_store(path: Path) -> Path:
    """Splits train (2 sequences) and test (1), 12 frames of 48x64 each."""
    with StoreWriter(path, "unit") as writer:
        writer.write_sequence("train", "s0", degraded_sequence(0), sequence_attrs(T))
        writer.write_sequence("train", "s1", degraded_sequence(1), sequence_attrs(T))
        writer.write_sequence("test", "s2", degraded_sequence(2), sequence_attrs(T))
    return path


def tiny_config(path: Path, **overrides: Any) -> Path:
    """A YAML training config for a few steps of a tiny network on :func:`tiny_store` data."""
    config: dict[str, Any] = {
        "stage": "cpfp",
        "seed": 3,
        "model": dict(TINY_MODEL),
        "data": {"crop": 32, "clip_len": 3, "batch_size": 2, "workers": 0},
        "optim": {"lr": 1e-3, "steps": 4},
        "val": {"every": 2, "clip_len": 6},
        "checkpoint_every": 2,
        "threads": 1,
    }
    for key, value in overrides.items():
        if isinstance(value, dict):
            config.setdefault(key, {}).update(value)
        else:
            config[key] = value
    path.write_text(yaml.safe_dump(config))
    return path
