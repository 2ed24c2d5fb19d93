"""Encode RGB frames with VVenC (H.266) through the FFmpeg binary shipped by imageio-ffmpeg."""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

import numpy as np

from .colour import rgb_to_yuv420
from .errors import CodecError
from .profiles import CodecProfile

ALIGN = 8  # VVC coded sizes are multiples of the minimum CU size


def ffmpeg_exe() -> str:
    """Path of imageio-ffmpeg's FFmpeg binary (has libvvenc)."""
    try:
        import imageio_ffmpeg
    except ImportError as e:
        raise CodecError("imageio-ffmpeg is not installed; run: pip install imageio-ffmpeg") from e
    return imageio_ffmpeg.get_ffmpeg_exe()


@cache
def encoder_version() -> str:
    """'ffmpeg <version>, libvvenc <version>' of the encoder in use."""
    out = subprocess.run([ffmpeg_exe(), "-hide_banner", "-h", "encoder=libvvenc"],
                         capture_output=True, text=True).stdout
    if "libvvenc" not in out:
        raise CodecError(f"{ffmpeg_exe()} has no libvvenc encoder; reinstall imageio-ffmpeg >= 0.6")
    ver = subprocess.run([ffmpeg_exe(), "-version"], capture_output=True, text=True).stdout.split("\n")[0]
    m = re.search(r"ffmpeg version (\S+)", ver)
    return f"ffmpeg {m[1] if m else 'unknown'}, libvvenc"


def pad_to_multiple(frames: np.ndarray, align: int = ALIGN) -> np.ndarray:
    """Replicate the bottom/right edge so H and W are multiples of `align`."""
    t, h, w, _ = frames.shape
    ph, pw = (-h) % align, (-w) % align
    if not ph and not pw:
        return frames
    return np.pad(frames, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")


def yuv420p10_bytes(frames: np.ndarray, bit_depth: int) -> bytes:
    """(T, H, W, 3) uint8 RGB -> raw planar yuv420p10le bytes, frame after frame."""
    parts = []
    for f in frames:
        y, cb, cr = rgb_to_yuv420(f, bit_depth)
        parts += [y.astype("<u2").tobytes(), cb.astype("<u2").tobytes(), cr.astype("<u2").tobytes()]
    return b"".join(parts)


def encode(frames: np.ndarray, profile: CodecProfile, out: Path, fps: float = 30.0, threads: int = 0) -> Path:
    """Encode uint8 RGB frames (T, H, W, 3), H and W multiples of 8, to a raw VVC bitstream `out`."""
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or not len(frames):
        raise CodecError(f"expected non-empty uint8 frames (T, H, W, 3), got {frames.dtype} {frames.shape}")
    t, h, w, _ = frames.shape
    if h % ALIGN or w % ALIGN:
        raise CodecError(f"frame size {w}x{h} is not a multiple of {ALIGN}; pad it first (pad_to_multiple)")
    if profile.bit_depth != 10:
        raise CodecError("only 10-bit coding is supported (libvvenc takes yuv420p10le)")
    cmd = [
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "yuv420p10le", "-s", f"{w}x{h}", "-r", f"{fps:g}", "-i", "pipe:0",
        "-c:v", "libvvenc", "-preset", profile.preset, "-qp", str(profile.qp),
        "-threads", str(threads),
        "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv",
    ]
    if profile.vvenc_params:
        cmd += ["-vvenc-params", profile.vvenc_params_arg()]
    cmd += ["-f", "vvc", str(out)]
    proc = subprocess.run(cmd, input=yuv420p10_bytes(frames, profile.bit_depth), capture_output=True)
    if proc.returncode or not out.exists() or out.stat().st_size == 0:
        lines = [ln for ln in proc.stderr.decode(errors="replace").splitlines() if ln.strip()]
        raise CodecError(f"VVenC encoding of {out.name} failed: {lines[0] if lines else 'no output'}")
    return out
