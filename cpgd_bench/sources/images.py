"""Reading image frames (PNG, JPEG) as uint8 RGB, with the one policy every image adapter follows.

Policy (documented in docs/datasets.md): 8-bit RGB is read as is; 8-bit greyscale is converted to RGB by
repeating the grey channel (lossless); an alpha channel is dropped only when every pixel is opaque;
16-bit PNGs are refused (reducing them to 8 bit would silently change ground truth: convert them
yourself, e.g. ``magick in.png -depth 8 out.png``); anything unreadable is refused. Frame sizes are
read from the headers and checked against :data:`cpgd_bench.sources.limits.LIMITS` before any pixel
is decoded or any array allocated. Refusals raise :class:`ImageError` naming the file.
"""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from cpgd_bench.sources import SourceError, limits

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class ImageError(SourceError):
    """An image frame that cannot be used (one-line message naming the file)."""


def first_line(e: BaseException) -> str:
    """An exception's first message line (its type name when it has no message)."""
    return str(e).splitlines()[0] if str(e).strip() else type(e).__name__


def list_frames(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name (the frame order)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _png_header(path: Path) -> tuple[int, int, int] | None:
    """(width, height, bits per sample) from a PNG's IHDR chunk (None when ``path`` is not a PNG)."""
    with open(path, "rb") as fh:
        head = fh.read(33)
    if not head.startswith(PNG_SIGNATURE) or head[12:16] != b"IHDR" or len(head) < 25:
        return None
    width, height, depth = struct.unpack(">IIB", head[16:25])
    return width, height, depth


def frame_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image from its header, checked against the size limits; nothing is decoded."""
    try:
        png = _png_header(path)
        if png is not None:
            width, height = png[:2]
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(path) as im:
                    width, height = im.size
    except Image.DecompressionBombError as e:
        raise ImageError(f"{path}: too large ({first_line(e)}); {limits.LIMITS.describe()}") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"{path}: unreadable image ({first_line(e)})") from None
    try:
        limits.check_frame_size(str(path), width, height)
    except SourceError as e:
        raise ImageError(str(e)) from None
    return width, height


def read_rgb(path: Path) -> np.ndarray:
    """One frame as uint8 RGB (H, W, 3), following the module's policy."""
    frame_size(path)
    try:
        png = _png_header(path)
        if png is not None and png[2] > 8:
            raise ImageError(f"{path}: {png[2]}-bit PNG; cpgd-bench reads 8-bit frames only, convert it to 8-bit RGB")
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode in ("1", "L", "P", "LA", "PA"):
                im = im.convert("RGBA" if "A" in mode or "transparency" in im.info else "RGB")
            elif mode not in ("RGB", "RGBA"):
                raise ImageError(f"{path}: unsupported image mode {mode}; convert it to 8-bit RGB")
            array = np.asarray(im)
    except ImageError:
        raise
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"{path}: unreadable image ({first_line(e)})") from None
    if array.shape[-1] == 4:
        if (array[..., 3] != 255).any():
            raise ImageError(f"{path}: has transparent pixels; flatten it to RGB first")
        array = array[..., :3]
    return np.ascontiguousarray(array, dtype=np.uint8)


def sequence_size(paths: list[Path]) -> tuple[int, int]:
    """The (width, height) every frame of ``paths`` has, from the headers (raises ImageError naming a misfit)."""
    first = frame_size(paths[0])
    for path in paths[1:]:
        size = frame_size(path)
        if size != first:
            raise ImageError(
                f"{path}: frame size {size[0]}x{size[1]} differs from {first[0]}x{first[1]} of {paths[0].name}"
            )
    return first


def read_frames(paths: list[Path], size: tuple[int, int]) -> np.ndarray:
    """Frames (T, H, W, 3) from ``paths``, whose headers :func:`sequence_size` found all of ``size`` (W, H)."""
    width, height = size
    out = np.empty((len(paths), height, width, 3), np.uint8)
    for i, path in enumerate(paths):
        frame = read_rgb(path)
        if frame.shape != out.shape[1:]:  # a file changed since its header was read
            raise ImageError(f"{path}: decoded {frame.shape[1]}x{frame.shape[0]}, its header said {width}x{height}")
        out[i] = frame
    return out
