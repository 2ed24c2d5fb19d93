"""The patched H.264 decoder (vvc_patches/0004): identical pixels, exact residuals, correct motion, clear errors."""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

import numpy as np
import pytest

from cpgd_bench.codec import CodecError, decode_priors, encode, ffmpeg_exe, frame_md5s, load_profile, run_dump

from .codec_clips import (
    MUTATIONS,
    assert_prediction_plus_residual,
    motion_compensation_wins,
    mutant,
    require_codec,
    run_mutants,
    translating_clip,
)

VELOCITY = (1.25, 0.5)
SIZE = (128, 160)   # whole macroblocks: the coded size is the picture size

pytestmark = pytest.mark.codec


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return translating_clip(12, SIZE, VELOCITY)


@pytest.fixture(scope="module")
def stream(tmp_path_factory, clip) -> Path:
    require_codec("patched")
    return encode(clip, load_profile("h264-ra-qp32"), tmp_path_factory.mktemp("s") / "clip.264")


@pytest.fixture(scope="module")
def stream_nolf(tmp_path_factory, clip) -> Path:
    require_codec("patched")
    return encode(clip, load_profile("h264-ra-nolf-qp27"), tmp_path_factory.mktemp("s") / "nolf.264")


def _x264(clip: np.ndarray, out: Path, pix_fmt: str, args: list[str], params: str) -> Path:
    """Encode RGB frames with libx264 and explicit settings the profiles do not cover."""
    h, w = clip.shape[1:3]
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
                    "-r", "30", "-i", "-", "-pix_fmt", pix_fmt, "-c:v", "libx264", *args,
                    "-x264-params", f"{params}:log-level=error", "-f", "h264", str(out)],
                   input=clip.tobytes(), check=True)  # fmt: skip
    return out


#: no deblocking, so decoded == clip(prediction + residual); each exercises other residual paths
EXTRA_STREAMS = {
    # 8-bit, CAVLC, 4 slices, weighted P prediction, 8x8 transform off: 4x4 paths, explicit weights
    "cavlc-slices-weightp": ("yuv420p", ["-qp", "30"], "no-deblock=1:cabac=0:slices=4:weightp=2:8x8dct=0:bframes=2"),
    # lossless (qp 0, High 4:4:4 Predictive): transform bypass and intra DPCM (cumulative residuals)
    "lossless": ("yuv420p", ["-qp", "0"], "no-deblock=1:bframes=2"),
    # 10-bit, intra only, 8x8 and 16x16 intra with luma DC and chroma DC transforms
    "intra-10bit": ("yuv420p10le", ["-qp", "24"], "no-deblock=1:keyint=1"),
}


@pytest.fixture(scope="module", params=sorted(EXTRA_STREAMS))
def extra_stream(request, tmp_path_factory, clip) -> Path:
    require_codec("patched")
    pix_fmt, args, params = EXTRA_STREAMS[request.param]
    return _x264(clip, tmp_path_factory.mktemp("x") / f"{request.param}.264", pix_fmt, args, params)


def test_pixels_identical_to_unpatched_build_and_ffmpeg9(stream):
    require_codec("reference")
    ref = frame_md5s(stream, variant="reference", export=False, codec="h264")
    out = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(stream), "-f", "framemd5", "-"],
                         capture_output=True, text=True, check=True).stdout
    ffmpeg9 = [ln.split(",")[-1].strip() for ln in out.splitlines() if ln and not ln.startswith("#")]
    assert len(ref) == 12 and ref == ffmpeg9
    for threads in (1, 0):
        for export in (True, False):
            assert frame_md5s(stream, threads=threads, export=export, codec="h264") == ref, (threads, export)


def test_decoded_equals_prediction_plus_residual_without_deblocking(stream_nolf):
    frames = list(run_dump(stream_nolf, prediction=True, threads=0, codec="h264"))
    assert len(frames) == 12 and frames[0].bit_depth == 10
    assert {f.slice_type for f in frames} == {0, 1, 2}
    assert_prediction_plus_residual(frames)


def test_decoded_equals_prediction_plus_residual_on_other_coding_tools(extra_stream):
    frames = list(run_dump(extra_stream, prediction=True, threads=1, codec="h264"))
    assert len(frames) == 12
    assert_prediction_plus_residual(frames)


def _prior_arrays(f) -> list[np.ndarray]:
    return [f.mv, f.mv_ref, *f.residual, *f.prediction]


def test_export_is_the_same_for_every_thread_count(stream_nolf, extra_stream):
    """Frame threads share pictures before they finish: the side data must not depend on the thread count."""
    for s in (stream_nolf, extra_stream):
        one = list(run_dump(s, prediction=True, threads=1, codec="h264"))
        auto = list(run_dump(s, prediction=True, threads=0, codec="h264"))
        assert len(one) == len(auto) == 12
        for a, b in zip(one, auto, strict=True):
            assert (a.poc, a.slice_type, a.qp) == (b.poc, b.slice_type, b.qp)
            for name, x, y in zip(("mv", "mv_ref", "res Y", "res Cb", "res Cr", "pred Y", "pred Cb", "pred Cr"),
                                  _prior_arrays(a), _prior_arrays(b), strict=True):
                np.testing.assert_array_equal(x, y, err_msg=f"{s.name} POC {a.poc} {name}")


