"""Frames -> VVC, HEVC or H.264 bitstream -> decoded frames + coding priors, in the store schema."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from cpgd_bench.store.schema import spec

from .dump import decoder_version, patch_sha256, run_dump
from .encode import StreamingEncoder, encode, encoder_version, pad_to_multiple
from .errors import CodecError
from .profiles import CodecProfile, codec_spec
from .records import DumpFrame

#: Arrays decoded per frame, delivered in frame blocks by :class:`PriorStream`.
BLOCK_ARRAYS = ("decoded", "mv", "mv_ref", "residual", "residual_cb", "residual_cr")
PRIOR_ARRAYS = (*BLOCK_ARRAYS, "poc", "slice_type", "qp")
SLICE_I = 2  # slice_type of an intra picture (every codec mapped to 0 B, 1 P, 2 I): POC may restart there


@dataclass
class CodedSequence:
    """Decoded frames and coding priors of one sequence, cropped to the source size, display order."""

    decoded: np.ndarray       # uint8 (T, H, W, 3) RGB
    mv: np.ndarray            # int16 (T, 2, ceil(H/4), ceil(W/4), 2), 1/16 pel, (x, y), lists 0 and 1
    mv_ref: np.ndarray        # int16 (T, 2, ceil(H/4), ceil(W/4)), reference POC - POC, 0 = list unused
    residual: np.ndarray      # int16 (T, H, W), luma, codec bit depth
    residual_cb: np.ndarray   # int16 (T, ceil(H/2), ceil(W/2))
    residual_cr: np.ndarray   # int16 (T, ceil(H/2), ceil(W/2))
    poc: np.ndarray           # int32 (T,)
    slice_type: np.ndarray    # uint8 (T,), 0 B, 1 P, 2 I
    qp: np.ndarray            # int8 (T,), slice QP of the first slice
    bitstream: Path
    attrs: dict = field(default_factory=dict)

    def arrays(self) -> dict[str, np.ndarray]:
        """The store arrays by name."""
        return {k: getattr(self, k) for k in PRIOR_ARRAYS}


class PriorStream:
    """Decoded frames and priors of ``bitstream``, cropped to ``height`` x ``width``, in blocks of frames.

    Iterating runs the patched decoder and yields ``(start, arrays)`` per block of ``block`` frames in
    display order (the arrays of :data:`BLOCK_ARRAYS`), so a consumer can store a block while the next
    one decodes; the decoder runs in its own process and overlaps the conversion here. After the
    iteration :meth:`per_frame` gives ``poc``, ``slice_type`` and ``qp`` and ``attrs`` the decoder facts.
    ``feed``: the decoder reads the bitstream from a pipe as it is written (see :func:`run_dump`).
    """

    def __init__(self, bitstream: Path, height: int, width: int, n_frames: int | None = None, threads: int = 0,
                 block: int = 16, feed: Callable[[BinaryIO], None] | None = None,
                 codec: str = "vvc", restarts: Sequence[int] = ()) -> None:  # fmt: skip
        self.bitstream, self.height, self.width, self.codec = bitstream, height, width, codec
        self.restarts = {0, *restarts}   # frames that start an independently coded segment (POC restarts)
        self.n_frames, self.threads, self.block, self.feed = n_frames, threads, block, feed
        self.attrs: dict = {}
        self._per_frame: dict[str, list[int]] = {}

    def _empty_block(self, n: int) -> dict[str, np.ndarray]:
        """Uninitialised ``n``-frame arrays of :data:`BLOCK_ARRAYS`, shaped and typed as the store schema says."""
        return {k: np.empty(spec(k).shape(n, self.height, self.width), spec(k).dtype) for k in BLOCK_ARRAYS}

    def _sizes(self) -> tuple[int, int, int, int, int, int]:
        """Luma H, W; 4x4-block grid H/4, W/4; chroma H/2, W/2 (rounded up)."""
        h, w = self.height, self.width
        return h, w, -(-h // 4), -(-w // 4), -(-h // 2), -(-w // 2)

    def _block_length(self, start: int) -> int:
        return self.block if self.n_frames is None else min(self.block, self.n_frames - start)

    def __iter__(self) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        h, w, h4, w4, h2, w2 = self._sizes()
        name, unit = self.bitstream.name, codec_spec(self.codec).poc_per_frame
        block, start, first, lmcs = None, 0, None, False
        self.attrs, self._per_frame = {}, {"poc": [], "slice_type": [], "qp": []}   # each iteration decodes anew
        for t, f in enumerate(run_dump(self.bitstream, threads=self.threads, rgb=True, feed=self.feed,
                                          codec=self.codec)):
            if first is None:
                first = f
                if f.rgb.shape[0] < h or f.rgb.shape[1] < w:
                    raise CodecError(f"{name}: coded size {f.rgb.shape[:2]} smaller than {h}x{w}")
            if self.n_frames is not None and t >= self.n_frames:
                raise CodecError(f"{name}: more than the expected {self.n_frames} frames decoded")
            if block is None:
                block = self._empty_block(self._block_length(start))
            i = t - start
            poc, mv_ref = _in_frames(f, unit, name, t)
            block["decoded"][i] = f.rgb[:h, :w]
            block["mv"][i] = f.mv[:, :h4, :w4]
            block["mv_ref"][i] = mv_ref[:, :h4, :w4]
            block["residual"][i] = f.residual[0][:h, :w]
            block["residual_cb"][i] = f.residual[1][:h2, :w2]
            block["residual_cr"][i] = f.residual[2][:h2, :w2]
            for key, value in (("poc", poc), ("slice_type", f.slice_type), ("qp", f.qp)):
                self._per_frame[key].append(value)
            lmcs = lmcs or f.lmcs
            if i + 1 == len(block["decoded"]):
                yield start, block
                start, block = t + 1, None
        if first is None:
            raise CodecError(f"{name}: no frames decoded")
        if block is not None:                            # unknown length: the last block is shorter
            n = len(self._per_frame["poc"]) - start
            yield start, {k: v[:n] for k, v in block.items()}
        n = len(self._per_frame["poc"])
        if self.n_frames is not None and n != self.n_frames:
            raise CodecError(f"{name}: decoded {n} frames, expected {self.n_frames} "
                             "(truncated bitstream?); delete it and rebuild the sequence")
        pocs, types = self._per_frame["poc"], self._per_frame["slice_type"]
        if any(b <= a and kind != SLICE_I and t + 1 not in self.restarts
               for t, (a, b, kind) in enumerate(zip(pocs, pocs[1:], types[1:], strict=False))):  # fmt: skip
            raise CodecError(f"{name}: output is not in display order (POCs {pocs[:8]}...)")
        coded = [int(first.rgb.shape[0]), int(first.rgb.shape[1])]
        self.attrs = {
            "codec": self.codec, "bit_depth": int(first.bit_depth), "lmcs": bool(lmcs),
            "decoder": decoder_version(self.codec), "patch_sha256": patch_sha256(), "coded_size": coded,
            "source_size": [h, w],
        }  # fmt: skip

    def per_frame(self) -> dict[str, np.ndarray]:
        """``poc`` (int32), ``slice_type`` (uint8) and ``qp`` (int8) per frame (after the iteration)."""
        return {k: np.asarray(v, spec(k).dtype) for k, v in self._per_frame.items()}


def _in_frames(f: DumpFrame, unit: int, name: str, index: int) -> tuple[int, np.ndarray]:
    """POC and reference POC distances of ``f`` in frames: divided by the codec's POC units per frame."""
    if unit == 1:
        return f.poc, f.mv_ref
    if f.poc % unit or np.any(f.mv_ref % unit):
        raise CodecError(f"{name}: frame {index} has POC {f.poc} or reference distances that are not whole frames "
                         f"({unit} POC per frame): field-coded streams are not supported; code progressive frames")
    return f.poc // unit, f.mv_ref // unit


