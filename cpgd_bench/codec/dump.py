"""Build, locate and run the patched-decoder dump tool (`cpgd-bench codec build`, `make codec`)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from cpgd_bench import resources

from .errors import CodecError
from .records import DumpFrame, iter_records

PIPE_BYTES = 1 << 20
#: Codecs the dump tool decodes (its ``--codec`` values).
CODECS = ("vvc", "hevc", "h264")


def build_dump_tool(variant: str = "patched") -> Path:
    """Build `prior-dump` of ``variant`` (patched, reference, asan) into the user cache with the packaged
    ``build.sh``; idempotent (only what changed is rebuilt). Returns the tool's path."""
    script = resources.codec_sources() / "build.sh"
    build_dir = resources.codec_build_dir()
    if subprocess.run(["bash", str(script), variant, str(build_dir), str(resources.vvc_patches())]).returncode:
        raise CodecError(f"codec build ({variant}) failed; see the messages above (build files in {build_dir})")
    return _cached_tool(variant)


def _cached_tool(variant: str) -> Path:
    return resources.codec_build_dir() / variant / "bin" / "prior-dump"


def dump_tool_path(variant: str = "patched") -> Path:
    """Path of `prior-dump` in the user cache ($CPGD_PRIOR_DUMP overrides the patched one); CodecError if not
    built."""
    env = os.environ.get("CPGD_PRIOR_DUMP")
    path = Path(env) if env and variant == "patched" else _cached_tool(variant)
    if not path.is_file() or not os.access(path, os.X_OK):
        target = "codec" if variant == "patched" else f"codec-{variant}"
        raise CodecError(f"prior-dump tool not found at {path}; build it with: cpgd-bench codec build {variant} "
                         f"(or make {target})")
    return path


def patch_sha256() -> str:
    """sha256 over the vvc_patches/*.patch files, in order (recorded in every store)."""
    h = hashlib.sha256()
    for p in sorted(resources.vvc_patches().glob("*.patch")):
        h.update(p.read_bytes())
    return h.hexdigest()


def decoder_version(codec: str = "vvc") -> str:
    """Human-readable decoder identity of ``codec`` (vvc, hevc, h264)."""
    return f"FFmpeg 7.1.5 {codec} decoder + cpgd-bench vvc_patches"


def _codec_args(codec: str) -> list[str]:
    if codec not in CODECS:
        raise CodecError(f"unknown codec {codec!r}; use one of {', '.join(CODECS)}")
    return ["--codec", codec]


def run_dump(bitstream: Path, *, threads: int = 0, export: bool = True, prediction: bool = False,
             rgb: bool = False, variant: str = "patched", feed: Callable[[BinaryIO], None] | None = None,
             codec: str = "vvc") -> Iterator[DumpFrame]:  # fmt: skip
    """Decode `bitstream` (``codec``: vvc, hevc or h264) and yield its frames with priors, streaming from the
    tool's stdout.

    ``rgb``: the tool converts each picture to 8-bit RGB (``DumpFrame.rgb``, the same bytes as
    :func:`cpgd_bench.codec.colour.yuv420_to_rgb`) instead of sending its YUV planes.
    ``feed``: the tool reads the bitstream from its stdin instead of the file, and ``feed`` is called
    with that pipe once the tool runs; it must write the bitstream and close the pipe (see
    :meth:`cpgd_bench.codec.encode.StreamingEncoder.relay_to`). ``bitstream`` then only names it.
    """
    if feed is None and (not bitstream.is_file() or bitstream.stat().st_size == 0):
        raise CodecError(f"{bitstream}: bitstream missing or empty; re-encode the sequence")
    cmd = [str(dump_tool_path(variant)), *_codec_args(codec), "--threads", str(threads), "-o", "-"]
    cmd += [] if export else ["--no-export"]
    cmd += ["--prediction"] if prediction else []
    cmd += ["--rgb"] if rgb else []
    cmd += [str(bitstream)] if feed is None else ["--name", bitstream.name, "-"]
    stdin = None if feed is None else subprocess.PIPE
    with subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        if feed is not None:
            feed(proc.stdin)
        _widen_pipe(proc.stdout.fileno())
        try:
            yield from iter_records(proc.stdout)
        except CodecError as e:
            proc.kill()
            proc.wait()
            raise CodecError(tool_message(proc.stderr.read(), str(e))) from None
        err = proc.stderr.read()
        if proc.wait():
            raise CodecError(tool_message(err, f"prior-dump failed on {bitstream}"))


def tool_message(stderr: bytes, fallback: str) -> str:
    """The tool's one-line error from its stderr: its last ``prior-dump:`` message (FFmpeg's decoder threads may log
    after it, or onto the start of its line), else the last non-empty line, else ``fallback``."""
    lines = [line.strip() for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    own = [line[line.index("prior-dump:"):] for line in lines if "prior-dump:" in line]
    return (own or lines or [fallback])[-1]


def _widen_pipe(fd: int) -> None:
    """Give the tool's output pipe 1 MiB (Linux; default 64 KiB): fewer stalls on ~6 MB frame records."""
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or over fs/pipe-max-size: keep the default
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)


def frame_md5s(bitstream: Path, *, threads: int = 0, export: bool = True, variant: str = "patched",
               codec: str = "vvc") -> list[str]:  # fmt: skip
    """Per-frame md5 of the decoded picture (as `ffmpeg -f framemd5`) by the ``codec`` decoder."""
    cmd = [str(dump_tool_path(variant)), *_codec_args(codec), "--md5", "--threads", str(threads)]
    cmd += [] if export else ["--no-export"]
    proc = subprocess.run(cmd + [str(bitstream)], capture_output=True, text=True)
    if proc.returncode:
        raise CodecError(tool_message(proc.stderr.encode(), f"prior-dump --md5 failed on {bitstream}"))
    return [line.split()[1] for line in proc.stdout.splitlines()]