def test_reused_buffers_hold_nothing_of_earlier_pictures(stream_nolf, tmp_path):
    """The stream twice in a row: the second pass decodes into pooled side-data buffers that earlier pictures
    wrote, and must export exactly what the first pass did."""
    twice = tmp_path / "twice.264"
    twice.write_bytes(stream_nolf.read_bytes() * 2)
    for threads in (1, 0):
        frames = list(run_dump(twice, prediction=True, threads=threads, codec="h264"))
        assert len(frames) == 24
        for a, b in zip(frames[:12], frames[12:], strict=True):
            for name, x, y in zip(("mv", "mv_ref", "res Y", "res Cb", "res Cr", "pred Y", "pred Cb", "pred Cr"),
                                  _prior_arrays(a), _prior_arrays(b), strict=True):
                np.testing.assert_array_equal(x, y, err_msg=f"threads {threads} POC {a.poc} {name}")


def test_header_fields(stream):
    frames = list(run_dump(stream, codec="h264"))
    pocs = [f.poc for f in frames]
    assert pocs == list(range(0, 24, 2))            # display order; x264 counts two POCs per frame
    assert frames[0].slice_type == 2 and all(f.bit_depth == 10 for f in frames)
    assert {f.slice_type for f in frames[1:]} <= {0, 1} and 0 in {f.slice_type for f in frames}
    # the header holds QP_Y, the profile's QP (x264 gets QP'_Y = QP_Y + 12 at 10 bits); I lower by ipratio, B higher
    qp = {kind: {f.qp for f in frames if f.slice_type == kind} for kind in (0, 1, 2)}
    assert qp[1] == {32} and max(qp[2]) < 32 < min(qp[0])
    assert not frames[0].mv_ref.any() and not frames[0].mv.any()   # intra: no motion in either list


def test_mvs_match_known_motion(stream):
    seq = decode_priors(stream, *SIZE, codec="h264")   # reference distances in frames
    inner = (slice(None), slice(2, -2), slice(2, -2))  # interior 4x4 blocks
    for lst in (0, 1):
        ref = seq.mv_ref[:, lst][inner]
        mv = seq.mv[:, lst][inner]
        used = ref != 0
        assert used.mean() > 0.3, lst
        assert not mv[~used].any()
        per_frame = mv[used] / 16.0 / ref[used][:, None]
        err = np.linalg.norm(per_frame - np.asarray(VELOCITY), axis=1)
        assert np.median(err) < 0.5 and np.mean(err < 0.5) > 0.8, (lst, np.median(err))


def test_motion_compensation_beats_zero_motion(stream):
    """Predict each inter 4x4 luma block from its exported reference and MV (both lists); compare with zero motion."""
    wins, total = motion_compensation_wins(list(run_dump(stream, codec="h264")), lists=(0, 1), still=16 * 8 * 4)
    assert total > 200
    assert wins / total >= 0.9, f"MC beat zero motion on {wins}/{total} changing blocks"


def test_interlaced_stream_is_refused(clip, tmp_path):
    """Field / MBAFF pictures: export refused with one decoder error (the decoder's log says why); pixels decode."""
    tool = require_codec("patched")
    bad = _x264(clip, tmp_path / "mbaff.264", "yuv420p", ["-qp", "30"], "interlaced=1:tff=1")
    with pytest.raises(CodecError) as e:
        list(run_dump(bad, codec="h264", threads=1))
    assert "\n" not in str(e.value) and bad.name in str(e.value)
    log = subprocess.run([str(tool), "--codec", "h264", "--threads", "1", "-o", os.devnull, str(bad)],
                         capture_output=True, text=True).stderr
    assert log.count("export_prior supports progressive frames only") == 1, log
    assert len(frame_md5s(bad, export=False, codec="h264")) == 12


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_broken_bitstreams_give_one_line_errors(stream, tmp_path, damage):
    data = stream.read_bytes()
    bad = tmp_path / f"{damage}.264"
    bad.write_bytes({"truncate": data[: len(data) // 2], "garbage": data[:200] + os.urandom(3000),
                     "empty": b""}[damage])
    with pytest.raises(CodecError) as e:
        decode_priors(bad, *SIZE, n_frames=12, codec="h264")
    msg = str(e.value)
    assert "\n" not in msg and bad.name in msg


def _mutant(rng: random.Random, kind: str, data: bytes) -> bytes:
    """One deterministic mutation of an H.264 Annex-B bitstream (SPS/PPS are NAL types 7, 8; 1-byte headers)."""
    return mutant(rng, kind, data, lambda nal: nal[nal.index(b"\x00\x00\x01") + 3] & 0x1F in (7, 8), header=1)


def test_asan_dump_tool_on_mutated_h264_bitstreams(stream, stream_nolf, tmp_path, monkeypatch):
    """80 mutants (fixed seed, 10 per kind): a clean exit with well-formed records, or the tool's own error exit
    (2-4) with its one-line message; never a sanitizer report (exit 86), a signal or a hang."""
    tool = require_codec("asan")
    monkeypatch.setenv("ASAN_OPTIONS", "exitcode=86:detect_leaks=1")
    clean = run_mutants(tool, "h264", [stream.read_bytes(), stream_nolf.read_bytes()], 80, 264, MUTATIONS, _mutant,
                        tmp_path)
    assert sum(clean.values()) < 80, clean   # the mutants do damage
