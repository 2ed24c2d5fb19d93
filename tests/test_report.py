"""`cpgd-bench report`: leaderboard files from synthetic run directories, plots, Chromium rendering, errors."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from cpgd_bench.cli import main
from cpgd_bench.eval import results as rs
from cpgd_bench.report import ReportError, build_report
from tests.test_runner import _markdown_rows, render_in_chromium

REPO = Path(__file__).resolve().parents[1]
REPORTED = REPO / "leaderboard" / "reported.csv"
PAPER = Path("/work/shared/paper/cpgd-net-paper.txt")
SHA = "ab" * 32


def make_run(runs: Path, model: str, psnr: list[float], niqe: list[float], drop: str | None = None,
             summary_shift: float = 0.0) -> Path:
    """A finished run directory with two sequences, windows of 3 frames, window-averaged summary."""
    run_dir = runs / f"{model}-synthetic-20260101"
    run_dir.mkdir(parents=True)
    frames = len(psnr) // 2
    per_frame = pd.DataFrame({"sequence": ["a"] * frames + ["b"] * frames, "frame": list(range(frames)) * 2,
                              "psnr": psnr, "niqe": niqe})
    windows = []
    for seq in ("a", "b"):
        for w, start in enumerate(range(0, frames, 3)):
            end = min(start + 3, frames)
            sel = per_frame[(per_frame.sequence == seq) & per_frame.frame.between(start, end - 1)]
            windows.append({"sequence": seq, "window": w, "start": start, "end": end, "frames": end - start,
                            "psnr": sel.psnr.mean(skipna=False), "niqe": sel.niqe.mean(skipna=False)})
    per_window = pd.DataFrame(windows)
    per_sequence = per_window.groupby("sequence").agg(frames=("frames", "sum"), psnr=("psnr", "mean"),
                                                      niqe=("niqe", "mean")).reset_index()
    summary = {m: float(per_window[m].mean(skipna=False)) + summary_shift for m in ("psnr", "niqe")}
    per_frame.drop(columns=[drop] if drop else []).to_csv(run_dir / "per_frame.csv", index=False)
    per_sequence.to_csv(run_dir / "per_sequence.csv", index=False)
    per_window.to_csv(run_dir / "per_window.csv", index=False)
    record = {
        "status": "complete", "model": model, "split": "test",
        "store": {"path": "/x/synthetic.zarr", "dataset": "synthetic", "created": "2026-01-01T00:00:00+00:00"},
        "provenance": {"model": model, "label": model, "weights_sha256": SHA if model != "input" else None,
                       "upstream_commit": "f00d" if model == "vrt" else None, "notes": ""},
        "metrics": ["psnr", "niqe"], "summary": {k: None if math.isnan(v) else v for k, v in summary.items()},
        "scoring": {"protocol": {"name": "toy", "version": 2, "average": "window"}},
        "code_commit": "c0ffee", "finished": "2026-01-01T00:00:00+00:00",
    }
    rs.write_run_json(run_dir, record)
    return run_dir


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    make_run(root, "input", [25.0, 26.0, 24.0, 25.5, 25.0, 26.5, 24.5, 25.0], [6.0, 6.2, 6.1, 6.3, 6.0, 6.1, 6.2, 6.4])
    make_run(root, "cpfp", [30.0, 31.0, 29.5, 30.5, 31.5, 30.0, 29.0, 30.0], [4.0, 4.2, 4.1, 4.3, 4.2, 4.1, 4.0, 4.4])
    make_run(root, "vrt", [28.0, 28.5, 27.5, 28.0, 29.0, 28.0, 27.0, 28.5], [5.0, 5.1, 5.2, 5.1, 5.0, 5.3, 5.1, 5.2])
    (root / "unfinished-synthetic-20260101").mkdir()
    rs.write_run_json(root / "unfinished-synthetic-20260101", {"status": "running"})
    return root


def window_mean(run_dir: Path, metric: str) -> float:
    per_frame, windows = pd.read_csv(run_dir / "per_frame.csv"), pd.read_csv(run_dir / "per_window.csv")
    return float(np.mean([per_frame[(per_frame.sequence == w.sequence) & (per_frame.frame >= w.start)
                                    & (per_frame.frame < w.end)][metric].mean() for w in windows.itertuples()]))


def test_leaderboard_numbers_marks_and_provenance(runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "board"
    build_report(runs, out, REPORTED)
    text = (out / "LEADERBOARD.md").read_text()
    measured = _markdown_rows(text, "Measured: synthetic (test split), protocol toy v2")
    assert set(measured) == {"input", "cpfp", "vrt"}  # the unfinished run is left out
    for model, row in measured.items():
        run_dir = runs / f"{model}-synthetic-20260101"
        assert row["PSNR ↑"] == f"{window_mean(run_dir, 'psnr'):.2f}"
        assert row["NIQE ↓"] == f"{window_mean(run_dir, 'niqe'):.3f}"
        assert row["run"] == run_dir.name
    assert measured["cpfp"]["weights sha256"] == SHA and measured["input"]["weights sha256"] == "none (no weights)"
    assert measured["vrt"]["commit"] == "c0ffee / upstream f00d"
    table = text[text.index("## Measured"):text.index("## Reported")]
    assert f"| **{measured['cpfp']['PSNR ↑']}** |" in table and f"| _{measured['vrt']['PSNR ↑']}_ |" in table
    assert f"| **{measured['cpfp']['NIQE ↓']}** |" in table  # lower is better for NIQE
    assert text.index("## Measured") < text.index("## Reported: paper Table I, GoPro")
    gopro = _markdown_rows(text, "Reported: paper Table I, GoPro")
    assert gopro["BSSTNet"]["PSNR ↑"] == "35.98" and gopro["BSSTNet"]["SSIM ↑"] == "0.9792"
    assert gopro["CPGD-Net"]["NIQE ↓"] == "3.500" and gopro["CPGD-Net"]["MUSIQ ↑"] == "60.630"
    dvd = _markdown_rows(text, "Reported: paper Table I, DVD")
    assert dvd["CPGD-Net"]["NIQE ↓"] == "3.513" and dvd["CPGD-Net"]["MUSIQ ↑"] == "61.135"
    assert "| **35.98** |" in text and "| _35.88_ |" in text  # BSST best, Shift-Net second on GoPro PSNR
    assert "## Reported: paper Table II, DVD" in text and "## Reported: paper Table III, unstated" in text
    csv = pd.read_csv(out / "leaderboard.csv")
    assert (csv["kind"] == "measured").sum() == 3 and (csv["kind"] == "reported").sum() == len(pd.read_csv(REPORTED))


def test_plots_have_labelled_axes_and_one_point_per_measured_row(runs: Path, tmp_path: Path) -> None:
    make_run(runs, "nonniqe", [20.0] * 8, [math.nan] * 8)  # a measured row without NIQE: no point, listed
    out = tmp_path / "board"
    build_report(runs, out, REPORTED)
    plots = json.loads((out / "plots.json").read_text())
    niqe = next(p for p in plots if p["title"].startswith("Measured") and p["y_label"].startswith("NIQE"))
    assert {p["label"] for p in niqe["points"]} == {"input", "cpfp", "vrt"} and niqe["skipped"] == ["nonniqe"]
    svg = (out / niqe["svg"]).read_text()
    assert niqe["x_label"] == "PSNR (dB) ↑" and niqe["caption"] == "NIQE ↓ vs PSNR ↑"
    assert niqe["x_label"] in svg and niqe["y_label"] in svg
    assert svg.count('id="point-') == 3
    gopro = next(p for p in plots if p["title"] == "Reported: paper Table I, GoPro" and "MUSIQ" in p["y_label"])
    assert len(gopro["points"]) == 9
    html = (out / "index.html").read_text()
    assert "<h3>cpfp-synthetic-20260101</h3>" in html and html.count("<figure>") == len(plots)


def test_report_renders_in_headless_chromium(runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "board"
    build_report(runs, out, REPORTED)
    html = (out / "index.html").read_text()
    for src in re.findall(r"src='([^']+)'", html):
        assert (out / src).is_file(), src
    artifacts = Path(os.environ.get("CPGD_TEST_ARTIFACTS", REPO / "runs" / "test-artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    shot = artifacts / "report-synthetic.png"
    log = render_in_chromium(out / "index.html", shot)
    assert "CONSOLE" not in log, log  # no script errors or console messages at all
    image = mpimg.imread(shot)
    assert image.shape[:2] == (2400, 1280) and float(image[..., :3].std()) > 0.05  # drawn, not blank


def test_results_table_missing_a_metric_is_a_one_line_error(runs: Path, tmp_path: Path) -> None:
    make_run(runs, "broken", [20.0] * 8, [5.0] * 8, drop="niqe")
    with pytest.raises(rs.RunError, match=r"per_frame.csv has no column for metric niqe that run.json lists") as e:
        build_report(runs, tmp_path / "board", REPORTED)
    assert "\n" not in str(e.value)
    result = CliRunner().invoke(main, ["report", "--runs-dir", str(runs), "--out", str(tmp_path / "b"),
                                       "--reported", str(REPORTED)])
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert "broken-synthetic-20260101/per_frame.csv has no column for metric niqe" in result.output


def test_summary_disagreeing_with_per_frame_table_is_an_error(runs: Path, tmp_path: Path) -> None:
    make_run(runs, "shifted", [20.0] * 8, [5.0] * 8, summary_shift=0.5)
    with pytest.raises(ReportError, match=r"psnr summary 20.5 differs from 20.0 recomputed from .*per_frame.csv"):
        build_report(runs, tmp_path / "board", REPORTED)


def test_reported_table_errors(runs: Path, tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="reported results .*not found; pass --reported"):
        build_report(runs, tmp_path / "board", tmp_path / "none.csv")
    bad = tmp_path / "bad.csv"
    pd.read_csv(REPORTED).drop(columns=["musiq"]).to_csv(bad, index=False)
    with pytest.raises(ReportError, match="have no column musiq"):
        build_report(runs, tmp_path / "board", bad)


@pytest.mark.skipif(not PAPER.exists(), reason="the paper text is not on this machine")
def test_reported_table_i_matches_the_paper_text() -> None:
    text = PAPER.read_text()
    block = text[text.index("Dataset Method PVDNet"):text.index("TABLE I:")]
    rows = [re.findall(r"\d+\.\d+", line.split("\\", 1)[1]) for line in block.splitlines()[1:] if "\\" in line]
    names = ["ssim", "psnr", "lpips", "niqe", "musiq"]
    reported = pd.read_csv(REPORTED, dtype=str, keep_default_na=False)
    table = reported[reported["table"] == "I"]
    for block_i, dataset in enumerate(("GoPro", "DVD")):
        part = table[table["dataset"] == dataset]
        assert list(part["model"]) == ["pvdnet", "cdvd-tsp", "stdan", "dstnet", "vrt", "rvrt", "shift-net",
                                       "bsstnet", "cpgd"]
        for j, metric in enumerate(names):
            assert list(part[metric]) == rows[block_i * 5 + j], (dataset, metric)
    assert set(reported["source"].str.contains("Table")) == {True}


def test_best_and_second_best_marks() -> None:
    from cpgd_bench.report.collect import ranks

    assert ranks([1.0, math.nan, 3.0, 2.0], True) == {2: 1, 3: 2}
    assert ranks([4.0, 3.0, 3.0, 5.0], False) == {1: 1, 2: 1, 0: 2}  # ties share a rank
    assert ranks([5.0, math.nan], True) == {}  # a lone value is not "best" of anything


HOSTILE = "<script>alert(1)</script>|x\n## injected **b** [l](javascript:x) $\\frac{$ \x1b[31m"


def test_run_json_fields_cannot_inject_markup_or_break_tables(runs: Path, tmp_path: Path) -> None:
    run_dir = make_run(runs, "hostile", [27.0] * 8, [5.5] * 8)
    record = json.loads((run_dir / "run.json").read_text())
    record["provenance"].update(label=HOSTILE, weights_sha256="<img src=x onerror=alert(2)>|")
    record["split"], record["code_commit"] = "test\n| a | b |", "`c0ffee`\r\n<b>"
    rs.write_run_json(run_dir, record)
    out = tmp_path / "board"
    build_report(runs, out, REPORTED)  # the "$...$" label is text, not mathtext, in the plots
    text = (out / "LEADERBOARD.md").read_text()
    assert "<script" not in text and "<img" not in text and "<b>" not in text and "\x1b" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;\\|x ## injected \\*\\*b\\*\\* \\[l\\](javascript:x)" in text
    assert not any(line.startswith(("## injected", "| a | b |")) for line in text.splitlines())
    for table in re.findall(r"(?:^\|.*\n)+", text, flags=re.M):  # every row has the header's cell count
        counts = {len(re.findall(r"(?<!\\)\|", line)) for line in table.splitlines()}
        assert len(counts) == 1, table
    assert "\n## Measured: synthetic (test \\| a \\| b \\| split), protocol toy v2\n" in text
    assert "\x1b" not in "".join(p.read_text() for p in out.glob("*.svg"))
    page = (out / "index.html").read_text()
    assert "<script" not in page and "<img src=x" not in page and "&lt;script&gt;" in page
    markdown_it = pytest.importorskip("markdown_it")
    rendered = markdown_it.MarkdownIt("commonmark").enable("table").render(text)
    assert "<script" not in rendered and "<img" not in rendered and "<a " not in rendered
    assert "<h2>injected" not in rendered and "<strong>b</strong>" not in rendered
    row = next(r for r in re.findall(r"<tr>.*?</tr>", rendered, flags=re.S) if "alert(1)" in r)
    assert row.count("<td>") + row.count("<td ") == 6  # method, PSNR, NIQE, sha256, commit, run
