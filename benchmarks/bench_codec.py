"""Codec overheads: decode-with-export vs plain decode, and encode+export+store vs encode alone (720p).

The second ratio times the store build's own per-sequence path (``code_and_store``: VVenC encode, the
patched decoder with export reading the bitstream as VVenC writes it, store write, all overlapped)
against ``encode_sequence`` alone (the same conversion and encoder, to a file). Each ratio alternates the two
in rounds and reports the median per-round ratio and its range; every ratio is measured twice: as the machine
is, and with a load generator busy on every core (memory-bound copies and arithmetic: export costs memory
traffic, which is what a shared machine takes away first).
"""

from __future__ import annotations

import contextlib
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np

from cpgd_bench.build import code_and_store
from cpgd_bench.codec import dump_tool_path, encode_sequence, load_profile
from cpgd_bench.motion import block_flows
from cpgd_bench.sources.base import SequenceFrames, SequenceRef
from cpgd_bench.store import StoreWriter

FRAMES, HEIGHT, WIDTH = 30, 720, 1280
#: issue 16: decode with export / plain decode, encode + export + store / encode alone; quiet and loaded
TARGETS = {"decode": (1.05, 1.10), "build": (1.15, 1.20)}


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


class Pair(NamedTuple):
    """Two alternated timings: medians (seconds per call) and the per-round ratio second / first, of wall time
    and of CPU time (user + system, this process and its children: what the work costs, less sensitive than
    wall time to other jobs on a shared machine)."""

    first: float
    second: float
    ratio: float        # median per-round wall-time ratio
    ratio_min: float
    ratio_max: float
    cpu_ratio: float    # median per-round CPU-time ratio
    cpu_ratio_min: float
    cpu_ratio_max: float
    packing_bound: float  # median per-round (second's CPU time / usable cores) / first's wall time

    def summary(self) -> dict:
        return {"ratio": round(self.ratio, 3), "range": [round(self.ratio_min, 3), round(self.ratio_max, 3)],
                "cpu_ratio": round(self.cpu_ratio, 3),
                "cpu_range": [round(self.cpu_ratio_min, 3), round(self.cpu_ratio_max, 3)],
                "packing_bound": round(self.packing_bound, 3),
                "first_s": round(self.first, 3), "second_s": round(self.second, 3)}


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _time_pair(first: Callable[[], object], second: Callable[[], object], repeats: int, inner: int = 2) -> Pair:
    """Time ``first`` and ``second`` alternately, ``inner`` calls per timing and ``repeats`` rounds: drift of a
    shared machine hits both alike, and the per-round ratio cancels it. ``packing_bound``: the smallest wall ratio
    these cores allow for ``second``'s CPU time (every core busy with it from start to end)."""
    wall: tuple[list[float], list[float]] = ([], [])
    cpu: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, w, c in ((first, wall[0], cpu[0]), (second, wall[1], cpu[1])):
            t0, c0 = time.perf_counter(), _cpu_seconds()
            for _ in range(inner):
                fn()
            w.append((time.perf_counter() - t0) / inner)
            c.append((_cpu_seconds() - c0) / inner)
    ratios = [b / a for a, b in zip(*wall, strict=True)]
    cpu_ratios = [b / a for a, b in zip(*cpu, strict=True)]
    cores = len(os.sched_getaffinity(0))
    bounds = [c / cores / w for w, c in zip(wall[0], cpu[1], strict=True)]
    return Pair(statistics.median(wall[0]), statistics.median(wall[1]), statistics.median(ratios),
                min(ratios), max(ratios), statistics.median(cpu_ratios), min(cpu_ratios), max(cpu_ratios),
                statistics.median(bounds))  # fmt: skip


