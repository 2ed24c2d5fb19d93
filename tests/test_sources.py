"""Dataset adapters on miniature fixtures in the official layouts; manifests; bad input; safe downloads."""

from __future__ import annotations

import io
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cpgd_bench.cli import main
from cpgd_bench.codec.colour import yuv420_to_rgb
from cpgd_bench.provenance import sha256_file
from cpgd_bench.sources import SourceError, get_source, source_names
from cpgd_bench.sources.base import SequenceRef
from cpgd_bench.sources.download import DownloadError, download_dataset, safe_extract
from cpgd_bench.sources.images import PNG_SIGNATURE, ImageError, read_rgb
from cpgd_bench.sources.manifest import ManifestError, load_manifest, manifest_names
from cpgd_bench.sources.yuv import YuvError, YuvSpec, parse_yuv_name

from .source_fixtures import clip, make_dvd, make_folder, make_gopro, make_hqvideo, write_pngs, yuv_planes


def test_registry_lists_every_adapter() -> None:
    assert {"sample", "gopro", "dvd", "hqvideo", "folder"} <= set(source_names())
    assert manifest_names() == ["dvd", "gopro", "hqvideo"]


def test_manifests_encode_the_published_facts() -> None:
    gopro = load_manifest("gopro")
    test = [s for s in gopro.sequences if s.split == "test"]
    assert len(test) == 11 and sum(s.frames for s in test) == 1111
    assert sorted(s.frames for s in test) == [77] + [100] * 9 + [134]
    train = [s for s in gopro.sequences if s.split == "train"]
    assert len(train) == 22 and sum(s.frames for s in train) == 2103
    assert {(s.width, s.height) for s in gopro.sequences} == {(1280, 720)}
    assert gopro.options["blur"] == "blur" and gopro.verified == {"totals": True, "sequences": False}

    dvd = load_manifest("dvd")
    assert dvd.totals == {"train": {"sequences": 61, "frames": 5708}, "test": {"sequences": 10, "frames": 1000}}
    assert len(dvd.raw["test_sequences"]) == 10 and sum(s.frames for s in dvd.sequences) == 1000
    portrait = dvd.entry("IMG_0049")
    assert portrait is not None and (portrait.width, portrait.height) == (720, 1280)

    hq = load_manifest("hqvideo")
    assert hq.totals == {"train": {"sequences": 18, "frames": 8980}} and hq.verified["totals"] is False
    assert {s.bit_depth for s in hq.sequences} == {8, 10} and hq.downloads == ()
    for entry in hq.sequences:  # every listed file name follows the convention and agrees with its entry
        name, facts = parse_yuv_name(Path(entry.file))
        assert (facts["width"], facts["height"], facts["fps"]) == (entry.width, entry.height, entry.fps)
        assert facts.get("bit_depth", 8) == entry.bit_depth


