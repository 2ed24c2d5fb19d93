"""Readable leaderboard plots: no label overlaps or clips another text, a point or the figure's edge (checked on
the SVG's text positions with the font's own metrics); short captions; missing plots explained; one citation."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib import font_manager
from PIL import ImageFont

from cpgd_bench.report import build_report
from cpgd_bench.report.plots import perception_distortion
from tests.test_report import REPORTED, make_run, runs  # noqa: F401 - the runs fixture

_TEXT = re.compile(r'<text style="font-size: ([\d.]+)px;[^"]*text-anchor: (\w+)[^"]*" x="([-\d.]+)" y="([-\d.]+)" '
                   r'transform="rotate\(([-\d.]+) [-\d.]+ [-\d.]+\)">([^<]*)</text>')
_POINT = re.compile(r'<g id="(?:point|reported)-\d+">.*?<use [^>]*x="([-\d.]+)" y="([-\d.]+)"', re.S)
_FONT = font_manager.findfont(matplotlib.font_manager.FontProperties(family="DejaVu Sans"))


def text_boxes(svg: str) -> list[tuple[str, np.ndarray]]:
    """(text, [x0, y0, x1, y1]) of every SVG text element, in the SVG's user units, from DejaVu Sans metrics."""
    boxes = []
    for size, anchor, x, y, angle, text in _TEXT.findall(svg):
        font = ImageFont.truetype(_FONT, size=max(1, round(float(size) * 10)))  # 10x for sub-unit precision
        left, top, right, bottom = (v / 10 for v in font.getbbox(text, anchor="ls"))
        shift = {"start": 0.0, "middle": -(right - left) / 2, "end": -(right - left)}[anchor]
        corners = np.array([[left + shift, top], [right + shift, top], [left + shift, bottom], [right + shift, bottom]])
        a = math.radians(float(angle))
        rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        pts = corners @ rot.T + [float(x), float(y)]
        boxes.append((text.replace("&amp;", "&"), np.r_[pts.min(0), pts.max(0)]))
    return boxes


def _overlap(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3])


def layout_problems(svg_path: Path, labels: set[str]) -> list[str]:
    """Point labels (texts in ``labels``) that overlap another text or point, and any text outside the figure."""
    svg = svg_path.read_text()
    width, height = (float(v) for v in re.search(r'viewBox="0 0 ([\d.]+) ([\d.]+)"', svg).groups())  # type: ignore[union-attr]
    boxes = text_boxes(svg)
    assert len(boxes) == svg.count("<text "), "a text element the checker cannot parse"
    points = [np.array([float(x), float(y)]) for x, y in _POINT.findall(svg)]
    problems = [f"{t!r} is clipped" for t, b in boxes if b[0] < 0 or b[1] < 0 or b[2] > width or b[3] > height]
    for i, (text, box) in enumerate(boxes):
        if text not in labels:
            continue
        problems += [f"{text!r} overlaps {other!r}" for j, (other, b) in enumerate(boxes)
                     if j != i and _overlap(box, b)]
        problems += [f"{text!r} covers a point" for p in points if _overlap(box, np.r_[p - 3, p + 3])]
    return problems


def test_checker_finds_overlapping_and_clipped_labels(tmp_path: Path) -> None:
    """The layout check itself: two labels drawn on top of each other and one past the edge are found."""
    import matplotlib.pyplot as plt

    with plt.rc_context({"svg.fonttype": "none"}):
        fig, ax = plt.subplots(figsize=(4, 3))
        ax.scatter([0, 0.02, 1], [0, 0, 1])
        ax.annotate("VRT", (0, 0), xytext=(5, 4), textcoords="offset points", fontsize=8)
        ax.annotate("RVRT", (0.02, 0), xytext=(5, 4), textcoords="offset points", fontsize=8)
        ax.annotate("BSSTNet", (1, 1), xytext=(60, 4), textcoords="offset points", fontsize=8)
        fig.savefig(tmp_path / "bad.svg")
        plt.close(fig)
    problems = layout_problems(tmp_path / "bad.svg", {"VRT", "RVRT", "BSSTNet"})
    assert "'VRT' overlaps 'RVRT'" in problems and "'BSSTNet' is clipped" in problems


