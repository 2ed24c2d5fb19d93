"""Frames -> VVC bitstream -> decoded frames + coding priors, in the store schema."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .colour import yuv420_to_rgb
from .dump import decoder_version, patch_sha256, run_dump
from .encode import encode, encoder_version, pad_to_multiple
from .errors import CodecError
from .profiles import CodecProfile

PRIOR_ARRAYS = ("decoded", "mv", "mv_ref", "residual", "residual_cb", "residual_cr", "poc", "slice_type", "qp")


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


def decode_priors(bitstream: Path, height: int, width: int, n_frames: int | None = None,
                  threads: int = 0) -> CodedSequence:
    """Run the patched decoder on `bitstream` and crop everything to `height` x `width`."""
    h4, w4, h2, w2 = -(-height // 4), -(-width // 4), -(-height // 2), -(-width // 2)
    frames = list(run_dump(bitstream, threads=threads))
    if not frames:
        raise CodecError(f"{bitstream.name}: no frames decoded")
    if n_frames is not None and len(frames) != n_frames:
        raise CodecError(f"{bitstream.name}: decoded {len(frames)} frames, expected {n_frames} "
                         "(truncated bitstream?); delete it and rebuild the sequence")
    pocs = [f.poc for f in frames]
    if pocs != sorted(pocs):
        raise CodecError(f"{bitstream.name}: output is not in display order (POCs {pocs[:8]}...)")
    f0 = frames[0]
    if f0.planes[0].shape[0] < height or f0.planes[0].shape[1] < width:
        raise CodecError(f"{bitstream.name}: coded size {f0.planes[0].shape} smaller than {height}x{width}")
    seq = CodedSequence(
        decoded=np.stack([yuv420_to_rgb(*f.planes, f.bit_depth)[:height, :width] for f in frames]),
        mv=np.stack([f.mv[:, :h4, :w4] for f in frames]),
        mv_ref=np.stack([f.mv_ref[:, :h4, :w4] for f in frames]),
        residual=np.stack([f.residual[0][:height, :width] for f in frames]),
        residual_cb=np.stack([f.residual[1][:h2, :w2] for f in frames]),
        residual_cr=np.stack([f.residual[2][:h2, :w2] for f in frames]),
        poc=np.asarray(pocs, np.int32),
        slice_type=np.asarray([f.slice_type for f in frames], np.uint8),
        qp=np.asarray([f.qp for f in frames], np.int8),
        bitstream=bitstream,
    )
    seq.attrs = {
        "bit_depth": int(f0.bit_depth),
        "lmcs": bool(any(f.lmcs for f in frames)),
        "decoder": decoder_version(),
        "patch_sha256": patch_sha256(),
        "coded_size": [int(f0.planes[0].shape[0]), int(f0.planes[0].shape[1])],
        "source_size": [height, width],
    }
    return seq


def extract_priors(frames: np.ndarray, profile: CodecProfile, workdir: Path, name: str = "seq",
                   fps: float = 30.0, threads: int = 0) -> CodedSequence:
    """Encode uint8 RGB frames (T, H, W, 3) with VVenC and decode them with MV/residual export.

    Any H, W: frames are edge-padded to multiples of 8 for coding, and every output is cropped back.
    The bitstream is kept at `workdir/<name>.266`.
    """
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8 or frames.ndim != 4 \
            or frames.shape[-1] != 3:
        got = f"{frames.dtype} {frames.shape}" if isinstance(frames, np.ndarray) else type(frames).__name__
        raise CodecError(f"{name}: expected uint8 RGB frames (T, H, W, 3), got {got}")
    if len(frames) == 0:
        raise CodecError(f"{name}: no frames to encode (empty input)")
    t, h, w, _ = frames.shape
    workdir.mkdir(parents=True, exist_ok=True)
    bitstream = workdir / f"{name}.266"
    t0 = time.perf_counter()
    encode(pad_to_multiple(frames), profile, bitstream, fps=fps, threads=threads)
    t1 = time.perf_counter()
    seq = decode_priors(bitstream, h, w, n_frames=t, threads=threads)
    seq.attrs.update({
        "profile": profile.as_dict(),
        "encoder": encoder_version(),
        "fps": float(fps),
        "bitstream_bytes": bitstream.stat().st_size,
        "encode_seconds": round(t1 - t0, 3),
        "decode_seconds": round(time.perf_counter() - t1, 3),
    })
    return seq