def decode_priors(bitstream: Path, height: int, width: int, n_frames: int | None = None,
                  threads: int = 0, codec: str = "vvc") -> CodedSequence:
    """Run the patched decoder of ``codec`` on `bitstream` and crop everything to `height` x `width` (whole arrays)."""
    return _whole(PriorStream(bitstream, height, width, n_frames, threads, block=n_frames or 16, codec=codec))


def _whole(stream: PriorStream) -> CodedSequence:
    """Decode all of ``stream`` into whole arrays."""
    blocks = [arrays for _, arrays in stream]
    whole = blocks[0] if len(blocks) == 1 else {k: np.concatenate([b[k] for b in blocks]) for k in BLOCK_ARRAYS}
    seq = CodedSequence(**whole, **stream.per_frame(), bitstream=stream.bitstream)
    seq.attrs = dict(stream.attrs)
    return seq


def _check_frames(frames: np.ndarray, name: str) -> None:
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8 or frames.ndim != 4 \
            or frames.shape[-1] != 3:
        got = f"{frames.dtype} {frames.shape}" if isinstance(frames, np.ndarray) else type(frames).__name__
        raise CodecError(f"{name}: expected uint8 RGB frames (T, H, W, 3), got {got}")
    if len(frames) == 0:
        raise CodecError(f"{name}: no frames to encode (empty input)")


