"""Errors of the codec layer."""

from cpgd_bench.errors import CpgdBenchError


class CodecError(CpgdBenchError, RuntimeError):
    """A one-line, user-facing codec failure (missing build, bad input, corrupt bitstream)."""
