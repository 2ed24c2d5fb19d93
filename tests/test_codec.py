"""The patched VVC decoder: identical pixels, exact residuals, correct motion vectors, clear errors."""

from __future__ import annotations

import dataclasses
import os
import random
import subprocess
from pathlib import Path

import numpy as np
import pytest

from cpgd_bench.build import build_store
from cpgd_bench.codec import (
    BLOCK_ARRAYS,
    CodecError,
    PriorStream,
    decode_priors,
    dump_tool_path,
    encode,
    extract_priors,
    ffmpeg_exe,
    frame_md5s,
    load_profile,
    run_dump,
)
from cpgd_bench.codec.colour import rgb_to_yuv420, yuv420_to_rgb
from cpgd_bench.codec.dump import tool_message
from cpgd_bench.codec.encode import pad_to_multiple
from cpgd_bench.codec.records import iter_records
from cpgd_bench.sources.base import SequenceFrames, SequenceRef, Source
from cpgd_bench.store import verify_store

from .codec_clips import (
    MUTATIONS,
    assert_prediction_plus_residual,
    motion_compensation_wins,
    mutant,
    require_codec,
    translating_clip,
)

VELOCITY = (1.25, 0.5)


pytestmark = pytest.mark.codec


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return translating_clip(12, (120, 160), VELOCITY)


@pytest.fixture(scope="module")
def stream(tmp_path_factory, clip) -> Path:
    require_codec("patched")
    return encode(clip, load_profile("ra-qp32"), tmp_path_factory.mktemp("s") / "clip.266")


@pytest.fixture(scope="module")
def stream_nolf(tmp_path_factory, clip) -> Path:
    require_codec("patched")
    return encode(clip, load_profile("ra-nolf-qp27"), tmp_path_factory.mktemp("s") / "nolf.266")


def test_colour_round_trip_is_close():
    rgb = translating_clip(1, (64, 64))[0]
    back = yuv420_to_rgb(*rgb_to_yuv420(rgb))
    assert np.abs(back.astype(int) - rgb).mean() < 2.5       # chroma subsampling blurs edges a little
    flat = np.full((8, 8, 3), (200, 30, 90), np.uint8)
    assert np.abs(yuv420_to_rgb(*rgb_to_yuv420(flat)).astype(int) - flat).max() <= 1


def test_dump_tool_rgb_is_byte_identical_to_the_python_conversion(stream, tmp_path):
    """`prior-dump --rgb` (used by the store build) is colour.yuv420_to_rgb in C, bit for bit."""
    yuv = list(run_dump(stream, export=False))
    rgb = list(run_dump(stream, export=False, rgb=True))
    assert len(rgb) == len(yuv) == 12 and all(f.planes is None for f in rgb)
    for a, b in zip(yuv, rgb, strict=True):
        assert np.array_equal(b.rgb, yuv420_to_rgb(*a.planes, a.bit_depth)), a.poc
    # saturated colours exercise the clipping at 0 and 255 on both sides
    rng = np.random.default_rng(0)
    noisy = rng.choice(np.array([0, 255], np.uint8), size=(2, 64, 96, 3))
    noisy_stream = encode(noisy, load_profile("ra-qp22"), tmp_path / "noisy.266")
    for a, b in zip(run_dump(noisy_stream, export=False), run_dump(noisy_stream, export=False, rgb=True), strict=True):
        expected = yuv420_to_rgb(*a.planes, a.bit_depth)
        assert (expected == 0).any() and (expected == 255).any()
        assert np.array_equal(b.rgb, expected)


def test_pixels_identical_to_unpatched_build_and_ffmpeg9(stream):
    require_codec("reference")
    ref = frame_md5s(stream, variant="reference", export=False)
    out = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(stream), "-f", "framemd5", "-"],
                         capture_output=True, text=True, check=True).stdout
    ffmpeg9 = [ln.split(",")[-1].strip() for ln in out.splitlines() if ln and not ln.startswith("#")]
    assert len(ref) == 12 and ref == ffmpeg9
    for threads in (1, 0):
        for export in (True, False):
            assert frame_md5s(stream, threads=threads, export=export) == ref, (threads, export)


def test_decoded_equals_prediction_plus_residual_without_loop_filters(stream_nolf):
    frames = list(run_dump(stream_nolf, prediction=True, threads=0))
    assert len(frames) == 12
    assert_prediction_plus_residual(frames)


