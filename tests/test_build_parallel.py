"""Full builds of the miniature real-layout datasets: pixels, counts, parallel and Dask backends, failures, kill."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cpgd_bench.build import BuildError, build_store
from cpgd_bench.cli import main
from cpgd_bench.sources import get_source
from cpgd_bench.store import open_store, verify_store
from cpgd_bench.store.locks import is_held

from .codec_clips import require_codec
from .source_fixtures import make_dvd, make_folder, make_gopro, make_hqvideo

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.codec


@pytest.fixture(autouse=True)
def _codec() -> None:
    require_codec()


def _snapshot(path: Path) -> dict[str, dict[str, np.ndarray]]:
    """{split/sequence: {array: data}} plus each group's checksums (timings and dates differ between runs)."""
    store = open_store(path)
    out = {}
    for split in store.splits():
        for seq in store.sequences(split):
            group = store.group(split, seq)
            arrays = {name: np.asarray(a[...]) for name, a in group.arrays()}
            arrays["_checksums"] = np.array(sorted(group.attrs["checksums"].items()))
            out[f"{split}/{seq}"] = arrays
    return out


def _assert_same_store(a: Path, b: Path) -> None:
    got, want = _snapshot(a), _snapshot(b)
    assert got.keys() == want.keys()
    for key in want:
        assert got[key].keys() == want[key].keys(), key
        for name in want[key]:
            np.testing.assert_array_equal(got[key][name], want[key][name], err_msg=f"{key}/{name}")


