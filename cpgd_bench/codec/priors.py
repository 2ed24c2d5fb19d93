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
    """Run the patched decoder on `bitstream` and crop everything to `height` x `width`.

    Frames are converted and copied into the output arrays as the decoder streams them (the decoder runs
    in its own process, so this overlaps with decoding).
    """
    h4, w4, h2, w2 = -(-height // 4), -(-width // 4), -(-height // 2), -(-width // 2)
    shapes = {
        "decoded": ((height, width, 3), np.uint8), "mv": ((2, h4, w4, 2), np.int16),
        "mv_ref": ((2, h4, w4), np.int16), "residual": ((height, width), np.int16),
        "residual_cb": ((h2, w2), np.int16), "residual_cr": ((h2, w2), np.int16),
    }
    cap = n_frames or 16
    out = {k: np.empty((cap, *shape), dtype) for k, (shape, dtype) in shapes.items()}
    pocs: list[int] = []
    types: list[int] = []
    qps: list[int] = []
    first = None
    lmcs = False
    for t, f in enumerate(run_dump(bitstream, threads=threads)):
        if first is None:
            first = f
            coded = f.planes[0].shape
            if coded[0] < height or coded[1] < width:
                raise CodecError(f"{bitstream.name}: coded size {coded} smaller than {height}x{width}")
        if t == cap:                                   # unknown length: grow
            cap *= 2
            out = {k: np.concatenate([v, np.empty_like(v)]) for k, v in out.items()}
        yuv420_to_rgb(*f.planes, f.bit_depth, out=out["decoded"][t])
        out["mv"][t] = f.mv[:, :h4, :w4]
        out["mv_ref"][t] = f.mv_ref[:, :h4, :w4]
        out["residual"][t] = f.residual[0][:height, :width]
        out["residual_cb"][t] = f.residual[1][:h2, :w2]
        out["residual_cr"][t] = f.residual[2][:h2, :w2]
        pocs.append(f.poc)
        types.append(f.slice_type)
        qps.append(f.qp)
        lmcs = lmcs or f.lmcs
    if first is None:
        raise CodecError(f"{bitstream.name}: no frames decoded")
    n = len(pocs)
    if n_frames is not None and n != n_frames:
        raise CodecError(f"{bitstream.name}: decoded {n} frames, expected {n_frames} "
                         "(truncated bitstream?); delete it and rebuild the sequence")
    if pocs != sorted(pocs):
        raise CodecError(f"{bitstream.name}: output is not in display order (POCs {pocs[:8]}...)")
    seq = CodedSequence(
        **{k: v[:n] for k, v in out.items()},
        poc=np.asarray(pocs, np.int32),
        slice_type=np.asarray(types, np.uint8),
        qp=np.asarray(qps, np.int8),
        bitstream=bitstream,
    )
    seq.attrs = {
        "bit_depth": int(first.bit_depth),
        "lmcs": bool(lmcs),
        "decoder": decoder_version(),
        "patch_sha256": patch_sha256(),
        "coded_size": [int(first.planes[0].shape[0]), int(first.planes[0].shape[1])],
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