def test_prior_stream_blocks_are_the_whole_sequence_in_order(stream):
    whole = decode_priors(stream, 117, 150, n_frames=12)   # cropped below the 120 x 160 coded size
    stream_blocks = PriorStream(stream, 117, 150, n_frames=12, block=5)
    blocks = list(stream_blocks)
    assert [(start, len(arrays["decoded"])) for start, arrays in blocks] == [(0, 5), (5, 5), (10, 2)]
    for name in BLOCK_ARRAYS:
        np.testing.assert_array_equal(np.concatenate([arrays[name] for _, arrays in blocks]), getattr(whole, name))
    assert all(np.array_equal(v, getattr(whole, k)) for k, v in stream_blocks.per_frame().items())
    assert len(list(stream_blocks)) == 3 and len(stream_blocks.per_frame()["poc"]) == 12   # iterating again
    assert stream_blocks.attrs["coded_size"] == [120, 160] and stream_blocks.attrs["source_size"] == [117, 150]
    unknown_length = [len(arrays["decoded"]) for _, arrays in PriorStream(stream, 120, 160, block=5)]
    assert unknown_length == [5, 5, 2]


def test_streamed_coding_equals_encoding_then_decoding(clip, stream, tmp_path):
    """Decoding VVenC's output as it is written gives the same bitstream and arrays as decoding the file."""
    require_codec("patched")
    streamed = extract_priors(clip, load_profile("ra-qp32"), tmp_path, "streamed")
    assert streamed.bitstream.read_bytes() == stream.read_bytes()
    from_file = decode_priors(stream, 120, 160, n_frames=12)
    for name, array in from_file.arrays().items():
        np.testing.assert_array_equal(getattr(streamed, name), array, err_msg=name)
    assert streamed.attrs["bitstream_bytes"] == stream.stat().st_size and streamed.attrs["encode_seconds"] > 0


def test_residual_exported_with_loop_filters_on(stream):
    seq = decode_priors(stream, 120, 160)
    energy = [float(np.mean(seq.residual[t].astype(np.float64) ** 2)) for t in range(len(seq.poc))]
    assert min(energy) >= 0 and max(energy) > 1.0
    assert seq.residual_cb.any() and seq.residual_cr.any()


def test_mvs_match_known_motion(stream):
    seq = decode_priors(stream, 120, 160)
    for lst in (0, 1):
        used = seq.mv_ref[:, lst] != 0
        assert used.mean() > 0.3
        per_frame = seq.mv[:, lst][used] / 16.0 / seq.mv_ref[:, lst][used][:, None]
        err = np.linalg.norm(per_frame - np.asarray(VELOCITY), axis=1)
        assert np.median(err) < 0.5 and np.mean(err < 0.5) > 0.8


def test_motion_compensation_beats_zero_motion(stream):
    """Predict each inter 4x4 luma block from its exported reference and MV (list 0); compare with zero motion."""
    wins, total = motion_compensation_wins(list(run_dump(stream)), lists=(0,), still=16 * 8)
    assert total > 200
    assert wins / total >= 0.9, f"MC beat zero motion on {wins}/{total} changing blocks"


