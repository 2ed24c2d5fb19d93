"""Hostile input to the sources: unsafe or damaged archives, oversized and undersized frames, bad names and options.

Every case must end in one line naming the file (or option) and the fix: no traceback, nothing written
by a refused archive, and in a build the other sequences still built with exit code 1.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import struct
import subprocess
import sys
import tarfile
import tracemalloc
import zipfile
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner, Result

import cpgd_bench.sources.download as dl
from cpgd_bench.cli import main
from cpgd_bench.codec import CodecError, load_profile
from cpgd_bench.codec.encode import MIN_SIDE, _failure, encode
from cpgd_bench.sources import SourceError, get_source, limits
from cpgd_bench.sources.base import SequenceRef
from cpgd_bench.sources.download import DownloadError, safe_extract
from cpgd_bench.sources.images import PNG_SIGNATURE, ImageError, read_rgb
from cpgd_bench.store import open_store

from .codec_clips import require_codec
from .source_fixtures import clip, make_folder, make_hqvideo, write_pngs

# ---- archives ----


def _tar(path: Path, members: list[tarfile.TarInfo | tuple[str, bytes]]) -> Path:
    """A tar (gzip when the name ends in .gz) of ``members``: TarInfo entries as given, (name, data) as files."""
    with tarfile.open(path, "w:gz" if path.suffix == ".gz" else "w") as tf:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tf.addfile(member)
            else:
                info = tarfile.TarInfo(member[0])
                info.size = len(member[1])
                tf.addfile(info, io.BytesIO(member[1]))
    return path


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.fixture(params=["stdlib filter", "no stdlib filter"])
def tar_runtime(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test on this Python, and as on Pythons without extraction filters (< 3.10.12 / 3.11.4)."""
    if request.param == "no stdlib filter":
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
        monkeypatch.delattr(tarfile, "fully_trusted_filter", raising=False)
        unfiltered = tarfile.TarFile.extractall

        def extractall(self: tarfile.TarFile, path: str = ".", members: object = None, **_: object) -> None:
            unfiltered(self, path, members, filter=lambda member, dest: member)  # extract whatever is there

        monkeypatch.setattr(tarfile.TarFile, "extractall", extractall)
    return str(request.param)


def _refused(archive: Path, target: Path, match: str) -> str:
    with pytest.raises(DownloadError, match=match) as info:
        safe_extract(archive, target)
    message = str(info.value)
    assert "\n" not in message and str(archive) in message
    assert not target.exists() or not any(target.rglob("*")), "something was written"
    return message


def test_symlink_chain_tar_is_refused_before_writing(tmp_path: Path, tar_runtime: str) -> None:
    archive = _tar(tmp_path / "chain.tar", [
        ("ok/first.txt", b"written first if extraction were member by member"),
        _link("d", "."), _link("d/e", ".."), ("e/file", b"escaped"),
    ])  # fmt: skip
    target = tmp_path / "deep" / "target"
    message = _refused(archive, target, r"member 'd' is a symbolic link \(to '\.'\)")
    assert "nothing was extracted" in message
    assert not (tmp_path / "deep" / "file").exists() and not (tmp_path / "deep" / "e").exists()


def test_hard_link_tar_is_refused_before_writing(tmp_path: Path, tar_runtime: str) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("keep me")
    for linkname in (str(secret), "../secret.txt", "inside.txt"):  # outside (absolute, relative) and inside
        archive = _tar(tmp_path / "hard.tar.gz", [("inside.txt", b"x"), _link("hl", linkname, tarfile.LNKTYPE)])
        _refused(archive, tmp_path / "target", rf"member 'hl' is a hard link \(to '{linkname}'\)")
    assert secret.read_text() == "keep me" and secret.stat().st_nlink == 1


def test_special_files_and_zip_links_are_refused(tmp_path: Path) -> None:
    fifo = tarfile.TarInfo("data/pipe")
    fifo.type = tarfile.FIFOTYPE
    _refused(_tar(tmp_path / "fifo.tar", [("data/a.txt", b"a"), fifo]), tmp_path / "t", "is a device, FIFO")
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("GOPRO_Large/a.txt", b"a")
        link = zipfile.ZipInfo("GOPRO_Large/escape")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "../../etc")
    _refused(archive, tmp_path / "t", "'GOPRO_Large/escape' is a symbolic link")
    _refused(_tar(tmp_path / "drive.tar", [("C:/evil.txt", b"x")]), tmp_path / "t", "is an absolute path")
    _refused(_tar(tmp_path / "back.tar", [("a\\..\\..\\evil.txt", b"x")]), tmp_path / "t", "goes up with '..'")


