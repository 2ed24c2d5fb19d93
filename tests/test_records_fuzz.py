"""Fuzzing the prior-dump record parser (no codec build needed): valid records round-trip, and random or mutated
streams give a correct parse or a one-line CodecError, never another exception (bounded: about 15 s)."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cpgd_bench.codec import CodecError
from cpgd_bench.codec.records import (
    _HEADER,
    FILE_MAGIC,
    FLAG_MV,
    FLAG_PRED,
    FLAG_RES,
    FLAG_RGB,
    FRAME_MAGIC,
    MAX_RECORD,
    DumpFrame,
    iter_records,
    parse_frame,
)

FUZZ = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _planes(rng: np.random.Generator, dtype: str, h: int, w: int) -> tuple[np.ndarray, ...]:
    ch, cw = (h + 1) // 2, (w + 1) // 2
    info = np.iinfo(np.dtype(dtype))
    return tuple(rng.integers(info.min, info.max, size=s, endpoint=True).astype(dtype) for s in ((h, w), (ch, cw),
                                                                                                (ch, cw)))


@st.composite
def frames(draw: st.DrawFn) -> tuple[tuple[int, ...], list[np.ndarray]]:
    """Header fields and the arrays of one valid record, in record order (small sizes, any flag combination)."""
    w, h = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    cw, chh = w + draw(st.integers(0, 7)), h + draw(st.integers(0, 7))
    flags = draw(st.integers(0, 31))
    header = (draw(st.integers(-(2**31), 2**31 - 1)), draw(st.integers(0, 255)), draw(st.integers(-128, 127)),
              draw(st.integers(0, 255)), flags, w, h, cw, chh)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    arrays: list[np.ndarray] = []
    if flags & FLAG_RGB:
        arrays.append(rng.integers(0, 255, size=(h, w, 3), endpoint=True).astype("u1"))
    else:
        arrays += _planes(rng, "<u2", h, w)
    h4, w4 = (chh + 3) // 4, (cw + 3) // 4
    if flags & FLAG_MV:
        arrays += [rng.integers(-(2**15), 2**15 - 1, size=s, endpoint=True).astype("<i2")
                   for s in ((2, h4, w4, 2), (2, h4, w4))]
    if flags & FLAG_RES:
        arrays += _planes(rng, "<i2", chh, cw)
    if flags & FLAG_PRED:
        arrays += _planes(rng, "<u2", chh, cw)
    return header, arrays


def payload(frame: tuple[tuple[int, ...], list[np.ndarray]]) -> bytes:
    header, arrays = frame
    return _HEADER.pack(*header) + b"".join(a.tobytes() for a in arrays)


def stream(payloads: list[bytes]) -> bytes:
    return FILE_MAGIC + b"".join(FRAME_MAGIC + struct.pack("<I", len(p)) + p for p in payloads)


def parsed_arrays(frame: DumpFrame) -> list[np.ndarray]:
    """A parsed frame's arrays in record order (as :func:`frames` lists them)."""
    out: list[np.ndarray] = [frame.rgb] if frame.rgb is not None else list(frame.planes or ())
    out += [a for a in (frame.mv, frame.mv_ref) if a is not None]
    return out + list(frame.residual or ()) + list(frame.prediction or ())