def test_odd_size_is_padded_and_cropped(tmp_path):
    require_codec("patched")
    frames = translating_clip(4, (70, 94))
    assert pad_to_multiple(frames).shape[1:3] == (72, 96)
    seq = extract_priors(frames, load_profile(), tmp_path, "odd")
    assert seq.decoded.shape == (4, 70, 94, 3)
    assert seq.mv.shape == (4, 2, 18, 24, 2) and seq.mv_ref.shape == (4, 2, 18, 24)
    assert seq.residual.shape == (4, 70, 94) and seq.residual_cb.shape == (4, 35, 47)
    assert seq.attrs["coded_size"] == [72, 96] and seq.attrs["profile"]["name"] == "ra-qp32"
    psnr = 10 * np.log10(255**2 / np.mean((seq.decoded.astype(float) - frames) ** 2))
    assert psnr > 28


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_broken_bitstreams_give_one_line_errors(stream, tmp_path, damage):
    data = stream.read_bytes()
    bad = tmp_path / f"{damage}.266"
    bad.write_bytes({"truncate": data[: len(data) // 2], "garbage": data[:200] + os.urandom(3000),
                     "empty": b""}[damage])
    with pytest.raises(CodecError) as e:
        decode_priors(bad, 120, 160, n_frames=12)
    msg = str(e.value)
    assert "\n" not in msg and bad.name in msg


def test_bad_input_and_missing_build(tmp_path, monkeypatch):
    with pytest.raises(CodecError, match="expected uint8 RGB"):
        extract_priors(np.zeros((2, 16, 16), np.uint8), load_profile(), tmp_path, "x")
    with pytest.raises(CodecError, match="no frames"):
        extract_priors(np.zeros((0, 16, 16, 3), np.uint8), load_profile(), tmp_path, "x")
    with pytest.raises(CodecError, match="unknown codec profile"):
        load_profile("ra-qp99")
    monkeypatch.setenv("CPGD_PRIOR_DUMP", str(tmp_path / "nope"))
    with pytest.raises(CodecError, match="make codec"):
        dump_tool_path()
    with pytest.raises(CodecError, match="make codec"):   # the encoder already running is stopped
        extract_priors(translating_clip(2, (64, 96)), load_profile(), tmp_path, "x")


def test_encoder_error_wins_over_the_decoders(tmp_path):
    """VVenC rejecting its parameters leaves the decoder an empty pipe: the encoder's message is the one raised."""
    require_codec("patched")
    bad = dataclasses.replace(load_profile(), params={"NoSuchParam": 1})
    with pytest.raises(CodecError, match=r"^VVenC encoding of x\.266 failed: .*NoSuchParam"):
        extract_priors(translating_clip(2, (64, 96)), bad, tmp_path, "x")


def test_low_delay_profile_references_only_the_past(tmp_path):
    require_codec("patched")
    seq = extract_priors(translating_clip(10, (64, 96)), load_profile("ld-qp32"), tmp_path, "ld")
    assert (seq.mv_ref <= 0).all() and (seq.mv_ref < 0).any()


def test_asan_build_is_clean(stream, stream_nolf, tmp_path):
    tool = require_codec("asan")
    for s in (stream, stream_nolf):
        for args in (["--prediction", "--threads", "0"], ["--threads", "1"], ["--md5"]):
            proc = subprocess.run([str(tool), *args, "-o", str(tmp_path / "o.bin"), str(s)],
                                  capture_output=True, text=True)
            assert proc.returncode == 0 and "AddressSanitizer" not in proc.stderr, proc.stderr[-2000:]
        # the build's path: the bitstream arrives through a pipe
        proc = subprocess.run([str(tool), "--rgb", "--name", s.name, "-o", str(tmp_path / "o.bin"), "-"],
                              input=s.read_bytes(), capture_output=True)  # fmt: skip
        assert proc.returncode == 0 and b"AddressSanitizer" not in proc.stderr, proc.stderr[-2000:]


def _nal_type(nal: bytes) -> int:
    return nal[nal.index(b"\x00\x00\x01") + 4] >> 3  # 2-byte header: ..., nal_unit_type (5 bits), tid + 1


PARAMETER_SETS = {14, 15, 16, 17, 18, 19}  # VPS, SPS, PPS, prefix/suffix APS, picture header


def _mutant(rng: random.Random, kind: str, data: bytes) -> bytes:
    """One deterministic mutation of a VVC Annex-B bitstream (2-byte NAL headers)."""
    return mutant(rng, kind, data, lambda nal: _nal_type(nal) in PARAMETER_SETS, header=2)


def test_tool_message_is_the_tools_own_line():
    late_log = b"prior-dump: x.266: corrupt bitstream: Invalid data\n[vvc @ 0x6190] \n[vvc @ 0x6190] slice error\n"
    assert tool_message(late_log, "fallback") == "prior-dump: x.266: corrupt bitstream: Invalid data"
    assert tool_message(b"\n==1==ABORTING\n\n", "fallback") == "==1==ABORTING"
    assert tool_message(b"", "fallback") == "fallback"


def test_asan_dump_tool_on_mutated_bitstreams(stream, stream_nolf, tmp_path, monkeypatch):
    """160 mutants (fixed seed, 20 per kind; ~15 s): a clean exit with well-formed records, or the tool's own
    error exit (2-4) with its one-line message (a CodecError naming the file through run_dump); never a
    sanitizer report (exit 86), a signal or a hang. A quarter of them arrive through a pipe, as in the build."""
    tool = require_codec("asan")
    monkeypatch.setenv("ASAN_OPTIONS", "exitcode=86:detect_leaks=1")  # a sanitizer report cannot pass as exit 1
    rng = random.Random(14)
    sources = [stream.read_bytes(), stream_nolf.read_bytes()]
    outcomes = {kind: 0 for kind in MUTATIONS}  # clean exits per kind
    for i in range(160):
        kind = MUTATIONS[i % len(MUTATIONS)]
        path = tmp_path / f"m{i:03d}-{kind}.266"
        path.write_bytes(_mutant(rng, kind, sources[i % 2]))
        args = [["--threads", "1"], ["--threads", "2", "--prediction"], ["--rgb", "--threads", "1"]][i % 3]
        piped = i % 4 == 3
        cmd = [str(tool), *args, "-o", str(tmp_path / "out.bin"), *(["--name", path.name, "-"] if piped else [path])]
        done = subprocess.run(cmd, input=path.read_bytes() if piped else None, capture_output=True, timeout=60)
        err = done.stderr.decode(errors="replace")
        assert 0 <= done.returncode <= 4 and "Sanitizer" not in err, f"{path.name}: rc {done.returncode}\n{err[-3000:]}"
        if done.returncode == 0:
            with open(tmp_path / "out.bin", "rb") as f:
                assert list(iter_records(f)), f"{path.name}: clean exit without frames"
            outcomes[kind] += 1
        else:
            assert tool_message(done.stderr, "").startswith(f"prior-dump: {path.name if piped else path}: "), err
        if i % 8 == 0:  # the Python side: frames, or a one-line CodecError naming the bitstream
            try:
                list(run_dump(path, threads=1, variant="asan"))
            except CodecError as e:
                assert "\n" not in str(e) and path.name in str(e) and "Sanitizer" not in str(e)
    assert sum(outcomes.values()) < 160 and outcomes["truncate"] < 20, outcomes  # the mutants do damage


class _TwoClips(Source):
    """Two tiny in-memory sequences: ``good`` (96 x 64) and ``bad`` (72 x 64, which the fault wrapper spots)."""

    name = "twoclips"

    def sequences(self) -> list[SequenceRef]:
        return [SequenceRef("test", "bad"), SequenceRef("test", "good")]

    def load(self, ref: SequenceRef) -> SequenceFrames:
        frames = translating_clip(4, (64, 72 if ref.name == "bad" else 96))
        return SequenceFrames(blur=frames, sharp=frames, fps=30.0, frame_names=[f"{i:05d}" for i in range(4)])


#: Faults between VVenC and the decoder, by what the sequence's encoder (a wrapper around FFmpeg) does:
#: ``corrupt`` sends 300 bytes of the real bitstream and then random bytes, and exits 0 (the decoder's error
#: is reported); ``crash`` sends 300 bytes and exits 1 with a message (the encoder's error is reported).
FAULTS = {
    "corrupt": ("{{ head -c 300; head -c 2000 /dev/urandom; cat >/dev/null; }}", "bad.266"),
    "crash": ("{{ head -c 300; cat >/dev/null; }}; echo 'simulated crash' >&2; exit 1",
              "VVenC encoding of bad.266 failed: simulated crash"),
}  # fmt: skip


@pytest.mark.parametrize("fault", FAULTS)
def test_coding_fault_fails_one_sequence_and_the_build_carries_on(tmp_path, monkeypatch, fault):
    """A sequence whose bitstream breaks on its way to the decoder is listed as failed, with a one-line reason
    (the encoder's own error where it failed); nothing of it is stored, and the other sequence is built."""
    require_codec("patched")
    tail, reason_text = FAULTS[fault]
    wrapper = tmp_path / "ffmpeg"
    wrapper.write_text(f"""#!/bin/sh
case " $* " in
  *" 72x64 "*) "{ffmpeg_exe()}" "$@" | {tail.format()} ;;
  *) exec "{ffmpeg_exe()}" "$@" ;;
esac
""")
    wrapper.chmod(0o755)
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(wrapper))
    store = tmp_path / "s.zarr"
    summary = build_store(_TwoClips(), store, profile="ra-qp32", progress=False)
    assert summary.built == ["test/good"]
    (key, reason), = summary.failed
    assert key == "test/bad" and "\n" not in reason and reason_text in reason
    assert "failed test/bad" in summary.format()
    assert sorted(p.name for p in (store / "test").iterdir() if p.is_dir()) == ["good"]  # nothing partial or temporary
    assert verify_store(store, checksums=True, progress=False).ok


