"""Raw planar YUV 4:2:0 files (``.yuv``): geometry from the file name, frame counting and reading as RGB.

Name convention (JVET common test conditions): ``<Name>_<W>x<H>[_<fps>[fps]][_<bits>bit][_420][_...].yuv``,
e.g. ``Cactus_1920x1080_50.yuv`` (8 bit) or ``Tango2_3840x2160_60fps_10bit_420.yuv``. Samples above 8 bit
are 16-bit little-endian words. Frames are converted to RGB with the project's single conversion
(:func:`cpgd_bench.codec.colour.yuv420_to_rgb`: BT.709, limited range).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cpgd_bench.codec.colour import yuv420_to_rgb
from cpgd_bench.sources import SourceError
from cpgd_bench.sources.limits import check_frame_size

_NAME = re.compile(r"^(?P<name>.+?)_(?P<w>\d+)x(?P<h>\d+)(?P<rest>(?:_.*)?)$")
_FPS = re.compile(r"^(\d+(?:\.\d+)?)(?:fps|hz)?$", re.IGNORECASE)
_BITS = re.compile(r"^(\d+)bits?$", re.IGNORECASE)
_CHROMA = {"420", "yuv420", "i420"}
_OTHER_CHROMA = {"422", "444", "400", "yuv422", "yuv444"}
BIT_DEPTHS = (8, 10, 12)


class YuvError(SourceError):
    """A ``.yuv`` file that cannot be read (one-line message naming the file)."""


@dataclass(frozen=True)
class YuvSpec:
    """Geometry of a raw 4:2:0 file."""

    width: int
    height: int
    bit_depth: int = 8
    fps: float | None = None

    @property
    def sample_bytes(self) -> int:
        return 1 if self.bit_depth <= 8 else 2

    @property
    def chroma_shape(self) -> tuple[int, int]:
        return -(-self.height // 2), -(-self.width // 2)

    @property
    def frame_bytes(self) -> int:
        ch, cw = self.chroma_shape
        return (self.width * self.height + 2 * ch * cw) * self.sample_bytes


def parse_yuv_name(path: Path) -> tuple[str, dict[str, int | float]]:
    """(sequence name, {width, height[, fps][, bit_depth]}) from a conventional file name.

    Raises YuvError when the name carries no ``<W>x<H>`` or names a chroma format other than 4:2:0.
    """
    match = _NAME.match(path.stem)
    if not match:
        raise YuvError(f"{path}: name has no _<W>x<H> size (e.g. Name_1920x1080_50.yuv); rename it or list it "
                       "in the manifest with width/height")
    facts: dict[str, int | float] = {"width": int(match["w"]), "height": int(match["h"])}
    for token in match["rest"].split("_")[1:]:
        low = token.lower()
        if low in _OTHER_CHROMA:
            raise YuvError(f"{path}: chroma format {token} is not supported (4:2:0 only)")
        if low in _CHROMA:
            continue
        if (bits := _BITS.match(token)) and "bit_depth" not in facts:
            facts["bit_depth"] = int(bits[1])
        elif (fps := _FPS.match(token)) and "fps" not in facts:
            facts["fps"] = float(fps[1])
    return match["name"], facts


def count_yuv_frames(path: Path, spec: YuvSpec) -> int:
    """Number of whole frames in ``path``; raises SourceError for a size outside the limits or not whole frames."""
    check_frame_size(str(path), spec.width, spec.height)
    if spec.bit_depth not in BIT_DEPTHS:
        raise YuvError(f"{path}: bit depth {spec.bit_depth} is not supported ({', '.join(map(str, BIT_DEPTHS))})")
    size = path.stat().st_size
    frames, rest = divmod(size, spec.frame_bytes)
    if rest or not frames:
        raise YuvError(
            f"{path}: {size} bytes is not a whole number of {spec.width}x{spec.height} {spec.bit_depth}-bit "
            f"4:2:0 frames ({spec.frame_bytes} bytes each); check the size and bit depth in its name or manifest"
        )
    return frames


def read_yuv_rgb(path: Path, spec: YuvSpec, start: int, count: int) -> np.ndarray:
    """Frames ``start .. start+count-1`` of ``path`` as uint8 RGB (count, H, W, 3)."""
    total = count_yuv_frames(path, spec)
    if start < 0 or start + count > total:
        raise YuvError(f"{path}: frames {start}..{start + count - 1} requested, the file has {total}")
    dtype = np.dtype("<u2") if spec.sample_bytes == 2 else np.dtype(np.uint8)
    per_frame = spec.frame_bytes // spec.sample_bytes
    data = np.memmap(path, dtype=dtype, mode="r", offset=start * spec.frame_bytes, shape=(count, per_frame))
    luma = spec.width * spec.height
    ch, cw = spec.chroma_shape
    out = np.empty((count, spec.height, spec.width, 3), np.uint8)
    for t in range(count):
        frame = data[t]
        y = frame[:luma].reshape(spec.height, spec.width)
        cb = frame[luma : luma + ch * cw].reshape(ch, cw)
        cr = frame[luma + ch * cw :].reshape(ch, cw)
        yuv420_to_rgb(y, cb, cr, spec.bit_depth, out=out[t])
    del data
    return out
