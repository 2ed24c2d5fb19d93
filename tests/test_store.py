"""Store schema round-trip, verify, info, export and error messages (no codec needed)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import blake3
import h5py
import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from cpgd_bench.cli import main
from cpgd_bench.store import FORMAT_VERSION, StoreError, StoreWriter, export_h5, open_store, verify_store
from cpgd_bench.store.locks import is_held
from cpgd_bench.store.schema import FRAMES_PER_SHARD

from .test_store_util import edit_attrs, random_sequence, sequence_attrs, write_store


@pytest.fixture
def store(tmp_path: Path) -> tuple[Path, dict]:
    seqs = {
        ("train", "a"): random_sequence(1),
        ("train", "b"): random_sequence(2, t=9, h=64, w=64, sharp=False),
        ("test", "c"): random_sequence(3, t=35),
    }
    return write_store(tmp_path / "s.zarr", seqs), seqs


def test_round_trip_arrays_attrs_and_layout(store: tuple[Path, dict]) -> None:
    path, seqs = store
    s = open_store(path)
    assert s.splits() == ["test", "train"]
    assert s.sequences("train") == ["a", "b"]
    assert s.attrs["format_version"] == FORMAT_VERSION and s.dataset == "unit"
    for (split, name), arrays in seqs.items():
        group = s.group(split, name)
        assert sorted(k for k, _ in group.arrays()) == sorted(arrays)
        for key, value in arrays.items():
            stored = group[key]
            assert stored.dtype == value.dtype and stored.shape == value.shape
            np.testing.assert_array_equal(stored[...], value)
        attrs = s.sequence_attrs(split, name)
        t = len(arrays["decoded"])
        assert attrs["num_frames"] == t and (attrs["height"], attrs["width"]) == arrays["decoded"].shape[1:3]
        assert attrs["frame_names"] == sequence_attrs(t)["frame_names"]
        assert attrs["split"] == split and attrs["sequence"] == name and attrs["codec"] == {"bit_depth": 10}
        assert attrs["checksums"] == {k: blake3.blake3(v.tobytes()).hexdigest() for k, v in arrays.items()}
    decoded = s.group("test", "c")["decoded"]
    assert decoded.shards is not None and decoded.shards[0] == FRAMES_PER_SHARD
    assert [type(c).__name__ for c in decoded.compressors] == ["BloscCodec", "Crc32cCodec"]  # frames: Blosc-LZ4
    assert [type(c).__name__ for c in s.group("test", "c")["residual"].compressors] == ["ZstdCodec", "Crc32cCodec"]
    # one shard file per FRAMES_PER_SHARD frames along time (35 frames -> 5 of 8), one spatial shard
    shard_files = [p for p in (path / "test" / "c" / "decoded" / "c").rglob("*") if p.is_file()]
    assert len(shard_files) == -(-35 // FRAMES_PER_SHARD) == 5


def test_verify_ok_and_detects_changed_data(store: tuple[Path, dict]) -> None:
    path, _ = store
    report = verify_store(path)
    assert report.ok and report.sequences == 3 and report.frames == 20 + 9 + 35
    arr = zarr.open_array(path / "train" / "a" / "residual", mode="r+")
    arr[3, 5, 7] = arr[3, 5, 7] + 1  # silent data change, checksum not updated
    report = verify_store(path)
    assert not report.ok
    assert any("train/a/residual: checksum mismatch" in p for p in report.problems)


def test_verify_detects_corrupt_shard_and_missing_array(store: tuple[Path, dict]) -> None:
    path, _ = store
    shard = next(p for p in (path / "train" / "a" / "mv" / "c").rglob("*") if p.is_file())
    shard.write_bytes(b"\0" * 64)
    shutil.rmtree(path / "test" / "c" / "qp")
    report = verify_store(path)
    text = "\n".join(report.problems)
    assert "train/a/mv: unreadable" in text or "train/a/mv: checksum mismatch" in text
    assert "test/c: required array qp is missing" in text


def test_verify_cli_exit_codes(store: tuple[Path, dict]) -> None:
    path, _ = store
    runner = CliRunner()
    ok = runner.invoke(main, ["dataset", "verify", str(path)])
    assert ok.exit_code == 0, ok.output
    assert "3 sequences, 64 frames: OK" in ok.output
    zarr.open_array(path / "test" / "c" / "mv_ref", mode="r+")[0, 0, 0, 0] = 99
    bad = runner.invoke(main, ["dataset", "verify", str(path)])
    assert bad.exit_code == 1
    assert "test/c/mv_ref: checksum mismatch" in bad.output


def test_info_cli(store: tuple[Path, dict]) -> None:
    path, _ = store
    result = CliRunner().invoke(main, ["dataset", "info", str(path)])
    assert result.exit_code == 0, result.output
    assert "train   b" in result.output and "3 sequences, 64 frames" in result.output
    as_json = json.loads(CliRunner().invoke(main, ["dataset", "info", str(path), "--json"]).output)
    assert [r["frames"] for r in as_json["sequences"]] == [35, 20, 9]


def test_export_h5_same_layout(store: tuple[Path, dict], tmp_path: Path) -> None:
    path, seqs = store
    out = tmp_path / "x.h5"
    result = CliRunner().invoke(main, ["dataset", "export", str(path), "--format", "h5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    with h5py.File(out) as h5:
        assert h5.attrs["dataset"] == "unit"
        for (split, name), arrays in seqs.items():
            group = h5[f"{split}/{name}"]
            assert sorted(group) == sorted(arrays)
            for key, value in arrays.items():
                np.testing.assert_array_equal(group[key][...], value)
            sums = {k: blake3.blake3(v.tobytes()).hexdigest() for k, v in arrays.items()}
            assert json.loads(group.attrs["checksums"]) == sums
            assert "checksums" in json.loads(group.attrs["attrs_json_keys"])
    with pytest.raises(StoreError, match="exists"):
        export_h5(path, out)


def _one_line(message: str) -> None:
    assert "\n" not in message and "Traceback" not in message


def test_missing_store_wrong_split_and_old_format(store: tuple[Path, dict], tmp_path: Path) -> None:
    path, _ = store
    with pytest.raises(StoreError, match=r"no store at .*nope\.zarr; build one with `cpgd-bench dataset build") as e:
        open_store(tmp_path / "nope.zarr")
    _one_line(str(e.value))
    with pytest.raises(StoreError, match=r"has no split 'val' \(splits: test, train\)"):
        open_store(path).sequences("val")
    edit_attrs(path, format_version=1)  # before the CRC-32C per chunk: not read
    with pytest.raises(StoreError, match=r"format version 1, this cpgd-bench reads versions \[2, 3\]; rebuild it") as e:
        open_store(path)
    _one_line(str(e.value))
    with pytest.raises(StoreError, match=r"format version 1.*rebuild it"):
        StoreWriter(path, "unit")  # no new sequences in a store of another layout
    assert str(path) in str(e.value)
    result = CliRunner().invoke(main, ["dataset", "verify", str(path)])
    assert result.exit_code == 1 and "Error: store" in result.output
    _one_line(result.output.strip())


def test_version_2_store_is_read_and_verified_with_sha256(store: tuple[Path, dict]) -> None:
    """A store written before BLAKE3 (format 2: SHA-256 per array) is read and verified with its own checksum,
    and gets no new sequences."""
    path, seqs = store
    edit_attrs(path, format_version=2)
    for (split, name), arrays in seqs.items():
        sums = {k: hashlib.sha256(v.tobytes()).hexdigest() for k, v in arrays.items()}
        edit_attrs(path / split / name, format_version=2, checksums=sums)
    assert verify_store(path).ok
    np.testing.assert_array_equal(open_store(path).group("test", "c")["mv"][...], seqs[("test", "c")]["mv"])
    with pytest.raises(StoreError, match=r"format version 2: this cpgd-bench reads it but adds sequences only to "
                                         rf"version {FORMAT_VERSION} stores; build into a new --out") as e:  # fmt: skip
        StoreWriter(path, "unit")
    _one_line(str(e.value))
    sums = {k: blake3.blake3(v.tobytes()).hexdigest() for k, v in seqs[("train", "a")].items()}
    edit_attrs(path / "train" / "a", checksums=sums)  # version 3's checksums in a version 2 store: all wrong
    problems = verify_store(path).problems
    assert len(problems) == len(sums) and all(p.startswith("train/a/") and "checksum mismatch" in p for p in problems)
    edit_attrs(path / "train" / "b", format_version=3)
    assert "train/b: format version 3, the store's is 2" in verify_store(path).problems


def test_writer_validates_schema(tmp_path: Path) -> None:
    arrays = random_sequence(5)
    with StoreWriter(tmp_path / "s.zarr", "unit") as writer:
        bad = dict(arrays, mv=arrays["mv"].astype(np.int32))
        with pytest.raises(StoreError, match="array mv has dtype int32, schema says int16"):
            writer.write_sequence("train", "x", bad, sequence_attrs(20))
        with pytest.raises(StoreError, match=r"array residual has shape \(20, 40, 50\), expected \(20, 40, 52\)"):
            writer.write_sequence("train", "x", dict(arrays, residual=arrays["residual"][..., :50]), sequence_attrs(20))
        with pytest.raises(StoreError, match=r"required arrays \['qp'\] are missing"):
            writer.write_sequence("train", "x", {k: v for k, v in arrays.items() if k != "qp"}, sequence_attrs(20))
        with pytest.raises(StoreError, match="invalid sequence name"):
            writer.write_sequence("train", ".hidden", arrays, sequence_attrs(20))
        with pytest.raises(StoreError, match="unknown store array 'flow'"):
            writer.write_sequence("train", "x", dict(arrays, flow=arrays["mv"]), sequence_attrs(20))
        writer.write_sequence("train", "x", arrays, sequence_attrs(20))
        with pytest.raises(StoreError, match="already exists"):
            writer.write_sequence("train", "x", arrays, sequence_attrs(20))
    assert not list((tmp_path / "s.zarr" / "train").glob(".*"))  # no temporary left behind


def test_streamed_blocks_store_the_same_data_and_checksums_as_whole_arrays(tmp_path: Path) -> None:
    arrays = random_sequence(6, t=37, h=48, w=64)
    whole = write_store(tmp_path / "whole.zarr", {("train", "x"): arrays})
    writer = StoreWriter(tmp_path / "blocks.zarr", "unit", {"codec_profile": {"name": "unit"}})
    with writer, writer.open_sequence("train", "x", 37, 48, 64) as out:
        for start in range(0, 37, 5):  # 5-frame blocks straddle the 4-frame chunks and 8-frame shards
            for name in ("decoded", "blur", "residual", "mv"):
                out.write(name, arrays[name][start:start + 5], start)
        for name, array in arrays.items():
            if name not in ("decoded", "blur", "residual", "mv"):
                out.write(name, array)
        out.commit(sequence_attrs(37))
    a, b = open_store(whole), open_store(tmp_path / "blocks.zarr")
    assert a.sequence_attrs("train", "x")["checksums"] == b.sequence_attrs("train", "x")["checksums"]
    for name, array in arrays.items():
        np.testing.assert_array_equal(b.group("train", "x")[name][...], array)
    assert verify_store(tmp_path / "blocks.zarr").ok


def _chunk_files(store: Path) -> dict[str, bytes]:
    return {str(p.relative_to(store)): p.read_bytes() for p in store.rglob("*") if p.is_file() and "/c/" in str(p)}


@pytest.mark.parametrize(("block", "t", "h", "w"), [
    (8, 21, 600, 520), (16, 21, 600, 520), (5, 21, 600, 520), (64, 21, 600, 520),  # aligned, 2 shards, Zarr, whole
    (8, 1, 1, 1), (8, 9, 4, 5),  # tiny pictures, one frame past a shard
])  # fmt: skip
def test_shard_writer_writes_the_files_zarr_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   block: int, t: int, h: int, w: int) -> None:  # fmt: skip
    """Every chunk file of a sequence written in ``block``-frame blocks is byte-identical to Zarr's own write of
    the whole arrays (edge chunks padded in time and space, 3 x 3 inner chunks per frame for RGB at 600 x 520)."""
    from cpgd_bench.store import sequence_writer

    arrays = random_sequence(8, t=t, h=h, w=w)
    arrays["residual"][:, : h // 2] = 0  # some compressible chunks
    direct: list[bool] = []  # what each ShardWriter.write answered
    original = sequence_writer.ShardWriter.write

    def counted_write(self, start: int, data: np.ndarray) -> bool:  # type: ignore[no-untyped-def]
        direct.append(original(self, start, data))
        return direct[-1]

    monkeypatch.setattr(sequence_writer.ShardWriter, "write", counted_write)
    writer = StoreWriter(tmp_path / "direct.zarr", "unit", {"codec_profile": {"name": "unit"}})
    with writer, writer.open_sequence("train", "x", t, h, w) as out:
        for name, array in arrays.items():
            for start in range(0, len(array) if array.ndim > 1 else 1, block if array.ndim > 1 else len(array)):
                out.write(name, array[start:start + block] if array.ndim > 1 else array, start)
        out.commit(sequence_attrs(t))
    assert direct and (not any(direct) if block == 5 else all(direct))  # misaligned blocks went through Zarr
    monkeypatch.setattr(sequence_writer.ShardWriter, "open", classmethod(lambda cls, array: None))
    zarr_only = write_store(tmp_path / "zarr.zarr", {("train", "x"): arrays})
    mine, theirs = _chunk_files(tmp_path / "direct.zarr"), _chunk_files(zarr_only)
    assert len(mine) > 10 and mine.keys() == theirs.keys()
    assert [k for k in mine if mine[k] != theirs[k]] == []
    assert verify_store(tmp_path / "direct.zarr").ok


def test_streamed_writer_errors_leave_no_partial_sequence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cpgd_bench.store import sequence_writer

    arrays = random_sequence(7, t=12, h=40, w=52)
    path = tmp_path / "s.zarr"
    with StoreWriter(path, "unit") as writer:
        out_of_order = pytest.raises(StoreError, match="array decoded block at frame 8, expected frame 4")
        with out_of_order, writer.open_sequence("train", "x", 12, 40, 52) as out:
            out.write("decoded", arrays["decoded"][:4])
            out.write("decoded", arrays["decoded"][8:], 8)
        short = pytest.raises(StoreError, match=r"fewer than 12 frames written: \{'decoded': 4\}")
        with short, writer.open_sequence("train", "x", 12, 40, 52) as out:
            for name, array in arrays.items():
                out.write(name, array[:4] if name == "decoded" else array)
            out.commit(sequence_attrs(12))
        too_long = pytest.raises(StoreError, match=r"block \(3, 40, 52, 3\) at frame 10 does not fit its shape")
        with too_long, writer.open_sequence("train", "x", 12, 40, 52) as out:
            out.write("blur", arrays["blur"][:10])
            out.write("blur", arrays["blur"][:3], 10)

        def disk_full(self, name, shape, data, start):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(sequence_writer.SequenceWriter, "_store_block", disk_full)
        with pytest.raises(OSError, match="No space left"):
            writer.write_sequence("train", "x", arrays, sequence_attrs(12))
    assert not (path / "train" / "x").exists()
    assert not list((path / "train").glob(".*"))  # no temporary left behind
    assert open_store(path).sequences("train") == []


def test_writer_refuses_foreign_dir_other_dataset_and_live_lock(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("x")
    with pytest.raises(StoreError, match="is not a coding-prior store"):
        StoreWriter(foreign, "unit")
    path = tmp_path / "s.zarr"
    with StoreWriter(path, "unit"), pytest.raises(StoreError, match=rf"being written by process {os.getpid()}"):
        StoreWriter(path, "unit")
    with pytest.raises(StoreError, match="holds dataset 'unit', not 'other'"):
        StoreWriter(path, "other")
    assert not list(foreign.glob(".build.lock"))  # nothing left in a foreign folder
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (path / ".build.lock").write_text(dead.stdout.strip())  # a pid in the file means nothing: only flock counts
    StoreWriter(path, "unit").close()
    assert not is_held(path / ".build.lock") and (path / ".build.lock").read_text() == ""