#: One core of load: copy 32 MB arrays (memory bandwidth) and do float arithmetic, until killed or orphaned.
BURN = """
import os, sys
import numpy as np
a = np.ones(8 << 20, np.float32)
b = np.empty_like(a)
while os.getppid() == int(sys.argv[1]):
    np.copyto(b, a)
    np.multiply(b, 1.0001, out=a)
"""
#: One core of pure CPU load (Python arithmetic), until killed or orphaned.
SPIN = """
import os, sys
while os.getppid() == int(sys.argv[1]):
    sum(range(100000))
"""


@contextlib.contextmanager
def load_generator(workers: int | None = None, loop: str = BURN) -> Iterator[int]:
    """Run ``loop`` (:data:`BURN`, :data:`SPIN`) on ``workers`` processes (default: one per core) for the ``with``
    block; each also ends when this process is gone (killed however)."""
    count = workers or os.cpu_count() or 1
    procs = [subprocess.Popen([sys.executable, "-c", loop, str(os.getpid())]) for _ in range(count)]
    try:
        time.sleep(1.0)  # the workers have started and allocated
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("the load generator's workers exited")
        yield len(procs)
    finally:
        for p in procs:
            p.kill()
            p.wait()


def run(repeats: int = 11, build_repeats: int = 5) -> dict:
    """Both ratios as the machine is and under the load generator; ``build_repeats=0`` times the decode only."""
    tool = str(dump_tool_path())
    frames = _clip()
    profile = load_profile()
    sequence = SequenceFrames(blur=frames, fps=30.0, frame_names=[f"{i:06d}" for i in range(FRAMES)])
    result: dict = {"clip": f"{FRAMES} frames {WIDTH}x{HEIGHT}, profile {profile.name}", "targets": TARGETS}
    with tempfile.TemporaryDirectory() as tmp:
        bitstream, _ = encode_sequence(frames, profile, Path(tmp), "bench")

        def dump(*args: str) -> None:
            subprocess.run([tool, "--null", *args, str(bitstream)], check=True, capture_output=True)

        def measure() -> dict:
            out = {}
            for th in ("auto", "1"):
                arg = "0" if th == "auto" else th
                out[f"decode_export_over_plain_threads_{th}"] = _time_pair(
                    lambda a=arg: dump("--no-export", "--threads", a), lambda a=arg: dump("--threads", a), repeats
                ).summary()
            if not build_repeats:
                return out
            # the store build's own path: encode, decode with export and store, overlapped (cpgd_bench/build.py)
            with StoreWriter(Path(tmp) / f"bench{len(result)}.zarr", "bench") as writer:
                names = (f"seq{i}" for i in range(1000))
                out["encode_export_store_over_encode"] = _time_pair(
                    lambda: encode_sequence(frames, profile, Path(tmp), "encode-only"),
                    lambda: code_and_store(writer, SequenceRef("test", next(names)), sequence, profile, Path(tmp)),
                    build_repeats, inner=1,
                ).summary()  # fmt: skip
                out["encode_export_store_without_stored_flows_over_encode"] = _time_pair(
                    lambda: encode_sequence(frames, profile, Path(tmp), "encode-only"),
                    lambda: code_and_store(writer, SequenceRef("test", next(names)), sequence, profile, Path(tmp),
                                           store_flows=False),
                    build_repeats, inner=1,
                ).summary()  # fmt: skip
            return out

        dump()  # warm the page cache
        block_flows(np.zeros((2, 2, 4, 4, 2), np.int16), np.ones((2, 2, 4, 4), np.int16))  # load the flow loops
        result["as_is"] = measure()
        with load_generator() as workers:
            result["load_generator_workers"] = workers
            result["loaded"] = measure()
    for kind, (quiet, loaded) in TARGETS.items():
        keys = [k for k in result["as_is"] if k.startswith(kind if kind == "decode" else "encode")]
        if keys:
            result[f"{kind}_targets_met"] = {"as_is": all(result["as_is"][k]["ratio"] <= quiet for k in keys),
                                             "loaded": all(result["loaded"][k]["ratio"] <= loaded for k in keys)}
    return result
