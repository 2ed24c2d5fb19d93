"""Errors of the codec layer."""


class CodecError(RuntimeError):
    """A one-line, user-facing codec failure (missing build, bad input, corrupt bitstream)."""
