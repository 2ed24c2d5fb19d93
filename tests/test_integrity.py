"""Store integrity under faults: lost and flipped chunk files, garbled metadata, concurrent builds, stale leftovers."""

from __future__ import annotations

import json
import multiprocessing
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from cpgd_bench.cli import main
from cpgd_bench.data import CodingPriorDataset
from cpgd_bench.store import StoreError, StoreWriter, open_store, verify_store
from cpgd_bench.store.locks import FileLock, is_held
from cpgd_bench.store.reader import DamagedDataError, open_root, read_frames
from cpgd_bench.store.schema import ARRAYS, FRAMES_PER_SHARD

from .test_store_util import edit_attrs, random_sequence, sequence_attrs, write_store

T, H, W = 20, 40, 52


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """Two test sequences (20 frames: two shards along time) and one train sequence."""
    seqs = {("test", "a"): random_sequence(1, t=T), ("test", "b"): random_sequence(2, t=T),
            ("train", "c"): random_sequence(3, t=8)}  # fmt: skip
    return write_store(tmp_path / "s.zarr", seqs)


def _chunk_files(store: Path, array: str, sequence: str = "test/a") -> list[Path]:
    return sorted(p for p in (store / sequence / array / "c").rglob("*") if p.is_file())


def _one_line(text: str) -> None:
    assert text.strip() and "\n" not in text.strip() and "Traceback" not in text, text


def _error_line(output: str) -> str:
    """The CLI's one error line (progress lines may precede it); no traceback anywhere."""
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in output, output
    return errors[0]


