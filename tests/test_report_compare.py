"""Visual comparisons in `report`: deterministic frames and crops, crop pixels, metric values, the slider page."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zarr
from PIL import Image

from cpgd_bench.eval import results as rs
from cpgd_bench.report import build_report
from cpgd_bench.report.collect import collect_runs
from cpgd_bench.report.compare import build_comparisons, pick_frames
from tests.test_show import _chromium, drive
from tests.test_store_util import random_sequence, write_store

REPO = Path(__file__).resolve().parents[1]
REPORTED = REPO / "leaderboard" / "reported.csv"
T, H, W = 6, 96, 128
BAD = (4, slice(40, 80), slice(70, 110))  # frame, rows, cols the "bad" method ruins in sequence a


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * math.log10(255**2 / max(mse, 1e-10))


def _run(runs: Path, store: Path, model: str, preds: dict[str, np.ndarray], truth: dict[str, np.ndarray]) -> Path:
    run_dir = runs / f"{model}-unit-20260101"
    group = zarr.open_group(run_dir / rs.PREDICTIONS, mode="w", zarr_format=3)
    rows = []
    for seq, pred in preds.items():
        group.create_array(f"test/{seq}/pred", data=pred, config={"write_empty_chunks": True})
        rows += [{"sequence": seq, "frame": t, "psnr": _psnr(pred[t], truth[seq][t]), "niqe": 4.0 + t / 10}
                 for t in range(T)]
    per_frame = pd.DataFrame(rows)
    per_frame.to_csv(run_dir / rs.PER_FRAME, index=False)
    per_frame.groupby("sequence", as_index=False)[["psnr", "niqe"]].mean().to_csv(run_dir / rs.PER_SEQUENCE,
                                                                                 index=False)
    rs.write_run_json(run_dir, {
        "status": "complete", "model": model, "split": "test",
        "store": {"path": str(store), "dataset": "unit"}, "provenance": {"label": model},
        "metrics": ["psnr", "niqe"], "summary": {m: float(per_frame[m].mean()) for m in ("psnr", "niqe")},
        "scoring": {"protocol": {"name": "toy", "version": 1, "average": "frame"}}, "code_commit": "c0ffee",
    })
    return run_dir


@pytest.fixture
def board(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """A unit store (test/a, test/b with ground truth) and runs of a good and a bad method with predictions."""
    seqs = {name: random_sequence(k, t=T, h=H, w=W) for k, name in enumerate("ab")}
    store = write_store(tmp_path / "unit.zarr", {("test", n): s for n, s in seqs.items()})
    truth = {n: s["sharp"] for n, s in seqs.items()}
    rng = np.random.default_rng(5)
    noisy = lambda x, s: np.clip(x + rng.normal(0, s, x.shape), 0, 255).astype(np.uint8)  # noqa: E731
    bad = {n: noisy(x, 6) for n, x in truth.items()}
    frame, rows, cols = BAD
    bad["a"][frame, rows, cols] = 255 - truth["a"][frame, rows, cols]
    runs = tmp_path / "runs"
    _run(runs, store, "good", {n: noisy(x, 2) for n, x in truth.items()}, truth)
    _run(runs, store, "bad", bad, truth)
    return runs, truth


def test_frames_are_where_methods_differ_most_plus_the_middle() -> None:
    psnr = {"x": {0: 30.0, 1: 30.0, 2: 30.0, 3: 30.0}, "y": {0: 29.0, 1: 25.0, 2: 25.0, 3: math.nan}}
    assert [f for f, _ in pick_frames(psnr, 4)] == [1, 2]  # ties: the earliest; then the middle (4 // 2)
    assert [f for f, _ in pick_frames({"x": {0: 1.0}}, 5)] == [2]  # one method: only the fixed frame


def test_crops_show_the_frame_and_region_where_methods_differ(board: tuple[Path, dict[str, np.ndarray]],
                                                               tmp_path: Path) -> None:
    runs, truth = board
    out = tmp_path / "board"
    comparisons, notes = build_comparisons(collect_runs(runs), out, size=32)
    assert notes == []
    picked = [(c.sequence, c.frame) for c in comparisons]
    assert picked[:2] == [("a", 4), ("a", 3)] and ("b", 3) in picked
    first = comparisons[0]
    y, x, h, w = first.box
    frame, rows, cols = BAD
    assert (h, w) == (32, 32) and rows.start <= y and y + h <= rows.stop and cols.start <= x and x + w <= cols.stop
    labels = [c.label for c in first.crops]
    assert labels == ["input (decoded)", "bad", "good", "ground truth"]
    assert first.crops[first.after].label == "good"  # best PSNR on this frame
    gt = np.asarray(Image.open(out / first.crops[-1].image))
    np.testing.assert_array_equal(gt, truth["a"][frame, y:y + h, x:x + w])
    bad = np.asarray(Image.open(out / first.crops[1].image))
    np.testing.assert_array_equal(bad, 255 - gt)
    assert first.crops[1].metrics["psnr"] < first.crops[2].metrics["psnr"] and first.crops[0].metrics == {}
    again, _ = build_comparisons(collect_runs(runs), tmp_path / "again", size=32)
    assert [(c.sequence, c.frame, c.box) for c in again] == [(c.sequence, c.frame, c.box) for c in comparisons]


_DRIVER = """
const box = document.getElementById("cmp-0"), top = box.querySelector(".stage .a"), seen = [];
const pos = box.querySelector(".pos"), after = box.querySelector(".after"), zoom = document.getElementById("cmp-zoom");
pos.value = 20; pos.dispatchEvent(new Event("input"));
seen.push(top.style.clipPath, box.querySelector(".bar").style.left);
after.value = "1"; after.dispatchEvent(new Event("input"));
seen.push(top.getAttribute("src"), box.querySelector(".stage .b").getAttribute("src"));
zoom.value = 4; zoom.dispatchEvent(new Event("input"));
seen.push(top.style.width, box.querySelector(".row img").style.width);
done(seen);
"""


def test_comparison_page_slider_and_zoom_in_chromium(board: tuple[Path, dict[str, np.ndarray]],
                                                     tmp_path: Path) -> None:
    runs, _ = board
    out = tmp_path / "board"
    written = build_report(runs, out, REPORTED)
    page = (out / "index.html").read_text()
    assert "<h2>Visual comparisons</h2>" in page and page.count("class='cmp'") >= 3
    for src in re.findall(r"<img src='([^']+)'", page):
        assert (out / src).is_file(), src
    assert sum(p.parent.parent.name == "compare" for p in written) == page.count("<figure><img src='compare/")
    per_frame = pd.read_csv(runs / "bad-unit-20260101" / rs.PER_FRAME)
    value = per_frame[(per_frame.sequence == "a") & (per_frame.frame == BAD[0])]["psnr"].iloc[0]
    assert f"bad<br>PSNR ↑ {value:.2f} · NIQE ↓ 4.400" in page
    url = (out / "index.html").resolve().as_uri()
    dom = _chromium(url + "#pos=30&zoom=3", "--dump-dom")
    assert "CONSOLE" not in dom.stderr, dom.stderr
    stage = re.search(r'<div class="cmp" id="cmp-0".*?<div class="stage"[^>]*>(.*?)</div></div>', dom.stdout, re.S)
    assert stage is not None
    after = re.search(r'<img class="a"[^>]*>', stage.group(1)).group(0)  # type: ignore[union-attr]
    assert "clip-path: inset(0px 0px 0px 30%)" in after and "width: 384px" in after  # the whole 128 px wide frame at 3x
    assert re.search(r'src="compare/unit-test/a-00004-02.png"', after)  # after: the best method, "good"
    seen, log = drive(out / "index.html", _DRIVER)  # the slider, the "after" picker and the zoom as a user would
    assert "CONSOLE" not in log, log
    assert seen == ["inset(0px 0px 0px 20%)", "20%", "compare/unit-test/a-00004-01.png",
                    "compare/unit-test/a-00004-00.png", "512px", "512px"]
    artifacts = Path(os.environ.get("CPGD_TEST_ARTIFACTS", REPO / "runs" / "test-artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    shot = artifacts / "report-comparisons.png"
    done = _chromium(url + "#pos=40&zoom=2", "--window-size=1280,2400", f"--screenshot={shot}")
    assert "CONSOLE" not in done.stderr and shot.stat().st_size > 10_000
    plots = json.loads((out / "plots.json").read_text())
    assert any(p["title"].startswith("Measured: unit") for p in plots)


def test_an_input_run_replaces_the_decoded_crop(board: tuple[Path, dict[str, np.ndarray]], tmp_path: Path) -> None:
    runs, truth = board
    store = tmp_path / "unit.zarr"
    decoded = {n: zarr.open_array(store / "test" / n / "decoded", mode="r")[:] for n in truth}
    _run(runs, store, "input", decoded, truth)
    comparisons, _ = build_comparisons(collect_runs(runs), tmp_path / "board", size=32)
    first = comparisons[0]
    assert [c.label for c in first.crops] == ["input", "bad", "good", "ground truth"]
    y, x, h, w = first.box
    crop = np.asarray(Image.open(tmp_path / "board" / first.crops[0].image))
    np.testing.assert_array_equal(crop, decoded["a"][first.frame, y:y + h, x:x + w])


def test_damaged_predictions_are_a_note_not_a_crash(board: tuple[Path, dict[str, np.ndarray]],
                                                    tmp_path: Path) -> None:
    runs, _ = board
    chunk = next((runs / "bad-unit-20260101" / rs.PREDICTIONS / "test" / "a" / "pred" / "c").rglob("*"))
    while chunk.is_dir():
        chunk = next(chunk.iterdir())
    chunk.unlink()
    comparisons, notes = build_comparisons(collect_runs(runs), tmp_path / "board", size=32)
    assert {c.sequence for c in comparisons} == {"b"}
    assert notes and all(n.startswith("no visual comparison of a frame") and "is missing" in n for n in notes)


def test_twenty_methods_start_at_1x(board: tuple[Path, dict[str, np.ndarray]], tmp_path: Path) -> None:
    """With 20 methods every crop is on the page, at 1x so that rows stay short, and the page has no errors."""
    runs, truth = board
    rng = np.random.default_rng(9)
    for k in range(18):
        preds = {n: np.clip(x + rng.normal(0, 1 + k, x.shape), 0, 255).astype(np.uint8) for n, x in truth.items()}
        _run(runs, tmp_path / "unit.zarr", f"m{k:02d}", preds, truth)
    out = tmp_path / "board"
    build_report(runs, out, REPORTED)
    page = (out / "index.html").read_text()
    first = page[page.index("id='cmp-0'"):page.index("id='cmp-1'")]
    assert first.count("<figure>") == 22 and "value='1'></label>" in page  # input, 20 methods, ground truth
    seen, log = drive(out / "index.html", "done([document.querySelector('#cmp-0 .row img').style.width]);")
    assert "CONSOLE" not in log and seen == ["128px"]
