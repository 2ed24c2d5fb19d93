"""Atomicity: kill a writer process mid-sequence, rerun, and compare with an uninterrupted build."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from cpgd_bench.store import open_store, verify_store
from cpgd_bench.store.locks import is_held

REPO = Path(__file__).resolve().parents[1]

# Writes sequences a, b, c (skipping finished ones). With "pause", it announces "MID" after the third
# array of sequence b and then hangs, so the parent can SIGKILL it mid-sequence.
WRITER = textwrap.dedent(
    """
    import sys, time
    from cpgd_bench.store import StoreWriter
    from cpgd_bench.store import sequence_writer
    from tests.test_store_util import random_sequence, sequence_attrs

    path, pause = sys.argv[1], sys.argv[2] == "pause"
    original = sequence_writer.SequenceWriter._store_block
    written = []

    def store_block(self, name, shape, data, start):
        original(self, name, shape, data, start)
        written.append(name)
        if pause and ".b.tmp-" in str(self.tmp) and len(written) == 3:
            print("MID", flush=True)
            time.sleep(600)

    sequence_writer.SequenceWriter._store_block = store_block
    with StoreWriter(path, "unit") as writer:
        for seed, name in enumerate("abc"):
            if writer.has_sequence("train", name):
                print("skip", name, flush=True)
                continue
            written.clear()
            arrays = random_sequence(seed, t=24, h=48, w=64)
            writer.write_sequence("train", name, arrays, sequence_attrs(24))
            print("done", name, flush=True)
    """
)


def _run(script: Path, store: Path, mode: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    return subprocess.Popen(
        [sys.executable, str(script), str(store), mode], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True
    )


def _snapshot(path: Path) -> dict:
    store = open_store(path)
    out = {}
    for seq in store.sequences("train"):
        group = store.group("train", seq)
        attrs = {k: v for k, v in group.attrs.items() if k != "created"}
        out[seq] = (attrs, {name: np.asarray(a[...]) for name, a in group.arrays()})
    return out


def test_killed_writer_leaves_no_partial_sequence_and_resume_matches(tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    store = tmp_path / "killed.zarr"

    proc = _run(script, store, "pause")
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line.strip())
        if line.strip() == "MID":
            break
    assert lines == ["done a", "MID"], lines
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    # killed mid-sequence: b's arrays are on disk only under the temporary name
    assert open_store(store).sequences("train") == ["a"]
    assert len([d for d in (store / "train").glob(".b.tmp-*") if d.is_dir()]) == 1  # beside it: its free lock
    assert not (store / "train" / "b").exists()
    a_meta = (store / "train" / "a" / "zarr.json").stat().st_mtime_ns

    resumed = _run(script, store, "run")
    out, _ = resumed.communicate(timeout=120)
    assert resumed.returncode == 0
    assert out.split("\n")[:3] == ["skip a", "done b", "done c"]
    assert (store / "train" / "a" / "zarr.json").stat().st_mtime_ns == a_meta  # a was not rewritten
    assert not list((store / "train").glob(".*")) and not is_held(store / ".build.lock")
    report = verify_store(store)
    assert report.ok and report.sequences == 3, report.problems

    clean = tmp_path / "clean.zarr"
    uninterrupted = _run(script, clean, "run")
    uninterrupted.communicate(timeout=120)
    assert uninterrupted.returncode == 0
    got, want = _snapshot(store), _snapshot(clean)
    assert got.keys() == want.keys() == {"a", "b", "c"}
    for seq in want:
        assert got[seq][0] == want[seq][0]  # attributes incl. checksums
        assert got[seq][1].keys() == want[seq][1].keys()
        for name in want[seq][1]:
            np.testing.assert_array_equal(got[seq][1][name], want[seq][1][name])
