"""Parse the record stream written by `prior-dump` (format documented at the top of codec/prior_dump.c).

Every malformed input (bad magic, short or over-long record, arrays that do not fit the header's sizes,
trailing bytes) is a one-line :class:`CodecError`; nothing else is raised.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from .errors import CodecError

FILE_MAGIC = b"CPGDVVC1"
FRAME_MAGIC = b"FRME"
_HEADER = struct.Struct("<iBbBBHHHH")  # poc, slice_type, qp, bit_depth, flags, w, h, coded_w, coded_h
FLAG_LMCS, FLAG_MV, FLAG_RES, FLAG_PRED, FLAG_RGB = 1, 2, 4, 8, 16
#: Largest frame record accepted (an 8K frame with every prior is about 320 MiB): a corrupt length is an error,
#: not a huge read.
MAX_RECORD = 1 << 30


@dataclass
class DumpFrame:
    """One decoded frame with its coding priors, as the decoder holds them (coded size for priors)."""

    poc: int
    slice_type: int          # 0 B, 1 P, 2 I (255 when exported without priors)
    qp: int
    bit_depth: int
    lmcs: bool
    planes: tuple[np.ndarray, np.ndarray, np.ndarray] | None   # uint16 Y, Cb, Cr (cropped picture)
    rgb: np.ndarray | None = None                              # uint8 (H, W, 3) instead, with --rgb
    mv: np.ndarray | None = None                               # int16 (2, H4, W4, 2), 1/16 pel
    mv_ref: np.ndarray | None = None                           # int16 (2, H4, W4), ref POC - POC, 0 = none
    residual: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None     # int16, coded size
    prediction: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None   # uint16, 0xFFFF = no residual


def _read_exact(f: BinaryIO, n: int, what: str) -> bytes:
    b = f.read(n)
    if len(b) != n:
        raise CodecError(f"prior-dump output ended inside {what} (got {len(b)} of {n} bytes)")
    return b


def _take(buf: memoryview, off: int, dtype: str, shape: tuple[int, ...]) -> tuple[np.ndarray, int]:
    n = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if off + n > len(buf):
        raise CodecError("prior-dump record shorter than its arrays")
    return np.frombuffer(buf[off:off + n], dtype=dtype).reshape(shape), off + n


def _planes(buf: memoryview, off: int, dtype: str, h: int, w: int) -> tuple[tuple, int]:
    ch, cw = (h + 1) // 2, (w + 1) // 2
    y, off = _take(buf, off, dtype, (h, w))
    cb, off = _take(buf, off, dtype, (ch, cw))
    cr, off = _take(buf, off, dtype, (ch, cw))
    return (y, cb, cr), off


def parse_frame(payload: bytes) -> DumpFrame:
    """Decode one record payload."""
    if len(payload) < _HEADER.size:
        raise CodecError(f"prior-dump record of {len(payload)} bytes is shorter than its {_HEADER.size}-byte header")
    poc, st, qp, bd, flags, w, h, cw, chh = _HEADER.unpack_from(payload, 0)
    buf = memoryview(payload)
    frame = DumpFrame(poc=poc, slice_type=st, qp=qp, bit_depth=bd, lmcs=bool(flags & FLAG_LMCS), planes=None)
    if flags & FLAG_RGB:
        frame.rgb, off = _take(buf, _HEADER.size, "u1", (h, w, 3))
    else:
        frame.planes, off = _planes(buf, _HEADER.size, "<u2", h, w)
    h4, w4 = (chh + 3) // 4, (cw + 3) // 4
    if flags & FLAG_MV:
        frame.mv, off = _take(buf, off, "<i2", (2, h4, w4, 2))
        frame.mv_ref, off = _take(buf, off, "<i2", (2, h4, w4))
    if flags & FLAG_RES:
        frame.residual, off = _planes(buf, off, "<i2", chh, cw)
    if flags & FLAG_PRED:
        frame.prediction, off = _planes(buf, off, "<u2", chh, cw)
    if off != len(payload):
        raise CodecError(f"prior-dump record has {len(payload) - off} unexpected trailing bytes")
    return frame


def iter_records(f: BinaryIO) -> Iterator[DumpFrame]:
    """Yield frames from a prior-dump stream (file or pipe), in display order."""
    if _read_exact(f, len(FILE_MAGIC), "the file header") != FILE_MAGIC:
        raise CodecError("not a prior-dump stream (bad magic)")
    while True:
        head = f.read(8)
        if not head:
            return
        if len(head) != 8 or head[:4] != FRAME_MAGIC:
            raise CodecError("corrupt prior-dump stream (bad frame header)")
        (n,) = struct.unpack("<I", head[4:])
        if n > MAX_RECORD:
            raise CodecError(f"corrupt prior-dump stream (a frame record of {n} bytes, more than {MAX_RECORD})")
        yield parse_frame(_read_exact(f, n, "a frame record"))
