"""Coding profiles of the three codecs: the table, the matched structures, real x265/x264/VVenC picture types."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cpgd_bench.cli import main
from cpgd_bench.codec import CodecError, DumpFrame, encode, ffmpeg_exe, load_profile, profile_names
from cpgd_bench.codec.priors import _in_frames
from cpgd_bench.codec.profiles import CODECS, default_profile

from .codec_clips import translating_clip

INTRA_PERIOD = {"vvc": "IntraPeriod", "hevc": "keyint", "h264": "keyint"}


@pytest.mark.parametrize("codec", list(CODECS))
def test_every_codec_offers_ra_and_ld_at_every_qp(codec: str) -> None:
    names = profile_names(codec)
    for structure in ("ra", "ld"):
        full = structure if codec == "vvc" else f"{codec}-{structure}"
        qps = (22, 27, 32, 37, 42)
        assert [n for n in names if re.fullmatch(rf"{full}-qp\d+", n)] == [f"{full}-qp{q}" for q in qps]
    profile = load_profile("default", codec)
    assert profile.codec == codec and profile.name == default_profile(codec) and profile.qp == 32
    assert all(load_profile(n).codec == codec for n in names)


def test_structures_match_across_codecs() -> None:
    """Random access: intra period 32 for every codec; low delay: 64 and no B pictures in x265/x264."""
    for structure, period in (("ra", 32), ("ld", 64)):
        for codec in CODECS:
            profile = load_profile(f"{structure if codec == 'vvc' else f'{codec}-{structure}'}-qp32")
            assert int(profile.params[INTRA_PERIOD[codec]]) == period, profile.name
            if codec != "vvc" and structure == "ld":
                assert int(profile.params["bframes"]) == 0


def test_vvc_profiles_pin_the_perceptual_qp_adaptation() -> None:
    """FFmpeg's libvvenc wrapper turns VVenC's QPA on by default (-qpa); a profile must not depend on that default."""
    for name in profile_names("vvc"):
        assert load_profile(name).params.get("PerceptQPA") in (0, 1), name


def test_codec_and_profile_must_agree() -> None:
    with pytest.raises(CodecError, match=r"^codec profile 'ra-qp32' is a vvc profile, not hevc; choose one of: hevc-"):
        load_profile("ra-qp32", "hevc")
    with pytest.raises(CodecError, match=r"^unknown codec 'av1'; choose one of: vvc, hevc, h264$"):
        load_profile("default", "av1")


def test_cli_rejects_an_unknown_codec_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["dataset", "build", "sample", "--out", str(tmp_path / "s.zarr"),
                                       "--codec", "av1"])  # fmt: skip
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == ["Error: unknown codec 'av1'; choose one of: vvc, hevc, h264"]
    assert not (tmp_path / "s.zarr").exists()


def _picture_types(bitstream: Path) -> str:
    out = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(bitstream), "-vf", "showinfo", "-f", "null", "-"],
                         capture_output=True, text=True).stderr  # fmt: skip
    return "".join(line.split(" type:")[1][0] for line in out.splitlines() if " type:" in line)


@pytest.mark.parametrize("codec", ["hevc", "h264"])
def test_x265_and_x264_code_the_declared_structure(codec: str, tmp_path: Path) -> None:
    """Real encodes: I every 32 pictures with B pictures between (ra), only P after the I picture (ld)."""
    frames = translating_clip(40, (64, 96))
    ra = _picture_types(encode(frames, load_profile(f"{codec}-ra-qp32"), tmp_path / f"ra{CODECS[codec].suffix}"))
    assert len(ra) == 40 and ra[0] == ra[32] == "I" and "I" not in ra[1:32] and ra.count("B") >= 30
    ld = _picture_types(encode(frames, load_profile(f"{codec}-ld-qp32"), tmp_path / f"ld{CODECS[codec].suffix}"))
    assert ld == "I" + "P" * 39


def test_h264_field_pocs_become_frames_and_odd_ones_are_refused() -> None:
    mv_ref = np.array([[[-2, 0]], [[4, 0]]], np.int16)
    frame = DumpFrame(poc=6, slice_type=0, qp=30, bit_depth=10, lmcs=False, planes=None, mv_ref=mv_ref)
    poc, ref = _in_frames(frame, 2, "x.264", 3)
    assert poc == 3 and ref.tolist() == [[[-1, 0]], [[2, 0]]]
    frame.poc = 7
    with pytest.raises(CodecError, match=r"^x\.264: frame 3 has POC 7 .* field-coded streams are not supported"):
        _in_frames(frame, 2, "x.264", 3)
