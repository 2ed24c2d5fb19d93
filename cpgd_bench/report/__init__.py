"""`cpgd-bench report`: finished runs + the paper's reported rows -> ``leaderboard/``.

Writes ``leaderboard.csv`` (every row, full precision), ``LEADERBOARD.md`` (one table per dataset and
protocol, measured apart from reported, best bold and second best underlined/italic, each measured row
with its weights sha256 and commits), and ``index.html`` with perception–distortion plots
(``pd-*.svg``, listed in ``plots.json``) and per-sequence tables.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import re
from pathlib import Path

from cpgd_bench.report.collect import ReportError, collect_runs, leaderboard_frame, load_reported
from cpgd_bench.report.plots import Plot, perception_distortion
from cpgd_bench.report.render import groups, html_table, html_text, markdown, row_label, sequence_table

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


def _plots(frame, out: Path) -> list[Plot]:  # noqa: ANN001 - a leaderboard DataFrame
    plots = []
    for heading, rows in groups(frame):
        kind = rows["kind"].iloc[0]
        labels = [row_label(row) for _, row in rows.iterrows()]
        if kind == "reported" and rows["psnr"].isna().all():
            continue  # ablation tables report no PSNR
        for y in ("niqe", "musiq"):
            if rows[y].isna().all():
                continue  # no row of this table has the metric: nothing to plot
            plots.append(perception_distortion(rows, labels, y, out / f"pd-{_slug(heading)}-{y}", heading))
    return plots


def _html(frame, runs, plots: list[Plot], generated: str) -> str:  # noqa: ANN001
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>cpgd-bench leaderboard</title>"
             f"<style>{_CSS}</style></head><body>",
             "<h1>cpgd-bench leaderboard</h1>",
             f"<p>Generated {html.escape(generated)} by <code>cpgd-bench report</code>. Measured rows come from run "
             "directories (weights sha256, code and upstream commits listed); reported rows are the paper's "
             "numbers, shown apart. Bold: best, underlined: second best, per table and metric.</p>",
             "<h2>Perception–distortion</h2>"]
    for plot in plots:
        alt = f"{plot.title}: {plot.y_label} against {plot.x_label}"
        note = f"<br><small>not plotted (missing values): {html.escape(', '.join(plot.skipped))}</small>" \
            if plot.skipped else ""
        parts.append(f"<figure><img src='{plot.svg.name}' alt='{html.escape(alt)}' width='560'>"
                     f"<figcaption>{html.escape(alt)}{note}</figcaption></figure>")
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
    frame = leaderboard_frame(runs, load_reported(Path(reported) if reported else out / "reported.csv"))
    generated = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    written = [out / "leaderboard.csv", out / "LEADERBOARD.md", out / "index.html", out / "plots.json"]
    frame.to_csv(written[0], index=False)
    header = (f"# Leaderboard\n\nGenerated {generated} by `cpgd-bench report` from {len(runs)} finished runs in "
              f"`{runs_root}`. Measured rows are apart from the paper's reported rows. Per table and metric: "
              "**bold** = best, _italic_ = second best; — = not measured.")
    written[1].write_text(markdown(frame, header))
    plots = _plots(frame, out)
    written[2].write_text(_html(frame, runs, plots, generated))
    written[3].write_text(json.dumps([p.to_json() for p in plots], indent=2) + "\n")
    return written + [p.svg for p in plots]
