"""Dataset build throughput: sequences/minute and frames/s of a whole GoPro-layout build, 1 vs 2 jobs.

Small synthetic sequences (PNG frames in the GOPRO_Large layout: a photograph under camera
translation) are built into fresh stores with ``jobs=1`` and ``jobs=2`` (loky processes) in the
same run; every time is a whole build (worker start-up, PNG reading, VVenC, dump tool, store
writes). The speed-up is limited by the machine's free cores (``cpu_count`` is reported).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from cpgd_bench.build import build_store
from cpgd_bench.sources import get_source

SEQUENCES, FRAMES, HEIGHT, WIDTH = 8, 16, 144, 256


def _write_dataset(root: Path) -> None:
    """``SEQUENCES`` GoPro-layout sequences: blur = mean of 3 shifted views, sharp = the middle one."""
    from skimage import data

    photo = data.astronaut()
    for s in range(SEQUENCES):
        seq = root / "GOPRO_Large" / "train" / f"GOPR{s:04d}_11_00"
        (seq / "blur").mkdir(parents=True)
        (seq / "sharp").mkdir()
        for t in range(FRAMES):
            y, x = 20 + 3 * s + t, 30 + 7 * s + 2 * t
            views = [photo[y : y + HEIGHT, x + d : x + d + WIDTH].astype(np.float32) for d in (-2, 0, 2)]
            Image.fromarray(views[1].astype(np.uint8)).save(seq / "sharp" / f"{t:06d}.png")
            Image.fromarray((sum(views) / 3 + 0.5).astype(np.uint8)).save(seq / "blur" / f"{t:06d}.png")


def _build(root: Path, out: Path, jobs: int) -> float:
    started = time.perf_counter()
    summary = build_store(get_source("gopro", root=root), out, jobs=jobs, progress=False)
    seconds = time.perf_counter() - started
    if summary.failed or len(summary.built) != SEQUENCES:
        raise RuntimeError(f"benchmark build failed: {summary.format()}")
    return seconds


def run() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _write_dataset(root / "raw")
        _build(root / "raw", root / "warmup.zarr", 1)  # warm caches (imports, encoder binary)
        t1 = _build(root / "raw", root / "jobs1.zarr", 1)
        t2 = _build(root / "raw", root / "jobs2.zarr", 2)
    frames = SEQUENCES * FRAMES
    return {
        "sequences": SEQUENCES,
        "frames_per_sequence": FRAMES,
        "frame_size": f"{WIDTH}x{HEIGHT}",
        "cpu_count": os.cpu_count(),
        "jobs1_seconds": round(t1, 2),
        "jobs2_seconds": round(t2, 2),
        "jobs1_sequences_per_minute": round(60 * SEQUENCES / t1, 1),
        "jobs2_sequences_per_minute": round(60 * SEQUENCES / t2, 1),
        "jobs1_frames_per_second": round(frames / t1, 1),
        "jobs2_frames_per_second": round(frames / t2, 1),
        "speedup_1_to_2_jobs": round(t1 / t2, 2),
    }
