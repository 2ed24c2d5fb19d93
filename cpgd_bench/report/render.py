"""Leaderboard tables as Markdown and HTML: one table per dataset and protocol, measured apart from reported.

Within a table, per metric, the best value is bold and the second best underlined (Markdown: italic);
values are shown with each metric's decimals from the metric registry, '—' where not measured. Text taken
from run.json or reported.csv is put on one line without control characters and escaped (:func:`html_text`;
:func:`md_text` also backslash-escapes Markdown punctuation), so no field can add markup or break a table.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable, Iterator

import pandas as pd

from cpgd_bench.metrics import metric_info
from cpgd_bench.report.collect import metric_columns, ranks

_MD_PUNCTUATION = re.compile(r"([\\`*_\[\]|~])")


def plain_text(value: object) -> str:
    """Any text on one line: control characters (newlines, escapes) become spaces, runs of spaces one."""
    return " ".join("".join(c if c.isprintable() else " " for c in str(value)).split())


def md_text(value: object) -> str:
    """Any text as inert Markdown: :func:`plain_text`, HTML-escaped (``<script>`` shows as text), and
    ``\\ ` * _ [ ] | ~`` backslash-escaped (no emphasis, link or cell break)."""
    return _MD_PUNCTUATION.sub(r"\\\1", html.escape(plain_text(value), quote=False))


def html_text(value: object) -> str:
    """Any text as inert HTML: :func:`plain_text`, then HTML-escaped."""
    return html.escape(plain_text(value))


def fmt(metric: str, value: object) -> str:
    """A metric value as shown in every table ('—' for missing)."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "—"
    return "—" if math.isnan(number) else f"{number:.{metric_info(metric).decimals}f}"


def title(metric: str) -> str:
    return metric_info(metric).label()


def groups(frame: pd.DataFrame) -> Iterator[tuple[str, pd.DataFrame]]:
    """(heading, rows) per table: measured per dataset/protocol/split, reported per paper table/dataset."""
    measured = frame[frame["kind"] == "measured"]
    for (dataset, protocol, split), rows in measured.groupby(["dataset", "protocol", "split"], sort=True):
        yield plain_text(f"Measured: {dataset} ({split} split), protocol {protocol}"), rows
    reported = frame[frame["kind"] == "reported"]
    for (table, dataset), rows in reported.groupby(["table", "dataset"], sort=False):
        yield plain_text(f"Reported: paper Table {table}, {dataset}"), rows


def _columns(rows: pd.DataFrame) -> list[str]:
    """Metrics some row has a value for, or that a run scored but could not compute (shown as '—')."""
    missing = {m for cell in rows.get("missing", pd.Series(dtype=str)).dropna() for m in str(cell).split(",") if m}
    return [m for m in metric_columns(rows) if rows[m].notna().any() or m in missing]


def _marks(rows: pd.DataFrame, metrics: list[str]) -> dict[str, dict[int, int]]:
    return {m: ranks([float(v) for v in rows[m].astype(float)], metric_info(m).higher_better) for m in metrics}


def _provenance(row: pd.Series) -> tuple[str, str]:
    if row["kind"] == "reported":
        return "n/a (reported)", "n/a (reported)"
    sha = str(row.get("weights_sha256") or "") or "none (no weights)"
    commit = str(row.get("code_commit") or "unknown")
    upstream = str(row.get("upstream_commit") or "")
    return sha, commit + (f" / upstream {upstream}" if upstream else "")


def row_label(row: pd.Series) -> str:
    """The method name shown for a row (with its ablation variant)."""
    variant = str(row.get("variant") or "")
    return plain_text(f"{row['method']} ({variant})" if variant else row["method"])


def shared_source(rows: pd.DataFrame) -> str | None:
    """The one citation of an all-reported table (shown once above it), None for measured or mixed sources."""
    if not (rows["kind"] == "reported").all() or rows["source"].nunique(dropna=False) != 1:
        return None
    return plain_text(rows["source"].iloc[0])


def _head(rows: pd.DataFrame, metrics: list[str]) -> list[str]:
    """Column titles: reported tables with one citation have no provenance columns (said once above)."""
    if shared_source(rows) is not None:
        return ["method", *[title(m) for m in metrics]]
    measured = (rows["kind"] == "measured").all()
    return ["method", *[title(m) for m in metrics], "weights sha256", "commit", "run" if measured else "source"]


def _body(rows: pd.DataFrame, metrics: list[str], text: Callable[[str], str],
          best: Callable[[str], str], second: Callable[[str], str], code: Callable[[str], str]) -> list[list[str]]:
    """Escaped cells of every row (Markdown and HTML differ only in ``text``/``best``/``second``/``code``)."""
    marks = _marks(rows, metrics)
    measured = (rows["kind"] == "measured").all()
    with_provenance = shared_source(rows) is None
    body = []
    for i, (_, row) in enumerate(rows.iterrows()):
        cells = [text(row_label(row))]
        for m in metrics:
            value, rank = text(fmt(m, row[m])), marks[m].get(i)
            cells.append(best(value) if rank == 1 else second(value) if rank == 2 else value)
        if with_provenance:
            sha, commit = _provenance(row)
            cells += [code(text(sha)), code(text(commit)), text(row["run"] if measured else row["source"])]
        body.append(cells)
    return body


def markdown_table(rows: pd.DataFrame) -> str:
    """One table in Markdown; a reported table's single citation comes once, above it."""
    metrics = _columns(rows)
    head = _head(rows, metrics)
    source = shared_source(rows)
    lines = [f"Source: {md_text(source)} (reported numbers: no weights or commits)\n"] if source else []
    lines += ["| " + " | ".join(md_text(h) for h in head) + " |", "|" + "---|" * len(head)]
    body = _body(rows, metrics, md_text, lambda t: f"**{t}**", lambda t: f"_{t}_", lambda t: t)
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(lines)


def markdown(frame: pd.DataFrame, header: str) -> str:
    """The whole LEADERBOARD.md (``header`` is the caller's Markdown, the rest comes from the runs: escaped)."""
    parts = [header]
    for heading, rows in groups(frame):
        parts += [f"## {md_text(heading)}", markdown_table(rows)]
    return "\n\n".join(parts) + "\n"


def html_table(rows: pd.DataFrame) -> str:
    """One table in HTML; a reported table's single citation comes once, above it."""
    metrics = _columns(rows)
    source = shared_source(rows)
    out = [f"<p class='source'>Source: {html_text(source)} (reported numbers: no weights or commits)</p>"] \
        if source else []
    out += ["<table>", "<tr>" + "".join(f"<th>{html_text(h)}</th>" for h in _head(rows, metrics)) + "</tr>"]
    body = _body(rows, metrics, html_text, lambda t: f"<strong>{t}</strong>", lambda t: f"<u>{t}</u>",
                 lambda t: f"<code>{t}</code>")  # fmt: skip
    out += ["<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>" for cells in body]
    out.append("</table>")
    return "\n".join(out)


def sequence_table(per_sequence: pd.DataFrame) -> str:
    """A run's per-sequence results as an HTML table."""
    metrics = [c for c in per_sequence.columns if c not in ("sequence", "frames")]
    head = ["sequence", "frames", *[title(m) for m in metrics]]
    out = ["<table>", "<tr>" + "".join(f"<th>{html_text(h)}</th>" for h in head) + "</tr>"]
    for _, row in per_sequence.iterrows():
        cells = [html_text(row["sequence"]), html_text(row.get("frames", ""))]
        cells += [html_text(fmt(m, row[m])) for m in metrics]
        out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)