def test_good_archives_extract_the_same_on_every_runtime(tmp_path: Path, tar_runtime: str) -> None:
    target = tmp_path / "raw"
    (target / "GOPRO_Large" / "test").mkdir(parents=True)
    (target / "GOPRO_Large" / "test" / "old.txt").write_text("kept")
    archive = _tar(tmp_path / "good.tar.gz", [("GOPRO_Large/test/a/1.png", b"one"), ("./GOPRO_Large/b.txt", b"b")])
    safe_extract(archive, target)
    assert (target / "GOPRO_Large" / "test" / "a" / "1.png").read_bytes() == b"one"
    assert (target / "GOPRO_Large" / "b.txt").read_bytes() == b"b"
    assert (target / "GOPRO_Large" / "test" / "old.txt").read_text() == "kept"
    assert sorted(p.name for p in target.iterdir()) == ["GOPRO_Large"]  # no staging folder left

    clash = _tar(tmp_path / "clash.tar", [("GOPRO_Large/new.txt", b"n"), ("GOPRO_Large/b.txt/c", b"c")])
    with pytest.raises(DownloadError, match=r"GOPRO_Large/b\.txt is a file already.*nothing was extracted"):
        safe_extract(clash, target)
    assert not (target / "GOPRO_Large" / "new.txt").exists() and (target / "GOPRO_Large" / "b.txt").is_file()


