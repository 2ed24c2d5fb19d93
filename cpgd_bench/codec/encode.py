"""Encode RGB frames with VVenC (H.266), x265 (HEVC) or x264 (H.264) through imageio-ffmpeg's FFmpeg binary."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Sequence
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
        "-c:v", spec.encoder, "-preset", profile.preset, "-qp", str(profile.encoder_qp()),
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


def _no_output(out: Path, encoder: str, start: int, end: int) -> CodecError:
    """An encoder that exited 0 but wrote nothing for frames ``[start, end)`` (seen: VVenC, GOPSize 16)."""
    return CodecError(f"{encoder} wrote no bitstream for frames {start}-{end - 1} of {out.name} and exited without "
                      "an error (the encoder dropped them); code the sequence with another --profile")


def segment_bounds(n: int, cuts: Sequence[int] = ()) -> list[tuple[int, int]]:
    """``[start, end)`` of the independently coded segments of ``n`` frames: a new one starts at each cut."""
    starts = [0, *sorted({int(c) for c in cuts if 0 < c < n})]
    return list(zip(starts, [*starts[1:], n], strict=True))


def _segment_commands(frames: np.ndarray, profile: CodecProfile, fps: float, threads: int, out: Path,
                      cuts: Sequence[int]) -> list[tuple[int, int, list[str]]]:  # fmt: skip
    """``(start, end, FFmpeg arguments)`` of each independently coded segment, its bitstream to stdout."""
    return [(a, b, _command(frames[a:b], profile, fps, threads, out) + ["pipe:1"])
            for a, b in segment_bounds(len(frames), cuts)]  # fmt: skip


def encode(frames: np.ndarray, profile: CodecProfile, out: Path, fps: float = 30.0, threads: int = 0,
           cuts: Sequence[int] = ()) -> Path:  # fmt: skip
    """Encode uint8 RGB frames (T, H, W, 3), H and W multiples of 8, to a raw bitstream `out` of the profile's codec.

    ``cuts``: frames that start a new, independently coded segment (an intra picture, no reference across it).
    """
    segments = _segment_commands(frames, profile, fps, threads, out, cuts)
    with open(out, "wb") as f:
        for a, b, cmd in segments:
            data = b"".join(yuv420p10_frames(frames[a:b], profile.bit_depth))
            proc = subprocess.run(cmd, input=data, capture_output=True)
            if proc.returncode or not proc.stdout:
                f.close()
                out.unlink()
                name = profile.spec.encoder_name
                raise _failure(out, proc.stderr, name) if proc.returncode else _no_output(out, name, a, b)
            f.write(proc.stdout)
    return out


def _write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (a write to a pipe may be cut short by a signal)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class StreamingEncoder:
    """The encoder in the background, its bitstream written to ``out`` and relayed to a decoder as it is produced.

    A feeder thread converts the frames as :func:`encode` does, one at a time, and feeds them to FFmpeg as it
    takes them (conversion overlaps encoding); with ``cuts``, it runs one encoder per segment, one after the
    other. Another thread copies their output, in order, to ``out`` and to the pipe handed to
    :meth:`relay_to`, so decoding overlaps encoding. Use as a context manager: :meth:`finish` waits and raises
    :class:`CodecError` if encoding failed; leaving the block early (an error) stops the encoder.
    """

    def __init__(self, frames: np.ndarray, profile: CodecProfile, out: Path, fps: float = 30.0,
                 threads: int = 0, cuts: Sequence[int] = ()) -> None:  # fmt: skip
        self._frames = frames
        self._segments = _segment_commands(frames, profile, fps, threads, out, cuts)
        self._written: list[int] = []                  # bitstream bytes relayed per segment
        self.out, self._encoder, self._bit_depth = out, profile.spec.encoder_name, profile.bit_depth
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop)
        self._procs: list[subprocess.Popen] = []       # the encoders started so far
        self._outputs: queue.Queue[subprocess.Popen | None] = queue.Queue()   # ... for the relay, then None
        self._lock = threading.Lock()                  # starting an encoder vs stop()
        self._stopping = False
        self._ended = threading.Event()                # the encoders' output is complete (or one died)
        self._relay_error: OSError | None = None
        self._feeder = threading.Thread(target=self._feed, daemon=True)
        self._relay: threading.Thread | None = None
        self._feeder.start()

    def _feed(self) -> None:
        try:
            for a, b, cmd in self._segments:
                with self._lock:
                    if self._stopping:
                        return
                    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr)
                    self._procs.append(proc)
                self._outputs.put(proc)
                with contextlib.suppress(BrokenPipeError):  # the encoder stopped early: its exit status says why
                    for data in yuv420p10_frames(self._frames[a:b], self._bit_depth):
                        proc.stdin.write(data)
                with contextlib.suppress(BrokenPipeError):
                    proc.stdin.close()
                if proc.wait():                             # a failed segment ends the stream
                    return
        finally:
            self._outputs.put(None)

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
                while (proc := self._outputs.get()) is not None:
                    self._written.append(0)
                    while chunk := proc.stdout.read1(RELAY_BYTES):
                        self._written[-1] += len(chunk)
                        file.write(chunk)
                        if live:
                            try:
                                _write_all(decoder_fd, chunk)
                            except BrokenPipeError:    # the decoder stopped; its own error is reported
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
        self._feeder.join()
        if len(self._procs) < len(self._segments) or any(p.wait() for p in self._procs) \
                or not self.out.exists() or self.out.stat().st_size == 0:
            self._stderr.seek(0)
            return _failure(self.out, self._stderr.read(), self._encoder)
        empty = [(a, b) for (a, b, _), written in zip(self._segments, self._written, strict=False) if not written]
        return _no_output(self.out, self._encoder, *empty[0]) if empty else None

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
        """Kill the encoders (if still running) and release their threads and files."""
        with self._lock:
            self._stopping = True
            for proc in self._procs:
                if proc.poll() is None:
                    proc.kill()
        self._feeder.join()
        for proc in self._procs:
            proc.wait()
        if self._relay is not None:
            self._relay.join()
        for proc in self._procs:
            proc.stdout.close()
        self._stderr.close()

    def __enter__(self) -> StreamingEncoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
