"""Helpers for the store / dataset tests: deterministic schema-conformant sequences without a codec."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cpgd_bench.store import StoreWriter
from cpgd_bench.store.schema import ARRAYS


def random_sequence(seed: int, t: int = 20, h: int = 40, w: int = 52, sharp: bool = True) -> dict[str, np.ndarray]:
    """Random arrays with every schema array at the right dtype and shape (H, W not multiples of 8)."""
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for name, spec in ARRAYS.items():
        if name == "sharp" and not sharp:
            continue
        shape = spec.shape(t, h, w)
        info = np.iinfo(spec.dtype) if spec.dtype.kind in "iu" else None
        if info is None:
            out[name] = rng.normal(size=shape).astype(spec.dtype)
        else:
            out[name] = rng.integers(max(info.min, -300), min(info.max, 300), size=shape, endpoint=True).astype(
                spec.dtype
            )
    out["slice_type"] = rng.integers(0, 3, size=t).astype(np.uint8)
    out["poc"] = np.arange(t, dtype=np.int32)
    out["bitstream"] = rng.integers(0, 256, size=1000).astype(np.uint8)
    return out


def sequence_attrs(t: int) -> dict:
    return {"fps": 30.0, "frame_names": [f"{i:05d}.png" for i in range(t)], "codec": {"bit_depth": 10}}


def write_store(path: Path, sequences: dict[tuple[str, str], dict[str, np.ndarray]]) -> Path:
    """Write ``{(split, name): arrays}`` as dataset ``unit`` at ``path``."""
    with StoreWriter(path, "unit", {"codec_profile": {"name": "unit"}}) as writer:
        for (split, name), arrays in sequences.items():
            writer.write_sequence(split, name, arrays, sequence_attrs(len(arrays["decoded"])))
    return path


def edit_attrs(group: Path, **attrs: object) -> None:
    """Change attributes of the Zarr group at ``group`` in its ``zarr.json`` (as a hostile user or old build would)."""
    meta = json.loads((group / "zarr.json").read_text())
    meta["attributes"].update(attrs)
    (group / "zarr.json").write_text(json.dumps(meta))


def test_random_sequence_is_deterministic() -> None:
    a, b = random_sequence(3), random_sequence(3)
    assert a.keys() == b.keys()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["mv"], random_sequence(4)["mv"])
