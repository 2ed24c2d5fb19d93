"""The compact AV_FRAME_DATA_CODING_PRIOR export gives byte-identical records to the first export.

tests/prior_golden.json holds md5s of the whole record stream (pixels, MVs, reference offsets, residuals,
predictions) that the first export (AVMotionVector grid + AV_FRAME_DATA_CODING_RESIDUAL, vvc_patches before
issue 16) wrote for the clips below. VVenC through imageio-ffmpeg is deterministic (same bitstream on every
encode), so the bitstream md5 is checked first: if it differs, the encoder changed, not the decoder.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from cpgd_bench.codec import dump_tool_path, encode, load_profile

from .codec_clips import require_codec, translating_clip

pytestmark = pytest.mark.codec

GOLDEN = Path(__file__).with_name("prior_golden.json")
#: name -> (profile, frames, (height, width)): the clips of tests/test_codec.py plus one with every coding tool.
CLIPS = {
    "ra-qp32": ("ra-qp32", 12, (120, 160)),
    "ra-nolf-qp27": ("ra-nolf-qp27", 12, (120, 160)),
    "ld-qp32": ("ld-qp32", 10, (64, 96)),
    "ra-slow-qp27": ("ra-slow-qp27", 9, (96, 128)),
}
#: run name -> dump tool arguments
RUNS = {
    "t1": ["--threads", "1"],
    "t0": ["--threads", "0"],
    "t1-pred": ["--threads", "1", "--prediction"],
    "t0-pred": ["--threads", "0", "--prediction"],
    "t1-noexport": ["--threads", "1", "--no-export"],
}


def clip_stream(name: str, workdir: Path) -> Path:
    """Encode clip ``name`` of :data:`CLIPS` into ``workdir``."""
    profile, n, size = CLIPS[name]
    return encode(translating_clip(n, size), load_profile(profile), workdir / f"{name}.266")


def record_md5s(stream: Path, tool: Path) -> dict[str, str]:
    """md5 of the tool's record stream for every run of :data:`RUNS`."""
    out = {}
    for run, args in RUNS.items():
        data = subprocess.run([str(tool), *args, "-o", "-", str(stream)], capture_output=True, check=True).stdout
        out[run] = hashlib.md5(data).hexdigest()
    return out


def file_md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", CLIPS)
def test_records_byte_identical_to_the_first_export(name, tmp_path):
    tool = require_codec("patched")
    golden = json.loads(GOLDEN.read_text())[name]
    stream = clip_stream(name, tmp_path)
    assert file_md5(stream) == golden["bitstream"], f"{name}: VVenC output changed; the golden records do not apply"
    assert record_md5s(stream, tool) == golden["records"]


def test_encoder_is_deterministic(tmp_path):
    """The premise of the fixture: two encodes of one clip give the same bitstream."""
    require_codec("patched")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = clip_stream("ld-qp32", tmp_path / "a"), clip_stream("ld-qp32", tmp_path / "b")
    assert a.read_bytes() == b.read_bytes()


def write_golden(tool: Path, workdir: Path) -> None:
    """Regenerate tests/prior_golden.json with ``tool`` (run once with the first export's build)."""
    golden = {}
    for name in CLIPS:
        stream = clip_stream(name, workdir)
        golden[name] = {"bitstream": file_md5(stream), "records": record_md5s(stream, tool)}
    GOLDEN.write_text(json.dumps(golden, indent=1) + "\n")


if __name__ == "__main__":
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        write_golden(Path(sys.argv[1]) if len(sys.argv) > 1 else dump_tool_path(), Path(d))
