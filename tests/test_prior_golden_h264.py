"""The H.264 export (vvc_patches/0004) writes the same records, byte for byte, as before its speed-ups (issue 17).

tests/prior_golden/h264/ holds small H.264 bitstreams (x264 through imageio-ffmpeg, stored so that a change of
encoder cannot move them) and records.json, the md5 of the whole record stream (pixels, MVs, reference offsets,
residuals, predictions) per run of ``RUNS``, written by the export before issue 17 (the residual computed by a
second, C inverse transform). Together they cover the profiles (random access, low delay, deblocking off), CAVLC
with slices and weighted P prediction, lossless (transform bypass, intra DPCM), 10-bit intra, 4:2:2, 4:4:4
(prior-dump refuses 4:0:0), a picture size that is not whole macroblocks, a 40-frame stream (every pooled buffer
reused) and full-swing noise coded coarsely at 8 and 10 bits (many samples clipped at 0 and the maximum).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from .codec_clips import require_codec, translating_clip
from .test_prior_golden import record_md5s

pytestmark = pytest.mark.codec

GOLDEN = Path(__file__).with_name("prior_golden") / "h264"
#: name -> profile (cpgd-bench's encoder) or (pix_fmt, ffmpeg args, x264 params), frames, (height, width), clip
CLIPS: dict[str, tuple[str | tuple[str, list[str], str], int, tuple[int, int], str]] = {
    "ra-qp32": ("h264-ra-qp32", 12, (128, 160), "translate"),
    "ra-nolf-qp27": ("h264-ra-nolf-qp27", 12, (128, 160), "translate"),
    "ld-qp32": ("h264-ld-qp32", 10, (64, 96), "translate"),
    "ra-qp22-long": ("h264-ra-qp22", 40, (88, 120), "translate"),  # not whole macroblocks; every buffer reused
    "cavlc-slices-weightp": (
        ("yuv420p", ["-qp", "30"], "no-deblock=1:cabac=0:slices=4:weightp=2:8x8dct=0:bframes=2"),
        12,
        (128, 160),
        "translate",
    ),
    "lossless": (("yuv420p", ["-qp", "0"], "no-deblock=1:bframes=2"), 8, (64, 96), "translate"),
    "lossless-444": (("yuv444p", ["-qp", "0"], "no-deblock=1:bframes=2"), 6, (64, 96), "translate"),
    "intra-10bit": (("yuv420p10le", ["-qp", "24"], "no-deblock=1:keyint=1"), 6, (128, 160), "translate"),
    "yuv422-8bit": (("yuv422p", ["-qp", "28"], "no-deblock=1:bframes=3"), 10, (96, 128), "translate"),
    "yuv444-8bit": (("yuv444p", ["-qp", "30"], "bframes=3"), 10, (96, 128), "translate"),
    "noise-8bit": (("yuv420p", ["-qp", "44"], "no-deblock=1:bframes=3"), 10, (96, 128), "noise"),
    "noise-10bit": (("yuv420p10le", ["-qp", "40"], "no-deblock=1:bframes=3:8x8dct=0"), 10, (96, 128), "noise"),
}
@pytest.mark.parametrize("name", CLIPS)
def test_h264_records_byte_identical_to_the_export_before_issue_17(name):
    tool = require_codec("patched")
    golden = json.loads((GOLDEN / "records.json").read_text())[name]
    assert record_md5s(GOLDEN / f"{name}.264", tool) == golden


def _noise_yuv(n: int, size: tuple[int, int], pix_fmt: str) -> np.ndarray:
    """Raw 4:2:0 frames of ``pix_fmt`` (8 or 10 bits): 2x2-sample noise at 0 and the maximum, moving right by 3
    samples a frame (fixed seed), fed to x264 as they are (no range conversion keeps the extremes)."""
    h, w = size
    high = pix_fmt.endswith("10le")
    cells = np.random.default_rng(17).integers(0, 2, (3, h // 2, w // 2 + 2 * n)) * ((1 << (10 if high else 8)) - 1)
    frames = []
    for t in range(n):
        x = 3 * (n - t)
        y = np.repeat(np.repeat(cells[0], 2, 0), 2, 1)[:, x : x + w]
        uv = [c[:, x // 2 : x // 2 + w // 2] for c in cells[1:]]
        frames.append(np.concatenate([y.ravel(), *(c.ravel() for c in uv)]))
    return np.stack(frames).astype(np.uint16 if high else np.uint8)


def write_golden(tool: Path) -> None:
    """Encode the clips into tests/prior_golden/h264/ and write records.json with ``tool``."""
    from cpgd_bench.codec import encode, ffmpeg_exe, load_profile

    GOLDEN.mkdir(parents=True, exist_ok=True)
    golden = {}
    for name, (how, n, size, kind) in CLIPS.items():
        out = GOLDEN / f"{name}.264"
        if isinstance(how, str):
            encode(translating_clip(n, size), load_profile(how), out)
            golden[name] = record_md5s(out, tool)
            continue
        pix_fmt, args, params = how
        if kind == "noise":
            data, in_fmt = _noise_yuv(n, size, pix_fmt).tobytes(), pix_fmt
        else:
            data, in_fmt = translating_clip(n, size).tobytes(), "rgb24"
        subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", in_fmt, "-s",
                        f"{size[1]}x{size[0]}", "-r", "30", "-i", "-", "-pix_fmt", pix_fmt, "-c:v", "libx264",
                        *args, "-x264-params", f"{params}:log-level=error", "-f", "h264", str(out)],
                       input=data, check=True)  # fmt: skip
        golden[name] = record_md5s(out, tool)
    (GOLDEN / "records.json").write_text(json.dumps(golden, indent=1) + "\n")


if __name__ == "__main__":
    import sys

    write_golden(Path(sys.argv[1]))
