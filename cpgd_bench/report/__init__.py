"""`cpgd-bench report`: finished runs + the paper's reported rows -> ``leaderboard/``.

Writes ``leaderboard.csv`` (every row, full precision), ``LEADERBOARD.md`` (one table per dataset and
protocol, measured apart from reported, best bold and second best underlined/italic, each measured row
with its weights sha256 and commits), and ``index.html`` with perception–distortion plots
(``pd-*.svg``, listed in ``plots.json``; a note for each plot that cannot be drawn), visual comparisons
(crops under ``compare/``, :mod:`cpgd_bench.report.compare`) and per-sequence tables.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import re
from pathlib import Path

from cpgd_bench.metrics import metric_info
from cpgd_bench.report.collect import ReportError, collect_runs, leaderboard_frame, load_reported
from cpgd_bench.report.compare import build_comparisons, comparisons_html
from cpgd_bench.report.plots import Plot, caption, perception_distortion
from cpgd_bench.report.render import groups, html_table, html_text, markdown, row_label, sequence_table
from cpgd_bench.resources import reported_rows

__all__ = ["ReportError", "build_report"]

_CSS = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}"
    "table{border-collapse:collapse;margin:0.5em 0 1.5em}"
    "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:right}"
    "td:first-child,th:first-child{text-align:left}code{font-size:11px}"
    "figure{display:inline-block;vertical-align:top;width:560px;margin:0 1em 1em 0}"
)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


#: Measured runs scored with this protocol are plotted with the paper's reported rows of their dataset.
PAPER_PROTOCOL = "cpgd-paper"


def _paper_rows(rows, reported):  # noqa: ANN001, ANN202 - leaderboard rows
    """The paper's rows to draw with a measured table: same dataset, runs scored with the paper's protocol."""
    if not (rows["kind"] == "measured").all() or not str(rows["protocol"].iloc[0]).startswith(f"{PAPER_PROTOCOL} "):
        return None
    same = reported[reported["dataset"].str.lower() == str(rows["dataset"].iloc[0]).lower()]
    return same if len(same) else None


def _why_missing(rows, y: str) -> str:  # noqa: ANN001 - leaderboard rows
    """Why no row of a table has metric ``y``."""
    name = metric_info(y).title
    if rows["kind"].iloc[0] == "reported":
        return f"the paper's table gives no {name}"
    unscored = [str(r["run"]) for _, r in rows.iterrows() if y in str(r.get("missing") or "").split(",")]
    if unscored:
        return (f"{name} could not be computed in {', '.join(unscored)} (its weights were unavailable; see "
                "scoring.missing in run.json, rerun `cpgd-bench score` with --metric-weights)")
    return f"no run has {name} values (score them: `cpgd-bench score ... --metrics psnr,{y}`)"


def _plots(frame, out: Path) -> tuple[list[Plot], list[str]]:  # noqa: ANN001 - a leaderboard DataFrame
    """The plots of every table, and one note per plot that could not be drawn, saying why."""
    plots, notes = [], []
    reported = frame[frame["kind"] == "reported"]
    for heading, rows in groups(frame):
        labels = [row_label(row) for _, row in rows.iterrows()]
        if rows["psnr"].isna().all():
            notes.append(f"{heading}: no plots, {_why_missing(rows, 'psnr')}")
            continue
        for y in ("niqe", "musiq"):
            if rows[y].isna().all():
                notes.append(f"{heading}: no {caption(y)} plot, {_why_missing(rows, y)}")
                continue
            stem = out / f"pd-{_slug(heading)}-{y}"
            plots.append(perception_distortion(rows, labels, y, stem, heading, _paper_rows(rows, reported)))
    return plots, notes


def _figure(plot: Plot) -> str:
    """A plot as an HTML figure: short caption, table heading, numbered labels' key, points left out."""
    extra = []
    if plot.reported:
        extra.append("hollow grey squares: the paper's reported numbers for this dataset (same protocol)")
    if plot.keyed:
        extra.append("labels by number: " + ", ".join(f"{k} = {v}" for k, v in plot.keyed.items()))
    if plot.unlabelled:
        extra.append("points without a label (no free space): " + ", ".join(plot.unlabelled))
    if plot.skipped:
        extra.append("not plotted (missing values): " + ", ".join(plot.skipped))
    notes = "".join(f"<br><small>{html.escape(e)}</small>" for e in extra)
    alt = f"{plot.caption}, {plot.title}"
    return (f"<figure><img src='{plot.svg.name}' alt='{html.escape(alt)}' width='560'>"
            f"<figcaption><strong>{html.escape(plot.caption)}</strong> · {html.escape(plot.title)}{notes}"
            "</figcaption></figure>")


def _html(frame, runs, plots: list[Plot], notes: list[str], visual: str, generated: str) -> str:  # noqa: ANN001
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>cpgd-bench leaderboard</title>"
             f"<style>{_CSS}</style></head><body>",
             "<h1>cpgd-bench leaderboard</h1>",
             f"<p>Generated {html.escape(generated)} by <code>cpgd-bench report</code>. Measured rows come from run "
             "directories (weights sha256, code and upstream commits listed); reported rows are the paper's "
             "numbers, shown apart. Bold: best, underlined: second best, per table and metric.</p>",
             "<h2>Perception–distortion</h2>"]
    parts += [_figure(plot) for plot in plots]
    if notes:
        parts.append("<ul class='missing'>" + "".join(f"<li>{html_text(n)}</li>" for n in notes) + "</ul>")
    parts.append(visual)
    for heading, rows in groups(frame):
        parts += [f"<h2>{html.escape(heading)}</h2>", html_table(rows)]
    parts.append("<h2>Per-sequence results of measured runs</h2>")
    for run in runs:
        parts += [f"<h3>{html_text(run.run_dir.name)}</h3>", sequence_table(run.per_sequence)]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def build_report(runs_root: Path, out: Path, reported: Path | None = None) -> list[Path]:
    """Collect the finished runs under ``runs_root`` and the reported rows into ``out``; returns files written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs = collect_runs(runs_root)
    frame = leaderboard_frame(runs, load_reported(Path(reported) if reported else reported_rows()))
    generated = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    written = [out / "leaderboard.csv", out / "LEADERBOARD.md", out / "index.html", out / "plots.json"]
    frame.to_csv(written[0], index=False)
    header = (f"# Leaderboard\n\nGenerated {generated} by `cpgd-bench report` from {len(runs)} finished runs in "
              f"`{runs_root}`. Measured rows are apart from the paper's reported rows. Per table and metric: "
              "**bold** = best, _italic_ = second best; — = not measured.")
    written[1].write_text(markdown(frame, header))
    plots, notes = _plots(frame, out)
    comparisons, left_out = build_comparisons(runs, out)
    written[2].write_text(_html(frame, runs, plots, notes, comparisons_html(comparisons, left_out), generated))
    written[3].write_text(json.dumps([p.to_json() for p in plots], indent=2) + "\n")
    crops = [out / crop.image for c in comparisons for crop in c.crops]
    return written + [p.svg for p in plots] + crops
