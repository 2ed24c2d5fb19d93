"""Small test clips with known camera motion, made from a photograph that ships with scikit-image."""

from __future__ import annotations

import os
import random
import subprocess
from collections.abc import Callable
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


# ---- shared by the three decoders' tests: Annex-B mutants, motion compensation from exported MVs ----

MUTATIONS = ["flip", "flip-parameter-set", "delete", "truncate", "splice", "duplicate-nal", "drop-nal", "swap-nal"]


def nal_units(data: bytes) -> list[bytes]:
    """An Annex-B stream split before each start code (a 4-byte 00 00 00 01 keeps its leading zero)."""
    starts = [i - (i > 0 and data[i - 1] == 0) for i in range(len(data) - 2) if data[i : i + 3] == b"\x00\x00\x01"]
    return [data[a:b] for a, b in zip(starts, [*starts[1:], len(data)], strict=True)]


def mutant(rng: random.Random, kind: str, data: bytes, parameter_set: Callable[[bytes], bool], header: int,
           slice_data: Callable[[bytes], bool] | None = None) -> bytes:  # fmt: skip
    """One deterministic mutation (a :data:`MUTATIONS` kind, or ``flip-slice-data`` given ``slice_data``) of an
    Annex-B bitstream; ``parameter_set`` / ``slice_data`` tell a NAL unit's kind, ``header`` is the NAL header size."""
    nals = nal_units(data)
    if kind == "flip":  # up to 8 random bytes anywhere
        out = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            out[rng.randrange(len(out))] ^= rng.randint(1, 255)
        return bytes(out)
    if kind in ("flip-parameter-set", "flip-slice-data"):  # bits inside one parameter set / coded slice
        wanted = parameter_set if kind == "flip-parameter-set" else slice_data
        i = rng.choice([i for i, nal in enumerate(nals) if wanted(nal)])
        nal = bytearray(nals[i])
        start = nal.index(b"\x00\x00\x01") + 3 + header
        for _ in range(1 if kind == "flip-parameter-set" else rng.randint(1, 4)):
            nal[rng.randrange(start if kind == "flip-parameter-set" else 20, len(nal))] ^= 1 << rng.randrange(8)
        nals[i] = bytes(nal)
    elif kind == "delete":
        at = rng.randrange(len(data))
        return data[:at] + data[at + rng.randint(1, 300):]
    elif kind == "truncate":
        return data[: rng.randrange(1, len(data))]
    elif kind == "splice":
        at = rng.randrange(len(data))
        return data[:at] + rng.randbytes(rng.randint(1, 64)) + data[at:]
    elif kind == "duplicate-nal":
        nals.insert(rng.randrange(len(nals) + 1), nals[rng.randrange(len(nals))])
    elif kind == "drop-nal":
        del nals[rng.randrange(len(nals))]
    else:  # swap-nal
        i, j = rng.randrange(len(nals)), rng.randrange(len(nals))
        nals[i], nals[j] = nals[j], nals[i]
    return b"".join(nals)


def _bilinear_block(plane: np.ndarray, x: float, y: float, size: int = 4) -> np.ndarray:
    h, w = plane.shape
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    ys, xs = np.clip(ys + y, 0, h - 1), np.clip(xs + x, 0, w - 1)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    fy, fx = ys - y0, xs - x0
    return ((1 - fy) * ((1 - fx) * plane[y0, x0] + fx * plane[y0, x1])
            + fy * ((1 - fx) * plane[y1, x0] + fx * plane[y1, x1]))


def motion_compensation_wins(frames: list, lists: tuple[int, ...], still: float) -> tuple[int, int]:
    """Over the inter 4x4 luma blocks of decoded ``frames`` (DumpFrame) whose zero-motion SAD is at least ``still``:
    how many the exported MV and reference predict better than zero motion does, and how many there are."""
    by_poc = {f.poc: f.planes[0].astype(np.float64) for f in frames}
    wins = total = 0
    for f in frames:
        cur = f.planes[0].astype(np.float64)
        h4, w4 = f.mv_ref.shape[1:]
        for lst in lists:
            for y4 in range(h4 - 1):
                for x4 in range(w4 - 1):
                    d = int(f.mv_ref[lst, y4, x4])
                    if d == 0:
                        continue
                    ref = by_poc[f.poc + d]
                    blk = cur[4 * y4:4 * y4 + 4, 4 * x4:4 * x4 + 4]
                    zero = np.abs(blk - ref[4 * y4:4 * y4 + 4, 4 * x4:4 * x4 + 4]).sum()
                    if zero < still:                   # the block does not change: nothing to beat
                        continue
                    mvx, mvy = f.mv[lst, y4, x4] / 16.0
                    wins += np.abs(blk - _bilinear_block(ref, 4 * x4 + mvx, 4 * y4 + mvy)).sum() < zero
                    total += 1
    return wins, total


def run_mutants(tool: Path, codec: str, sources: list[bytes], count: int, seed: int, kinds: list[str],
                make: Callable[[random.Random, str, bytes], bytes], tmp_path: Path) -> dict[str, int]:  # fmt: skip
    """Run the (ASan) dump tool on ``count`` mutants (``make``, fixed ``seed``, kinds in turn, each under every thread
    setting, slice threads included): each must give a clean exit with well-formed records or the tool's own error
    exit (2-4) with its line; never a sanitizer report, a signal or a hang. Returns the clean exits per kind."""
    from cpgd_bench.codec.records import iter_records

    rng = random.Random(seed)
    clean = dict.fromkeys(kinds, 0)
    for i in range(count):
        kind = kinds[i % len(kinds)]
        path = tmp_path / f"m{i:03d}-{kind}.{codec}"
        path.write_bytes(make(rng, kind, sources[i % len(sources)]))
        # every kind meets every thread setting; slice threads append to the residual block list concurrently
        args = [["--threads", "1"], ["--threads", "2", "--prediction"], ["--threads", "0"],
                ["--threads", "3", "--slice-threads"]][(i + i // len(kinds)) % 4]  # fmt: skip
        done = subprocess.run([str(tool), "--codec", codec, *args, "-o", str(tmp_path / "out.bin"), str(path)],
                              capture_output=True, timeout=120)  # fmt: skip
        err = done.stderr.decode(errors="replace")
        assert 0 <= done.returncode <= 4 and "Sanitizer" not in err, f"{path.name}: rc {done.returncode}\n{err[-3000:]}"
        if done.returncode == 0:
            with open(tmp_path / "out.bin", "rb") as f:
                assert list(iter_records(f)), f"{path.name}: clean exit without frames"
            clean[kind] += 1
        else:
            # FFmpeg's frame threads may log onto or between the tool's line: look for it anywhere
            assert f"prior-dump: {path}: " in err, err
    return clean


def assert_prediction_plus_residual(frames: list) -> None:
    """With loop filters off, every decoded sample where a residual was added (``--prediction``) equals
    clip(prediction + residual), no residual is left where none was added, and at least 5 % of samples are coded."""
    coded = 0
    for f in frames:
        top = (1 << f.bit_depth) - 1
        for c in range(3):
            dec = f.planes[c].astype(np.int32)
            h, w = dec.shape
            res = f.residual[c][:h, :w].astype(np.int32)
            pred = f.prediction[c][:h, :w].astype(np.int32)
            has = pred != 0xFFFF
            assert np.array_equal(dec[has], np.clip(pred[has] + res[has], 0, top)), (f.poc, c)
            assert not res[~has].any()           # no residual where none was added (pooled buffers cleared)
            coded += int(has.sum())
    assert coded > 0.05 * sum(p.size for f in frames for p in f.planes)
