"""Read-only access to a coding-prior store: splits, sequences, groups, attributes and checked reads.

>>> store = open_store("data/stores/sample.zarr")      # doctest: +SKIP
>>> for split in store.splits():                       # doctest: +SKIP
...     for seq in store.sequences(split):
...         g = store.group(split, seq)                  # a zarr.Group: g.attrs["fps"]
...         frames = read_frames(g["decoded"], slice(0, 7))

Reads never return fill values for lost data: arrays are opened on :class:`StrictLocalStore`, for which
a missing chunk file is an error (every chunk is written, see ``schema.codecs``), and every chunk
carries a CRC-32C that Zarr checks on decode. :func:`read_frames` turns any such failure into one
``StoreError`` line naming the store, the array and the frames. ``checksums=False`` (the opt-out for
speed) opens arrays whose chunks are read without verifying their CRC; lost chunks still fail.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any, cast

import numpy as np
import zarr
from zarr.abc.store import ByteRequest
from zarr.codecs import Crc32cCodec
from zarr.core.array_spec import ArraySpec
from zarr.core.buffer import Buffer, BufferPrototype
from zarr.registry import register_codec
from zarr.storage import LocalStore

from cpgd_bench.store.errors import StoreError
from cpgd_bench.store.schema import ARRAYS, CHECKSUMS, FORMAT_VERSION, SEQUENCE_ATTRS, SEQUENCE_INDEX, SPLIT_INDEX


def read_metadata(directory: Path) -> dict[str, Any] | None:
    """The parsed ``zarr.json`` of ``directory`` (None when missing or not a JSON object)."""
    try:
        meta = json.loads((directory / "zarr.json").read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def is_group_dir(directory: Path) -> bool:
    """Whether ``directory`` is a finished, visible group (temporary names start with ``.``)."""
    meta = read_metadata(directory)
    return not directory.name.startswith(".") and meta is not None and meta.get("node_type") == "group"


def read_root_attrs(path: Path) -> dict[str, Any]:
    """The root group's attributes, or a one-line StoreError if ``path`` is not a store."""
    if not path.exists():
        raise StoreError(f"no store at {path}; build one with `cpgd-bench dataset build sample --out {path}`")
    meta = read_metadata(path)
    if meta is None or meta.get("node_type") != "group":
        raise StoreError(f"{path} is not a coding-prior store (no Zarr v3 group metadata); check the path")
    return dict(meta.get("attributes", {}))


def check_format(path: Path, attrs: dict[str, Any], adding_sequences: bool = False) -> None:
    """Raise a one-line StoreError unless this package reads the store's format version (any of
    :data:`~cpgd_bench.store.schema.CHECKSUMS`) or, ``adding_sequences``, adds sequences to it (only to
    :data:`FORMAT_VERSION`)."""
    version = attrs.get("format_version")
    dataset = attrs.get("dataset", "<dataset>")
    if version == FORMAT_VERSION or (version in CHECKSUMS and not adding_sequences):
        return
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise StoreError(
            f"store {path} has format version {version}, newer than this cpgd-bench reads "
            f"({FORMAT_VERSION}); upgrade cpgd-bench"
        )
    if version in CHECKSUMS:
        raise StoreError(
            f"store {path} has format version {version}: this cpgd-bench reads it but adds sequences only to "
            f"version {FORMAT_VERSION} stores; build into a new --out path (or rebuild this one)"
        )
    raise StoreError(
        f"store {path} has format version {version}, this cpgd-bench reads versions {sorted(CHECKSUMS)}; "
        f"rebuild it: delete it and run `cpgd-bench dataset build {dataset} --out {path}`"
    )