def _run(store: Path, runs: Path) -> tuple[int, str]:
    """`cpgd-bench run --model input` on the test split, scoring PSNR only: (exit code, error line)."""
    args = ["run", "--model", "input", "--store", str(store), "--runs-dir", str(runs), "--metrics", "psnr",
            "--protocol", "kair-matlab"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    return result.exit_code, _error_line(result.output) if result.exit_code else ""


def _read_all(store: Path, array: str, sequence: str = "test/a") -> np.ndarray:
    return read_frames(open_root(store)[f"{sequence}/{array}"])


@pytest.mark.parametrize("array", [*ARRAYS, "bitstream"])
def test_every_lost_or_flipped_chunk_file_fails_the_read_naming_the_array(store: Path, array: str) -> None:
    files = _chunk_files(store, array)
    assert files, array
    rng = np.random.default_rng(len(array))
    for chunk in files:
        original = chunk.read_bytes()
        chunk.unlink()
        with pytest.raises(DamagedDataError, match=rf"test/a/{array}: frames \d+-\d+ cannot be read: chunk file") as e:
            _read_all(store, array)
        _one_line(str(e.value))
        report = verify_store(store)
        assert any(f"test/a/{array}: " in p and "chunk files on disk" in p for p in report.problems), report.problems
        for offset in rng.choice(len(original), size=min(6, len(original)), replace=False):  # data, index, CRCs
            flipped = bytearray(original)
            flipped[offset] ^= 1 << int(rng.integers(8))
            chunk.write_bytes(bytes(flipped))
            with pytest.raises(DamagedDataError, match=rf"test/a/{array}: frames .* corrupt data") as e:
                _read_all(store, array)
            _one_line(str(e.value))
        chunk.write_bytes(original[: len(original) // 2])  # truncated
        with pytest.raises(DamagedDataError, match=rf"test/a/{array}: .*cannot be read"):
            _read_all(store, array)
        chunk.write_bytes(original)
        _read_all(store, array)
    assert verify_store(store).ok


@pytest.mark.parametrize("array", ["decoded", "mv", "mv_ref", "residual", "sharp"])
def test_dataset_and_run_fail_in_one_line_on_a_lost_shard(store: Path, tmp_path: Path, array: str) -> None:
    second_shard = _chunk_files(store, array)[-1]  # frames 16-19
    second_shard.unlink()
    dataset = CodingPriorDataset(store, "test", clip_len=4, mode="test")
    dataset[0]  # frames 0-3 live in the intact first shard
    with pytest.raises(StoreError, match=rf"s.zarr/test/a/{array}: frames 16-19 cannot be read: chunk file .* missing"):
        dataset[len(dataset) // 2 - 1]  # the last window of test/a
    code, error = _run(store, tmp_path / "runs")
    assert code == 1 and re.search(rf"test/a/{array}: frames \d+-19 cannot be read: chunk file", error), error
    run_json = next((tmp_path / "runs").rglob("run.json"), None)
    assert run_json is None or json.loads(run_json.read_text())["status"] != "complete"


def test_checksum_opt_out_reads_without_verifying_but_lost_chunks_still_fail(store: Path) -> None:
    shard = _chunk_files(store, "decoded")[0]
    original = shard.read_bytes()
    shard.write_bytes(original[:-1] + bytes([original[-1] ^ 0xFF]))  # the shard index's own CRC
    with pytest.raises(StoreError, match=r"test/a/decoded: frames 0-3 cannot be read: corrupt data"):
        CodingPriorDataset(store, "test", clip_len=4, mode="test")[0]
    unverified = CodingPriorDataset(store, "test", clip_len=4, mode="test", checksums=False)[0]["lq"]
    shard.write_bytes(original)
    assert torch.equal(unverified, CodingPriorDataset(store, "test", clip_len=4, mode="test")[0]["lq"])
    shard.unlink()
    with pytest.raises(StoreError, match=r"test/a/decoded: frames 0-3 cannot be read: chunk file .* missing"):
        CodingPriorDataset(store, "test", clip_len=4, mode="test", checksums=False)[0]


def test_garbage_group_metadata_is_a_problem_never_a_silent_skip(store: Path, tmp_path: Path) -> None:
    (store / "test" / "b" / "zarr.json").write_text("{garbage")
    report = verify_store(store)
    assert not report.ok
    assert any("test/b: listed in" in p and "but unreadable sequence" in p for p in report.problems), report.problems
    verify = CliRunner().invoke(main, ["dataset", "verify", str(store)])
    assert verify.exit_code == 1
    with pytest.raises(StoreError, match="'b' is listed in .* but its group .* is missing or unreadable") as e:
        open_store(store).sequences("test")
    _one_line(str(e.value))
    code, error = _run(store, tmp_path / "runs")
    assert code == 1 and "'b' is listed in" in error, error


def test_verify_sees_unknown_entries_unindexed_groups_and_bad_attributes(store: Path) -> None:
    (store / "test" / "stray").mkdir()
    (store / "notes.txt").write_text("x")
    shutil.copytree(store / "test" / "a", store / "test" / "a2")  # a group no index lists
    (store / "train" / "c" / "extra").mkdir()
    edit_attrs(store / "train" / "c", fps="abc")
    shutil.rmtree(store / "test" / "b" / "qp")
    problems = "\n".join(verify_store(store).problems)
    assert "test/stray: unknown or unreadable sequence" in problems
    assert "notes.txt: unknown or unreadable split" in problems
    assert "test/a2: sequence group not listed in" in problems
    assert "train/c: unknown entry 'extra'" in problems
    assert "train/c: attribute fps='abc' is not a positive number" in problems
    assert "test/b: required array qp is missing" in problems


def test_group_with_missing_array_metadata_is_refused_on_open(store: Path) -> None:
    (store / "test" / "a" / "mv" / "zarr.json").unlink()
    with pytest.raises(StoreError, match=r"test/a/mv: array metadata .* is unreadable; rebuild that sequence") as e:
        CodingPriorDataset(store, "test", clip_len=4, mode="test")
    _one_line(str(e.value))


def _race(tree: str, path: str, barrier: multiprocessing.synchronize.Barrier, queue: multiprocessing.Queue) -> None:
    """One of two `cpgd-bench dataset build` commands started at the same instant on a new store."""
    barrier.wait()
    result = CliRunner().invoke(main, ["dataset", "build", "folder", "--root", tree, "--out", path])
    queue.put((result.exit_code, result.output, repr(result.exception) if result.exit_code not in (0, 1) else ""))


@pytest.mark.codec
def test_two_builds_started_at_once_exactly_one_builds(tmp_path: Path) -> None:
    from .codec_clips import require_codec
    from .source_fixtures import make_folder

    require_codec()
    make_folder(tmp_path / "tree", {"a": 4})
    ctx = multiprocessing.get_context("fork")
    for trial in range(20):
        path = tmp_path / f"race{trial}.zarr"
        barrier, queue = ctx.Barrier(2), ctx.Queue()
        procs = [ctx.Process(target=_race, args=(str(tmp_path / "tree"), str(path), barrier, queue)) for _ in "xy"]
        for p in procs:
            p.start()
        outcomes = sorted(queue.get(timeout=120) for _ in procs)
        for p in procs:
            p.join(timeout=60)
        (ok, built, _), (refused, message, crash) = outcomes
        assert (ok, refused, crash) == (0, 1, ""), (trial, outcomes)
        assert "built 1 (4 frames), skipped 0, failed 0" in built
        error = _error_line(message)
        assert error == message.strip(), message  # nothing else printed
        assert f"store {path} is being written by process " in error and " on host " in error, error
        assert verify_store(path).ok and not is_held(path / ".build.lock")


def test_lock_is_released_by_a_killed_holder_and_never_deleted_by_creation(tmp_path: Path) -> None:
    path = tmp_path / "s.zarr"
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()

    def hold() -> None:
        FileLock(path / ".build.lock", "store")
        ready.set()
        time.sleep(60)

    path.mkdir()
    holder = ctx.Process(target=hold)
    holder.start()
    assert ready.wait(30)
    with pytest.raises(StoreError, match=rf"being written by process {holder.pid}"):
        StoreWriter(path, "unit")
    assert (path / ".build.lock").exists()
    holder.kill()
    holder.join()
    with StoreWriter(path, "unit") as writer:  # the kernel released the dead holder's lock
        assert is_held(path / ".build.lock") and writer.token
    assert (path / ".build.lock").exists() and not is_held(path / ".build.lock")


def test_live_temporary_group_is_never_removed_and_dead_one_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cpgd_bench.store.writer as writer_module

    path = write_store(tmp_path / "s.zarr", {("test", "a"): random_sequence(1, t=4)})
    worker = StoreWriter(path, "unit", lock=False)
    live = worker.open_sequence("test", "b", 4, H, W)  # a worker of an earlier build still writing
    dead = path / "test" / ".c.tmp-1-dead"
    dead.mkdir()
    (dead / "zarr.json").write_text("{}")
    monkeypatch.setattr(writer_module, "ORPHAN_WAIT", 0.5)
    with pytest.raises(StoreError, match=r"\.b\.tmp-.* is still being written by process .* earlier build") as e:
        StoreWriter(path, "unit")
    _one_line(str(e.value))
    assert live.tmp.exists()
    arrays = random_sequence(2, t=4)
    for name, data in arrays.items():
        live.write(name, data)
    live.commit(sequence_attrs(4))
    with StoreWriter(path, "unit") as writer:  # the live one finished: b adopted, the dead group removed
        assert writer.adopt_unindexed() == ["test/b"]
    assert not dead.exists() and not list((path / "test").glob(".*"))
    assert open_store(path).sequences("test") == ["a", "b"] and verify_store(path).ok


def test_commit_refuses_a_temporary_group_that_lost_files(tmp_path: Path) -> None:
    path = tmp_path / "s.zarr"
    with StoreWriter(path, "unit") as writer, writer.open_sequence("test", "a", T, H, W) as out:
        for name, data in random_sequence(1, t=T).items():
            out.write(name, data)
        out._wait()
        next(p for p in (out.tmp / "residual" / "c").rglob("*") if p.is_file()).unlink()  # a rogue cleaner
        shards = -(-T // FRAMES_PER_SHARD)
        with pytest.raises(StoreError, match=rf"test/a: array residual has {shards - 1} of {shards} chunk files"):
            out.commit(sequence_attrs(T))
    assert not (path / "test" / "a").exists()


def test_stale_scratch_dirs_are_removed_live_ones_kept(tmp_path: Path) -> None:
    import cpgd_bench.build as build_module

    stale, live = tmp_path / "cpgd-build-test-a-x1", tmp_path / "cpgd-build-test-b-x2"
    lock = FileLock(tmp_path / "cpgd-build-test-b-x2.lock", "scratch")
    stale.mkdir(), live.mkdir()
    (stale / "a.266").write_bytes(b"x")
    (tmp_path / "cpgd-build-test-a-x1.lock").write_text("")  # its worker died: the lock is free
    build_module._remove_stale_scratch(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cpgd-build-test-b-x2", "cpgd-build-test-b-x2.lock"]
    lock.release(unlink=True)


@pytest.mark.codec
def test_an_unstorable_split_name_fails_its_sequences_and_creates_no_group(tmp_path: Path) -> None:
    from .codec_clips import require_codec
    from .source_fixtures import make_folder

    require_codec()
    make_folder(tmp_path / "tree" / "test", {"a": 3})
    make_folder(tmp_path / "tree" / "my split", {"x": 3})
    out = tmp_path / "s.zarr"
    args = ["dataset", "build", "folder", "--root", str(tmp_path / "tree"), "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "built 1 (3 frames), skipped 0, failed 1" in result.output
    assert "failed my split/x: invalid split name 'my split'" in result.output
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["test"] and open_store(out).splits() == ["test"]
    assert verify_store(out).ok