def test_real_layout_builds_hold_the_fixture_frames(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    gopro, dvd, hq = make_gopro(raw), make_dvd(raw), make_hqvideo(raw)

    summary = build_store(get_source("gopro", root=raw, blur="blur_gamma"), tmp_path / "gopro.zarr", progress=False)
    assert (len(summary.built), summary.frames, summary.failed) == (3, 12, [])
    store = open_store(tmp_path / "gopro.zarr")
    assert store.sequences("train") == ["GOPR0001_11_00", "GOPR0002_07_00"]
    assert store.sequences("test") == ["GOPR0003_11_00"]
    assert store.attrs["source"]["blur_variant"] == "blur_gamma"
    assert store.attrs["source"]["manifest"]["verified"] == {"totals": True, "sequences": False}
    for (split, seq), frames in gopro.items():
        group = store.group(split, seq)
        np.testing.assert_array_equal(group["blur"][...], frames["blur_gamma"])
        np.testing.assert_array_equal(group["sharp"][...], frames["sharp"])
        assert group["decoded"].shape == frames["sharp"].shape and group["mv"].shape[0] == len(frames["sharp"])
        assert group.attrs["num_frames"] == len(frames["sharp"])

    summary = build_store(get_source("dvd", root=raw), tmp_path / "dvd.zarr", progress=False, jobs=2)
    assert summary.built == ["test/IMG_0003", "test/IMG_0049", "train/IMG_9999"] and summary.frames == 8
    store = open_store(tmp_path / "dvd.zarr")
    for video, frames in dvd.items():
        split = "train" if video == "IMG_9999" else "test"
        np.testing.assert_array_equal(store.group(split, video)["blur"][...], frames["input"])
        np.testing.assert_array_equal(store.group(split, video)["sharp"][...], frames["GT"])
    assert store.group("test", "IMG_0049")["decoded"].shape == (2, 64, 48, 3)  # portrait

    source = get_source("hqvideo", root=raw, segment_frames=3)
    summary = build_store(source, tmp_path / "hq.zarr", progress=False)
    assert summary.built == ["train/Alpha_s000", "train/Alpha_s001", "train/Beta"] and summary.frames == 8
    store = open_store(tmp_path / "hq.zarr")
    alpha = np.concatenate([store.group("train", f"Alpha_s00{k}")["sharp"][...] for k in (0, 1)])
    assert alpha.shape == hq["Alpha"][0].shape and np.abs(alpha.astype(int) - hq["Alpha"][0]).mean() < 3
    np.testing.assert_array_equal(alpha, np.concatenate([source.load(r).blur for r in source.sequences()[:2]]))
    assert store.group("train", "Beta").attrs["source"]["bit_depth"] == 10
    assert store.group("train", "Alpha_s001").attrs["frame_names"] == ["00003", "00004"]
    for name in ("gopro", "dvd", "hq"):
        report = verify_store(tmp_path / f"{name}.zarr")
        assert report.ok, report.problems


def test_parallel_build_equals_serial_and_failures_carry_on(tmp_path: Path) -> None:
    layout = {"train": {f"GOPR000{i}_11_00": 3 for i in range(1, 5)}, "test": {"GOPR0009_11_00": 4}}
    make_gopro(tmp_path, layout)
    seqs = tmp_path / "GOPRO_Large" / "train"
    (seqs / "GOPR0002_11_00" / "sharp" / "000012.png").unlink()  # missing sharp frame
    bad_png = seqs / "GOPR0003_11_00" / "blur" / "000022.png"
    bad_png.write_bytes(b"garbage")  # unreadable PNG

    summary = build_store(get_source("gopro", root=tmp_path), tmp_path / "par.zarr", jobs=2, progress=False)
    assert summary.built == ["train/GOPR0001_11_00", "train/GOPR0004_11_00", "test/GOPR0009_11_00"]
    assert [key for key, _ in summary.failed] == ["train/GOPR0002_11_00", "train/GOPR0003_11_00"]
    assert "GOPR0002_11_00/sharp/000012.png: missing sharp frame" in summary.failed[0][1]
    assert f"{bad_png}: unreadable image" in summary.failed[1][1]
    text = summary.format()
    assert "built 3 (10 frames), skipped 0, failed 2" in text and "failed train/GOPR0003_11_00" in text
    assert not list((tmp_path / "par.zarr" / "train").glob(".*"))  # no temporary leftovers

    serial = build_store(get_source("gopro", root=tmp_path), tmp_path / "ser.zarr", jobs=1, progress=False)
    assert serial.built == summary.built and [k for k, _ in serial.failed] == [k for k, _ in summary.failed]
    _assert_same_store(tmp_path / "par.zarr", tmp_path / "ser.zarr")

    for name in ("GOPR0002_11_00", "GOPR0003_11_00"):  # repair, rerun: resumes
        shutil.rmtree(seqs / name)
    make_gopro(tmp_path, {"train": {"GOPR0002_11_00": 3, "GOPR0003_11_00": 3}})
    again = build_store(get_source("gopro", root=tmp_path), tmp_path / "par.zarr", jobs=2, progress=False)
    assert again.built == ["train/GOPR0002_11_00", "train/GOPR0003_11_00"] and len(again.skipped) == 3
    assert verify_store(tmp_path / "par.zarr").ok


def test_dask_backend_on_a_local_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dask.distributed import LocalCluster

    import cpgd_bench.build as build_module

    written = make_folder(tmp_path / "tree")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        summary = build_store(get_source("folder", root=tmp_path / "tree"), tmp_path / "dask.zarr", jobs=2,
                              backend="dask", scheduler=cluster.scheduler_address, progress=False)  # fmt: skip
    assert summary.built == ["test/a", "test/b", "test/c"] and summary.frames == 10 and not summary.failed
    store = open_store(tmp_path / "dask.zarr")
    for seq, frames in written.items():
        np.testing.assert_array_equal(store.group("test", seq)["blur"][...], frames["blur"])
        np.testing.assert_array_equal(store.group("test", seq)["sharp"][...], frames["sharp"])
    build_store(get_source("folder", root=tmp_path / "tree"), tmp_path / "local.zarr", progress=False)
    _assert_same_store(tmp_path / "dask.zarr", tmp_path / "local.zarr")
    with pytest.raises(BuildError, match="needs --scheduler"):
        build_store(get_source("folder", root=tmp_path / "tree"), tmp_path / "x.zarr", backend="dask")
    monkeypatch.setattr(build_module, "SCHEDULER_TIMEOUT", "1s")
    with pytest.raises(BuildError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        build_store(get_source("folder", root=tmp_path / "tree"), tmp_path / "x.zarr", jobs=2, backend="dask",
                    scheduler="tcp://127.0.0.1:9", progress=False)  # fmt: skip
    with pytest.raises(BuildError, match="POSIX filesystem path"):
        build_store(get_source("folder", root=tmp_path / "tree"), "s3://bucket/x.zarr")


# Builds a folder dataset with 2 threads. With "pause", it announces "MID" after the third array block of
# sequence b is written (under its temporary name) and hangs there, so the parent can SIGKILL it.
BUILDER = textwrap.dedent(
    """
    import sys, threading, time
    from cpgd_bench.sources import get_source
    from cpgd_bench.store import sequence_writer
    from cpgd_bench.build import build_store

    root, out, pause = sys.argv[1], sys.argv[2], sys.argv[3] == "pause"
    original = sequence_writer.SequenceWriter._store_block
    written = {}
    lock = threading.Lock()

    def store_block(self, name, shape, data, start):
        original(self, name, shape, data, start)
        path = str(self.tmp)
        with lock:
            written[path] = written.get(path, 0) + 1
            hang = pause and "/.b.tmp-" in path and written[path] == 3
        if hang:
            print("MID", flush=True)
            time.sleep(600)

    sequence_writer.SequenceWriter._store_block = store_block
    summary = build_store(get_source("folder", root=root), out, jobs=2, backend="threading", progress=False)
    print(summary.format(), flush=True)
    """
)


def _run_builder(script: Path, root: Path, out: Path, mode: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    return subprocess.Popen([sys.executable, str(script), str(root), str(out), mode], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip


def test_killed_parallel_build_resumes_to_the_same_store(tmp_path: Path) -> None:
    script = tmp_path / "builder.py"
    script.write_text(BUILDER)
    root = tmp_path / "tree"
    make_folder(root, {"a": 3, "b": 4, "c": 3, "d": 2})
    killed = tmp_path / "killed.zarr"

    proc = _run_builder(script, root, killed, "pause")
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "MID"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert len([d for d in (killed / "test").glob(".b.tmp-*") if d.is_dir()]) == 1
    assert not (killed / "test" / "b").exists()
    assert "b" not in open_store(killed).sequences("test")

    resumed = _run_builder(script, root, killed, "run")
    out, _ = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, out
    done_before = 4 - int(out.split("built ")[1].split()[0])
    assert "failed 0" in out and f"skipped {done_before}" in out and done_before < 4
    assert not list((killed / "test").glob(".*")) and not is_held(killed / ".build.lock")

    clean = tmp_path / "clean.zarr"
    uninterrupted = _run_builder(script, root, clean, "run")
    uninterrupted.communicate(timeout=120)
    assert uninterrupted.returncode == 0
    _assert_same_store(killed, clean)
    assert verify_store(killed).ok


def test_cli_build_and_build_all(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    make_gopro(raw, {"test": {"GOPR0005_11_00": 2}})
    make_folder(tmp_path / "tree", {"z": 2})
    runner = CliRunner()
    result = runner.invoke(main, ["dataset", "build", "folder", "--root", str(tmp_path / "tree"), "--out",
                                  str(tmp_path / "f.zarr"), "--jobs", "2", "-o", "split=val"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "built 1 (2 frames), skipped 0, failed 0" in result.output
    assert open_store(tmp_path / "f.zarr").sequences("val") == ["z"]

    stores = tmp_path / "stores"
    result = runner.invoke(main, ["dataset", "build-all", "--data-root", str(raw), "--stores", str(stores)])
    assert result.exit_code == 0, result.output
    assert "skip dvd: not found" in result.output and "skip hqvideo: not found" in result.output
    assert open_store(stores / "gopro.zarr").sequences("test") == ["GOPR0005_11_00"]
    result = runner.invoke(main, ["dataset", "build-all", "--data-root", str(raw), "--stores", str(stores),
                                  "--only", "gopro dvd"])  # fmt: skip
    assert result.exit_code == 1 and "skipped 1" in result.output and "error: dvd: not found" in result.output
    result = runner.invoke(main, ["dataset", "build-all", "--data-root", str(raw), "--only", "sample"])
    assert result.exit_code == 0 and result.output == ""
    result = runner.invoke(main, ["dataset", "build", "folder", "--root", str(tmp_path / "tree"), "--out",
                                  str(tmp_path / "g.zarr"), "--backend", "dask"])  # fmt: skip
    assert result.exit_code == 1 and "needs --scheduler" in result.output
