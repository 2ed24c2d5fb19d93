"""Intra pictures at scene cuts: each scene coded on its own, so no motion vector points across a cut."""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cpgd_bench.codec import CodecError, load_profile
from cpgd_bench.codec.encode import StreamingEncoder, segment_bounds
from cpgd_bench.codec.priors import coded_stream

from .codec_clips import require_codec, translating_clip

CUT = 20
encode_module = importlib.import_module("cpgd_bench.codec.encode")  # the module (the package exports the function)


def _two_scenes() -> np.ndarray:
    first = translating_clip(CUT, (96, 128))
    second = translating_clip(16, (96, 128), velocity=(-1.0, 0.75), image="coffee")
    return np.concatenate([first, second])


def _references_across(mv_ref: np.ndarray, cut: int) -> int:
    """How many (frame, list, block) entries reference a frame on the other side of ``cut``."""
    t = np.arange(len(mv_ref))[:, None, None, None]
    target = t + mv_ref
    return int(((mv_ref != 0) & ((t >= cut) != (target >= cut))).sum())


def test_segment_bounds() -> None:
    assert segment_bounds(10) == [(0, 10)]
    assert segment_bounds(10, [4, 0, 4, 12, 7]) == [(0, 4), (4, 7), (7, 10)]


@pytest.mark.codec
@pytest.mark.parametrize("profile", ["ra-cuts-qp32", "hevc-ra-qp32", "h264-ra-qp32"])
def test_no_reference_crosses_a_coded_cut(profile: str, tmp_path: Path) -> None:
    require_codec()
    frames = _two_scenes()
    coded = load_profile(profile)
    streams = {}
    for cuts in ([], [CUT]):
        with coded_stream(frames, coded, tmp_path / str(len(cuts)), "x", cuts=cuts, block=len(frames)) as stream:
            (_, arrays), = list(stream)
        streams[len(cuts)] = (arrays, stream.per_frame(), stream.attrs)
    plain, split = streams[0], streams[1]
    assert _references_across(plain[0]["mv_ref"], CUT) > 0          # one GOP over the cut predicts across it
    assert _references_across(split[0]["mv_ref"], CUT) == 0
    assert split[2]["segments_start"] == [0, CUT]
    assert len(split[1]["poc"]) == len(frames)
    # the second scene decodes to what it would decode to on its own
    with coded_stream(frames[CUT:], coded, tmp_path / "alone", "x", block=len(frames)) as stream:
        (_, alone), = list(stream)
    assert np.array_equal(split[0]["decoded"][CUT:], alone["decoded"])


def test_stopping_a_segmented_encoder_leaves_no_process(tmp_path: Path) -> None:
    frames = _two_scenes()
    encoder = StreamingEncoder(frames, load_profile("ra-cuts-qp32"), tmp_path / "x.266", cuts=[CUT])
    time.sleep(1.0)  # let the first encoder start: never relayed, it blocks on its full output pipe
    encoder.stop()
    assert encoder._procs and all(p.returncode is not None for p in encoder._procs)
    assert not encoder._feeder.is_alive()


def _first_segment_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the first segment's encoder read its frames and exit 0 without output (as VVenC did with GOPSize 16)."""
    real, calls = encode_module._command, []

    def command(*args: object) -> list[str]:
        calls.append(args)
        silent = [sys.executable, "-c", "import sys; sys.stdin.buffer.read()"]  # the caller appends an argument
        return silent if len(calls) == 1 else real(*args)

    monkeypatch.setattr(encode_module, "_command", command)


@pytest.mark.codec
@pytest.mark.parametrize("streaming", [False, True])
def test_a_segment_the_encoder_drops_fails_in_one_line(
    streaming: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_codec()
    _first_segment_dropped(monkeypatch)
    frames, profile = _two_scenes(), load_profile("ra-cuts-qp32")
    with pytest.raises(CodecError) as error:
        if streaming:
            with coded_stream(frames, profile, tmp_path, "x", cuts=[CUT], block=len(frames)) as stream:
                list(stream)
        else:
            encode_module.encode(frames, profile, tmp_path / "x.266", cuts=[CUT])
    message = str(error.value)
    assert "\n" not in message
    assert f"wrote no bitstream for frames 0-{CUT - 1} of x.266" in message and "another --profile" in message
