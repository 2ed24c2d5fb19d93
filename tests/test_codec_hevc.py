"""The patched HEVC decoder (vvc_patches/0003): identical pixels, exact residuals, correct motion, clear errors."""

from __future__ import annotations

import os
import random
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from cpgd_bench.codec import CodecError, decode_priors, encode, ffmpeg_exe, frame_md5s, load_profile, run_dump

from .codec_clips import (
    assert_prediction_plus_residual,
    motion_compensation_wins,
    mutant,
    require_codec,
    run_mutants,
    translating_clip,
)

VELOCITY = (1.25, 0.5)
SIZE = (128, 160)   # whole 8x8 minimum coding blocks: the coded size is the picture size
FRAMES = 12
NOLF_FRAMES = 40   # longer than the decoded picture buffer: the export reuses pooled side-data buffers

pytestmark = pytest.mark.codec


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return translating_clip(FRAMES, SIZE, VELOCITY)


@pytest.fixture(scope="module")
def stream(tmp_path_factory, clip) -> Path:
    require_codec("patched")
    return encode(clip, load_profile("hevc-ra-qp32"), tmp_path_factory.mktemp("s") / "clip.265")


@pytest.fixture(scope="module")
def stream_nolf(tmp_path_factory) -> Path:
    require_codec("patched")
    clip = translating_clip(NOLF_FRAMES, SIZE, VELOCITY)
    return encode(clip, load_profile("hevc-ra-nolf-qp27"), tmp_path_factory.mktemp("s") / "nolf.265")


def _x265(clip: np.ndarray, out: Path, pix_fmt: str, params: str) -> Path:
    """Encode RGB frames with libx265 and explicit settings the profiles do not cover."""
    h, w = clip.shape[1:3]
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
                    "-r", "30", "-i", "-", "-pix_fmt", pix_fmt, "-c:v", "libx265",
                    "-x265-params", f"{params}:log-level=error", "-f", "hevc", str(out)],
                   input=clip.tobytes(), check=True)  # fmt: skip
    return out


NOLF = "deblock=false:sao=false"
#: no loop filters, so decoded == clip(prediction + residual); each exercises other residual or motion paths
EXTRA_STREAMS = {
    # 8-bit; transform skip and explicit weighted prediction (P and B) on a fade
    "tskip-weighted": ("yuv420p", f"{NOLF}:qp=30:keyint=8:bframes=2:tskip=1:rdoq-level=0:weightp=1:weightb=1"),
    # 8-bit lossless: every CU transquant-bypassed, the residual is the coded one as is
    "lossless": ("yuv420p", f"{NOLF}:lossless=1:keyint=8:bframes=2"),
    # 10-bit intra only: the intra 4x4 luma DST and every intra transform size
    "intra-10bit": ("yuv420p10le", f"{NOLF}:qp=24:keyint=1"),
    # 8-bit, 16x16 minimum CUs (8x8 minimum PUs: the 4x4 grid is expanded), 4 slices, P pictures only
    "mincu16-slices-p": ("yuv420p", f"{NOLF}:qp=28:min-cu-size=16:slices=4:bframes=0:keyint=32"),
}


