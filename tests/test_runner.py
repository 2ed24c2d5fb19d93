"""The benchmark runner: windows, predictions layout, run directories, reruns, errors, and the main job end to end."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import math
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import zarr
from click.testing import CliRunner

from cpgd_bench.cli import main
from cpgd_bench.eval import ScoreResult
from cpgd_bench.eval import results as rs
from cpgd_bench.eval.runner import predict, run_model
from cpgd_bench.models import registry
from cpgd_bench.models.registry import Restorer, register_model

DAY = dt.date(2026, 1, 2)
REPO = Path(__file__).resolve().parents[1]
SHARED_IQA = Path("/work/shared/iqa/weights")


class WindowedIdentity(Restorer):
    """Returns ``lq``; records every clip it was given."""

    name = "windowed"
    window, overlap = 5, 2

    def __init__(self, weights: Path | None = None, device: str | None = None) -> None:
        self.clips: list[dict[str, torch.Tensor]] = []

    def restore(self, clip: dict[str, torch.Tensor]) -> torch.Tensor:
        self.clips.append(clip)
        return clip["lq"]


class WrongShape(WindowedIdentity):
    def restore(self, clip: dict[str, torch.Tensor]) -> torch.Tensor:
        return clip["lq"][:, :, :-1]


def windowed(**options: object) -> WindowedIdentity:
    return WindowedIdentity(**options)  # type: ignore[arg-type]


def wrong_shape(**options: object) -> WrongShape:
    return WrongShape(**options)  # type: ignore[arg-type]


@pytest.fixture
def fake_models(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    register_model("windowed", "tests.test_runner:windowed", "identity with 5-frame windows")
    register_model("wrong-shape", "tests.test_runner:wrong_shape", "crops a row")


@pytest.fixture
def fake_scorer(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Replace scoring by a cheap PSNR-like table (real scoring is covered by the end-to-end test)."""
    calls: list[Path] = []

    def score(predictions: Path, store: Path, split: str, **_: object) -> ScoreResult:
        calls.append(predictions)
        pred = zarr.open_group(predictions, mode="r")[split]
        rows = [{"sequence": s, "frame": f, "psnr": float(f)} for s in sorted(pred.group_keys())
                for f in range(pred[s]["pred"].shape[0])]
        per_frame = pd.DataFrame(rows)
        per_sequence = per_frame.groupby("sequence").agg(frames=("frame", "count"), psnr=("psnr", "mean")).reset_index()
        windows = pd.DataFrame({"sequence": per_sequence["sequence"], "window": 0, "start": 0,
                                "end": per_sequence["frames"], "frames": per_sequence["frames"],
                                "psnr": per_sequence["psnr"]})
        prov = {"protocol": {"name": "fake", "version": 1, "average": "window"}, "device": "cpu",
                "code_commit": "abc123"}
        return ScoreResult(per_frame, per_sequence, windows, {"psnr": float(windows["psnr"].mean())}, prov)

    monkeypatch.setattr("cpgd_bench.eval.scoring.score_predictions", score)
    return calls


def test_predict_feeds_windows_with_priors_and_writes_the_layout(sample_store: Path, tmp_path: Path) -> None:
    model = WindowedIdentity()
    out = tmp_path / "pred.zarr"
    timing = predict(model, sample_store, "test", out, progress=False)
    store = zarr.open_group(sample_store, mode="r")
    names = sorted(store["test"].group_keys())
    assert timing["frames"] == sum(store["test"][n]["decoded"].shape[0] for n in names)
    for name in names:
        pred = zarr.open_array(out / "test" / name / "pred", mode="r")
        decoded = store["test"][name]["decoded"][:]
        assert pred.dtype == np.uint8 and pred.shape == decoded.shape
        np.testing.assert_array_equal(pred[:], decoded)  # identity through [0, 1] and back
    assert {c["lq"].shape[0] for c in model.clips} == {5}
    first = model.clips[0]
    assert set(first) == {"lq", "flow_prev", "flow_next", "flow_valid", "residual"}  # no gt, no key
    assert first["flow_prev"].shape[1] == 2 and first["residual"].shape[1] == 1
    assert first["flow_valid"][0, 0].sum() == 0 and first["flow_valid"][-1, 1].sum() == 0  # window ends
    assert first["flow_valid"][1:, 0].sum() > 0  # the decoded MVs do reach the model


