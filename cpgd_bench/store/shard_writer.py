"""Direct writes of whole shards: a block of frames -> compressed inner chunks + index -> one file per shard.

Zarr's own write of a block runs every inner chunk through its asyncio codec pipeline; for the RGB frames of a
720p sequence that took 0.65-0.68 CPU-s, this writer 0.43-0.54, of which 0.19 are the file writes (one run each,
2-core VM; benchmarks/bench_codec.py times the whole build). :class:`ShardWriter` writes the bytes Zarr writes,
for the one layout :class:`~cpgd_bench.store.shard_reader.ShardReader` reads (its inner compressor and
CRC-32C, every chunk written, chunks in Zarr's Morton order, then the index with its CRC-32C;
tests/test_store.py compares the files byte for byte), and only blocks that start on a shard boundary and end
on one or at the array's end. For anything else :meth:`ShardWriter.write` answers False and the caller writes
through Zarr.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import google_crc32c
import numpy as np
import zarr
from numcodecs import Blosc, Zstd
from numcodecs.abc import Codec as Compressor
from zarr.codecs import BloscCodec, Crc32cCodec, ShardingCodec, ZstdCodec
from zarr.core.indexing import morton_order_iter

from cpgd_bench.store.shard_reader import sharded_layout

_EMPTY = 2**64 - 1


def _compressor(codec: object) -> Compressor | None:
    """The numcodecs compressor doing what Zarr's inner ``codec`` does (None: no compressor)."""
    if isinstance(codec, BloscCodec):
        shuffle = {"noshuffle": Blosc.NOSHUFFLE, "shuffle": Blosc.SHUFFLE, "bitshuffle": Blosc.BITSHUFFLE}
        return Blosc(cname=codec.cname.name, clevel=codec.clevel, shuffle=shuffle[codec.shuffle.name],
                     blocksize=codec.blocksize, typesize=codec.typesize)  # fmt: skip
    if isinstance(codec, ZstdCodec):
        return Zstd(level=codec.level, checksum=codec.checksum)
    return None


def _crc(data: bytes | np.ndarray) -> bytes:
    """The CRC-32C of ``data``, little-endian, as Zarr's ``crc32c`` codec appends it."""
    return np.uint32(google_crc32c.value(data)).tobytes()


class ShardWriter:
    """Synchronous writes of whole shards of one sharded array (see the module doc)."""

    def __init__(self, directory: Path, array: zarr.Array, codec: ShardingCodec) -> None:
        self.directory = directory
        self.shape, self.fill = tuple(array.shape), array.fill_value
        self.chunk_dtype = array.dtype.newbyteorder("<")
        self.shard = tuple(array.metadata.chunk_grid.chunk_shape)  # type: ignore[union-attr]
        self.inner = tuple(codec.chunk_shape)
        self.per_shard = tuple(s // c for s, c in zip(self.shard, self.inner, strict=True))
        self.chunk_crc = isinstance(codec.codecs[-1], Crc32cCodec)
        self.index_crc = isinstance(codec.index_codecs[-1], Crc32cCodec)
        self.compressor = next((c for c in map(_compressor, codec.codecs) if c is not None), None)
        self.order = list(morton_order_iter(self.per_shard))

    @classmethod
    def open(cls, array: zarr.Array) -> ShardWriter | None:
        """A writer for ``array``, or None when its layout is not the one this writer handles (then use Zarr)."""
        layout = sharded_layout(array)
        if layout is None or not array.config.write_empty_chunks:
            return None
        directory, codec = layout
        if any(s != c * -(-n // c) for s, c, n in zip(array.shards[1:], array.chunks[1:], array.shape[1:],
                                                       strict=True)):  # fmt: skip
            return None  # more than one shard across a frame
        return cls(directory, array, codec)

    def write(self, start: int, data: np.ndarray) -> bool:
        """Write frames ``[start, start + len(data))`` as whole shards; False (nothing written) if the block does
        not start on a shard boundary or end on one or at the array's end, or does not span whole frames."""
        t, stop = self.shard[0], start + len(data)
        aligned = start % t == 0 and (stop % t == 0 or stop == self.shape[0]) and stop <= self.shape[0]
        if not aligned or data.shape[1:] != self.shape[1:]:
            return False
        for first in range(start, stop, t):
            self._write_shard(first // t, data[first - start:first - start + t])
        return True

    def _write_shard(self, k: int, block: np.ndarray) -> None:
        """Shard ``k`` along time from ``block``, its frames (the last shard may have fewer)."""
        index = np.full((*self.per_shard, 2), _EMPTY, "<u8")
        parts, offset = [], 0
        for local in self.order:
            origin = [g * c for g, c in zip(local, self.inner, strict=True)]
            if k * self.shard[0] + origin[0] >= self.shape[0]:
                continue  # past the last frame: Zarr leaves it empty (a frame is one shard, see open())
            piece = block[tuple(slice(o, o + c) for o, c in zip(origin, self.inner, strict=True))]
            if piece.shape != self.inner:  # an edge chunk, padded with the fill value
                padded = np.full(self.inner, self.fill, self.chunk_dtype)
                padded[tuple(slice(0, n) for n in piece.shape)] = piece
                piece = padded
            raw = np.ascontiguousarray(piece, self.chunk_dtype).reshape(-1).view(np.uint8)
            encoded = raw if self.compressor is None else self.compressor.encode(raw)
            parts += [encoded, _crc(encoded)] if self.chunk_crc else [encoded]
            size = memoryview(encoded).nbytes + 4 * self.chunk_crc
            index[local] = (offset, size)
            offset += size
        parts += [index, _crc(index)] if self.index_crc else [index]
        path = self.directory.joinpath("c", str(k), *itertools.repeat("0", len(self.shape) - 1))
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:  # part by part: no copy of the shard in memory
            for part in parts:
                f.write(part)
