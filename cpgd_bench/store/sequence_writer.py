"""One sequence being written: arrays arrive whole or in frame blocks, and are stored in the background.

A :class:`SequenceWriter` owns a hidden temporary group. Each :meth:`~SequenceWriter.write` is checked
against the schema at once and queued on the array's own background thread, which feeds the array's
checksum (BLAKE3) and writes the block: as whole shard files where it covers whole shards, else through Zarr.
Arrays are stored concurrently and blocks of one array in order, so compression overlaps whatever the caller
does next: encoding, decoding, converting the next block. :meth:`~SequenceWriter.commit` waits for the queue,
checks that every array is complete, in memory and on disk (every chunk file present), writes the
attributes last and renames the group into place; leaving the ``with`` block without a commit (an
error) removes the temporary group. The writer holds the temporary group's lock (see
:mod:`cpgd_bench.store.writer`) until the group is renamed or removed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import zarr

from cpgd_bench.store.errors import StoreError
from cpgd_bench.store.locks import FileLock
from cpgd_bench.store.reader import chunk_files
from cpgd_bench.store.schema import ARRAYS, BITSTREAM, CHECKSUMS, FORMAT_VERSION, codecs, spec, update_digest
from cpgd_bench.store.shard_writer import ShardWriter


class SequenceWriter:
    """Write sequence ``where`` (``split/name``) of ``shape`` = (T, H, W) into ``tmp``; rename it to ``final``.

    ``group_attrs`` are the attributes the store writer fills itself (format version, dataset, split...);
    ``lock`` is the temporary group's lock, released after the rename; ``on_commit`` runs after the rename
    (the store writer indexes the sequence there). Arrays handed to :meth:`write` must not be modified
    until :meth:`commit` returns.
    """

    def __init__(self, tmp: Path, final: Path, where: str, shape: tuple[int, int, int],
                 group_attrs: Mapping[str, Any], lock: FileLock,
                 on_commit: Callable[[], None] | None = None) -> None:  # fmt: skip
        self.tmp, self.final, self.where = tmp, final, where
        self._lock, self._on_commit = lock, on_commit
        self.t, self.h, self.w = shape
        self._group_attrs = dict(group_attrs)
        self._filled: dict[str, int] = {}
        self._digests: dict[str, Any] = {}
        self._arrays: dict[str, zarr.Array] = {}
        self._shard_writers: dict[str, ShardWriter | None] = {}
        self._pending: list[Future] = []
        self._queues: dict[str, ThreadPoolExecutor] = {}  # one serial queue per array
        self._group = zarr.open_group(tmp, mode="w", zarr_format=3)
        self._done = False

    def write(self, name: str, data: np.ndarray, start: int = 0) -> None:
        """Queue frames ``[start, start + len(data))`` of array ``name``; blocks of one array come in order."""
        self._raise_failed()
        s = spec(name)
        if not isinstance(data, np.ndarray) or data.dtype != s.dtype:
            got = data.dtype if isinstance(data, np.ndarray) else type(data).__name__
            raise StoreError(f"sequence {self.where}: array {name} has dtype {got}, schema says {s.dtype}")
        if name == BITSTREAM.name:
            if data.ndim != 1 or start or name in self._filled:
                raise StoreError(f"sequence {self.where}: bitstream must be written once, as 1-D bytes")
            shape = data.shape
        else:
            shape = s.shape(self.t, self.h, self.w)
            if data.shape[1:] != shape[1:] or start + len(data) > shape[0]:
                raise StoreError(f"sequence {self.where}: array {name} block {data.shape} at frame {start} "
                                 f"does not fit its shape {shape}")
        if self._filled.get(name, 0) != start:
            raise StoreError(f"sequence {self.where}: array {name} block at frame {start}, expected frame "
                             f"{self._filled.get(name, 0)} (blocks must come in order)")
        self._filled[name] = start + len(data)
        if name not in self._queues:
            self._queues[name] = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"store-{name}")
        self._pending.append(self._queues[name].submit(self._store_block, name, shape, data, start))

    def _store_block(self, name: str, shape: tuple[int, ...], data: np.ndarray, start: int) -> None:
        """The array's queue: checksum and write one block (creating the array on its first block), as whole
        shards where the block allows (:class:`~cpgd_bench.store.shard_writer.ShardWriter`), else through Zarr."""
        if name not in self._arrays:
            self._arrays[name] = self._create_array(name, shape)
            self._shard_writers[name] = ShardWriter.open(self._arrays[name])
            self._digests[name] = CHECKSUMS[FORMAT_VERSION]()
        update_digest(self._digests[name], data)
        writer = self._shard_writers[name]
        if writer is None or not writer.write(start, data):
            self._arrays[name][start:start + len(data)] = data

    def _create_array(self, name: str, shape: tuple[int, ...]) -> zarr.Array:
        s = spec(name)
        chunks, shards = s.chunking(shape)
        return self._group.create_array(
            name, shape=shape, dtype=s.dtype, chunks=chunks, shards=shards, compressors=codecs(s),
            dimension_names=s.dims, attributes={"doc": s.doc}, config={"write_empty_chunks": True},
        )  # fmt: skip

    def _raise_failed(self) -> None:
        for future in [f for f in self._pending if f.done()]:
            self._pending.remove(future)
            future.result()

    def _wait(self) -> None:
        pending, self._pending = self._pending, []
        errors = [f.exception() for f in pending]
        if first := next((e for e in errors if e is not None), None):
            raise first

    def commit(self, attrs: Mapping[str, Any]) -> Path:
        """Wait for the queued writes, check completeness, write attributes, rename; returns the group path."""
        check_sequence_attrs(attrs, self.t, self.where)
        self._wait()
        missing = [n for n, s in ARRAYS.items() if s.required and n not in self._filled]
        if missing:
            raise StoreError(f"sequence {self.where}: required arrays {missing} are missing")
        short = {n: f for n, f in self._filled.items() if n != BITSTREAM.name and f != self.t}
        if short:
            raise StoreError(f"sequence {self.where}: arrays with fewer than {self.t} frames written: {short}")
        group_attrs = {
            **dict(attrs), **self._group_attrs,
            "created": attrs.get("created", self._group_attrs["created"]),
            "checksums": {name: digest.hexdigest() for name, digest in self._digests.items()},
        }  # fmt: skip
        self._check_on_disk()
        self._group.attrs.update(group_attrs)  # attributes last: a group with checksums is complete
        try:
            os.rename(self.tmp, self.final)
        except OSError as e:
            raise StoreError(f"sequence {self.where}: cannot move {self.tmp} to {self.final} ({e.strerror}); "
                             "another build wrote it meanwhile? check with `cpgd-bench dataset verify`") from None
        self._close_queues()
        self._lock.release(unlink=True)
        if self._on_commit is not None:
            self._on_commit()
        return self.final

    def _check_on_disk(self) -> None:
        """Every array's metadata and every chunk file must be in the temporary group before it is renamed."""
        for name, array in self._arrays.items():
            have, want = chunk_files(self.tmp / name, array)
            if not (self.tmp / name / "zarr.json").is_file() or have != want:
                raise StoreError(f"sequence {self.where}: array {name} has {have} of {want} chunk files in "
                                 f"{self.tmp} (removed while writing?); rerun the build")

    def abort(self) -> None:
        """Drop the sequence: stop queued writes and remove the temporary group."""
        for future in self._pending:
            future.cancel()
        self._close_queues()
        self._pending = []
        shutil.rmtree(self.tmp, ignore_errors=True)
        self._lock.release(unlink=True)

    def _close_queues(self) -> None:
        for queue in self._queues.values():
            queue.shutdown(wait=True)
        self._done = True

    def __enter__(self) -> SequenceWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self._done:
            self.abort()


def check_sequence_attrs(attrs: Mapping[str, Any], num_frames: int, where: str) -> None:
    """``attrs`` must give ``fps``, one frame name per frame and the ``codec`` facts (e.g. ``bit_depth``)."""
    missing = [k for k in ("fps", "frame_names", "codec") if k not in attrs]
    if missing:
        raise StoreError(f"sequence {where}: attributes {missing} are missing")
    if len(attrs["frame_names"]) != num_frames:
        raise StoreError(f"sequence {where}: {len(attrs['frame_names'])} frame names for {num_frames} frames")
