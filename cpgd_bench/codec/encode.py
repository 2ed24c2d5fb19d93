"""Encode RGB frames with VVenC (H.266), x265 (HEVC) or x264 (H.264) through imageio-ffmpeg's FFmpeg binary."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .colour import rgb_to_yuv420
from .errors import CodecError
from .profiles import CodecProfile, codec_spec

ALIGN = 8  # VVC and HEVC coded sizes are multiples of the minimum CU size (x264 pads to 16 and crops itself)
RELAY_BYTES = 1 << 16  # bitstream bytes relayed per read
#: Smallest coded width and height. FFmpeg's libvvenc wrapper gives each access unit (parameter sets
#: and one picture) a W x H byte buffer, so small pictures fail on their content alone (measured with
#: the bundled FFmpeg: flat 16x16 and 32x8 frames fail, 32x32 flat or natural frames code at every profile).
MIN_SIDE = 32
_FFMPEG_CONTEXT = re.compile(r"\[[^\]]* @ 0x[0-9a-f]+\] ")  # "[enc:libvvenc @ 0x55...] " log prefixes


def ffmpeg_exe() -> str:
    """Path of imageio-ffmpeg's FFmpeg binary (has libvvenc)."""
    try:
        import imageio_ffmpeg
    except ImportError as e:
        raise CodecError("imageio-ffmpeg is not installed; run: pip install imageio-ffmpeg") from e
    return imageio_ffmpeg.get_ffmpeg_exe()


@cache
def encoder_version(codec: str = "vvc") -> str:
    """'ffmpeg <version>, <encoder>' of the encoder of ``codec`` in use."""
    encoder = codec_spec(codec).encoder
    out = subprocess.run([ffmpeg_exe(), "-hide_banner", "-h", f"encoder={encoder}"],
                         capture_output=True, text=True).stdout
    if encoder not in out:
        raise CodecError(f"{ffmpeg_exe()} has no {encoder} encoder; reinstall imageio-ffmpeg >= 0.6")
    ver = subprocess.run([ffmpeg_exe(), "-version"], capture_output=True, text=True).stdout.split("\n")[0]
    m = re.search(r"ffmpeg version (\S+)", ver)
    return f"ffmpeg {m[1] if m else 'unknown'}, {encoder}"


