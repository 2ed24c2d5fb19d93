"""The compact AV_FRAME_DATA_CODING_PRIOR export writes the same records, byte for byte, as the first export.

tests/prior_golden/ holds six small VVC bitstreams (VVenC through imageio-ffmpeg: the clips of tests/test_codec.py
at profiles ra-qp32, ra-nolf-qp27 and ld-qp32; two at ra-slow-qp27/qp22, which enable affine, GPM, CIIP, DMVR and
BDOF; a 40-frame one, so that every export buffer is reused) and records.json, the md5 of the whole record stream
(pixels, MVs, reference offsets, residuals, predictions) that the first export (an AVMotionVector grid +
AV_FRAME_DATA_CODING_RESIDUAL, vvc_patches before issue 16) wrote for each of them, per run of :data:`RUNS`. The
bitstreams are stored rather than encoded here, so that a change of encoder or profile cannot move them.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from .codec_clips import require_codec, translating_clip

pytestmark = pytest.mark.codec

GOLDEN = Path(__file__).with_name("prior_golden")
#: name -> (profile, frames, (height, width)) of the stored bitstreams
CLIPS = {
    "ra-qp32": ("ra-qp32", 12, (120, 160)),
    "ra-nolf-qp27": ("ra-nolf-qp27", 12, (120, 160)),
    "ld-qp32": ("ld-qp32", 10, (64, 96)),
    "ra-slow-qp27": ("ra-slow-qp27", 9, (96, 128)),
    "ra-slow-qp22": ("ra-slow-qp22", 8, (192, 256)),
    "ra-qp22-long": ("ra-qp22", 40, (96, 128)),   # long enough for every export buffer to be reused
}
#: run name -> dump tool arguments
RUNS = {
    "t1": ["--threads", "1"],
    "t0": ["--threads", "0"],
    "t1-pred": ["--threads", "1", "--prediction"],
    "t0-pred": ["--threads", "0", "--prediction"],
    "t1-noexport": ["--threads", "1", "--no-export"],
}


def record_md5s(stream: Path, tool: Path) -> dict[str, str]:
    """md5 of the tool's record stream for every run of :data:`RUNS`."""
    out = {}
    for run, args in RUNS.items():
        data = subprocess.run([str(tool), *args, "-o", "-", str(stream)], capture_output=True, check=True).stdout
        out[run] = hashlib.md5(data).hexdigest()
    return out


@pytest.mark.parametrize("name", CLIPS)
def test_records_byte_identical_to_the_first_export(name):
    tool = require_codec("patched")
    golden = json.loads((GOLDEN / "records.json").read_text())[name]
    assert record_md5s(GOLDEN / f"{name}.266", tool) == golden


#: every stored bitstream: codec folder under GOLDEN ("" for VVC) -> extension
STREAM_DIRS = {"": ".266", "hevc": ".265", "h264": ".264"}
ALL_STREAMS = [f"{sub}/{name}" if sub else name
               for sub in STREAM_DIRS for name in json.loads((GOLDEN / sub / "records.json").read_text())]


@pytest.mark.parametrize("stream", ALL_STREAMS)
def test_slice_threads_write_the_golden_records(stream):
    """Threads sharing the slices (HEVC: WPP rows) of a picture append its residual blocks concurrently, in another
    order: the records, planes expanded from the block list, are still the golden ones (those of threads auto)."""
    tool = require_codec("patched")
    sub, _, name = stream.rpartition("/")
    golden = json.loads((GOLDEN / sub / "records.json").read_text())[name]
    for run, extra in (("t0", []), ("t0-pred", ["--prediction"])):
        data = subprocess.run([str(tool), "--threads", "3", "--slice-threads", *extra, "-o", "-",
                               str(GOLDEN / sub / f"{name}{STREAM_DIRS[sub]}")],
                              capture_output=True, check=True).stdout
        assert hashlib.md5(data).hexdigest() == golden[run], f"{stream} {run}"


def write_golden(tool: Path) -> None:
    """Encode the clips into tests/prior_golden/ and write records.json with ``tool`` (the first export's)."""
    from cpgd_bench.codec import encode, load_profile

    golden = {}
    for name, (profile, n, size) in CLIPS.items():
        stream = encode(translating_clip(n, size), load_profile(profile), GOLDEN / f"{name}.266")
        golden[name] = record_md5s(stream, tool)
    (GOLDEN / "records.json").write_text(json.dumps(golden, indent=1) + "\n")


if __name__ == "__main__":
    import sys

    write_golden(Path(sys.argv[1]))
