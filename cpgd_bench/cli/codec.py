"""`cpgd-bench codec build`: the patched VVC decoder and its dump tool, built into the user cache."""

from __future__ import annotations

import click


@click.group()
def codec() -> None:
    """The patched FFmpeg VVC, HEVC and H.264 decoders and `prior-dump`, built in $CPGD_BENCH_HOME (default
    ~/.cache/cpgd-bench)."""


@codec.command()
@click.argument("variant", type=click.Choice(["patched", "reference", "asan"]), default="patched")
def build(variant: str) -> None:
    """Build VARIANT (patched; reference: unpatched, for pixel checks; asan: AddressSanitizer), once: a rerun
    rebuilds only what changed. Needs a C compiler, make and nasm; prints where the tool is."""
    from cpgd_bench.codec import build_dump_tool

    tool = build_dump_tool(variant)
    click.echo(f"prior-dump ({variant}): {tool}")