def _encode_attrs(profile: CodecProfile, fps: float, bitstream: Path, seconds: float) -> dict:
    return {
        "profile": profile.as_dict(), "encoder": encoder_version(profile.codec), "fps": float(fps),
        "bitstream_bytes": bitstream.stat().st_size, "encode_seconds": round(seconds, 3),
    }  # fmt: skip


def encode_sequence(frames: np.ndarray, profile: CodecProfile, workdir: Path, name: str = "seq",
                    fps: float = 30.0, threads: int = 0) -> tuple[Path, dict]:
    """Encode uint8 RGB frames (T, H, W, 3) of any size to ``workdir/<name>.266`` (``.265``, ``.264``: the codec's).

    Frames are edge-padded to multiples of 8 for coding. Returns the bitstream and its attributes
    (profile, encoder, fps, size, encode time).
    """
    _check_frames(frames, name)
    workdir.mkdir(parents=True, exist_ok=True)
    bitstream = workdir / f"{name}{profile.spec.suffix}"
    t0 = time.perf_counter()
    encode(pad_to_multiple(frames), profile, bitstream, fps=fps, threads=threads)
    return bitstream, _encode_attrs(profile, fps, bitstream, time.perf_counter() - t0)


@contextlib.contextmanager
def coded_stream(frames: np.ndarray, profile: CodecProfile, workdir: Path, name: str = "seq",
                 fps: float = 30.0, threads: int = 0, block: int = 16,
                 cuts: Sequence[int] = ()) -> Iterator[PriorStream]:  # fmt: skip
    """Encode uint8 RGB frames (T, H, W, 3) of any size and decode them with prior export, at once.

    ``cuts``: frames that start an independently coded segment (intra, nothing referenced across it).

    Yields a :class:`PriorStream` of the frames cropped back to the source size; the patched decoder
    reads the encoder's bitstream as it is produced, while it is also written to ``workdir/<name>.266``
    (``.265``, ``.264``: the codec's suffix).
    When the block ends without error, the encoder has finished too and ``stream.attrs`` holds the
    encoder's attributes as well (``encode_seconds`` and ``decode_seconds`` count from the start, as
    the two overlap; the latter ends when the consumer took the last block). If the encoder fails,
    its error is raised rather than the decoder's (which only saw a short stream).
    """
    _check_frames(frames, name)
    workdir.mkdir(parents=True, exist_ok=True)
    bitstream = workdir / f"{name}{profile.spec.suffix}"
    t0 = time.perf_counter()
    with StreamingEncoder(pad_to_multiple(frames), profile, bitstream, fps, threads, cuts) as encoder:
        stream = PriorStream(bitstream, *frames.shape[1:3], n_frames=len(frames), threads=threads, block=block,
                             feed=encoder.relay_to, codec=profile.codec, restarts=cuts)  # fmt: skip
        try:
            yield stream
        except CodecError:
            error = encoder.failed()
            if error is not None:
                raise error from None
            raise
        decoded = time.perf_counter() - t0
        encoder.finish()
        stream.attrs.update(_encode_attrs(profile, fps, bitstream, time.perf_counter() - t0),
                            decode_seconds=round(decoded, 3), segments_start=[0, *sorted(set(cuts) - {0})])  # fmt: skip


def extract_priors(frames: np.ndarray, profile: CodecProfile, workdir: Path, name: str = "seq",
                   fps: float = 30.0, threads: int = 0) -> CodedSequence:
    """Encode uint8 RGB frames (T, H, W, 3) with the profile's encoder and decode them with MV/residual export.

    Any H, W: frames are edge-padded to multiples of 8 for coding, and every output is cropped back.
    Decoding overlaps encoding (:func:`coded_stream`); the bitstream is kept in `workdir` (`<name>.266`, `.265`,
    `.264`).
    """
    with coded_stream(frames, profile, workdir, name, fps, threads, block=len(frames)) as stream:
        seq = _whole(stream)
    seq.attrs = dict(stream.attrs)
    return seq