def sequence_problems(directory: Path, where: str) -> list[str]:
    """Cheap completeness check of a sequence group (metadata only): empty when it is whole.

    A group is whole when its metadata parses, carries every sequence attribute, and every array it
    has a checksum for (and every required array) has readable array metadata.
    """
    meta = read_metadata(directory)
    if meta is None or meta.get("node_type") != "group":
        return [f"{where}: group metadata {directory / 'zarr.json'} is missing or unreadable"]
    attrs = meta.get("attributes")
    missing = [k for k in SEQUENCE_ATTRS if not isinstance(attrs, dict) or k not in attrs]
    if missing:
        return [f"{where}: attributes {missing} are missing (unfinished or foreign group)"]
    sums = attrs["checksums"]
    if not isinstance(sums, dict):
        return [f"{where}: attribute checksums is not a mapping"]
    problems = []
    for name in sorted(set(sums) | {n for n, s in ARRAYS.items() if s.required}):
        if not (directory / name).exists():
            kind = "required array" if name in ARRAYS and ARRAYS[name].required else "array"
            problems.append(f"{where}: {kind} {name} is missing")
            continue
        array_meta = read_metadata(directory / name)
        if array_meta is None or array_meta.get("node_type") != "array":
            problems.append(f"{where}/{name}: array metadata {directory / name / 'zarr.json'} is unreadable")
    return problems


#: Zarr v3 default chunk keys end in ``c/<i>/<j>/...`` (metadata keys end in ``zarr.json``).
_CHUNK_KEY = re.compile(r"(^|/)c(/\d+)+$")