def test_truncated_and_corrupt_archives_leave_nothing(tmp_path: Path) -> None:
    noise = np.random.default_rng(0).integers(0, 256, 200_000, dtype=np.uint8).tobytes()
    whole = _tar(tmp_path / "whole.tar.gz", [("GOPRO_Large/a.bin", noise), ("GOPRO_Large/b.bin", noise[::-1])])
    data = whole.read_bytes()
    target = tmp_path / "target"
    (tmp_path / "cut.tar.gz").write_bytes(data[: len(data) // 2])
    _refused(tmp_path / "cut.tar.gz", target, "not a readable zip/tar archive .*; delete it and download again")
    (tmp_path / "empty.zip").write_bytes(b"")
    _refused(tmp_path / "empty.zip", target, "not a readable zip/tar archive")

    archive = tmp_path / "crc.zip"  # readable listing, damaged data in the second member: found while extracting
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("GOPRO_Large/a.bin", noise)
        zf.writestr("GOPRO_Large/b.bin", noise)
    raw = bytearray(archive.read_bytes())
    raw[raw.rindex(noise[:64]) + 1000] ^= 0xFF
    archive.write_bytes(bytes(raw))
    _refused(archive, target, r"extraction failed \(Bad CRC-32.*\), nothing was kept")


def _lying_zip(path: Path, real: bytes, claimed: int) -> Path:
    """A deflated one-member zip whose headers claim ``claimed`` bytes for ``real`` bytes of data."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("GOPRO_Large/bomb.bin", real)
    raw = bytearray(path.read_bytes())
    local, central = raw.index(b"PK\x03\x04"), raw.index(b"PK\x01\x02")
    struct.pack_into("<I", raw, local + 22, claimed)
    struct.pack_into("<I", raw, central + 24, claimed)
    path.write_bytes(bytes(raw))
    return path


def test_decompression_bombs_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "target"
    # headers that under-state the data: extraction stops at the claimed size, the CRC fails, nothing is kept
    _refused(_lying_zip(tmp_path / "liar.zip", bytes(1 << 20), 10), target, "extraction failed")
    # more than the disk has free: refused from the headers alone, before anything is written
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("GOPRO_Large/zeros.bin", bytes(8 << 20))
    assert bomb.stat().st_size < 100_000
    monkeypatch.setattr(dl.shutil, "disk_usage", lambda path: SimpleNamespace(free=1 << 20))
    _refused(bomb, target, r"members add up to 0\.01 GiB but only 0\.00 GiB are free .*free disk space")


# ---- frames: sizes from headers, before allocating ----


def _png(path: Path, width: int, height: int, data: bytes | None = None) -> Path:
    """An all-black 8-bit RGB PNG of any size, streamed (or with ``data`` as its IDAT: a header-only claim)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    if data is None:
        compressor, row = zlib.compressobj(1), bytes(1 + 3 * width)
        data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    path.parent.mkdir(parents=True, exist_ok=True)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(PNG_SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


def _jpeg_claim(path: Path, width: int, height: int) -> Path:
    """A JPEG header claiming ``width`` x ``height`` (no real image data)."""
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3) + b"\x01\x11\x00\x02\x11\x00\x03\x11\x00"
    sos = b"\xff\xda" + struct.pack(">H", 12) + b"\x03\x01\x00\x02\x11\x03\x11\x00\x3f\x00"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8" + sof + sos + bytes(10) + b"\xff\xd9")
    return path


def test_image_headers_claiming_huge_sizes(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"bomb\.png: frame size 100000x100000 is out of range; frames must be 32 to "
                                         r"8192 pixels wide and high"):  # fmt: skip
        read_rgb(_png(tmp_path / "bomb.png", 100_000, 100_000, data=b"\0" * 16))
    with pytest.raises(ImageError, match=r"bomb\.jpg: too large \(Image size \(4294836225 pixels\) exceeds"):
        read_rgb(_jpeg_claim(tmp_path / "bomb.jpg", 65535, 65535))
    with pytest.raises(ImageError, match=r"wide\.png: frame size 9000x32 is out of range"):
        read_rgb(_png(tmp_path / "wide.png", 9000, 32))
    with pytest.raises(ImageError, match=r"tiny\.png: frame size 16x64 is out of range; frames must be 32 to"):
        read_rgb(_png(tmp_path / "tiny.png", 16, 64))


def _first_frame_then_small(seq: Path, width: int, height: int, small: int = 399) -> None:
    _png(seq / "blur" / "00000.png", width, height)
    frame = clip(3, 1)
    for i in range(1, small + 1):
        write_pngs(seq / "blur", frame, start=i, digits=5)


@pytest.mark.parametrize(("width", "height", "match"), [
    (12000, 12000, r"00000\.png: frame size 12000x12000 is out of range"),
    (8000, 4000, r"00001\.png: frame size 64x48 differs from 8000x4000 of 00000\.png"),
])  # fmt: skip
def test_large_first_frame_is_caught_from_headers_before_allocating(tmp_path: Path, width: int, height: int,
                                                                    match: str) -> None:  # fmt: skip
    _first_frame_then_small(tmp_path / "seq", width, height)
    source = get_source("folder", root=tmp_path)
    tracemalloc.start()
    try:
        with pytest.raises(SourceError, match=match):
            source.load(SequenceRef("test", "seq"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20  # a (400, H, W, 3) array would be 38 GiB or more


def test_per_sequence_memory_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_folder(tmp_path / "tree", {"a": 4})
    source = get_source("folder", root=tmp_path / "tree")
    need = 2 * 4 * 48 * 64 * 3  # blur and sharp
    monkeypatch.setattr(limits, "LIMITS", limits.FrameLimits(max_sequence_bytes=need - 1))
    with pytest.raises(SourceError, match=r"a/blur: 4 frames of 64x48 need 0\.0 GiB as RGB, over the .* limit; split"):
        source.load(SequenceRef("test", "a"))
    monkeypatch.setattr(limits, "LIMITS", limits.FrameLimits(max_sequence_bytes=need))
    assert source.load(SequenceRef("test", "a")).blur.shape == (4, 48, 64, 3)

    make_hqvideo(tmp_path / "hq")  # Alpha: 5 frames of 64x48; the cap is checked when listing
    monkeypatch.setattr(limits, "LIMITS", limits.FrameLimits(max_sequence_bytes=3 * 48 * 64 * 3))
    whole = get_source("hqvideo", root=tmp_path / "hq", segment_frames=None)
    with pytest.raises(SourceError, match=r"Alpha_64x48_50\.yuv: 5 frames .*\(-o segment_frames=100\)"):
        whole.load(SequenceRef("train", "Alpha"))
    segmented = get_source("hqvideo", root=tmp_path / "hq", segment_frames=3)
    assert segmented.load(SequenceRef("train", "Alpha_s001")).blur.shape == (2, 48, 64, 3)


def test_hqvideo_zero_size_fails_only_that_sequence(tmp_path: Path) -> None:
    make_hqvideo(tmp_path)
    zero = tmp_path / "HQ-Video" / "Zero_0x0.yuv"
    zero.write_bytes(b"\0" * 100)
    (tmp_path / "HQ-Video" / "Huge_100000x100000_30.yuv").write_bytes(b"\0" * 10)
    source = get_source("hqvideo", root=tmp_path)
    refs = source.sequences()
    assert SequenceRef("train", "Zero") in refs and SequenceRef("train", "Alpha") in refs
    with pytest.raises(SourceError, match=r"Zero_0x0\.yuv: frame size 0x0 is out of range"):
        source.load(SequenceRef("train", "Zero"))
    with pytest.raises(SourceError, match=r"Huge_100000x100000_30\.yuv: frame size 100000x100000 is out of range"):
        source.load(SequenceRef("train", "Huge"))
    assert source.load(SequenceRef("train", "Alpha")).blur.shape == (5, 48, 64, 3)
    report = source.check()
    assert report.sequences == 2 and sum(str(zero) in p for p in report.problems) == 1


def test_names_that_cannot_be_store_groups(tmp_path: Path) -> None:
    make_folder(tmp_path / "flat", {"good": 2, "bad name": 2, ".hidden": 2})
    source = get_source("folder", root=tmp_path / "flat")
    assert source.load(SequenceRef("test", "good")).blur.shape == (2, 48, 64, 3)
    for name in ("bad name", ".hidden"):
        with pytest.raises(SourceError, match=rf"flat/{name}: invalid sequence name '{name}'.*; rename it"):
            source.load(SequenceRef("test", name))
    make_folder(tmp_path / "split" / "my split", {"x": 2})
    split_source = get_source("folder", root=tmp_path / "split")
    with pytest.raises(SourceError, match=r"my split/x: invalid split name 'my split'"):
        split_source.load(SequenceRef("my split", "x"))
    hq = tmp_path / "hq" / "HQ-Video"
    hq.mkdir(parents=True)
    (hq / "bad name_64x48.yuv").write_bytes(bytes(64 * 48 * 3 // 2))
    with pytest.raises(SourceError, match=r"bad name_64x48\.yuv: invalid sequence name 'bad name'"):
        get_source("hqvideo", root=tmp_path / "hq").load(SequenceRef("train", "bad name"))


def test_codec_minimum_is_checked_before_encoding(tmp_path: Path) -> None:
    small = np.zeros((2, 24, 64, 3), np.uint8)
    with pytest.raises(CodecError, match=rf"^sequence tiny: frames of 64x24 are smaller than the {MIN_SIDE}x{MIN_SIDE} "
                                         "minimum that VVenC codes here; use larger frames"):  # fmt: skip
        encode(small, load_profile(), tmp_path / "tiny.266")
    assert not (tmp_path / "tiny.266").exists()
    raw = b"[vost#0:0/libvvenc @ 0x5581c3433500] [enc:libvvenc @ 0x5581c3433fc0] Error submitting video frame to " \
          b"the encoder\n[vost#0:0/libvvenc @ 0x5581c3433500] Error encoding a frame\n"  # fmt: skip
    message = str(_failure(tmp_path / "noisy.266", raw, "VVenC"))
    assert message.startswith("VVenC encoding of noisy.266 failed: Error submitting video frame to the encoder (")
    assert "0x55" not in message and "higher QP" in message


# ---- the CLI: one line, no traceback, the other sequences built, exit 1 ----


def _cli(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert "Traceback" not in result.output
    return result


@pytest.mark.parametrize(("option", "code", "message"), [
    ("fps=abc", 1, "folder: option fps must be a positive number, got 'abc' (e.g. -o fps=25)"),
    ("fps=-1", 1, "folder: option fps must be a positive number, got -1"),
    ("fps=.nan", 1, "folder: option fps must be a positive number, got nan"),
    ("fps=true", 1, "folder: option fps must be a positive number, got True"),
    ("split=bad name", 1, "folder: option split must be a name of letters, digits"),
    ("split=[a, b]", 1, "folder: option split must be a name of letters, digits"),
    ("blur_dir=3", 1, "folder: option blur_dir must be a folder name, got 3"),
    ("nope=1", 1, "source 'folder' does not take these options"),
    ("fps=[unclosed", 2, "the value is not valid YAML"),
    ("fps", 2, "'fps' is not KEY=VALUE"),
    ("=3", 2, "'=3' is not KEY=VALUE"),
])  # fmt: skip
def test_malformed_options_are_one_line_errors(tmp_path: Path, option: str, code: int, message: str) -> None:
    make_folder(tmp_path / "tree", {"a": 2})
    out = tmp_path / "x.zarr"
    result = _cli("dataset", "build", "folder", "--root", str(tmp_path / "tree"), "--out", str(out), "-o", option)
    assert result.exit_code == code and message in result.output, result.output
    assert not out.exists()


@pytest.mark.parametrize(("name", "option", "message"), [
    ("sample", "frames=1", "sample: option frames must be a whole number >= 2, got 1"),
    ("sample", "seed=abc", "sample: option seed must be a whole number >= 0, got 'abc'"),
    ("sample", "clips=[1]", "sample: clips must be SampleClip entries (Python API only)"),
    ("hqvideo", "segment_frames=true", "hqvideo: option segment_frames must be a whole number >= 1, got True"),
    ("hqvideo", "split=.x", "hqvideo: option split must be a name"),
    ("hqvideo", "manifest=null", "hqvideo: option manifest must be a manifest name or a .yaml path, got None"),
    ("gopro", "splits=7", "gopro: option splits must be a name or a list of names, got 7"),
    ("dvd", "splits=[test, 'a b']", "dvd: option splits must be a name of letters"),
])  # fmt: skip
def test_malformed_options_of_every_source(tmp_path: Path, name: str, option: str, message: str) -> None:
    make_hqvideo(tmp_path)
    args = ["--root", str(tmp_path)] if name != "sample" else []
    result = _cli("dataset", "build", name, *args, "--out", str(tmp_path / "x.zarr"), "-o", option)
    assert result.exit_code == 1 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1


def _hostile_tree(root: Path) -> dict[str, str]:
    """A folder dataset: two good sequences and one per hostile input; returns {sequence: expected failure text}."""
    make_folder(root, {"good1": 3, "good2": 3}, sharp=False)
    _png(root / "pngbomb" / "blur" / "000001.png", 100_000, 100_000, data=b"\0" * 16)
    _jpeg_claim(root / "jpgbomb" / "blur" / "000001.jpg", 65535, 65535)
    _first_frame_then_small(root / "bigfirst", 12000, 12000)
    write_pngs(root / "tiny" / "blur", clip(5, 3, 16, 16))
    write_pngs(root / "bad name" / "blur", clip(6, 3))
    return {
        "pngbomb": str(root / "pngbomb" / "blur" / "000001.png") + ": frame size 100000x100000 is out of range",
        "jpgbomb": str(root / "jpgbomb" / "blur" / "000001.jpg") + ": too large (Image size",
        "bigfirst": str(root / "bigfirst" / "blur" / "00000.png") + ": frame size 12000x12000 is out of range",
        "tiny": str(root / "tiny" / "blur" / "000001.png") + ": frame size 16x16 is out of range",
        "bad name": "invalid sequence name 'bad name'",  # the driver checks names before the source loads
    }


@pytest.mark.codec
def test_cli_build_survives_hostile_frames(tmp_path: Path) -> None:
    require_codec()
    expected = _hostile_tree(tmp_path / "tree")
    out = tmp_path / "x.zarr"
    cli = shutil.which("cpgd-bench")
    command = [cli] if cli else [sys.executable, "-c", "from cpgd_bench.cli import main; main()"]
    args = ["dataset", "build", "folder", "--root", str(tmp_path / "tree"), "--out", str(out)]
    proc = subprocess.run([*command, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TQDM_DISABLE": "1"})  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert "Traceback" not in output
    assert f"built 2 (6 frames), skipped 0, failed {len(expected)}" in output
    failures = [line for line in output.splitlines() if line.startswith("  failed ")]
    assert len(failures) == len(expected), output
    for name, text in expected.items():
        assert sum(line.startswith(f"  failed test/{name}: ") and text in line for line in failures) == 1, name
    assert open_store(out).sequences("test") == ["good1", "good2"]


@pytest.mark.codec
def test_cli_build_hqvideo_with_a_zero_size_file(tmp_path: Path) -> None:
    require_codec()
    make_hqvideo(tmp_path)
    zero = tmp_path / "HQ-Video" / "Zero_0x0.yuv"
    zero.write_bytes(b"\0" * 64)
    result = _cli("dataset", "build", "hqvideo", "--root", str(tmp_path), "--out", str(tmp_path / "hq.zarr"))
    assert result.exit_code == 1, result.output
    assert "built 2 (8 frames), skipped 0, failed 1" in result.output
    assert f"  failed train/Zero: {zero}: frame size 0x0 is out of range" in result.output
    assert open_store(tmp_path / "hq.zarr").sequences("train") == ["Alpha", "Beta"]
