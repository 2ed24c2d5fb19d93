"""Atomic, resumable writer of a coding-prior store.

Each sequence is written as a complete Zarr group under a hidden temporary name
``<split>/.<sequence>.tmp-<pid>-<token>`` and renamed to ``<split>/<sequence>`` only when every array
and attribute is on disk: a reader never sees half a sequence. The writer of a temporary group holds
the ``flock`` of ``<temporary name>.lock`` from before the group exists until after the rename, so a
temporary group whose lock is free belongs to a dead writer and is removed by the next build, and one
whose lock is held is never touched.

One build driver per store at a time: it holds the ``flock`` of ``<store>/.build.lock`` (a file store
creation never rewrites; see :mod:`cpgd_bench.store.locks`). The lock holder keeps two indexes, the
root's ``splits`` and each split's ``sequences`` attribute, so a group whose metadata is later lost or
garbled is reported by readers and ``verify`` instead of silently disappearing.
"""

from __future__ import annotations

import datetime as _dt
import os
import secrets
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import zarr

from cpgd_bench.store.errors import StoreError
from cpgd_bench.store.locks import FileLock, describe, is_held, read_holder
from cpgd_bench.store.reader import check_format, is_group_dir, read_root_attrs, sequence_problems
from cpgd_bench.store.schema import (
    ARRAYS,
    BITSTREAM,
    FORMAT_VERSION,
    SEQUENCE_INDEX,
    SPLIT_INDEX,
    check_name,
    spec,
)
from cpgd_bench.store.sequence_writer import SequenceWriter, check_sequence_attrs

LOCK_NAME = ".build.lock"
TMP_MARK = ".tmp-"
#: How long a new build waits for the writers of an earlier, killed build to notice and exit (seconds).
ORPHAN_WAIT = 15.0


