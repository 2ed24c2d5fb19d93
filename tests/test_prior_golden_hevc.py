"""The HEVC coding-prior export (vvc_patches/0003) writes the same records, byte for byte, as before issue 17's work.

tests/prior_golden/hevc/ holds small HEVC bitstreams (x265 through imageio-ffmpeg: the streams of
tests/test_codec_hevc.py, i.e. hevc-ra-qp32, a 40-frame hevc-ra-nolf-qp27 one that reuses every pooled export
buffer, transform skip + weighted prediction on a fade, lossless, 10-bit intra, 16x16 minimum CUs with four slices
and with B pictures, and a hevc-ra-qp22 one whose width is no multiple of 16) and records.json, the md5 of the whole
record stream (pixels, MVs, reference offsets, residuals, predictions) that the patched build of 2026-11-29 (before
the export was made cheaper) wrote for each, per run of ``RUNS`` (threads 1 and auto, with and without the
prediction planes, and without export). The bitstreams are stored, so that a change of encoder cannot move them.
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

GOLDEN = Path(__file__).with_name("prior_golden") / "hevc"
SIZE = (128, 160)
NOLF = "deblock=false:sao=false"
#: name -> (profile, frames, (height, width)) of the streams encoded with a cpgd-bench profile
PROFILE_CLIPS = {
    "ra-qp32": ("hevc-ra-qp32", 12, SIZE),
    "ra-nolf-qp27-long": ("hevc-ra-nolf-qp27", 40, SIZE),
    "ra-qp22-120x168": ("hevc-ra-qp22", 12, (120, 168)),
}
#: name -> (pixel format, x265 parameters) of the streams encoded with explicit x265 settings (12 frames, SIZE)
X265_CLIPS = {
    "tskip-weighted": ("yuv420p", f"{NOLF}:qp=30:keyint=8:bframes=2:tskip=1:rdoq-level=0:weightp=1:weightb=1"),
    "lossless": ("yuv420p", f"{NOLF}:lossless=1:keyint=8:bframes=2"),
    "intra-10bit": ("yuv420p10le", f"{NOLF}:qp=24:keyint=1"),
    "mincu16-slices-p": ("yuv420p", f"{NOLF}:qp=28:min-cu-size=16:slices=4:bframes=0:keyint=32"),
    "mincu16-b-10bit": ("yuv420p10le", "qp=30:min-cu-size=16:bframes=3:keyint=32:b-adapt=0"),
}
CLIPS = [*PROFILE_CLIPS, *X265_CLIPS]


@pytest.mark.parametrize("name", CLIPS)
def test_hevc_records_byte_identical_to_the_golden_export(name):
    tool = require_codec("patched")
    golden = json.loads((GOLDEN / "records.json").read_text())[name]
    assert record_md5s(GOLDEN / f"{name}.265", tool) == golden


def write_golden(tool: Path) -> None:
    """Encode the clips into tests/prior_golden/hevc/ and write records.json with ``tool``."""
    from cpgd_bench.codec import encode, ffmpeg_exe, load_profile

    GOLDEN.mkdir(parents=True, exist_ok=True)
    golden = {}
    for name, (profile, n, size) in PROFILE_CLIPS.items():
        stream = encode(translating_clip(n, size), load_profile(profile), GOLDEN / f"{name}.265")
        golden[name] = record_md5s(stream, tool)
    clip = translating_clip(12, SIZE)
    fade = np.clip(clip * np.linspace(1.0, 0.4, len(clip))[:, None, None, None], 0, 255).astype(np.uint8)
    for name, (pix_fmt, params) in X265_CLIPS.items():
        frames = fade if "weighted" in name else clip
        stream = GOLDEN / f"{name}.265"
        subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
                        "-s", f"{SIZE[1]}x{SIZE[0]}", "-r", "30", "-i", "-", "-pix_fmt", pix_fmt, "-c:v", "libx265",
                        "-x265-params", f"{params}:log-level=error", "-f", "hevc", str(stream)],
                       input=frames.tobytes(), check=True)  # fmt: skip
        golden[name] = record_md5s(stream, tool)
    (GOLDEN / "records.json").write_text(json.dumps(golden, indent=1) + "\n")


if __name__ == "__main__":
    import sys

    write_golden(Path(sys.argv[1]))
