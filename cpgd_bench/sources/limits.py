"""Size limits of source frames, checked from image headers and ``.yuv`` geometry before any frame is allocated.

A frame or sequence outside :data:`LIMITS` fails that sequence with one line naming the file; a build
goes on with the other sequences. docs/datasets.md states these limits.
"""

from __future__ import annotations

from dataclasses import dataclass

from cpgd_bench.codec.encode import MIN_SIDE
from cpgd_bench.sources import SourceError


@dataclass(frozen=True)
class FrameLimits:
    """Frame and sequence sizes the sources accept (see :data:`LIMITS`)."""

    min_side: int = MIN_SIDE
    max_side: int = 8192
    max_pixels: int = 8192 * 4320
    max_sequence_bytes: int = 8 << 30

    def describe(self) -> str:
        """The limits in words, for error messages."""
        return (
            f"frames must be {self.min_side} to {self.max_side} pixels wide and high and at most "
            f"{self.max_pixels:,} pixels (8K UHD)"
        )


#: Frames from 32x32 (:data:`cpgd_bench.codec.encode.MIN_SIDE`, the smallest picture VVenC codes here) up to
#: 8192 pixels per side and 8192 x 4320 (8K UHD, 35,389,440) pixels, within VVC level 6.2's 35,651,584 luma
#: samples per picture; at most 8 GiB of uint8 RGB source frames per sequence (blur plus a distinct sharp), so a
#: build never holds more than that of one sequence's input (HQ-Video: cut long videos with segment_frames).
LIMITS = FrameLimits()


def check_frame_size(where: str, width: int, height: int) -> None:
    """Raise SourceError naming ``where`` when a ``width`` x ``height`` frame is outside :data:`LIMITS`."""
    limits = LIMITS
    if (
        min(width, height) < limits.min_side
        or max(width, height) > limits.max_side
        or width * height > limits.max_pixels
    ):
        raise SourceError(f"{where}: frame size {width}x{height} is out of range; {limits.describe()}")


def check_sequence_bytes(where: str, frames: int, width: int, height: int, arrays: int = 1,
                         fix: str = "split it into shorter sequences") -> None:  # fmt: skip
    """Raise SourceError naming ``where`` and ``fix`` when ``arrays`` RGB arrays of ``frames`` frames exceed the cap."""
    size = arrays * frames * width * height * 3
    if size > LIMITS.max_sequence_bytes:
        raise SourceError(
            f"{where}: {frames} frames of {width}x{height} need {size / 2**30:.1f} GiB as RGB, over the "
            f"{LIMITS.max_sequence_bytes / 2**30:g} GiB per-sequence limit; {fix}"
        )
