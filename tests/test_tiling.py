"""The one window rule (windows cover [0, n), the last flush with the end) and the temporal windows built on it."""

from __future__ import annotations

import pytest

from cpgd_bench.tiling import temporal_windows, window_starts


@pytest.mark.parametrize("size", [1, 5, 47, 48, 49, 100, 301])
@pytest.mark.parametrize("length,step", [(48, 44), (7, 7), (7, 1), (64, 32), (200, 10)])
def test_windows_cover_every_frame_and_end_flush(size: int, length: int, step: int) -> None:
    starts = window_starts(size, length, step)
    ends = [s + min(length, size) for s in starts]
    assert starts[0] == 0 and ends[-1] == size and starts == sorted(set(starts))
    assert all(b - a <= step for a, b in zip(starts, starts[1:], strict=False))  # no gap between windows
    assert all(0 <= s <= max(0, size - length) for s in starts)


def test_window_starts_examples() -> None:
    assert window_starts(100, 48, 44) == [0, 44, 52]
    assert window_starts(90, 64, 32) == [0, 26]
    assert window_starts(40, 64, 32) == [0]
    assert window_starts(10, 3, 0) == list(range(8))  # a step below 1 is one frame


@pytest.mark.parametrize("frames,window,overlap", [(100, 48, 4), (30, 7, 2), (7, 7, 0), (5, 10, 2), (61, 16, 6)])
def test_temporal_windows_keep_each_frame_exactly_once(frames: int, window: int, overlap: int) -> None:
    kept = [f for w in temporal_windows(frames, window, overlap) for f in range(w.keep_start, w.keep_end)]
    assert kept == list(range(frames))
    for w in temporal_windows(frames, window, overlap):
        assert w.start <= w.keep_start < w.keep_end <= w.end