def test_no_label_overlaps_or_is_clipped(runs: Path, tmp_path: Path) -> None:  # noqa: F811
    """Every plot of the paper's tables and of 20 crowded measured runs: labels readable, every point named."""
    for k in range(20):  # 20 methods within 0.3 dB and 0.2 NIQE of each other
        make_run(runs, f"method-{k:02d}", [27.0 + 0.015 * k] * 8, [5.0 + 0.01 * (k % 7)] * 8)
    out = Path(os.environ.get("CPGD_TEST_ARTIFACTS", tmp_path)) / "crowded-board"
    build_report(runs, out, REPORTED)
    plots = json.loads((out / "plots.json").read_text())
    assert len(plots) >= 5
    for plot in plots:
        names = {p["label"] for p in plot["points"]}
        assert not plot["unlabelled"], plot["unlabelled"]
        drawn = {t for t, _ in text_boxes((out / plot["svg"]).read_text())}
        assert names - drawn == set(plot["keyed"].values()), plot["title"]  # named in place or by number
        assert set(plot["keyed"]) <= drawn
        assert layout_problems(out / plot["svg"], names | set(plot["keyed"])) == [], plot["svg"]
    gopro = next(p for p in plots if p["title"] == "Reported: paper Table I, GoPro" and p["y_label"] == "NIQE ↓")
    assert not gopro["keyed"]  # nine methods fit with their names
    crowded = next(p for p in plots if p["title"].startswith("Measured") and p["y_label"] == "NIQE ↓")
    assert len(crowded["points"]) == 23
    page = (out / "index.html").read_text()
    if crowded["keyed"]:
        assert "labels by number: 1 = " in page


def test_captions_missing_plots_and_one_citation(runs: Path, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "board"
    build_report(runs, out, REPORTED)
    plots = json.loads((out / "plots.json").read_text())
    assert {p["caption"] for p in plots} == {"NIQE ↓ vs PSNR ↑", "MUSIQ ↑ vs PSNR ↑"}
    page = (out / "index.html").read_text()
    assert "<strong>NIQE ↓ vs PSNR ↑</strong> · Reported: paper Table I, GoPro" in page
    # the measured runs have no MUSIQ column: said once, with the reason
    assert page.count("no MUSIQ ↑ vs PSNR ↑ plot, no run has MUSIQ values") == 1
    citation = "Coding-Prior Guided Diffusion Network for Video Deblurring"
    markdown = (out / "LEADERBOARD.md").read_text()
    tables = markdown.count("## Reported:")
    assert markdown.count(citation) == tables and page.count(citation) == tables
    assert "n/a (reported)" not in markdown


def test_missing_metric_names_the_runs_that_could_not_compute_it(runs: Path, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "board"
    for run_dir in runs.glob("*-synthetic-*"):
        if (run_dir / "per_frame.csv").exists():
            run_dir.rename(tmp_path / run_dir.name)
    run_dir = make_run(runs, "noweights", [20.0] * 8, [math.nan] * 8)
    record = json.loads((run_dir / "run.json").read_text())
    record["scoring"]["missing"] = {"niqe": "no weights"}
    (run_dir / "run.json").write_text(json.dumps(record))
    build_report(runs, out, REPORTED)
    page = (out / "index.html").read_text()
    assert "no NIQE ↓ vs PSNR ↑ plot, NIQE could not be computed in noweights-synthetic-20260101" in page


def test_single_point_and_empty_plots_are_drawn(tmp_path: Path) -> None:
    import pandas as pd

    rows = pd.DataFrame({"psnr": [30.0, math.nan], "niqe": [4.0, 5.0]})
    plot = perception_distortion(rows, ["only", "nopsnr"], "niqe", tmp_path / "one", "t")
    assert [p[0] for p in plot.points] == ["only"] and plot.skipped == ["nopsnr"]
    assert layout_problems(plot.svg, {"only"}) == []


def test_runs_on_the_papers_dataset_and_protocol_share_axes_with_its_numbers(runs: Path,  # noqa: F811
                                                                            tmp_path: Path) -> None:
    for run_json in runs.glob("*/run.json"):
        record = json.loads(run_json.read_text())
        if record.get("status") == "complete":
            record["store"]["dataset"] = "gopro"
            record["scoring"]["protocol"] = {"name": "cpgd-paper", "version": 1, "average": "window"}
            run_json.write_text(json.dumps(record))
    out = tmp_path / "board"
    build_report(runs, out, REPORTED)
    plots = json.loads((out / "plots.json").read_text())
    measured = next(p for p in plots if p["title"].startswith("Measured: gopro") and p["y_label"] == "NIQE ↓")
    assert {p["label"] for p in measured["points"]} == {"input", "cpfp", "vrt"}
    assert len(measured["reported"]) == 9 and {"BSSTNet (paper)", "CPGD-Net (paper)"} <= {
        p["label"] for p in measured["reported"]}
    svg = (out / measured["svg"]).read_text()
    assert svg.count('id="reported-') == 9 and svg.count('id="point-') == 3
    names = {p["label"] for p in measured["points"] + measured["reported"]}
    assert layout_problems(out / measured["svg"], names | set(measured["keyed"])) == []
    assert "hollow grey squares: the paper" in (out / "index.html").read_text()
    other = next(p for p in plots if p["title"] == "Reported: paper Table I, DVD")
    assert other["reported"] == []
