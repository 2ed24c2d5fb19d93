"""The long steps show a progress bar on stderr: inference in `run`, `score --sensitivity`, `dataset export`."""

from __future__ import annotations

from pathlib import Path

import pytest

from cpgd_bench.eval.runner import predict
from cpgd_bench.eval.sensitivity import protocol_sensitivity
from cpgd_bench.store import export_h5

from .test_runner import WindowedIdentity
from .test_store_util import random_sequence, write_store


@pytest.fixture(scope="module")
def small_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Split ``test``: two sequences of 6 frames, 40x52, with ground truth."""
    seqs = {("test", name): random_sequence(seed, t=6) for seed, name in enumerate("ab")}
    return write_store(tmp_path_factory.mktemp("progress") / "s.zarr", seqs)


def test_run_inference_counts_frames(small_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    predict(WindowedIdentity(), small_store, "test", tmp_path / "p.zarr", progress=True)
    captured = capsys.readouterr()
    assert "restore test" in captured.err and "12/12" in captured.err and captured.out == ""
    predict(WindowedIdentity(), small_store, "test", tmp_path / "q.zarr", progress=False)
    assert capsys.readouterr().err == ""


def test_sensitivity_counts_protocols(small_store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = protocol_sensitivity(small_store, small_store, "test", "cpgd-paper", array="decoded")
    err = capsys.readouterr().err
    assert "sensitivity" in err and f"{len(table)}/{len(table)}" in err


def test_export_counts_sequences(small_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    export_h5(small_store, tmp_path / "s.h5", progress=True)
    err = capsys.readouterr().err
    assert "export" in err and "2/2" in err
