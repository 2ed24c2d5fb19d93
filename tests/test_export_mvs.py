"""flags2 +export_mvs: the patched VVC decoder still gives FFmpeg API users the public AVMotionVector grid, and it
holds the same motion as the AV_FRAME_DATA_CODING_PRIOR export (tests/export_mvs_check.c, built here against the
patched libraries in the codec cache)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from cpgd_bench import resources

from .codec_clips import require_codec

pytestmark = pytest.mark.codec

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def checker(tmp_path_factory) -> Path:
    require_codec("patched")
    prefix = resources.codec_build_dir() / "patched" / "prefix"
    cc = shutil.which("cc")
    if cc is None or not (prefix / "lib" / "libavcodec.a").is_file():
        pytest.skip("no C compiler or no patched FFmpeg libraries in the codec cache (make codec)")
    exe = tmp_path_factory.mktemp("mvs") / "export_mvs_check"
    libs = [str(prefix / "lib" / f"lib{name}.a") for name in ("avformat", "avcodec", "avutil")]
    subprocess.run([cc, "-O2", "-Wall", "-Werror", f"-I{prefix / 'include'}", str(HERE / "export_mvs_check.c"),
                    "-o", str(exe), *libs, "-lpthread", "-lm"], check=True)  # fmt: skip
    return exe


@pytest.mark.parametrize("threads", ["1", "0"])
@pytest.mark.parametrize("name", ["ra-slow-qp22", "ra-qp22-long"])
def test_public_motion_vectors_match_the_coding_prior(checker, name, threads):
    done = subprocess.run([str(checker), str(HERE / "prior_golden" / f"{name}.266"), threads],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    counts = dict(zip(done.stdout.split()[::2], map(int, done.stdout.split()[1::2]), strict=True))
    assert counts["frames"] > 0 and counts["used"] > 0.3 * counts["blocks"] and counts["mismatches"] == 0
