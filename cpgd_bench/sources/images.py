"""Reading image frames (PNG, JPEG) as uint8 RGB, with the one policy every image adapter follows.

Policy (documented in the README): 8-bit RGB is read as is; 8-bit greyscale is converted to RGB by
repeating the grey channel (lossless); an alpha channel is dropped only when every pixel is opaque;
16-bit PNGs are refused (reducing them to 8 bit would silently change ground truth: convert them
yourself, e.g. ``magick in.png -depth 8 out.png``); anything unreadable is refused. Refusals raise
:class:`ImageError` naming the file.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
from PIL import Image

from cpgd_bench.sources import SourceError

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


def png_bit_depth(path: Path) -> int | None:
    """Bits per sample from a PNG header (None when ``path`` is not a PNG)."""
    with open(path, "rb") as fh:
        head = fh.read(33)
    if not head.startswith(PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">B", head[24:25])[0]


def read_rgb(path: Path) -> np.ndarray:
    """One frame as uint8 RGB (H, W, 3), following the module's policy."""
    try:
        depth = png_bit_depth(path)
        if depth is not None and depth > 8:
            raise ImageError(f"{path}: {depth}-bit PNG; cpgd-bench reads 8-bit frames only, convert it to 8-bit RGB")
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


def read_frames(paths: list[Path]) -> np.ndarray:
    """Frames (T, H, W, 3) from ``paths``; every frame must have the first one's size."""
    first = read_rgb(paths[0])
    out = np.empty((len(paths), *first.shape), np.uint8)
    out[0] = first
    for i, path in enumerate(paths[1:], start=1):
        frame = read_rgb(path)
        if frame.shape != first.shape:
            raise ImageError(
                f"{path}: frame size {frame.shape[1]}x{frame.shape[0]} differs from "
                f"{first.shape[1]}x{first.shape[0]} of {paths[0].name}"
            )
        out[i] = frame
    return out