def test_run_writes_run_dir_and_rerun_is_a_noop_unless_forced(
    sample_store: Path, tmp_path: Path, fake_models: None, fake_scorer: list[Path]
) -> None:
    runs = tmp_path / "runs"
    first = run_model("windowed", sample_store, runs_root=runs, date=DAY, progress=False)
    assert first.run_dir == runs / "windowed-sample-20260102" and not first.skipped
    record = json.loads((first.run_dir / "run.json").read_text())
    assert record["status"] == "complete" and record["model"] == "windowed"
    assert record["store"]["path"] == str(sample_store.resolve()) and record["store"]["dataset"] == "sample"
    assert record["window"] == 5 and record["overlap"] == 2 and record["metrics"] == ["psnr"]
    assert record["summary"]["psnr"] == first.summary["psnr"] and record["code_commit"] == "abc123"
    assert (first.run_dir / "per_frame.csv").exists() and (first.run_dir / "predictions.zarr").is_dir()
    stamp = (first.run_dir / "run.json").stat().st_mtime_ns

    again = run_model("windowed", sample_store, runs_root=runs, date=DAY, progress=False)
    assert again.skipped and len(fake_scorer) == 1
    assert (first.run_dir / "run.json").stat().st_mtime_ns == stamp

    forced = run_model("windowed", sample_store, runs_root=runs, date=DAY, force=True, progress=False)
    assert not forced.skipped and len(fake_scorer) == 2


def test_unfinished_run_is_redone(sample_store: Path, tmp_path: Path, fake_models: None,
                                  fake_scorer: list[Path]) -> None:
    run_dir = rs.run_dir_for(tmp_path, "windowed", sample_store, DAY)
    run_dir.mkdir(parents=True)
    rs.write_run_json(run_dir, {"status": "running", "store": rs.store_identity(sample_store)})
    (run_dir / "stale.txt").write_text("left by a killed run")
    result = run_model("windowed", sample_store, runs_root=tmp_path, date=DAY, progress=False)
    assert not result.skipped and not (run_dir / "stale.txt").exists()


def test_run_dir_from_another_store_is_a_one_line_error(sample_store: Path, tmp_path: Path,
                                                        fake_models: None, fake_scorer: list[Path]) -> None:
    run_dir = rs.run_dir_for(tmp_path, "windowed", sample_store, DAY)
    run_dir.mkdir(parents=True)
    other = {"path": "/elsewhere/sample.zarr", "dataset": "sample", "created": "2020-01-01T00:00:00+00:00"}
    rs.write_run_json(run_dir, {"status": "complete", "store": other, "summary": {}})
    with pytest.raises(rs.RunError, match=r"was made from store /elsewhere/sample.zarr .*use another --runs-dir") as e:
        run_model("windowed", sample_store, runs_root=tmp_path, date=DAY, progress=False)
    assert "\n" not in str(e.value) and not fake_scorer


