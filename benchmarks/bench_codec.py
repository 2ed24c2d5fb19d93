"""Codec overheads: decode-with-export vs plain decode, and encode+export+store vs encode alone (720p).

The second ratio times the store build's own per-sequence path (``code_and_store``: VVenC encode, the
patched decoder with export reading the bitstream as VVenC writes it, store write, all overlapped)
against ``encode_sequence`` alone (the same conversion and encoder, to a file), alternating the two and
taking the median per-round ratio.
"""

from __future__ import annotations

import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from cpgd_bench.build import code_and_store
from cpgd_bench.codec import dump_tool_path, encode_sequence, load_profile
from cpgd_bench.sources.base import SequenceFrames, SequenceRef
from cpgd_bench.store import StoreWriter

FRAMES, HEIGHT, WIDTH = 30, 720, 1280


def _clip() -> np.ndarray:
    """A 720p clip of a photograph under smooth camera translation (bilinear resampling)."""
    from skimage import data, transform

    img = transform.resize(data.astronaut(), (1024, 1024), anti_aliasing=True)
    img = (np.tile(img, (1, 2, 1)) * 255).astype(np.float32)         # 1024 x 2048
    frames = np.empty((FRAMES, HEIGHT, WIDTH, 3), np.uint8)
    for t in range(FRAMES):
        y0, x0 = 50 + 0.7 * t, 100 + 2.3 * t
        iy, ix = int(y0), int(x0)
        fy, fx = y0 - iy, x0 - ix
        a = img[iy:iy + HEIGHT + 1, ix:ix + WIDTH + 1]
        f = (1 - fy) * ((1 - fx) * a[:-1, :-1] + fx * a[:-1, 1:]) + fy * ((1 - fx) * a[1:, :-1] + fx * a[1:, 1:])
        frames[t] = np.clip(f, 0, 255)
    return frames


def _time_pair(first, second, repeats: int, inner: int = 2) -> tuple[float, float, float]:
    """Medians of ``first`` and ``second`` (seconds per call) and the median of their per-round ratio.

    The two run alternately, ``inner`` calls per timing and ``repeats`` rounds: drift of a shared machine
    hits both alike, and the per-round ratio cancels it.
    """
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, out in ((first, times[0]), (second, times[1])):
            t0 = time.perf_counter()
            for _ in range(inner):
                fn()
            out.append((time.perf_counter() - t0) / inner)
    ratios = [b / a for a, b in zip(*times, strict=True)]
    return statistics.median(times[0]), statistics.median(times[1]), statistics.median(ratios)


def run(repeats: int = 15, build_repeats: int = 7) -> dict:
    tool = str(dump_tool_path())
    frames = _clip()
    profile = load_profile()
    sequence = SequenceFrames(blur=frames, fps=30.0, frame_names=[f"{i:06d}" for i in range(FRAMES)])
    with tempfile.TemporaryDirectory() as tmp:
        bitstream, _ = encode_sequence(frames, profile, Path(tmp), "bench")

        def dump(*args: str) -> None:
            subprocess.run([tool, "--null", *args, str(bitstream)], check=True, capture_output=True)

        dump()  # warm the page cache
        plain, export, ratio = {}, {}, {}
        for th in ("0", "1"):
            plain[th], export[th], ratio[th] = _time_pair(
                lambda th=th: dump("--no-export", "--threads", th), lambda th=th: dump("--threads", th), repeats
            )

        # the store build's own path: encode, decode with export and store, overlapped (cpgd_bench/build.py)
        with StoreWriter(Path(tmp) / "bench.zarr", "bench") as writer:
            names = (f"seq{i}" for i in range(1000))
            t_encode, t_build, build_ratio = _time_pair(
                lambda: encode_sequence(frames, profile, Path(tmp), "encode-only"),
                lambda: code_and_store(writer, SequenceRef("test", next(names)), sequence, profile, Path(tmp)),
                build_repeats, inner=1,
            )  # fmt: skip
    return {
        "clip": f"{FRAMES} frames {WIDTH}x{HEIGHT}, profile {profile.name}",
        "plain_decode_s": {k: round(v, 3) for k, v in plain.items()},
        "export_decode_s": {k: round(v, 3) for k, v in export.items()},
        "decode_export_over_plain_threads_auto": round(ratio["0"], 3),
        "decode_export_over_plain_threads_1": round(ratio["1"], 3),
        "target_decode_ratio": 1.15,
        "encode_s": round(t_encode, 3),
        "encode_export_store_s": round(t_build, 3),
        "encode_export_store_over_encode": round(build_ratio, 3),
        "target_build_ratio": 1.3,
    }