def pad_to_multiple(frames: np.ndarray, align: int = ALIGN) -> np.ndarray:
    """Replicate the bottom/right edge so H and W are multiples of `align`."""
    t, h, w, _ = frames.shape
    ph, pw = (-h) % align, (-w) % align
    if not ph and not pw:
        return frames
    return np.pad(frames, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")


def yuv420p10_frames(frames: np.ndarray, bit_depth: int) -> Iterator[bytes]:
    """(T, H, W, 3) uint8 RGB -> raw planar yuv420p10le bytes, one frame at a time."""
    for f in frames:
        y, cb, cr = rgb_to_yuv420(f, bit_depth)
        yield b"".join(p.astype("<u2").tobytes() for p in (y, cb, cr))


def _command(frames: np.ndarray, profile: CodecProfile, fps: float, threads: int, out: Path) -> list[str]:
    """FFmpeg arguments that encode ``frames`` from raw YUV on stdin into ``out`` (named after the sequence)."""
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or not len(frames):
        raise CodecError(f"expected non-empty uint8 frames (T, H, W, 3), got {frames.dtype} {frames.shape}")
    t, h, w, _ = frames.shape
    if h % ALIGN or w % ALIGN:
        raise CodecError(f"frame size {w}x{h} is not a multiple of {ALIGN}; pad it first (pad_to_multiple)")
    if min(h, w) < MIN_SIDE:
        raise CodecError(
            f"sequence {out.stem}: frames of {w}x{h} are smaller than the {MIN_SIDE}x{MIN_SIDE} minimum that VVenC "
            "codes here; use larger frames (upscale or pad them)"
        )
    if profile.bit_depth != 10:
        raise CodecError("only 10-bit coding is supported (every profile codes yuv420p10le)")
    spec = profile.spec
    cmd = [
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "yuv420p10le", "-s", f"{w}x{h}", "-r", f"{fps:g}", "-i", "pipe:0",
        "-c:v", spec.encoder, "-preset", profile.preset, "-qp", str(profile.qp),
        "-threads", str(threads),
        "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv",
    ]
    if profile.params:
        cmd += [spec.params_option, profile.params_arg()]
    return cmd + ["-f", spec.muxer]


def _failure(out: Path, stderr: bytes, encoder: str) -> CodecError:
    lines = [_FFMPEG_CONTEXT.sub("", ln).strip() for ln in stderr.decode(errors="replace").splitlines()]
    first = next((ln for ln in lines if ln), "no output")
    if first.startswith("Error submitting video frame"):  # the access unit outgrew FFmpeg's W x H byte buffer
        first += " (a coded picture may take at most W x H bytes here: use larger frames or a higher QP)"
    return CodecError(f"{encoder} encoding of {out.name} failed: {first}")


def encode(frames: np.ndarray, profile: CodecProfile, out: Path, fps: float = 30.0, threads: int = 0) -> Path:
    """Encode uint8 RGB frames (T, H, W, 3), H and W multiples of 8, to a raw bitstream `out` of the profile's codec."""
    cmd = _command(frames, profile, fps, threads, out) + [str(out)]
    proc = subprocess.run(cmd, input=b"".join(yuv420p10_frames(frames, profile.bit_depth)), capture_output=True)
    if proc.returncode or not out.exists() or out.stat().st_size == 0:
        raise _failure(out, proc.stderr, profile.spec.encoder_name)
    return out


def _write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (a write to a pipe may be cut short by a signal)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class StreamingEncoder:
    """The encoder in the background, its bitstream written to ``out`` and relayed to a decoder as it is produced.

    The frames are converted as :func:`encode` does, one at a time, by a thread that feeds them to FFmpeg as
    it takes them (conversion overlaps encoding); another thread copies
    its output to ``out`` and to the pipe handed to :meth:`relay_to`, so decoding overlaps encoding.
    Use as a context manager: :meth:`finish` waits and raises :class:`CodecError` if encoding failed;
    leaving the block early (an error) stops the encoder.
    """

    def __init__(self, frames: np.ndarray, profile: CodecProfile, out: Path, fps: float = 30.0,
                 threads: int = 0) -> None:  # fmt: skip
        cmd = _command(frames, profile, fps, threads, out) + ["pipe:1"]
        self.out, self._encoder = out, profile.spec.encoder_name
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop)
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr)
        self._ended = threading.Event()                # the encoder's output is complete (or it died)
        self._relay_error: OSError | None = None
        self._feeder = threading.Thread(target=self._feed, args=(yuv420p10_frames(frames, profile.bit_depth),),
                                        daemon=True)
        self._relay: threading.Thread | None = None
        self._feeder.start()

    def _feed(self, frames: Iterator[bytes]) -> None:
        with contextlib.suppress(BrokenPipeError):     # the encoder stopped early: its exit status says why
            for data in frames:
                self._proc.stdin.write(data)
        with contextlib.suppress(BrokenPipeError):
            self._proc.stdin.close()

    def relay_to(self, pipe: BinaryIO) -> None:
        """Start copying the bitstream into ``pipe`` (a decoder's stdin), which this encoder then owns and closes."""
        fd = os.dup(pipe.fileno())
        pipe.close()
        self._relay = threading.Thread(target=self._copy_output, args=(fd,), daemon=True)
        self._relay.start()

    def _copy_output(self, decoder_fd: int) -> None:
        live = True
        try:
            with open(self.out, "wb") as file:
                while chunk := self._proc.stdout.read1(RELAY_BYTES):
                    file.write(chunk)
                    if live:
                        try:
                            _write_all(decoder_fd, chunk)
                        except BrokenPipeError:            # the decoder stopped; its own error is reported
                            live = False
        except OSError as e:
            self._relay_error = e
        finally:
            self._ended.set()
            os.close(decoder_fd)

    def failed(self) -> CodecError | None:
        """The encoder's error if its output has ended and it failed, else None (never waits for encoding)."""
        if not self._ended.is_set():
            return None
        if self._relay_error is not None:
            return CodecError(f"cannot write {self.out}: {self._relay_error}")
        if self._proc.wait() or not self.out.exists() or self.out.stat().st_size == 0:
            self._stderr.seek(0)
            return _failure(self.out, self._stderr.read(), self._encoder)
        return None

    def finish(self) -> None:
        """Wait for the encoder to end; raises CodecError if it failed."""
        if self._relay is None:
            raise CodecError(f"{self.out.name}: the encoder's output was never relayed (call relay_to)")
        self._feeder.join()
        self._relay.join()
        error = self.failed()
        if error is not None:
            raise error

    def stop(self) -> None:
        """Kill the encoder (if still running) and release its threads and files."""
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        self._feeder.join()
        if self._relay is not None:
            self._relay.join()
        self._proc.stdout.close()
        self._stderr.close()

    def __enter__(self) -> StreamingEncoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
