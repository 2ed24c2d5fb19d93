"""The dump tool's one-line error is found in stderr whatever FFmpeg's decoder threads print around it."""

from __future__ import annotations

from cpgd_bench.codec.dump import tool_message


def test_the_tools_line_wins_even_when_a_decoder_thread_prefixes_it() -> None:
    stderr = (b"[h264 @ 0x55d1] error while decoding MB 3 4\n"
              b"[h264 @ 0x55d2] no frame!prior-dump: x.264: corrupt bitstream: Invalid data found\n"
              b"[h264 @ 0x55d3] no frame!\n")  # fmt: skip
    assert tool_message(stderr, "fallback") == "prior-dump: x.264: corrupt bitstream: Invalid data found"


def test_without_the_tools_line_the_last_line_or_the_fallback() -> None:
    assert tool_message(b"a\n\nlast one\n", "fallback") == "last one"
    assert tool_message(b"", "fallback") == "fallback"