def check_consistent(frame: DumpFrame, record: bytes) -> None:
    """What a successful parse must satisfy: the arrays tile the record exactly, at the header's sizes."""
    poc, _, _, _, flags, w, h, cw, chh = _HEADER.unpack_from(record, 0)
    assert frame.poc == poc and sum(a.nbytes for a in parsed_arrays(frame)) == len(record) - _HEADER.size
    assert (frame.rgb.shape == (h, w, 3)) if flags & FLAG_RGB else (frame.planes[0].shape == (h, w))
    if flags & FLAG_MV:
        assert frame.mv.shape == (2, (chh + 3) // 4, (cw + 3) // 4, 2)
    if flags & FLAG_RES:
        assert frame.residual[0].shape == (chh, cw)


@FUZZ
@given(st.lists(frames(), min_size=1, max_size=3))
def test_valid_records_round_trip(records: list[tuple[tuple[int, ...], list[np.ndarray]]]) -> None:
    parsed = list(iter_records(io.BytesIO(stream([payload(r) for r in records]))))
    assert len(parsed) == len(records)
    for frame, (header, arrays) in zip(parsed, records, strict=True):
        assert (frame.poc, frame.slice_type, frame.qp, frame.bit_depth) == header[:4]
        got = parsed_arrays(frame)
        assert len(got) == len(arrays) and all(np.array_equal(a, b) for a, b in zip(got, arrays, strict=True))


MUTATIONS = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**6), st.integers(1, 255)),
    st.tuples(st.just("delete"), st.integers(0, 10**6), st.integers(1, 64)),
    st.tuples(st.just("insert"), st.integers(0, 10**6), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("truncate"), st.integers(0, 10**6)),
    st.tuples(st.just("length"), st.integers(0, 2), st.integers(0, 2**32 - 1)),  # a record's length field
)


def mutate(data: bytes, mutation: tuple, offsets: list[int]) -> bytes:
    kind, *args = mutation
    if kind == "length":
        at = offsets[args[0] % len(offsets)] + len(FRAME_MAGIC)
        return data[:at] + struct.pack("<I", args[1]) + data[at + 4:]
    at = args[0] % (len(data) + 1)
    if kind == "flip":
        return data[:at] + bytes([data[at] ^ args[1]]) + data[at + 1:] if at < len(data) else data
    if kind == "delete":
        return data[:at] + data[at + args[1]:]
    if kind == "insert":
        return data[:at] + args[1] + data[at:]
    return data[:at]


@FUZZ
@given(st.lists(frames(), min_size=1, max_size=3), st.lists(MUTATIONS, min_size=1, max_size=3))
def test_mutated_streams_parse_correctly_or_raise_codec_error(records: list, mutations: list[tuple]) -> None:
    payloads = [payload(r) for r in records]
    data = stream(payloads)
    offsets = list(np.cumsum([len(FILE_MAGIC)] + [8 + len(p) for p in payloads[:-1]]))
    for m in mutations:
        data = mutate(data, m, offsets)
    try:
        parsed = list(iter_records(io.BytesIO(data)))
    except CodecError as e:
        assert "\n" not in str(e)
        return
    # the parse succeeded: re-read the records it consumed and check each frame against its own header
    f = io.BytesIO(data[len(FILE_MAGIC):])
    for frame in parsed:
        (n,) = struct.unpack("<I", f.read(8)[4:])
        check_consistent(frame, f.read(n))
    assert f.read() == b""


@FUZZ
@given(st.binary(max_size=600), st.booleans())
def test_random_bytes_raise_only_codec_error(data: bytes, with_magic: bool) -> None:
    try:
        for frame in iter_records(io.BytesIO(FILE_MAGIC + FRAME_MAGIC + data if with_magic else data)):
            assert isinstance(frame, DumpFrame)
    except CodecError as e:
        assert "\n" not in str(e)
    try:
        check_consistent(parse_frame(data), data)
    except CodecError as e:
        assert "\n" not in str(e)


@pytest.mark.parametrize("size", [0, 1, _HEADER.size - 1])
def test_short_payload_is_a_codec_error(size: int) -> None:
    with pytest.raises(CodecError, match=rf"record of {size} bytes is shorter than its {_HEADER.size}-byte header"):
        parse_frame(bytes(size))


def test_oversized_record_length_is_refused_before_reading() -> None:
    class NoBigReads(io.BytesIO):
        def read(self, n: int | None = -1) -> bytes:
            assert n is not None and 0 <= n <= 8, f"read({n})"
            return super().read(n)

    data = FILE_MAGIC + FRAME_MAGIC + struct.pack("<I", MAX_RECORD + 1)
    with pytest.raises(CodecError, match="a frame record of 1073741825 bytes, more than 1073741824"):
        list(iter_records(NoBigReads(data)))
