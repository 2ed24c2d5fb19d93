"""Check a whole store: layout, indexes, metadata, arrays, dtypes, shapes, chunk files, checksums, attributes.

Everything under the store is accounted for: a split or sequence that is listed in an index but
unreadable, a group that no index lists, an unknown directory, array or file, and attributes that
disagree with the arrays are all problems; leftovers of interrupted builds are warnings.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from tqdm import tqdm

from cpgd_bench.store.locks import describe, is_held, read_holder
from cpgd_bench.store.reader import (
    DamagedDataError,
    chunk_files,
    is_group_dir,
    open_root,
    open_store,
    read_frames,
    read_metadata,
    sequence_problems,
)
from cpgd_bench.store.schema import (
    ARRAYS,
    BITSTREAM,
    CHECKSUMS,
    FRAMES_PER_SHARD,
    SEQUENCE_INDEX,
    SPLIT_INDEX,
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
    """Read an array in frame blocks (one shard at a time) to bound memory; damage raises StoreError."""
    if array.ndim == 0 or array.shape[0] == 0:
        yield read_frames(array)
        return
    for start in range(0, array.shape[0], FRAMES_PER_SHARD):
        yield read_frames(array, slice(start, start + FRAMES_PER_SHARD))


def _checksum(array: zarr.Array, version: int) -> str:
    """The checksum of format ``version`` over the array's values (BLAKE3 in version 3, SHA-256 in 2)."""
    digest = CHECKSUMS[version]()
    for block in _blocks(array):
        update_digest(digest, block)
    return digest.hexdigest()


def _check_attrs(attrs: dict[str, Any], where: str) -> list[str]:
    """Attributes that disagree with the frame count or with their meaning."""
    problems = []
    t = int(attrs["num_frames"])
    if len(attrs["frame_names"]) != t:
        problems.append(f"{where}: {len(attrs['frame_names'])} frame names for {t} frames")
    fps = attrs["fps"]
    if not isinstance(fps, (int, float)) or isinstance(fps, bool) or not fps > 0:
        problems.append(f"{where}: attribute fps={fps!r} is not a positive number")
    return problems


def _check_values(arrays: dict[str, zarr.Array], where: str) -> list[str]:
    """Per-frame values outside their meaning (read only from arrays that passed their checksums)."""
    problems = []
    if "slice_type" in arrays:
        bad = np.setdiff1d(read_frames(arrays["slice_type"]), [0, 1, 2])
        if bad.size:
            problems.append(f"{where}/slice_type: values {bad.tolist()} outside 0 B, 1 P, 2 I")
    if "poc" in arrays:
        poc = read_frames(arrays["poc"])
        if len(np.unique(poc)) != len(poc):
            problems.append(f"{where}/poc: repeated picture order counts")
    return problems


def verify_sequence(directory: Path, group: zarr.Group, where: str, dataset: str, version: int,
                    checksums: bool = True) -> list[str]:  # fmt: skip
    """Problems found in one whole sequence group (see ``sequence_problems``) of a store of format ``version``;
    empty when it is sound."""
    problems = []
    attrs = dict(group.attrs)
    if attrs["format_version"] != version:
        problems.append(f"{where}: format version {attrs['format_version']}, the store's is {version}")
    split, sequence = where.split("/")
    for key, want in (("split", split), ("sequence", sequence), ("dataset", dataset)):
        if attrs[key] != want:
            problems.append(f"{where}: attribute {key}={attrs[key]!r}, expected {want!r}")
    t, h, w = int(attrs["num_frames"]), int(attrs["height"]), int(attrs["width"])
    arrays = dict(group.arrays())
    for entry in sorted(directory.iterdir()):
        if entry.name != "zarr.json" and entry.name not in arrays:
            problems.append(f"{where}: unknown entry {entry.name!r} in the sequence group")
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
        have, want = chunk_files(directory / name, array)
        if have != want:
            problems.append(f"{where}/{name}: {have} of {want} chunk files on disk (lost data); rebuild the sequence")
            continue
        if name not in sums:
            problems.append(f"{where}/{name}: no checksum recorded")
        elif checksums:
            try:
                digest = _checksum(array, version)
            except DamagedDataError as e:
                problems.append(f"{where}/{name}: unreadable, {e.detail}; rebuild the sequence")
                continue
            if digest != sums[name]:
                problems.append(f"{where}/{name}: checksum mismatch (corrupt or changed; rebuild the sequence)")
    for name in sorted(set(sums) - set(arrays)):
        problems.append(f"{where}: checksum recorded for missing array {name}")
    problems += _check_attrs(attrs, where)
    if not problems:
        problems += _check_values(arrays, where)
    return problems


def _children(directory: Path, index_key: str, kind: str, report: VerifyReport) -> list[str]:
    """Visible child groups of ``directory``; records unknown, unreadable and unindexed entries as problems."""
    meta = read_metadata(directory) or {}
    indexed = meta.get("attributes", {}).get(index_key)
    if not isinstance(indexed, list):
        report.problems.append(f"{directory}: no {index_key!r} index in its attributes (not written by this version)")
        indexed = []
    found = []
    for entry in sorted(directory.iterdir()):
        name = entry.name
        if name in ("zarr.json", LOCK_NAME):
            continue
        if name.endswith(".partial"):
            report.warnings.append(f"{entry}: half-written metadata of a killed build (the next build removes it)")
        elif TMP_MARK in name and name.startswith("."):
            if not name.endswith(".lock"):
                lock = entry.with_name(name + ".lock")
                state = f"being written by {describe(read_holder(lock))}" if is_held(lock) else "unfinished"
                report.warnings.append(f"{entry}: {state} sequence (rerun the build to resume and remove it)")
        elif not entry.is_dir() or not is_group_dir(entry):
            what = f"listed in {directory / 'zarr.json'} but unreadable" if name in indexed else "unknown or unreadable"
            report.problems.append(f"{entry}: {what} {kind} (no valid Zarr group metadata)")
        elif name not in indexed:
            report.problems.append(f"{entry}: {kind} group not listed in {directory / 'zarr.json'} ({index_key})")
        else:
            found.append(name)
    for name in sorted(set(indexed) - {e.name for e in directory.iterdir() if e.is_dir()}):
        report.problems.append(f"{directory / name}: {kind} listed in {directory / 'zarr.json'} is missing")
    return found


def verify_store(path: str | Path, checksums: bool = True, progress: bool = False) -> VerifyReport:
    """Verify everything in the store at ``path`` (see the module docstring).

    Raises StoreError (one line) when the store is missing or of another format version.
    """
    store = open_store(path)
    report = VerifyReport(path=store.path)
    lock = store.path / LOCK_NAME
    if is_held(lock):
        report.warnings.append(f"a build is writing this store: {describe(read_holder(lock))} holds {lock}")
    keys = []
    for split in _children(store.path, SPLIT_INDEX, "split", report):
        keys += [(split, seq) for seq in _children(store.path / split, SEQUENCE_INDEX, "sequence", report)]
    if not keys and not report.problems:
        report.problems.append(f"store {store.path} holds no sequences")
    root = open_root(store.path)
    for split, seq in tqdm(keys, desc="verify", unit="seq", disable=not progress):
        directory = store.path / split / seq
        problems = sequence_problems(directory, f"{split}/{seq}")
        if not problems:
            group = root[f"{split}/{seq}"]
            problems = verify_sequence(directory, group, f"{split}/{seq}", store.dataset,
                                       store.attrs["format_version"], checksums=checksums)
            report.frames += int(group.attrs.get("num_frames", 0))
        report.problems += problems
        report.sequences += 1
    return report