def _fade(clip: np.ndarray) -> np.ndarray:
    """The clip fading to 40 % brightness: weighted prediction pays off."""
    gain = np.linspace(1.0, 0.4, len(clip))[:, None, None, None]
    return np.clip(clip * gain, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module", params=sorted(EXTRA_STREAMS))
def extra_stream(request, tmp_path_factory, clip) -> Path:
    require_codec("patched")
    pix_fmt, params = EXTRA_STREAMS[request.param]
    frames = _fade(clip) if "weighted" in request.param else clip
    return _x265(frames, tmp_path_factory.mktemp("x") / f"{request.param}.265", pix_fmt, params)


def _header_values(stream: Path, name: str) -> list[int]:
    """Every value FFmpeg's trace_headers bitstream filter reads for the syntax element ``name``."""
    log = subprocess.run([ffmpeg_exe(), "-i", str(stream), "-c", "copy", "-bsf:v", "trace_headers", "-f", "null",
                          "-"], capture_output=True, text=True, check=True).stderr  # fmt: skip
    return [int(v) for v in re.findall(rf"\] \d+\s+{re.escape(name)}\s+\S+ = (-?\d+)", log)]


#: per extra stream, syntax elements and a value they must take somewhere: the streams use what they name
EXTRA_STREAM_TOOLS = {
    "tskip-weighted": {"transform_skip_enabled_flag": 1, "luma_weight_l0_flag[0]": 1, "luma_weight_l1_flag[0]": 1},
    "lossless": {"transquant_bypass_enabled_flag": 1},
    "intra-10bit": {"slice_type": 2, "bit_depth_luma_minus8": 2},
    "mincu16-slices-p": {"log2_min_luma_coding_block_size_minus3": 1, "first_slice_segment_in_pic_flag": 0},
}


def test_extra_streams_use_the_coding_tools_they_name(extra_stream):
    for name, value in EXTRA_STREAM_TOOLS[extra_stream.stem].items():
        assert value in _header_values(extra_stream, name), (extra_stream.name, name)
    if extra_stream.stem == "intra-10bit":
        assert set(_header_values(extra_stream, "slice_type")) == {2}


def test_pixels_identical_to_unpatched_build_and_ffmpeg9(stream, extra_stream):
    require_codec("reference")
    for s in (stream, extra_stream):
        ref = frame_md5s(s, variant="reference", export=False, codec="hevc")
        out = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(s), "-f", "framemd5", "-"],
                             capture_output=True, text=True, check=True).stdout
        ffmpeg9 = [ln.split(",")[-1].strip() for ln in out.splitlines() if ln and not ln.startswith("#")]
        assert len(ref) == FRAMES and ref == ffmpeg9, s.name
        for threads in (1, 0):
            for export in (True, False):
                assert frame_md5s(s, threads=threads, export=export, codec="hevc") == ref, (s.name, threads, export)


def test_decoded_equals_prediction_plus_residual_without_loop_filters(stream_nolf):
    frames = list(run_dump(stream_nolf, prediction=True, threads=0, codec="hevc"))
    assert len(frames) == NOLF_FRAMES and frames[0].bit_depth == 10
    assert {0, 2} <= {f.slice_type for f in frames}
    assert_prediction_plus_residual(frames)


def test_decoded_equals_prediction_plus_residual_on_other_coding_tools(extra_stream):
    frames = list(run_dump(extra_stream, prediction=True, threads=1, codec="hevc"))
    assert len(frames) == FRAMES
    assert_prediction_plus_residual(frames)


def test_loop_filters_break_the_identity(stream):
    """The identity test can fail: with deblocking and SAO on, decoded samples differ from prediction + residual."""
    frames = list(run_dump(stream, prediction=True, threads=1, codec="hevc"))
    differ = 0
    for f in frames:
        dec = f.planes[0].astype(np.int32)
        pred, res = f.prediction[0].astype(np.int32), f.residual[0].astype(np.int32)
        has = pred != 0xFFFF
        differ += int((dec[has] != np.clip(pred[has] + res[has], 0, 1023)).sum())
    assert differ > 100


def test_export_is_the_same_for_every_thread_count(stream_nolf, extra_stream):
    """Frame threads share pictures before they finish: the side data must not depend on the thread count."""
    for s in (stream_nolf, extra_stream):
        one = list(run_dump(s, prediction=True, threads=1, codec="hevc"))
        auto = list(run_dump(s, prediction=True, threads=0, codec="hevc"))
        assert len(one) == len(auto) > 0
        for a, b in zip(one, auto, strict=True):
            assert (a.poc, a.slice_type, a.qp) == (b.poc, b.slice_type, b.qp)
            pairs = [(a.mv, b.mv, "mv"), (a.mv_ref, b.mv_ref, "mv_ref")]
            pairs += [(x, y, f"{name}[{c}]") for name in ("residual", "prediction")
                      for c, (x, y) in enumerate(zip(getattr(a, name), getattr(b, name), strict=True))]
            for x, y, what in pairs:
                np.testing.assert_array_equal(x, y, err_msg=f"{s.name} POC {a.poc} {what}")


def test_residual_does_not_depend_on_the_prediction_export(stream_nolf):
    with_pred = run_dump(stream_nolf, prediction=True, threads=1, codec="hevc")
    for a, b in zip(with_pred, run_dump(stream_nolf, threads=1, codec="hevc"), strict=True):
        assert b.prediction is None
        for c in range(3):
            np.testing.assert_array_equal(a.residual[c], b.residual[c], err_msg=f"POC {a.poc} plane {c}")