def test_unknown_or_malformed_manifest(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no dataset manifest"):
        load_manifest("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("title: no name\n")
    with pytest.raises(ManifestError, match="bad.yaml: malformed"):
        load_manifest(bad)


def test_gopro_adapter_reads_the_chosen_blur_variant(tmp_path: Path) -> None:
    written = make_gopro(tmp_path)
    for variant in ("blur", "blur_gamma"):
        source = get_source("gopro", root=tmp_path, blur=variant)  # the parent of GOPRO_Large is accepted
        assert source.sequences() == [
            SequenceRef("train", "GOPR0001_11_00"), SequenceRef("train", "GOPR0002_07_00"),
            SequenceRef("test", "GOPR0003_11_00"),
        ]  # fmt: skip
        assert source.describe()["blur_variant"] == variant
        for ref in source.sequences():
            frames = source.load(ref)
            np.testing.assert_array_equal(frames.blur, written[(ref.split, ref.name)][variant])
            np.testing.assert_array_equal(frames.sharp, written[(ref.split, ref.name)]["sharp"])
            assert frames.frame_names[0].endswith(".png") and frames.attrs["blur_dir"].endswith(variant)
    only_test = get_source("gopro", root=tmp_path / "GOPRO_Large", splits=["test"])
    assert [r.split for r in only_test.sequences()] == ["test"]
    with pytest.raises(SourceError, match="blur variant 'sharp'"):
        get_source("gopro", root=tmp_path, blur="sharp")
    with pytest.raises(SourceError, match="no train/ or test/ folder"):
        get_source("gopro", root=tmp_path / "GOPRO_Large" / "train")


def test_dvd_adapter_splits_by_the_manifest_test_list(tmp_path: Path) -> None:
    written = make_dvd(tmp_path)
    source = get_source("dvd", root=tmp_path / "DeepVideoDeblurring_Dataset")
    assert source.sequences() == [
        SequenceRef("test", "IMG_0003"), SequenceRef("test", "IMG_0049"), SequenceRef("train", "IMG_9999"),
    ]  # fmt: skip
    for ref in source.sequences():
        frames = source.load(ref)
        np.testing.assert_array_equal(frames.blur, written[ref.name]["input"])
        np.testing.assert_array_equal(frames.sharp, written[ref.name]["GT"])
    assert source.load(SequenceRef("test", "IMG_0049")).blur.shape[1:3] == (64, 48)  # portrait kept
    report = source.check()
    assert report.sequences == 3 and report.frames == 8
    assert any("IMG_0003: 3 frames, manifest says 100" in n for n in report.notes)
    assert any("split test: found 2 sequences" in p for p in report.problems)  # totals are verified facts


def test_hqvideo_reads_8_and_10_bit_yuv_by_name_convention(tmp_path: Path) -> None:
    videos = make_hqvideo(tmp_path)
    source = get_source("hqvideo", root=tmp_path)
    assert source.sequences() == [SequenceRef("train", "Alpha"), SequenceRef("train", "Beta")]
    for ref in source.sequences():
        rgb, bits, path = videos[ref.name]
        frames = source.load(ref)
        want = np.stack([yuv420_to_rgb(*planes, bits) for planes in yuv_planes(rgb, bits)])
        np.testing.assert_array_equal(frames.blur, want)  # exactly the project's YUV -> RGB conversion
        np.testing.assert_array_equal(frames.sharp, want)
        assert np.abs(frames.blur.astype(int) - rgb).mean() < 3  # and close to what was written
        assert frames.attrs["bit_depth"] == bits and frames.fps == {"Alpha": 50.0, "Beta": 60.0}[ref.name]
    segmented = get_source("hqvideo", root=tmp_path, segment_frames=2)
    names = [r.name for r in segmented.sequences()]
    assert names == ["Alpha_s000", "Alpha_s001", "Alpha_s002", "Beta_s000", "Beta_s001"]
    parts = [segmented.load(SequenceRef("train", n)).blur for n in names[:3]]
    np.testing.assert_array_equal(np.concatenate(parts), source.load(SequenceRef("train", "Alpha")).blur)
    assert segmented.load(SequenceRef("train", "Alpha_s002")).frame_names == ["00004"]
    assert segmented.check().frames == 8 and segmented.check().sequences == 2


def test_yuv_names_and_manifest_geometry(tmp_path: Path) -> None:
    assert parse_yuv_name(Path("Cactus_1920x1080_50.yuv")) == ("Cactus", {"width": 1920, "height": 1080, "fps": 50.0})
    assert parse_yuv_name(Path("Tango2_3840x2160_60fps_10bit_420.yuv"))[1] == {
        "width": 3840, "height": 2160, "fps": 60.0, "bit_depth": 10,
    }  # fmt: skip
    with pytest.raises(YuvError, match="4:2:0 only"):
        parse_yuv_name(Path("X_64x48_30_444.yuv"))
    assert YuvSpec(1920, 1080, 10).frame_bytes == 1920 * 1080 * 3
    # a manifest entry gives the geometry of a file whose name has none
    folder = tmp_path / "HQ-Video"
    folder.mkdir()
    rgb = clip(3, 2)
    (folder / "raw.yuv").write_bytes(b"".join(p.astype("<u2").tobytes() for f in yuv_planes(rgb, 10) for p in f))
    manifest = tmp_path / "hq.yaml"
    manifest.write_text(
        "name: hqvideo\nfps: 25\nsequences:\n"
        "  - {name: Raw, split: train, file: raw.yuv, width: 64, height: 48, bit_depth: 10}\n"
    )
    source = get_source("hqvideo", root=tmp_path, manifest=str(manifest))
    assert source.sequences() == [SequenceRef("train", "Raw")]
    frames = source.load(SequenceRef("train", "Raw"))
    assert frames.blur.shape == (2, 48, 64, 3) and frames.fps == 25.0


def test_folder_adapter_tree_and_video(tmp_path: Path) -> None:
    written = make_folder(tmp_path / "flat")
    source = get_source("folder", root=tmp_path / "flat", split="val")
    assert source.sequences() == [SequenceRef("val", n) for n in "abc"]
    frames = source.load(SequenceRef("val", "b"))
    np.testing.assert_array_equal(frames.blur, written["b"]["blur"])
    np.testing.assert_array_equal(frames.sharp, written["b"]["sharp"])
    make_folder(tmp_path / "split" / "train", {"x": 2}, sharp=False)
    make_folder(tmp_path / "split" / "test", {"y": 2})
    split_source = get_source("folder", root=tmp_path / "split")
    assert split_source.sequences() == [SequenceRef("test", "y"), SequenceRef("train", "x")]
    assert split_source.load(SequenceRef("train", "x")).sharp is None

    import imageio_ffmpeg

    video = tmp_path / "clip.mkv"
    rgb = clip(5, 6)
    writer = imageio_ffmpeg.write_frames(str(video), (64, 48), fps=25, codec="ffv1", pix_fmt_out="bgr0",
                                         macro_block_size=1)  # fmt: skip
    writer.send(None)
    for frame in rgb:
        writer.send(np.ascontiguousarray(frame))
    writer.close()
    one = get_source("folder", root=video)
    assert one.sequences() == [SequenceRef("test", "clip")]
    frames = one.load(SequenceRef("test", "clip"))
    np.testing.assert_array_equal(frames.blur, rgb)  # lossless codec: exact frames back
    assert frames.sharp is None and frames.fps == 25.0  # the container's rate
    assert frames.attrs["fps_source"] == "video" and frames.attrs["input"].startswith("video file, stored once")
    assert get_source("folder", root=video, fps=12).load(SequenceRef("test", "clip")).fps == 12.0
    with pytest.raises(SourceError, match="not a video file"):
        get_source("folder", root=tmp_path / "split" / "train" / "x" / "blur")


def test_folder_sharp_only_frames_are_one_copy_and_fps_is_stated(tmp_path: Path) -> None:
    """``<seq>/`` frames or ``<seq>/sharp/`` alone: loaded once, as the frames to code, no ground truth."""
    direct = clip(70, 3)
    write_pngs(tmp_path / "plain" / "s1", direct)
    sharp = clip(71, 2)
    write_pngs(tmp_path / "plain" / "s2" / "sharp", sharp)
    make_folder(tmp_path / "plain", {"s3": 2})  # an ordinary blur/sharp sequence beside them
    source = get_source("folder", root=tmp_path / "plain")
    assert source.sequences() == [SequenceRef("test", n) for n in ("s1", "s2", "s3")]
    one, two, three = (source.load(ref) for ref in source.sequences())
    np.testing.assert_array_equal(one.blur, direct)
    np.testing.assert_array_equal(two.blur, sharp)
    assert one.sharp is None and two.sharp is None and three.sharp is not None
    assert one.attrs["input"] == two.attrs["input"] == "sharp-only frames, stored once as blur (no ground truth)"
    assert three.attrs["input"] == "blur and sharp"
    assert one.fps == 30.0 and one.attrs["fps_source"] == "assumed" and "assumed" in source.describe()["fps"]
    given = get_source("folder", root=tmp_path / "plain", fps=24)
    assert given.load(SequenceRef("test", "s2")).fps == 24.0 and given.describe()["fps"] == 24.0
    assert given.load(SequenceRef("test", "s2")).attrs["fps_source"] == "option"


# ---- bad input: each a one-line error naming the file ----


def _gopro_one(tmp_path: Path) -> tuple[Path, object]:
    make_gopro(tmp_path, {"test": {"GOPR0009_11_00": 3}})
    seq = tmp_path / "GOPRO_Large" / "test" / "GOPR0009_11_00"
    return seq, get_source("gopro", root=tmp_path)


def _one_line_error(source: object, match: str) -> str:
    with pytest.raises(SourceError, match=match) as info:
        source.load(source.sequences()[0])  # type: ignore[attr-defined]
    assert "\n" not in str(info.value)
    return str(info.value)


def test_missing_sharp_frame(tmp_path: Path) -> None:
    seq, source = _gopro_one(tmp_path)
    (seq / "sharp" / "000002.png").unlink()
    message = _one_line_error(source, "missing sharp frame")
    assert str(seq / "sharp" / "000002.png") in message


def test_mismatched_frame_counts(tmp_path: Path) -> None:
    seq, source = _gopro_one(tmp_path)
    write_pngs(seq / "sharp", clip(1, 1), start=99)
    message = _one_line_error(source, "mismatched frame counts")
    assert "4 sharp vs 3 blur" in message and "000099.png" in message


def test_unreadable_png(tmp_path: Path) -> None:
    seq, source = _gopro_one(tmp_path)
    (seq / "blur" / "000002.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    assert str(seq / "blur" / "000002.png") in _one_line_error(source, "unreadable image")


def test_16_bit_png_is_refused(tmp_path: Path) -> None:
    seq, source = _gopro_one(tmp_path)
    path = seq / "blur" / "000001.png"
    Image.fromarray(clip(0, 1)[0, ..., 0].astype(np.uint16) * 257).save(path)  # 16-bit greyscale PNG
    assert str(path) in _one_line_error(source, "16-bit PNG")


def _png16_rgb(path: Path, rgb16: np.ndarray) -> None:
    """A 16-bit RGB PNG written by hand (PIL reads these as 8-bit RGB, silently dropping the low bits)."""
    h, w, _ = rgb16.shape

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\0" + row.astype(">u2").tobytes() for row in rgb16)
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    path.write_bytes(PNG_SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def test_16_bit_rgb_png_is_refused_not_truncated(tmp_path: Path) -> None:
    seq, source = _gopro_one(tmp_path)
    path = seq / "sharp" / "000003.png"
    _png16_rgb(path, clip(0, 1)[0].astype(np.uint16) * 257)
    assert Image.open(path).mode == "RGB"  # what a naive reader would accept
    assert str(path) in _one_line_error(source, "16-bit PNG")


def test_greyscale_png_is_converted_and_palette_too(tmp_path: Path) -> None:
    grey = clip(0, 1)[0, ..., 1]
    Image.fromarray(grey).save(tmp_path / "g.png")
    np.testing.assert_array_equal(read_rgb(tmp_path / "g.png"), np.repeat(grey[..., None], 3, axis=2))
    rgb = clip(1, 1)[0]
    Image.fromarray(rgb).convert("P").save(tmp_path / "p.png")
    assert read_rgb(tmp_path / "p.png").shape == rgb.shape
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "opaque.png")
    np.testing.assert_array_equal(read_rgb(tmp_path / "opaque.png"), rgb)
    rgba[0, 0, 3] = 10
    Image.fromarray(rgba).save(tmp_path / "see-through.png")
    with pytest.raises(ImageError, match="see-through.png: has transparent pixels"):
        read_rgb(tmp_path / "see-through.png")


def test_frame_size_change_inside_a_sequence(tmp_path: Path) -> None:
    seq, source = _gopro_one(tmp_path)
    Image.fromarray(clip(0, 1, 32, 32)[0]).save(seq / "blur" / "000003.png")
    assert "000003.png: frame size 32x32" in _one_line_error(source, "differs from")


def test_yuv_size_not_whole_frames(tmp_path: Path) -> None:
    make_hqvideo(tmp_path)
    bad = tmp_path / "HQ-Video" / "Alpha_64x48_50.yuv"
    with open(bad, "ab") as fh:
        fh.write(b"\0" * 7)
    source = get_source("hqvideo", root=tmp_path)
    assert source.sequences() == [SequenceRef("train", "Alpha"), SequenceRef("train", "Beta")]
    with pytest.raises(YuvError, match="not a whole number of 64x48 8-bit") as info:
        source.load(SequenceRef("train", "Alpha"))
    assert str(bad) in str(info.value)
    assert source.load(SequenceRef("train", "Beta")).blur.shape == (3, 32, 48, 3)  # the rest still loads
    report = source.check()
    assert report.sequences == 1 and any(str(bad) in p for p in report.problems)


# ---- downloads: sha256 and safe extraction ----


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_archive_escaping_the_target_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "target"
    evil = _zip(tmp_path / "evil.zip", {"ok/a.txt": b"a", "../outside.txt": b"x"})
    with pytest.raises(DownloadError, match="'../outside.txt' goes up with '..'") as info:
        safe_extract(evil, target)
    assert str(evil) in str(info.value) and not (tmp_path / "outside.txt").exists()
    assert not target.exists()  # nothing was written before the check

    absolute = tmp_path / "abs.tar"
    with tarfile.open(absolute, "w") as tf:
        data = b"x"
        info_abs = tarfile.TarInfo("/etc/evil")
        info_abs.size = len(data)
        tf.addfile(info_abs, io.BytesIO(data))
    with pytest.raises(DownloadError, match="'/etc/evil' is an absolute path"):
        safe_extract(absolute, target)

    link = tmp_path / "link.tar.gz"
    with tarfile.open(link, "w:gz") as tf:
        sym = tarfile.TarInfo("data/escape")
        sym.type, sym.linkname = tarfile.SYMTYPE, "../../secret"
        tf.addfile(sym)
    with pytest.raises(DownloadError, match=r"'data/escape' is a symbolic link \(to '../../secret'\)"):
        safe_extract(link, target)

    good = _zip(tmp_path / "good.zip", {"GOPRO_Large/test/a.txt": b"hello"})
    safe_extract(good, target)
    assert (target / "GOPRO_Large" / "test" / "a.txt").read_bytes() == b"hello"


def test_download_verifies_and_extracts_a_local_archive(tmp_path: Path) -> None:
    data_root = tmp_path / "raw"
    (data_root / "downloads").mkdir(parents=True)
    archive = _zip(data_root / "downloads" / "GOPRO_Large.zip", {"GOPRO_Large/test/x.txt": b"x"})
    report = download_dataset("gopro", data_root, progress=False)
    digest = sha256_file(archive)
    assert report.lines == [f"GOPRO_Large.zip: sha256 {digest} (not published, computed); extracted into {data_root}"]
    assert (data_root / "GOPRO_Large" / "test" / "x.txt").exists()
    assert "already extracted" in download_dataset("gopro", data_root, progress=False).lines[0]


def test_download_sha256_mismatch_and_offline_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cpgd_bench.sources.download as dl

    data_root = tmp_path / "raw"
    manifest = tmp_path / "toy.yaml"
    manifest.write_text(
        "name: toy\ndownloads:\n  - {file: toy.zip, url: 'http://127.0.0.1:9/toy.zip', sha256: '" + "0" * 64 + "'}\n"
    )
    monkeypatch.setattr(dl, "load_manifest", lambda name: load_manifest(manifest))
    with pytest.raises(DownloadError, match="could not download") as info:
        download_dataset("toy", data_root, progress=False)
    message = str(info.value)
    assert f"put it at {data_root / 'downloads' / 'toy.zip'}" in message and "\n" not in message
    _zip(data_root / "downloads" / "toy.zip", {"a": b"a"})
    with pytest.raises(DownloadError, match="does not match the manifest's 0000"):
        download_dataset("toy", data_root, progress=False)


def test_cli_download_without_public_archive_and_check(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["dataset", "download", "hqvideo", "--data-root", str(tmp_path)])
    assert result.exit_code == 1 and "no public archive" in result.output
    assert str(tmp_path / "HQ-Video") in result.output
    make_hqvideo(tmp_path)
    result = runner.invoke(main, ["dataset", "check", "hqvideo", "--root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "2 sequences, 8 frames: OK" in result.output and "manifest says 18 sequences" in result.output
    result = runner.invoke(main, ["dataset", "check", "hqvideo", "--root", str(tmp_path), "-o", "segment_frames=oops"])
    assert result.exit_code == 1 and "option segment_frames must be a whole number >= 1, got 'oops'" in result.output
    result = runner.invoke(main, ["dataset", "build", "gopro", "--out", str(tmp_path / "x.zarr")])
    assert result.exit_code == 2 and "needs --root" in result.output
