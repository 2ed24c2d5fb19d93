"""Direct reads of the store's sharded arrays: chunk bytes -> decompressed -> the output, no async round trips.

Zarr's own read of a 7 x 256 x 256 crop spends much of its time in its asyncio machinery (a thread hop per
chunk fetch and per decompression: one 4 x 256 x 256 x 3 chunk took 7 ms through Zarr, 0.45 ms to decompress,
on the busy 2-core VM).
:class:`ShardReader` reads the same bytes synchronously for the one layout the store writes (Zarr v3,
``sharding_indexed`` with the index at the end, inner codecs ``bytes`` + optional Blosc/Zstd + optional
``crc32c``, default chunk keys on a local directory) and checks every CRC-32C Zarr would check (chunk and
shard index; ``checksums=False`` skips both, as the store's opt-out does). It answers ``None`` for any
other layout, and raises on anything wrong (missing file or chunk, CRC mismatch, short read, undecodable
bytes): the caller then reads through Zarr (:func:`cpgd_bench.store.reader.read_frames`), which gives
the data or the store's one-line error naming the array and frames.
"""

from __future__ import annotations

import ctypes
import functools
import itertools
import os
from collections.abc import Callable
from pathlib import Path

import google_crc32c
import numcodecs.blosc
import numpy as np
import zarr
from numcodecs import Blosc, Zstd
from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec, ShardingCodec, ZstdCodec
from zarr.codecs.bytes import Endian
from zarr.codecs.sharding import ShardingCodecIndexLocation
from zarr.core.chunk_key_encodings import DefaultChunkKeyEncoding
from zarr.storage import LocalStore

from cpgd_bench.errors import CpgdBenchError

_EMPTY = np.uint64(2**64 - 1)
_DECOMPRESSORS = {BloscCodec: Blosc(), ZstdCodec: Zstd()}


def _little_endian(codec: object, itemsize: int) -> bool:
    """Whether ``codec`` is the ``bytes`` codec laying out values little-endian (any order for single bytes)."""
    return isinstance(codec, BytesCodec) and (itemsize == 1 or codec.endian == Endian.little)


class ChunkReadError(CpgdBenchError):
    """The fast path cannot read these bytes (internal: the dataset then reads them through Zarr)."""


def _crc_split(data: bytes, checked: bool) -> np.ndarray:
    """The bytes of ``data`` (uint8) without its trailing CRC-32C, verified when ``checked``."""
    view = np.frombuffer(data, np.uint8)
    if len(view) < 4:
        raise ChunkReadError("short read")
    body = view[:-4]
    if checked and np.uint32(google_crc32c.value(body)).tobytes() != view[-4:].tobytes():
        raise ChunkReadError("CRC-32C mismatch")
    return body


def sharded_layout(array: zarr.Array) -> tuple[Path, ShardingCodec] | None:
    """The directory and sharding codec of ``array`` when it has the layout the store writes (see the module doc:
    local directory, default chunk keys, index at the end, inner ``bytes`` little-endian + optional Blosc/Zstd
    + optional ``crc32c``, shards a whole number of inner chunks), else None."""
    meta = array.metadata
    store = array.store_path.store
    codecs = getattr(meta, "codecs", ())
    if not (isinstance(store, LocalStore) and len(codecs) == 1 and isinstance(codecs[0], ShardingCodec)):
        return None
    codec = codecs[0]
    rest = list(codec.codecs)
    if rest and isinstance(rest[-1], Crc32cCodec):
        rest.pop()
    if rest and type(rest[-1]) in _DECOMPRESSORS:
        rest.pop()
    index = list(codec.index_codecs)
    grid = getattr(meta.chunk_grid, "chunk_shape", None)  # type: ignore[union-attr]
    key = meta.chunk_key_encoding  # type: ignore[union-attr]
    supported = (
        len(rest) == 1
        and _little_endian(rest[0], array.dtype.itemsize)
        and codec.index_location == ShardingCodecIndexLocation.end
        and _little_endian(index[0], 8)
        and all(isinstance(c, Crc32cCodec) for c in index[1:])
        and isinstance(key, DefaultChunkKeyEncoding)
        and key.separator == "/"
        and grid is not None
        and all(s % c == 0 for s, c in zip(grid, codec.chunk_shape, strict=True))
    )
    return (Path(str(store.root)) / array.path, codec) if supported else None


