"""Atomic, resumable writer of a coding-prior store.

Each sequence is written as a complete Zarr group under a hidden temporary name
``<split>/.<sequence>.tmp-<pid>-<token>`` and renamed to ``<split>/<sequence>`` only when every array
and attribute is on disk: a reader never sees half a sequence, and a killed build leaves only a
temporary directory that the next writer removes. One writer per store at a time (a lock file
``.build.lock`` holds its pid; a lock whose process is gone is taken over).
"""

from __future__ import annotations

import datetime as _dt
import os
import secrets
import shutil
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import zarr

from cpgd_bench.store.errors import StoreError
from cpgd_bench.store.reader import is_group_dir, read_root_attrs
from cpgd_bench.store.schema import ARRAYS, BITSTREAM, FORMAT_VERSION, check_name, spec
from cpgd_bench.store.sequence_writer import SequenceWriter, check_sequence_attrs

LOCK_NAME = ".build.lock"
TMP_MARK = ".tmp-"


def now_iso() -> str:
    """Current UTC time, ISO 8601, seconds resolution."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class StoreWriter:
    """Create or reopen the store at ``path`` for dataset ``dataset`` and add sequences to it.

    ``root_attrs`` (for example the source's description and the codec profile) are recorded on
    creation. Use as a context manager, or call :meth:`close` to release the lock.
    ``lock=False`` attaches a worker of a parallel build to an existing store whose lock the driving
    build holds: it takes no lock and removes nothing; per-call temporary names keep concurrent writers
    of different sequences apart.
    """

    def __init__(
        self, path: str | Path, dataset: str, root_attrs: Mapping[str, Any] | None = None, *, lock: bool = True
    ) -> None:
        self.path = Path(path)
        self.dataset = check_name("dataset", dataset)
        self._lock: Path | None = None
        self._open = True
        if not lock:
            if not (self.path / "zarr.json").exists():
                raise StoreError(f"store {self.path} is not reachable from this worker; use a shared filesystem path")
            return
        foreign = self.path.exists() and not (self.path / "zarr.json").exists()
        if foreign and (not self.path.is_dir() or any(self.path.iterdir())):
            raise StoreError(f"{self.path} exists and is not a coding-prior store; choose another path")
        if (self.path / "zarr.json").exists():
            attrs = read_root_attrs(self.path)
            if attrs.get("dataset") != dataset:
                raise StoreError(
                    f"store {self.path} holds dataset {attrs.get('dataset')!r}, not {dataset!r}; "
                    "choose another --out path"
                )
        else:
            self.path.mkdir(parents=True, exist_ok=True)
            attrs = {"format_version": FORMAT_VERSION, "dataset": dataset, "created": now_iso()}
            attrs.update(root_attrs or {})
            zarr.open_group(self.path, mode="w", attributes=attrs, zarr_format=3)
        self._acquire_lock()
        self._remove_stale_tmp()

    def _acquire_lock(self) -> None:
        lock = self.path / LOCK_NAME
        for _ in range(2):
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                try:
                    pid = int(lock.read_text().strip() or 0)
                except (OSError, ValueError):
                    pid = 0
                if pid and _pid_alive(pid):
                    raise StoreError(
                        f"store {self.path} is being written by process {pid}; wait for it, or delete "
                        f"{lock} if that process is not a cpgd-bench build"
                    ) from None
                lock.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(str(os.getpid()))
            self._lock = lock
            return
        raise StoreError(f"could not take the lock {lock}; delete it and retry")

    def _remove_stale_tmp(self) -> None:
        for split_dir in self.path.iterdir():
            if split_dir.is_dir() and not split_dir.name.startswith("."):
                for tmp in split_dir.glob(f".*{TMP_MARK}*"):
                    shutil.rmtree(tmp, ignore_errors=True)

    def close(self) -> None:
        """Release the store lock (if this writer holds it); the writer takes no more sequences."""
        self._open = False
        if self._lock is not None:
            self._lock.unlink(missing_ok=True)
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
            zarr.open_group(self.path, mode="r+").require_group(split)
        tmp = split_dir / f".{sequence}{TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}"
        group_attrs = {
            "format_version": FORMAT_VERSION, "dataset": self.dataset, "split": split, "sequence": sequence,
            "num_frames": num_frames, "height": height, "width": width, "created": now_iso(),
        }  # fmt: skip
        return SequenceWriter(tmp, final, f"{split}/{sequence}", (num_frames, height, width), group_attrs)

    def write_sequence(
        self,
        split: str,
        sequence: str,
        arrays: Mapping[str, np.ndarray],
        attrs: Mapping[str, Any],
    ) -> Path:
        """Write one sequence atomically and return its group directory.

        ``arrays`` must hold every required schema array with the schema dtype and consistent shapes
        (``bitstream``, ``sharp`` and ``camera`` are optional). ``attrs`` must give at least ``fps`` and
        ``frame_names``; it is stored as the group's attributes together with the format version,
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
