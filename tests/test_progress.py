"""The long steps show a progress bar on a terminal's stderr: inference in `run`, `score --sensitivity`,
`dataset export`; redirected (not a terminal) or with progress off they print nothing."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from cpgd_bench.eval import score_predictions
from cpgd_bench.eval.runner import predict
from cpgd_bench.eval.sensitivity import protocol_sensitivity
from cpgd_bench.store import export_h5

from .test_runner import WindowedIdentity
from .test_store_util import random_sequence, write_store


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _terminal(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """stderr as a terminal (set in the test itself: pytest's capture resets sys.stderr after fixtures)."""
    stream = _Terminal()
    monkeypatch.setattr(sys, "stderr", stream)
    return stream


@pytest.fixture(scope="module")
def small_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Split ``test``: two sequences of 6 frames, 40x52, with ground truth."""
    seqs = {("test", name): random_sequence(seed, t=6) for seed, name in enumerate("ab")}
    return write_store(tmp_path_factory.mktemp("progress") / "s.zarr", seqs)


def test_run_inference_counts_frames(small_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = _terminal(monkeypatch)
    predict(WindowedIdentity(), small_store, "test", tmp_path / "p.zarr", progress=True)
    assert "restore test" in terminal.getvalue() and "12/12" in terminal.getvalue()


def test_sensitivity_counts_protocols(small_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = _terminal(monkeypatch)
    table = protocol_sensitivity(small_store, small_store, "test", "cpgd-paper", array="decoded")
    assert "sensitivity" in terminal.getvalue() and f"{len(table)}/{len(table)}" in terminal.getvalue()


def test_export_counts_sequences(small_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = _terminal(monkeypatch)
    export_h5(small_store, tmp_path / "s.h5", progress=True)
    assert "export" in terminal.getvalue() and "2/2" in terminal.getvalue()


def test_no_bar_off_a_terminal(small_store: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    predict(WindowedIdentity(), small_store, "test", tmp_path / "p.zarr", progress=True)  # captured: not a tty
    export_h5(small_store, tmp_path / "s.h5", progress=True)
    score_predictions(small_store, small_store, "test", metrics=["psnr"], progress=True, array="decoded")
    assert capsys.readouterr() == ("", "")


def test_no_bar_when_off(small_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = _terminal(monkeypatch)
    predict(WindowedIdentity(), small_store, "test", tmp_path / "p.zarr", progress=False)
    export_h5(small_store, tmp_path / "s.h5", progress=False)
    assert terminal.getvalue() == ""