def test_codec_option_picks_demuxer_and_decoder(stream, tmp_path):
    """`prior-dump --codec` (default from the file extension) picks the demuxer and decoder; its errors name
    the codec; run_dump and frame_md5s pass the codec on."""
    tool = require_codec("patched")
    ref = frame_md5s(stream, export=False)
    as_hevc = tmp_path / "clip.265"
    as_hevc.write_bytes(stream.read_bytes())
    assert frame_md5s(as_hevc, export=False, codec="vvc") == ref
    for args in (["--codec", "h264", str(stream)], [str(as_hevc)]):
        done = subprocess.run([str(tool), "--no-export", "--md5", *args], capture_output=True, text=True)
        label = "H.264" if "h264" in args else "HEVC"
        assert done.returncode == 3 and label in tool_message(done.stderr.encode(), ""), done.stderr
    with pytest.raises(CodecError, match=r"no frames decoded \(empty or not a HEVC bitstream\)"):
        frame_md5s(stream, export=False, codec="hevc")
    with pytest.raises(CodecError, match="unknown codec 'av1'"):
        list(run_dump(stream, codec="av1"))
    done = subprocess.run([str(tool), "--codec", "av1", str(stream)], capture_output=True, text=True)
    assert done.returncode == 2 and "unknown codec 'av1'" in done.stderr