def test_cli_run_errors_are_one_line(sample_store: Path, tmp_path: Path, fake_models: None) -> None:
    result = CliRunner().invoke(main, ["run", "--model", "wrong-shape", "--store", str(sample_store),
                                       "--runs-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1
    assert "a Restorer must keep (T, 3, H, W)" in result.output
    missing = CliRunner().invoke(main, ["run", "--model", "input", "--store", str(tmp_path / "nope.zarr")])
    assert missing.exit_code == 1 and missing.output.startswith("Error: no store at")


def test_cli_run_on_a_store_without_sharp_scores_no_reference_metrics(tmp_path: Path, fake_models: None,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from cpgd_bench.weights import table as metric_weights

    from .test_store_util import random_sequence, write_store

    store = write_store(tmp_path / "nogt.zarr", {("test", n): random_sequence(i, t=6, h=96, w=104, sharp=False)
                                                 for i, n in enumerate("ab")})
    monkeypatch.setattr(metric_weights, "search_dirs", lambda weights_dir=None: [tmp_path / "no-weights"])
    args = ["run", "--model", "windowed", "--store", str(store), "--runs-dir", str(tmp_path / "runs"),
            "--protocol", "kair-matlab"]
    res = CliRunner().invoke(main, [*args, "--skip-unavailable"])
    assert res.exit_code == 0, res.output
    assert [line for line in res.stderr.splitlines() if "sharp" in line] == [
        f"store {store} split 'test' has no 'sharp' (ground truth): psnr, ssim, lpips need it and are not scored"
    ]
    run_dir = next((tmp_path / "runs").iterdir())
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "complete" and record["metrics"] == ["niqe", "musiq"]
    assert record["summary"] == {"niqe": None, "musiq": None} and set(record["scoring"]["missing"]) == {"niqe", "musiq"}
    assert "psnr, ssim, lpips need it" in record["scoring"]["not_scored"]
    pred = zarr.open_group(run_dir / "predictions.zarr", mode="r")
    for name in "ab":  # every frame restored (the identity model: the decoded frames)
        np.testing.assert_array_equal(pred[f"test/{name}/pred"][:], zarr.open_group(store)[f"test/{name}/decoded"][:])
    assert pd.read_csv(run_dir / "per_frame.csv").shape == (12, 4)

    only_full = CliRunner().invoke(main, [*args, "--metrics", "psnr,ssim", "--force"])
    assert only_full.exit_code == 1 and isinstance(only_full.exception, SystemExit)
    assert only_full.output.strip().count("\n") == 0 and "psnr, ssim need it and are not scored" in only_full.output
    assert json.loads((run_dir / "run.json").read_text())["status"] == "complete"  # failed before touching it


def test_failed_run_says_so_in_run_json(tmp_path: Path, fake_models: None) -> None:
    from .test_store_util import random_sequence, write_store

    store = write_store(tmp_path / "s.zarr", {("test", "a"): random_sequence(1, t=6)})
    with pytest.raises(rs.RunError, match="a Restorer must keep"):
        run_model("wrong-shape", store, runs_root=tmp_path, date=DAY, progress=False)
    record = json.loads((rs.run_dir_for(tmp_path, "wrong-shape", store, DAY) / "run.json").read_text())
    assert record["status"] == "failed" and "a Restorer must keep (T, 3, H, W)" in record["error"]


def _protocol_average(run_dir: Path, metric: str) -> float:
    """Independent recomputation from per_frame.csv: mean over windows of the per-window frame means."""
    per_frame = pd.read_csv(run_dir / "per_frame.csv")
    windows = pd.read_csv(run_dir / "per_window.csv")
    means = []
    for w in windows.itertuples():
        sel = per_frame[(per_frame.sequence == w.sequence) & (per_frame.frame >= w.start) & (per_frame.frame < w.end)]
        means.append(sel[metric].mean())
    return float(np.mean(means))


def _markdown_rows(text: str, heading_prefix: str) -> dict[str, dict[str, str]]:
    """{method: {column: cell}} of the first table under a heading starting with ``heading_prefix``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"## {heading_prefix}"))
    first = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("|"))
    table = []
    for line in lines[first:]:
        if not line.startswith("|"):
            break
        table.append(line)
    head = [c.strip() for c in table[0].strip("|").split("|")]
    rows = {}
    for line in table[2:]:
        cells = [c.strip().strip("*_") for c in line.strip("|").split("|")]
        rows[cells[0]] = dict(zip(head, cells, strict=True))
    return rows


def render_in_chromium(index: Path, shot: Path) -> str:
    """Screenshot ``index`` in headless Chromium; returns its stderr (console messages included)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium binary (install it: `make system-deps` / apt-get install chromium)")
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr",
           "--v=0", "--window-size=1280,2400", f"--screenshot={shot}", index.resolve().as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stderr


@pytest.mark.slow
def test_main_job_input_and_cpfp_then_report(sample_store: Path, tmp_path: Path) -> None:
    """`run` for input and cpfp on the sample store with real scoring, then `report`; numbers agree everywhere."""
    runs, board = tmp_path / "runs", tmp_path / "leaderboard"
    models = ["input"]
    if importlib.util.find_spec("cpgd_bench.models.cpgd.cpfp.restorer") is not None:
        models.append("cpfp")
    weights = ["--metric-weights", str(SHARED_IQA)] if SHARED_IQA.is_dir() else []
    cli = CliRunner()
    for name in models:
        result = cli.invoke(main, ["run", "--model", name, "--store", str(sample_store), "--runs-dir", str(runs),
                                   "--metrics", "psnr,niqe", "--skip-unavailable", "--device", "cpu", *weights])
        assert result.exit_code == 0, result.output
    again = cli.invoke(main, ["run", "--model", "input", "--store", str(sample_store), "--runs-dir", str(runs),
                              "--metrics", "psnr,niqe", "--skip-unavailable"])
    assert "already complete" in again.output
    result = cli.invoke(main, ["report", "--runs-dir", str(runs), "--out", str(board),
                               "--reported", str(REPO / "leaderboard" / "reported.csv")])
    assert result.exit_code == 0, result.output
    for name in ("leaderboard.csv", "LEADERBOARD.md", "index.html", "plots.json"):
        assert (board / name).exists()

    text = (board / "LEADERBOARD.md").read_text()
    measured = _markdown_rows(text, "Measured: sample")
    run_dirs = sorted(runs.iterdir())
    assert len(measured) == len(run_dirs) == len(models)
    for run_dir in run_dirs:
        label = json.loads((run_dir / "run.json").read_text())["provenance"]["label"]
        row = measured[label]
        assert row["PSNR ↑"] == f"{_protocol_average(run_dir, 'psnr'):.2f}"
        niqe = _protocol_average(run_dir, "niqe")
        assert row["NIQE ↓"] == ("—" if math.isnan(niqe) else f"{niqe:.3f}")
    gopro = _markdown_rows(text, "Reported: paper Table I, GoPro")
    assert len(gopro) == 9 and gopro["BSSTNet"]["PSNR ↑"] == "35.98" and gopro["CPGD-Net"]["MUSIQ ↑"] == "60.630"
    assert len(_markdown_rows(text, "Reported: paper Table I, DVD")) == 9
    csv = pd.read_csv(board / "leaderboard.csv")
    assert set(csv["kind"]) == {"measured", "reported"} and (csv["kind"] == "measured").sum() == len(models)

    plots = json.loads((board / "plots.json").read_text())
    niqe_plot = next(p for p in plots if p["title"].startswith("Measured") and "NIQE" in p["y_label"])
    with_niqe = [d for d in run_dirs if not math.isnan(_protocol_average(d, "niqe"))]
    assert len(niqe_plot["points"]) == len(with_niqe)
    if SHARED_IQA.is_dir():
        assert len(niqe_plot["points"]) == len(models)  # NIQE weights present: every measured row is a point
    svg = (board / niqe_plot["svg"]).read_text()
    assert "PSNR (dB) ↑" in svg and "NIQE ↓" in svg
    assert svg.count('id="point-') == len(niqe_plot["points"])

    artifacts = Path(os.environ.get("CPGD_TEST_ARTIFACTS", REPO / "runs" / "test-artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    log = render_in_chromium(board / "index.html", artifacts / "report-main-job.png")
    assert "Uncaught" not in log and (artifacts / "report-main-job.png").stat().st_size > 10_000
