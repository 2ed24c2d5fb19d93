"""Small test clips with known camera motion, made from a photograph that ships with scikit-image."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import map_coordinates
from skimage import data

from cpgd_bench.codec import CodecError, dump_tool_path


def require_codec(variant: str = "patched") -> Path:
    """The dump tool of ``variant``; skips the test without it, unless CI demands it (CPGD_REQUIRE_CODEC)."""
    try:
        return dump_tool_path(variant)
    except CodecError as e:
        if os.environ.get("CPGD_REQUIRE_CODEC"):
            raise
        pytest.skip(str(e))


def translating_clip(n: int = 10, size: tuple[int, int] = (96, 128), velocity: tuple[float, float] = (1.25, 0.5),
                     image: str = "astronaut") -> np.ndarray:
    """uint8 (n, H, W, 3): frame t shows the image moved by t * velocity (x, y) pixels (cubic resampling).

    With content moving by v per frame, a block of frame t is found at p - v in frame t - 1, so a codec MV to
    a reference at POC distance d is d * v (in pixels).
    """
    img = getattr(data, image)().astype(np.float32)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.empty((n, h, w, 3), np.uint8)
    for t in range(n):
        ys, xs = yy + 100 - t * velocity[1], xx + 150 - t * velocity[0]
        for c in range(3):
            out[t, ..., c] = np.clip(map_coordinates(img[..., c], [ys, xs], order=3, mode="reflect"), 0, 255)
    return out
