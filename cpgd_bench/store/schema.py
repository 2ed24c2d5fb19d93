"""The public schema of a coding-prior store (Zarr v3): arrays, dtypes, shapes, chunking, attributes.

Layout: ``<store>/<split>/<sequence>/<array>``; every sequence group holds the arrays below, frames
in display order. Shapes are given in terms of the sequence's frame count T and size H x W.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import blake3
import numpy as np
from zarr.abc.codec import BytesBytesCodec
from zarr.codecs import BloscCodec, Crc32cCodec, ZstdCodec

from cpgd_bench.store.errors import StoreError

#: Version of the on-disk layout; bump it on any incompatible schema change. 2: a CRC-32C per chunk, every chunk
#: written (none left to the fill value), split and sequence indexes in the root and split attributes. 3: the
#: per-array checksums are BLAKE3 (SHA-256 in 2), a fifth of the CPU time (0.06 against 0.3 CPU-s for a 720p
#: sequence's 330 MB on the 2-core VM, issue 16).
FORMAT_VERSION = 3


class Digest(Protocol):
    """What :func:`update_digest` feeds: ``hashlib``'s and ``blake3``'s hash objects."""

    def update(self, data: memoryview, /) -> object: ...
    def hexdigest(self) -> str: ...


#: The per-array checksum of each format version this package reads: stores of an older version are read and
#: verified with theirs; sequences are added only to stores of :data:`FORMAT_VERSION`.
CHECKSUMS: dict[int, Callable[[], Digest]] = {2: hashlib.sha256, 3: blake3.blake3}

#: Frames per shard file (outer chunk along time): the build's decoded blocks (``cpgd_bench.build.DECODE_BLOCK``)
#: are whole shards, so each is written once (16-frame shards rewrote every other one: +0.3 CPU-s per 720p
#: sequence of RGB frames, benchmarks/bench_codec.py); stores written with 16 read the same.
FRAMES_PER_SHARD = 8
#: Frames per inner chunk: a 7-frame clip touches 2-3 of them (measured in benchmarks/bench_loader.py).
FRAMES_PER_CHUNK = 4
#: Inner chunk edge in luma pixels for RGB frames. A random 256 x 256 crop of 7 frames touches 2 x 2 tiles
#: x 2-3 chunks in time; 4 x 256 x 256 chunks read a 720p crop 1.5x faster and write 1.5x faster than
#: 4 x 128 x 128 ones, for 10% more bytes (measured with zstd-3 on a 720p clip, benchmarks/bench_loader.py).
TILE = 256
#: Inner chunk edge in luma pixels for the residuals and MV grids: a whole 720p frame (up to 1280 wide).
#: They are mostly zeros, so a 256 x 256 crop decompresses a 4 x 720 x 1280 residual chunk as fast as
#: 2 x 2 of 256 x 256 ones, and Zarr writes one chunk per 4 frames with half the CPU time of 15
#: (measured on a 720p clip; benchmarks/bench_loader.py, benchmarks/bench_codec.py).
PRIOR_TILE = 1280

#: Group attributes every sequence carries (the writer fills the ones it knows itself).
SEQUENCE_ATTRS = (
    "format_version", "dataset", "split", "sequence", "fps", "num_frames", "height", "width",
    "frame_names", "codec", "created", "checksums",
)  # fmt: skip

#: Sequence attribute naming the flow method and rule revision (``cpgd_bench.motion.flow_tag``: ``composed@2``) of
#: the optional ``flow_blocks`` / ``flow_blocks_valid`` arrays; stores without them derive the flows when read.
FLOW_METHOD_ATTR = "flow_blocks_method"

#: Root attribute listing the split groups, and split attribute listing the committed sequences: a split or
#: sequence whose metadata is lost or garbled is then reported, not silently skipped.
SPLIT_INDEX = "splits"
SEQUENCE_INDEX = "sequences"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class ArraySpec:
    """One array of a sequence group: dtype, shape rule, dimension names and chunk tiling.

    ``shape(t, h, w)`` gives the full shape; ``tile`` gives, per dimension, the chunk edge in
    units of that dimension (``None`` = whole extent; the time axis uses ``FRAMES_PER_CHUNK``).
    """

    name: str
    dtype: np.dtype
    dims: tuple[str, ...]
    shape: Callable[[int, int, int], tuple[int, ...]]
    tile: tuple[int | None, ...]
    required: bool
    doc: str

    def chunking(self, shape: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...] | None]:
        """Inner chunk shape and shard shape (``None``: unsharded) for an array of ``shape``.

        Arrays tiled along time are sharded by ``FRAMES_PER_SHARD`` frames x the whole frame;
        the others (per-frame scalars, the bitstream) are stored as one chunk.
        """
        if self.tile[0] is None:
            return tuple(max(1, s) for s in shape), None
        pairs = zip(shape, self.tile, strict=True)
        chunks = [max(1, size if tile is None else min(tile, size)) for size, tile in pairs]
        t_shard = chunks[0] * _ceil(min(FRAMES_PER_SHARD, shape[0]), chunks[0])
        shards = [t_shard] + [c * _ceil(s, c) for c, s in zip(chunks[1:], shape[1:], strict=True)]
        return tuple(chunks), tuple(shards)


def _frames(t: int, h: int, w: int) -> tuple[int, ...]:
    return (t, h, w, 3)


def _luma(t: int, h: int, w: int) -> tuple[int, ...]:
    return (t, h, w)


def _chroma(t: int, h: int, w: int) -> tuple[int, ...]:
    return (t, _ceil(h, 2), _ceil(w, 2))


def _mv(t: int, h: int, w: int) -> tuple[int, ...]:
    return (t, 2, _ceil(h, 4), _ceil(w, 4), 2)


def _mv_ref(t: int, h: int, w: int) -> tuple[int, ...]:
    return (t, 2, _ceil(h, 4), _ceil(w, 4))


def _flow_blocks(t: int, h: int, w: int) -> tuple[int, ...]:
    return (t, 2, 2, _ceil(h, 4), _ceil(w, 4))


def _per_frame(t: int, h: int, w: int) -> tuple[int, ...]:
    return (t,)


def _camera(t: int, h: int, w: int) -> tuple[int, ...]:
    return (t, 2, 3)


_T = FRAMES_PER_CHUNK
_HALF = PRIOR_TILE // 2
ARRAYS: dict[str, ArraySpec] = {
    s.name: s
    for s in (
        ArraySpec("blur", np.dtype("uint8"), ("t", "y", "x", "c"), _frames, (_T, TILE, TILE, None), True,
                  "degraded RGB frames before coding"),
        ArraySpec("sharp", np.dtype("uint8"), ("t", "y", "x", "c"), _frames, (_T, TILE, TILE, None), False,
                  "ground-truth RGB frames (absent where the dataset has none)"),
        ArraySpec("decoded", np.dtype("uint8"), ("t", "y", "x", "c"), _frames, (_T, TILE, TILE, None), True,
                  "VVC-decoded RGB frames"),
        ArraySpec("mv", np.dtype("int16"), ("t", "list", "by", "bx", "xy"), _mv,
                  (_T, None, PRIOR_TILE // 4, PRIOR_TILE // 4, None), True,
                  "motion vector per 4x4 luma block, list 0/1, (x, y) in 1/16 pel: the block at p is "
                  "predicted from the reference at p + mv/16"),
        ArraySpec("mv_ref", np.dtype("int16"), ("t", "list", "by", "bx"), _mv_ref,
                  (_T, None, PRIOR_TILE // 4, PRIOR_TILE // 4), True,
                  "reference POC minus current POC per block and list; 0 where the list is unused"),
        ArraySpec("flow_blocks", np.dtype("float32"), ("t", "dir", "xy", "by", "bx"), _flow_blocks,
                  (_T, None, None, PRIOR_TILE // 4, PRIOR_TILE // 4), False,
                  "per-block flow in pixels to the previous / next frame (dir 0 / 1), derived from mv and mv_ref "
                  "over the whole sequence by the method the sequence attribute flow_blocks_method names"),
        ArraySpec("flow_blocks_valid", np.dtype("bool"), ("t", "dir", "by", "bx"), _mv_ref,
                  (_T, None, PRIOR_TILE // 4, PRIOR_TILE // 4), False,
                  "where flow_blocks is defined (same method)"),
        ArraySpec("residual", np.dtype("int16"), ("t", "y", "x"), _luma, (_T, PRIOR_TILE, PRIOR_TILE), True,
                  "decoded luma residual at codec bit depth"),
        ArraySpec("residual_cb", np.dtype("int16"), ("t", "y", "x"), _chroma, (_T, _HALF, _HALF), True,
                  "decoded Cb residual at codec bit depth (4:2:0)"),
        ArraySpec("residual_cr", np.dtype("int16"), ("t", "y", "x"), _chroma, (_T, _HALF, _HALF), True,
                  "decoded Cr residual at codec bit depth (4:2:0)"),
        ArraySpec("poc", np.dtype("int32"), ("t",), _per_frame, (None,), True, "picture order count"),
        ArraySpec("slice_type", np.dtype("uint8"), ("t",), _per_frame, (None,), True, "0 B, 1 P, 2 I"),
        ArraySpec("qp", np.dtype("int8"), ("t",), _per_frame, (None,), True, "slice QP"),
        ArraySpec("camera", np.dtype("float64"), ("t", "row", "col"), _camera, (None, None, None), False,
                  "true camera motion (synthetic data): affine mapping frame pixel (x, y, 1) to source-"
                  "image pixel coordinates, pixel centres at integers"),
    )
}  # fmt: skip

#: The coded bitstream (Annex B: VVC, HEVC or H.264, as the store's ``codec`` attribute says) is kept per sequence
#: for re-extraction.
BITSTREAM = ArraySpec("bitstream", np.dtype("uint8"), ("byte",), lambda t, h, w: (-1,), (None,), False,
                      "coded bitstream (Annex B) the priors were decoded from")  # fmt: skip


#: Zstandard level for the coding priors (residuals and MV grids are mostly zeros: ratios of 60-500).
ZSTD_LEVEL = 3
#: RGB frames: Blosc (a core Zarr v3 codec) with LZ4 over bit-shuffled bytes. On a 720p clip it writes
#: 2-3x faster and reads 1.2x faster than zstd-3, for about the same size (benchmarks/bench_codec.py).
FRAME_COMPRESSOR = BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle", typesize=1)


def codecs(array: ArraySpec) -> tuple[BytesBytesCodec, ...]:
    """The bytes-to-bytes codecs of ``array``'s inner chunks: its compressor, then a CRC-32C.

    The CRC makes every chunk self-checking: a flipped byte fails the read instead of changing values
    (the shard index carries its own CRC-32C, Zarr's default). Every chunk is written, all-zero ones
    too (``write_empty_chunks``), so a chunk absent on disk is always a loss, never a legitimate fill.
    """
    compressor = FRAME_COMPRESSOR if array.dtype == np.uint8 and array.dims[-1] == "c" else ZstdCodec(level=ZSTD_LEVEL)
    return compressor, Crc32cCodec()


def spec(name: str) -> ArraySpec:
    """The spec of array ``name`` (including ``bitstream``)."""
    if name == BITSTREAM.name:
        return BITSTREAM
    try:
        return ARRAYS[name]
    except KeyError:
        known = ", ".join([*ARRAYS, BITSTREAM.name])
        raise StoreError(f"unknown store array {name!r}; the schema has: {known}") from None


def check_name(kind: str, name: str) -> str:
    """Validate a split or sequence name (letters, digits, ``_.-``; not starting with ``.``)."""
    if not _NAME.match(name):
        raise StoreError(f"invalid {kind} name {name!r}: use letters, digits, '_', '.', '-' (no leading '.')")
    return name


def update_digest(digest: Digest, array: np.ndarray) -> None:
    """Feed ``array``'s little-endian C-order bytes into ``digest`` (stream along axis 0)."""
    arr = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    digest.update(memoryview(arr).cast("B"))


def expected_shape(name: str, t: int, h: int, w: int) -> tuple[int, ...]:
    """The shape array ``name`` must have in a sequence of T frames of H x W."""
    return spec(name).shape(t, h, w)