def test_header_fields(stream):
    frames = list(run_dump(stream, codec="hevc"))
    assert [f.poc for f in frames] == list(range(FRAMES))    # display order
    assert frames[0].slice_type == 2 and all(f.bit_depth == 10 for f in frames)
    assert {f.slice_type for f in frames[1:]} <= {0, 1} and 0 in {f.slice_type for f in frames}
    assert all(20 <= f.qp <= 45 for f in frames)
    assert not frames[0].mv_ref.any() and not frames[0].mv.any()   # intra: no motion in either list
    b_frame = next(f for f in frames if f.slice_type == 0)
    assert (b_frame.mv_ref[0] < 0).any() and (b_frame.mv_ref[1] > 0).any()   # past and future references


def _assert_mvs_match(seq, min_used: tuple[float, float]) -> None:
    inner = (slice(None), slice(2, -2), slice(2, -2))  # interior 4x4 blocks
    for lst in (0, 1):
        ref = seq.mv_ref[:, lst][inner]
        mv = seq.mv[:, lst][inner]
        used = ref != 0
        assert used.mean() > min_used[lst], lst
        assert not mv[~used].any()
        per_frame = mv[used] / 16.0 / ref[used][:, None]
        err = np.linalg.norm(per_frame - np.asarray(VELOCITY), axis=1)
        assert np.median(err) < 0.5 and np.mean(err < 0.5) > 0.8, (lst, np.median(err))


def test_mvs_match_known_motion(stream):
    _assert_mvs_match(decode_priors(stream, *SIZE, codec="hevc"), (0.3, 0.2))


def test_mvs_match_known_motion_with_8x8_minimum_prediction_units(tmp_path, clip):
    require_codec("patched")
    s = _x265(clip, tmp_path / "mincu16.265", "yuv420p10le", "qp=30:min-cu-size=16:bframes=3:keyint=32:b-adapt=0")
    seq = decode_priors(s, *SIZE, codec="hevc")
    _assert_mvs_match(seq, (0.3, 0.1))
    # 8x8 is the finest motion: each 2x2 group of 4x4 blocks carries one vector
    mv = seq.mv.astype(np.int32)
    assert np.array_equal(mv[:, :, ::2, ::2], mv[:, :, 1::2, 1::2])


def test_motion_compensation_beats_zero_motion(stream):
    """Predict each inter 4x4 luma block from its exported reference and MV (both lists); compare with zero motion."""
    wins, total = motion_compensation_wins(list(run_dump(stream, codec="hevc")), lists=(0, 1), still=16 * 8 * 4)
    assert total > 200
    assert wins / total >= 0.9, f"MC beat zero motion on {wins}/{total} changing blocks"


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_broken_bitstreams_give_one_line_errors(stream, tmp_path, damage):
    data = stream.read_bytes()
    bad = tmp_path / f"{damage}.265"
    bad.write_bytes({"truncate": data[: len(data) // 2], "garbage": data[:200] + os.urandom(3000),
                     "empty": b""}[damage])
    with pytest.raises(CodecError) as e:
        decode_priors(bad, *SIZE, n_frames=FRAMES, codec="hevc")
    msg = str(e.value)
    assert "\n" not in msg and bad.name in msg


def _nal_type(nal: bytes) -> int:
    return (nal[nal.index(b"\x00\x00\x01") + 3] >> 1) & 0x3F


def _mutant(rng: random.Random, kind: str, data: bytes) -> bytes:
    """One deterministic mutation of an HEVC Annex-B bitstream (VPS/SPS/PPS are NAL types 32-34)."""
    return mutant(rng, kind, data, lambda nal: _nal_type(nal) in (32, 33, 34), header=2,
                  slice_data=lambda nal: _nal_type(nal) < 32 and len(nal) > 40)


MUTATIONS = ["flip", "flip-parameter-set", "flip-slice-data", "delete", "truncate", "splice", "duplicate-nal",
             "drop-nal", "swap-nal"]


def test_asan_dump_tool_on_mutated_hevc_bitstreams(stream, stream_nolf, tmp_path, monkeypatch):
    """72 mutants (fixed seed, 8 per kind): a clean exit with well-formed records, or the tool's own error exit
    (2-4) with its one-line message; never a sanitizer report (exit 86), a signal or a hang."""
    tool = require_codec("asan")
    monkeypatch.setenv("ASAN_OPTIONS", "exitcode=86:detect_leaks=1")
    clean = run_mutants(tool, "hevc", [stream.read_bytes(), stream_nolf.read_bytes()], 72, 265, MUTATIONS, _mutant,
                        tmp_path)
    assert sum(clean.values()) < 72, clean   # the mutants do damage