def now_iso() -> str:
    """Current UTC time, ISO 8601, seconds resolution."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def _update_index(directory: Path, key: str, name: str) -> None:
    """Add ``name`` to the list attribute ``key`` of the group at ``directory`` (lock holder only)."""
    group = zarr.open_group(directory, mode="r+", zarr_format=3)
    listed = list(group.attrs.get(key, []))
    if name not in listed:
        group.attrs[key] = sorted([*listed, name])


class StoreWriter:
    """Create or reopen the store at ``path`` for dataset ``dataset`` and add sequences to it.

    ``root_attrs`` (for example the source's description and the codec profile) are recorded on
    creation. Use as a context manager, or call :meth:`close` to release the lock.
    ``lock=False`` attaches a worker of a parallel build to an existing store whose lock the driving
    build holds: it takes no store lock, removes nothing and updates no index (the driver indexes
    what its workers commit); per-call temporary names keep concurrent writers of different sequences apart.
    ``attributes_only=True`` holds the lock to update root attributes (``dataset quality``'s summary) and adds no
    sequence, so a store of an older format version this package reads is accepted too.
    """

    def __init__(
        self, path: str | Path, dataset: str, root_attrs: Mapping[str, Any] | None = None, *, lock: bool = True,
        attributes_only: bool = False,
    ) -> None:  # fmt: skip
        self.path = Path(path)
        self.dataset = check_name("dataset", dataset)
        self._lock: FileLock | None = None
        self._open = True
        if not lock:
            if not (self.path / "zarr.json").exists():
                raise StoreError(f"store {self.path} is not reachable from this worker; use a shared filesystem path")
            return
        foreign = StoreError(f"{self.path} exists and is not a coding-prior store; choose another path")
        if self.path.exists() and not self.path.is_dir():
            raise foreign
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(self.path / LOCK_NAME, f"store {self.path}")
        if not (self.path / "zarr.json").exists() and any(e.name != LOCK_NAME for e in self.path.iterdir()):
            self._lock.release(unlink=True)
            raise foreign
        try:
            self._open_root(dataset, root_attrs, attributes_only)
            self._remove_stale()
        except BaseException:
            self.close()
            raise

    @property
    def token(self) -> str | None:
        """The random token of this writer's store lock (None for a worker): workers watch it."""
        return None if self._lock is None else self._lock.token

    def _open_root(self, dataset: str, root_attrs: Mapping[str, Any] | None, attributes_only: bool) -> None:
        if (self.path / "zarr.json").exists():
            attrs = read_root_attrs(self.path)
            check_format(self.path, attrs, adding_sequences=not attributes_only)  # none into another version
            if attrs.get("dataset") != dataset:
                raise StoreError(
                    f"store {self.path} holds dataset {attrs.get('dataset')!r}, not {dataset!r}; "
                    "choose another --out path"
                )
            return
        attrs = {"format_version": FORMAT_VERSION, "dataset": dataset, "created": now_iso(), SPLIT_INDEX: []}
        attrs.update(root_attrs or {})
        zarr.create_group(self.path, zarr_format=3, attributes=attrs)  # leaves the lock file alone

    def _remove_stale(self) -> None:
        """Remove temporary groups of dead writers (waiting briefly for orphans of a killed build to exit)."""
        for partial in self.path.glob("*.partial"):  # Zarr's own half-written metadata files
            partial.unlink(missing_ok=True)
        for split_dir in self.path.iterdir():
            if not split_dir.is_dir() or split_dir.name.startswith("."):
                continue
            for partial in split_dir.glob("*.partial"):
                partial.unlink(missing_ok=True)
            for tmp in split_dir.glob(f".*{TMP_MARK}*"):
                if tmp.suffix == ".lock":
                    if not tmp.with_suffix("").exists() and not is_held(tmp):
                        tmp.unlink(missing_ok=True)
                    continue
                lock = tmp.with_name(tmp.name + ".lock")
                deadline = time.monotonic() + ORPHAN_WAIT
                while is_held(lock):
                    if time.monotonic() > deadline:
                        raise StoreError(
                            f"{tmp} is still being written by {describe(read_holder(lock))}, a writer of an "
                            "earlier build; wait for it to exit, or stop it, then rerun"
                        )
                    time.sleep(0.1)
                shutil.rmtree(tmp, ignore_errors=True)
                lock.unlink(missing_ok=True)

    def require_split(self, split: str) -> None:
        """Create split group ``split`` if missing and record it in the root's split index (lock holder)."""
        check_name("split", split)
        if not (self.path / split / "zarr.json").exists():
            zarr.create_group(self.path / split, zarr_format=3, attributes={SEQUENCE_INDEX: []})
        _update_index(self.path, SPLIT_INDEX, split)

    def index_sequence(self, split: str, sequence: str) -> None:
        """Record committed sequence ``split/sequence`` in its split's index (the lock holder does this)."""
        if self._lock is None:
            raise StoreError(f"store {self.path}: only the writer holding the store lock updates the index")
        _update_index(self.path / split, SEQUENCE_INDEX, sequence)

    def adopt_unindexed(self) -> list[str]:
        """Index complete sequences a killed build committed but did not index; returns their keys.

        Raises a one-line StoreError for a visible sequence group that is not whole (never expected:
        sequences appear by atomic rename only).
        """
        adopted = []
        for split in read_root_attrs(self.path).get(SPLIT_INDEX, []):
            split_dir = self.path / split
            if not is_group_dir(split_dir):
                continue
            indexed = set(zarr.open_group(split_dir, mode="r", zarr_format=3).attrs.get(SEQUENCE_INDEX, []))
            for seq_dir in sorted(d for d in split_dir.iterdir() if d.is_dir() and not d.name.startswith(".")):
                if seq_dir.name in indexed:
                    continue
                problems = sequence_problems(seq_dir, f"{split}/{seq_dir.name}")
                if problems:
                    raise StoreError(f"store {self.path}: {problems[0]}; delete {seq_dir} and rerun the build")
                self.index_sequence(split, seq_dir.name)
                adopted.append(f"{split}/{seq_dir.name}")
        return adopted

    def close(self) -> None:
        """Release the store lock (if this writer holds it); the writer takes no more sequences."""
        self._open = False
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def has_sequence(self, split: str, sequence: str) -> bool:
        """Whether ``split/sequence`` is complete in the store (finished sequences are skipped on resume)."""
        return is_group_dir(self.path / split / sequence)

    def open_sequence(self, split: str, sequence: str, num_frames: int, height: int, width: int) -> SequenceWriter:
        """Start sequence ``split/sequence`` of ``num_frames`` frames of ``height`` x ``width``.

        Returns a :class:`SequenceWriter` (use it as a context manager): arrays are written whole or in
        frame blocks as they become available, compressed in the background, and the sequence appears
        in the store only at its ``commit``.
        """
        check_name("split", split)
        check_name("sequence", sequence)
        if not self._open:
            raise StoreError(f"writer for {self.path} is closed")
        if num_frames < 1:
            raise StoreError(f"sequence {split}/{sequence}: no frames")
        final = self.path / split / sequence
        if final.exists():
            raise StoreError(f"{final} already exists; delete it to rebuild that sequence")
        split_dir = self.path / split
        if not (split_dir / "zarr.json").exists():
            if self._lock is None:
                raise StoreError(f"store {self.path} has no split group {split!r}; the build driver creates it")
            self.require_split(split)
        tmp = split_dir / f".{sequence}{TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}"
        lock = FileLock(tmp.with_name(tmp.name + ".lock"), f"temporary group {tmp}")
        group_attrs = {
            "format_version": FORMAT_VERSION, "dataset": self.dataset, "split": split, "sequence": sequence,
            "num_frames": num_frames, "height": height, "width": width, "created": now_iso(),
        }  # fmt: skip
        on_commit = None if self._lock is None else (lambda: self.index_sequence(split, sequence))
        try:
            return SequenceWriter(tmp, final, f"{split}/{sequence}", (num_frames, height, width), group_attrs,
                                  lock, on_commit)  # fmt: skip
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            lock.release(unlink=True)
            raise

    def write_sequence(
        self,
        split: str,
        sequence: str,
        arrays: Mapping[str, np.ndarray],
        attrs: Mapping[str, Any],
    ) -> Path:
        """Write one sequence atomically and return its group directory.

        ``arrays`` must hold every required schema array with the schema dtype and consistent shapes
        (``bitstream``, ``sharp`` and ``camera`` are optional). ``attrs`` must give at least ``fps``,
        ``frame_names`` and ``codec``; it is stored as the group's attributes together with the format version,
        dataset, split, sequence, frame count, size, creation time and per-array SHA-256 checksums.
        """
        t, h, w = validate_arrays(arrays, f"{split}/{sequence}")
        check_sequence_attrs(attrs, t, f"{split}/{sequence}")
        with self.open_sequence(split, sequence, t, h, w) as out:
            for name, array in arrays.items():
                out.write(name, array)
            return out.commit(attrs)


def validate_arrays(arrays: Mapping[str, np.ndarray], where: str) -> tuple[int, int, int]:
    """Check names, dtypes and shapes against the schema; return (T, H, W)."""
    for name in arrays:
        spec(name)
    missing = [n for n, s in ARRAYS.items() if s.required and n not in arrays]
    if missing:
        raise StoreError(f"sequence {where}: required arrays {missing} are missing")
    if arrays["decoded"].ndim != 4:
        raise StoreError(f"sequence {where}: decoded must be (T,H,W,3), got shape {arrays['decoded'].shape}")
    t, h, w = arrays["decoded"].shape[:3]
    if t == 0:
        raise StoreError(f"sequence {where}: no frames")
    for name, array in arrays.items():
        s = spec(name)
        if array.dtype != s.dtype:
            raise StoreError(f"sequence {where}: array {name} has dtype {array.dtype}, schema says {s.dtype}")
        if name == BITSTREAM.name:
            if array.ndim != 1:
                raise StoreError(f"sequence {where}: bitstream must be 1-D bytes, got shape {array.shape}")
            continue
        want = s.shape(t, h, w)
        if array.shape != want:
            raise StoreError(f"sequence {where}: array {name} has shape {array.shape}, expected {want}")
    return t, h, w
