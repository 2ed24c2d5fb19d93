"""Check a store against the schema: arrays, dtypes, shapes, frame counts and SHA-256 checksums."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zarr
from tqdm import tqdm

from cpgd_bench.store.reader import open_store
from cpgd_bench.store.schema import (
    ARRAYS,
    BITSTREAM,
    FORMAT_VERSION,
    FRAMES_PER_SHARD,
    SEQUENCE_ATTRS,
    spec,
    update_digest,
)
from cpgd_bench.store.writer import LOCK_NAME, TMP_MARK


@dataclass
class VerifyReport:
    """Outcome of :func:`verify_store`: ``problems`` make it fail, ``warnings`` do not."""

    path: Path
    sequences: int = 0
    frames: int = 0
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems


def _blocks(array: zarr.Array) -> Iterator[np.ndarray]:
    """Read an array in frame blocks (one shard at a time) to bound memory."""
    if array.ndim == 0 or array.shape[0] == 0:
        yield array[...]
        return
    for start in range(0, array.shape[0], FRAMES_PER_SHARD):
        yield array[start : start + FRAMES_PER_SHARD]


def _checksum(array: zarr.Array) -> str:
    digest = hashlib.sha256()
    for block in _blocks(array):
        update_digest(digest, block)
    return digest.hexdigest()


def verify_sequence(group: zarr.Group, where: str, dataset: str, checksums: bool = True) -> list[str]:
    """Problems found in one sequence group (empty when it matches the schema)."""
    problems: list[str] = []
    attrs = dict(group.attrs)
    missing = [k for k in SEQUENCE_ATTRS if k not in attrs]
    if missing:
        return [f"{where}: attributes {missing} are missing (unfinished or foreign group)"]
    if attrs["format_version"] != FORMAT_VERSION:
        problems.append(f"{where}: format version {attrs['format_version']}, expected {FORMAT_VERSION}")
    split, sequence = where.split("/")
    for key, want in (("split", split), ("sequence", sequence), ("dataset", dataset)):
        if attrs[key] != want:
            problems.append(f"{where}: attribute {key}={attrs[key]!r}, expected {want!r}")
    t, h, w = int(attrs["num_frames"]), int(attrs["height"]), int(attrs["width"])
    if len(attrs["frame_names"]) != t:
        problems.append(f"{where}: {len(attrs['frame_names'])} frame names for {t} frames")
    arrays = dict(group.arrays())
    for name, s in ARRAYS.items():
        if s.required and name not in arrays:
            problems.append(f"{where}: required array {name} is missing")
    sums: dict[str, str] = dict(attrs["checksums"])
    for name, array in sorted(arrays.items()):
        if name not in ARRAYS and name != BITSTREAM.name:
            problems.append(f"{where}: array {name} is not in the schema")
            continue
        s = spec(name)
        if array.dtype != s.dtype:
            problems.append(f"{where}/{name}: dtype {array.dtype}, expected {s.dtype}")
        if name == BITSTREAM.name:
            if array.ndim != 1:
                problems.append(f"{where}/{name}: shape {array.shape}, expected 1-D bytes")
        elif array.shape != s.shape(t, h, w):
            problems.append(f"{where}/{name}: shape {array.shape}, expected {s.shape(t, h, w)}")
        if name not in sums:
            problems.append(f"{where}/{name}: no checksum recorded")
        elif checksums:
            try:
                digest = _checksum(array)
            except Exception as e:  # corrupt chunk data surfaces as codec errors of many types
                problems.append(f"{where}/{name}: unreadable ({type(e).__name__}: {e}); rebuild the sequence")
                continue
            if digest != sums[name]:
                problems.append(f"{where}/{name}: checksum mismatch (corrupt or changed; rebuild the sequence)")
    for name in sorted(set(sums) - set(arrays)):
        problems.append(f"{where}: checksum recorded for missing array {name}")
    if not problems and "slice_type" in arrays:
        bad = np.setdiff1d(arrays["slice_type"][...], [0, 1, 2])
        if bad.size:
            problems.append(f"{where}/slice_type: values {bad.tolist()} outside 0 B, 1 P, 2 I")
    return problems


def verify_store(path: str | Path, checksums: bool = True, progress: bool = False) -> VerifyReport:
    """Verify every sequence of the store at ``path``.

    Raises StoreError (one line) when the store is missing or of another format version.
    """
    store = open_store(path)
    report = VerifyReport(path=store.path)
    if (store.path / LOCK_NAME).exists():
        report.warnings.append(f"{store.path / LOCK_NAME} exists: a build is running or was interrupted")
    keys = []
    for split in store.splits():
        keys += [(split, seq) for seq in store.sequences(split)]
        for tmp in sorted((store.path / split).glob(f".*{TMP_MARK}*")):
            report.warnings.append(f"{tmp}: unfinished sequence (rerun the build to resume and remove it)")
    if not keys:
        report.problems.append(f"store {store.path} holds no sequences")
    for split, seq in tqdm(keys, desc="verify", unit="seq", disable=not progress):
        group = store.group(split, seq)
        report.problems += verify_sequence(group, f"{split}/{seq}", store.dataset, checksums=checksums)
        report.sequences += 1
        report.frames += int(group.attrs.get("num_frames", 0))
    return report