def chunk_files(directory: Path, array: zarr.Array) -> tuple[int, int]:
    """(chunk files on disk, chunk files ``array`` at ``directory`` must have): every chunk is written."""
    grid = array.shards or array.chunks
    want = math.prod(-(-size // edge) for size, edge in zip(array.shape, grid, strict=True))
    have = sum(len(files) for _, _, files in os.walk(directory / "c"))
    return have, want


class MissingChunkError(StoreError):
    """A chunk (shard) file of a written array is not on disk."""


class DamagedDataError(StoreError):
    """Frames of an array cannot be read (a lost chunk file, a CRC mismatch, undecodable bytes).

    ``detail`` says which frames and why, without the advice that ends the message.
    """

    def __init__(self, location: str, detail: str) -> None:
        self.detail = detail
        super().__init__(
            f"{location}: {detail}; the store is damaged: run `cpgd-bench dataset verify` on it and rebuild "
            "that sequence (delete its group, rerun the build)"
        )


class StrictLocalStore(LocalStore):
    """A read-only Zarr ``LocalStore`` for which a missing chunk file is an error, not the fill value."""

    async def get(
        self, key: str, prototype: BufferPrototype | None = None, byte_range: ByteRequest | None = None
    ) -> Buffer | None:
        """The bytes of ``key``; raises MissingChunkError for an absent chunk key (``.../c/...``)."""
        value = await super().get(key, prototype, byte_range)
        if value is None and _CHUNK_KEY.search(key):
            raise MissingChunkError(f"chunk file {self.root / key} is missing")
        return value


class UncheckedCrc32cCodec(Crc32cCodec):
    """The ``crc32c`` codec, reading without verifying the checksum (``checksums=False``: speed over safety)."""

    def _decode_sync(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> Buffer:
        return chunk_spec.prototype.buffer.from_array_like(chunk_bytes.as_numpy_array()[:-4])


register_codec("crc32c", UncheckedCrc32cCodec)
_UNCHECKED = {"codecs.crc32c": f"{UncheckedCrc32cCodec.__module__}.{UncheckedCrc32cCodec.__qualname__}"}


def open_root(path: Path, strict: bool = True) -> zarr.Group:
    """The root group of the store at ``path``, read-only (``strict``: on :class:`StrictLocalStore`)."""
    store = StrictLocalStore(path, read_only=True) if strict else LocalStore(path, read_only=True)
    return zarr.open_group(store, mode="r", zarr_format=3, use_consolidated=False)


def open_array(root: zarr.Group, key: str, checksums: bool = True) -> zarr.Array:
    """Array ``key`` of an opened root group; ``checksums=False`` reads its chunks without verifying their CRC."""
    if checksums:
        return cast(zarr.Array, root[key])
    with zarr.config.set(_UNCHECKED):  # the codec class is chosen when the array's metadata is parsed
        return cast(zarr.Array, root[key])


def read_frames(array: zarr.Array, frames: slice | int = slice(None), *rest: slice | int) -> np.ndarray:
    """``array[frames, *rest]``, or a one-line StoreError naming the store, array and frames on lost or corrupt data."""
    try:
        return np.asarray(array[(frames, *rest)])
    except Exception as e:  # zarr surfaces damage as codec errors of many types (CRC, Blosc, zstd, index)
        start, stop, _ = (frames if isinstance(frames, slice) else slice(frames, frames + 1)).indices(array.shape[0])
        location = f"{Path(str(array.store_path.store.root)) / array.path}"
        cause = str(e).splitlines()[0] if str(e) else type(e).__name__
        if not isinstance(e, StoreError):
            cause = f"corrupt data ({type(e).__name__}: {cause})"
        raise DamagedDataError(location, f"frames {start}-{stop - 1} cannot be read: {cause}") from None


class CodingPriorStore:
    """An opened store. Cheap to create; holds no open file handles (safe to pickle by path).

    ``strict=False`` opens arrays on a plain LocalStore: a lost chunk then reads as zeros (the CRC of
    every chunk that is present is still checked). Only for salvaging data from a damaged store.
    """

    def __init__(self, path: str | Path, strict: bool = True) -> None:
        self.path = Path(path)
        self.strict = strict
        self.attrs: dict[str, Any] = read_root_attrs(self.path)
        check_format(self.path, self.attrs)
        self._root: zarr.Group | None = None

    @property
    def dataset(self) -> str:
        """Dataset name recorded at creation (e.g. ``sample``)."""
        return str(self.attrs.get("dataset", ""))

    @property
    def root(self) -> zarr.Group:
        """The root Zarr group, opened read-only on first use."""
        if self._root is None:
            self._root = open_root(self.path, self.strict)
        return self._root

    def _listed(self, directory: Path, index: str, kind: str) -> list[str]:
        """Visible groups under ``directory``; raises if one its ``index`` attribute lists is missing or broken."""
        visible = {d.name for d in directory.iterdir() if d.is_dir() and is_group_dir(d)}
        meta = read_metadata(directory) or {}
        indexed = meta.get("attributes", {}).get(index, [])
        lost = sorted(set(indexed) - visible)
        if lost:
            raise StoreError(
                f"store {self.path}: {kind} {lost[0]!r} is listed in {directory / 'zarr.json'} but its group "
                f"{directory / lost[0]} is missing or unreadable; rerun the build to restore it"
            )
        return sorted(visible)

    def splits(self) -> list[str]:
        """Split names, sorted."""
        return self._listed(self.path, SPLIT_INDEX, "split")

    def sequences(self, split: str) -> list[str]:
        """Finished sequences of ``split``, sorted (in-progress temporary groups are not listed)."""
        split_dir = self.path / split
        if split.startswith(".") or not is_group_dir(split_dir):
            have = ", ".join(self.splits()) or "none"
            raise StoreError(f"store {self.path} has no split {split!r} (splits: {have}); pick one of those")
        return self._listed(split_dir, SEQUENCE_INDEX, "sequence")

    def group(self, split: str, sequence: str) -> zarr.Group:
        """The Zarr group of one sequence (arrays ``decoded``, ``mv``, ...; see ``store.schema``), checked whole."""
        if sequence not in self.sequences(split):
            raise StoreError(
                f"store {self.path} has no sequence {sequence!r} in split {split!r}; "
                "list them with `cpgd-bench dataset info`"
            )
        problems = sequence_problems(self.path / split / sequence, f"{split}/{sequence}")
        if problems:
            raise StoreError(f"store {self.path}: {problems[0]}; rebuild that sequence (delete it, rerun the build)")
        return self.root[f"{split}/{sequence}"]  # type: ignore[return-value]

    def sequence_attrs(self, split: str, sequence: str) -> dict[str, Any]:
        """Attributes of one sequence group (fps, frame_names, codec, checksums, ...)."""
        return dict(self.group(split, sequence).attrs)


def open_store(path: str | Path, strict: bool = True) -> CodingPriorStore:
    """Open an existing store read-only; one-line StoreError if missing or of another format."""
    return CodingPriorStore(path, strict)