class ShardReader:
    """Synchronous reads of basic selections of one sharded array (see the module doc)."""

    def __init__(self, directory: Path, array: zarr.Array, codec: ShardingCodec, checksums: bool) -> None:
        self.directory, self.checksums = directory, checksums
        self.shape, self.dtype = tuple(array.shape), array.dtype
        self.shard = tuple(array.metadata.chunk_grid.chunk_shape)  # type: ignore[union-attr]
        self.inner = tuple(codec.chunk_shape)
        self.per_shard = tuple(s // c for s, c in zip(self.shard, self.inner, strict=True))
        self.index_crc = any(isinstance(c, Crc32cCodec) for c in codec.index_codecs)
        self.chunk_crc = isinstance(codec.codecs[-1], Crc32cCodec)
        compressors = [c for c in codec.codecs if type(c) in _DECOMPRESSORS]
        self.decompressor = _DECOMPRESSORS[type(compressors[0])] if compressors else None
        self.chunk_dtype = self.dtype.newbyteorder("<")
        self._scratch = np.empty(0, np.uint8)

    @classmethod
    def open(cls, array: zarr.Array, checksums: bool) -> ShardReader | None:
        """A reader for ``array``, or None when its layout is not the one this reader handles."""
        layout = sharded_layout(array)
        return None if layout is None else cls(layout[0], array, layout[1], checksums)

    def read(self, selection: tuple[slice, ...], out: np.ndarray | None = None) -> np.ndarray:
        """``array[selection]`` for step-1 slices (missing trailing dimensions: whole), written into ``out`` (any
        strided view of the selection's shape) if given; raises ChunkReadError."""
        bounds = []
        for d, size in enumerate(self.shape):
            start, stop, step = (selection[d] if d < len(selection) else slice(None)).indices(size)
            if step != 1 or stop <= start:
                raise ChunkReadError("unsupported selection")
            bounds.append((start, stop))
        shape = tuple(b - a for a, b in bounds)
        if out is None:
            out = np.empty(shape, self.dtype)
        elif out.shape != shape:
            raise ChunkReadError(f"output of shape {out.shape} for a selection of shape {shape}")
        shards = [range(a // s, -(-b // s)) for (a, b), s in zip(bounds, self.shard, strict=True)]
        for shard in itertools.product(*shards):
            self._read_shard(shard, bounds, out)
        return out

    def _read_shard(self, shard: tuple[int, ...], bounds: list[tuple[int, int]], out: np.ndarray) -> None:
        path = self.directory / "c" / "/".join(map(str, shard))
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as e:
            raise ChunkReadError(str(e)) from None
        try:
            index = self._index(fd)
            ranges = []
            for d, ((a, b), c, s) in enumerate(zip(bounds, self.inner, self.shard, strict=True)):
                lo, hi = max(a, shard[d] * s), min(b, (shard[d] + 1) * s)
                ranges.append(range(lo // c, -(-hi // c)))
            for chunk in itertools.product(*ranges):
                local = tuple(g % n for g, n in zip(chunk, self.per_shard, strict=True))
                offset, length = index[local]
                if offset == _EMPTY:
                    raise ChunkReadError("chunk not written")
                src, dst = [], []
                for g, (a, b), c in zip(chunk, bounds, self.inner, strict=True):
                    lo, hi = max(a, g * c), min(b, (g + 1) * c)
                    src.append(slice(lo - g * c, hi - g * c))
                    dst.append(slice(lo - a, hi - a))
                values = self._decode(os.pread(fd, int(length), int(offset)), int(length), src)
                out[tuple(dst)] = values[tuple(src)]
        finally:
            os.close(fd)

    def _index(self, fd: int) -> np.ndarray:
        entries = int(np.prod(self.per_shard))
        size = 16 * entries + 4 * self.index_crc
        end = os.fstat(fd).st_size
        if end < size:
            raise ChunkReadError("short shard file")
        raw = os.pread(fd, size, end - size)
        body = _crc_split(raw, self.checksums) if self.index_crc else np.frombuffer(raw, np.uint8)
        if body.nbytes != 16 * entries:
            raise ChunkReadError("short shard index")
        return body.view("<u8").reshape(*self.per_shard, 2)

    def _decode(self, data: bytes, length: int, src: list[slice]) -> np.ndarray:
        """The chunk's values (inner chunk shape); with Blosc and verified bytes only the ``src`` rows are decoded."""
        if len(data) != length:
            raise ChunkReadError("short read")
        body = _crc_split(data, self.checksums) if self.chunk_crc else np.frombuffer(data, np.uint8)
        nbytes = int(np.prod(self.inner)) * self.dtype.itemsize
        if self.decompressor is None:
            raw = body
        else:
            if self._scratch.nbytes != nbytes:
                self._scratch = np.empty(nbytes, np.uint8)
            partial = self.checksums and self.chunk_crc and isinstance(self.decompressor, Blosc)
            if not (partial and self._blosc_rows(body, src)):
                try:
                    self.decompressor.decode(body, out=self._scratch)
                except Exception as e:  # Blosc/Zstd report damage as RuntimeError/ValueError
                    raise ChunkReadError(f"undecodable chunk: {e}") from None
            raw = self._scratch
        if raw.nbytes != nbytes:
            raise ChunkReadError("chunk of the wrong size")
        return raw.view(self.chunk_dtype).reshape(self.inner)

    def _blosc_rows(self, body: np.ndarray, src: list[slice]) -> bool:
        """Decode into the scratch buffer only the byte spans holding rows ``src[1]`` of frames ``src[0]``.

        Only for CRC-verified bytes (``blosc_getitem`` trusts its input). False: decode the whole chunk.
        """
        getitem = _blosc_getitem()
        whole = all(s.stop - s.start == n for s, n in zip(src, self.inner, strict=True))
        if getitem is None or len(self.inner) < 2 or whole:
            return False
        if body.nbytes < 16:
            return False
        # header: version, codec version, flags, typesize (bytes), then uint32 nbytes, blocksize, cbytes
        typesize = int(body[3])
        nbytes, _, cbytes = body[4:16].view("<u4").tolist()
        row = int(np.prod(self.inner[2:])) * self.dtype.itemsize
        frame = self.inner[1] * row
        if nbytes != self._scratch.nbytes or cbytes != body.nbytes or not typesize or row % typesize:
            return False
        for t in range(src[0].start, src[0].stop):
            start, stop = t * frame + src[1].start * row, t * frame + src[1].stop * row
            items = (stop - start) // typesize
            got = getitem(body.ctypes.data, start // typesize, items, self._scratch.ctypes.data + start)
            if got != stop - start:
                raise ChunkReadError("undecodable chunk")
        return True


@functools.cache
def _blosc_getitem() -> Callable[[int, int, int, int], int] | None:
    """c-blosc's ``blosc_getitem`` (decode a range of items) from the library numcodecs ships, if it exports it."""
    try:
        function = ctypes.CDLL(numcodecs.blosc.__file__).blosc_getitem
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
    function.restype = ctypes.c_int
    return function
