"""Leaderboard rows: finished runs (measured) and the paper's tables (reported), never mixed.

A measured row takes its numbers from the run's ``per_frame.csv``, averaged as the run's protocol says
(over frames, sequences, or the windows in ``per_window.csv``) by the scorer's own ``average_scores``, and
checked against ``run.json``'s summary, so the leaderboard and the per-frame tables cannot disagree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from cpgd_bench.errors import CpgdBenchError
from cpgd_bench.eval import results as rs
from cpgd_bench.metrics.protocol import average_scores, window_members

#: Display order of the metrics every table shows (others a run measured follow); titles, decimals and
#: directions come from the metric registry (``cpgd_bench.metrics.metric_info``).
METRICS = ["psnr", "ssim", "lpips", "niqe", "musiq"]
_TOLERANCE = 1e-6


class ReportError(CpgdBenchError, ValueError):
    """The runs or the reported table cannot be turned into a leaderboard; the message says which file."""


@dataclass
class MeasuredRun:
    """One finished run: its directory, run.json, results tables and leaderboard row."""

    run_dir: Path
    record: dict[str, Any]
    per_frame: pd.DataFrame
    per_sequence: pd.DataFrame
    row: dict[str, Any] = field(default_factory=dict)


def protocol_label(scoring: dict[str, Any]) -> str:
    """``<name> v<version>`` from the scorer's provenance (a dict or a plain name)."""
    proto = scoring.get("protocol", "unknown")
    if isinstance(proto, dict):
        name, version = proto.get("name", "unknown"), proto.get("version")
        return f"{name} v{version}" if version is not None else str(name)
    version = scoring.get("protocol_version")
    return f"{proto} v{version}" if version is not None else str(proto)


def _checked(run_dir: Path, metric: str, summary: float | None, recomputed: float) -> float:
    """The value from the per-frame table, after checking that run.json's summary agrees with it."""
    missing = summary is None or (isinstance(summary, float) and math.isnan(summary))
    if missing != math.isnan(recomputed) or (
        not missing and abs(float(summary) - recomputed) > _TOLERANCE * max(1.0, abs(recomputed))  # type: ignore[arg-type]
    ):
        raise ReportError(
            f"{run_dir / rs.RUN_JSON}: {metric} summary {summary} differs from {recomputed} recomputed from "
            f"{run_dir / rs.PER_FRAME}; rerun with --force"
        )
    return recomputed


def load_run(run_dir: Path) -> MeasuredRun | None:
    """A finished run as a MeasuredRun, or None if it is not complete."""
    record = rs.read_run(run_dir)
    if record is None or record.get("status") != rs.COMPLETE:
        return None
    metrics = list(record.get("metrics", []))
    per_frame = rs.load_table(run_dir, rs.PER_FRAME, metrics)
    per_sequence = rs.load_table(run_dir, rs.PER_SEQUENCE, metrics)
    summary = record.get("summary", {})
    prov = record.get("provenance", {})
    row: dict[str, Any] = {
        "kind": "measured",
        "table": "",
        "dataset": record.get("store", {}).get("dataset", ""),
        "protocol": protocol_label(record.get("scoring", {})),
        "split": record.get("split", ""),
        "method": prov.get("label") or record["model"],
        "model": record["model"],
        "variant": "",
        "frames": int(len(per_frame)),
        "weights_sha256": prov.get("weights_sha256") or "",
        "code_commit": record.get("code_commit") or "",
        "upstream_commit": prov.get("upstream_commit") or "",
        "run": run_dir.name,
        "date": record.get("finished", ""),
        "source": "measured",
        "note": prov.get("notes", ""),
        "missing": ",".join(sorted(record.get("scoring", {}).get("missing", {}))),
    }
    average = record.get("scoring", {}).get("protocol", {}).get("average", "frame")
    if (run_dir / rs.PER_WINDOW).exists():
        windows = window_members(pd.read_csv(run_dir / rs.PER_WINDOW))
    elif average == "window":
        raise ReportError(f"{run_dir}: protocol averages over windows but the run has no {rs.PER_WINDOW}; rerun it "
                          "with --force")  # fmt: skip
    else:
        windows = per_frame[["sequence", "frame"]].assign(window=0)
    recomputed = average_scores(per_frame, windows, metrics, average)[2]  # the scorer's own averaging
    for metric in metrics:
        row[metric] = _checked(run_dir, metric, summary.get(metric), recomputed[metric])
    return MeasuredRun(run_dir, record, per_frame, per_sequence, row)


def collect_runs(runs_root: Path) -> list[MeasuredRun]:
    """Every finished run under ``runs_root`` (sorted by directory name)."""
    root = Path(runs_root)
    if not root.is_dir():
        raise ReportError(f"no runs directory {root}; make runs with `cpgd-bench run --model input --store ...`")
    runs = [load_run(d) for d in sorted(root.iterdir()) if d.is_dir()]
    return [r for r in runs if r is not None]


def load_reported(path: Path) -> pd.DataFrame:
    """The paper's tables (``reported.csv``) as reported rows; a missing metric column is a one-line error."""
    if not Path(path).exists():
        raise ReportError(f"reported results {path} not found; pass --reported FILE (the paper's: "
                          "leaderboard/reported.csv)")  # fmt: skip
    table = pd.read_csv(path, dtype={"table": str, "variant": str, "flops": str}, keep_default_na=False,
                        na_values=[""])
    absent = [c for c in ["table", "dataset", "method", "source", *METRICS] if c not in table.columns]
    if absent:
        raise ReportError(f"reported results {path} have no column {', '.join(absent)}; restore the file's header")
    table = table.fillna({"variant": "", "note": "", "flops": ""})
    table.insert(0, "kind", "reported")
    return table


def leaderboard_frame(runs: list[MeasuredRun], reported: pd.DataFrame) -> pd.DataFrame:
    """All rows, measured first; one column per metric (NaN = not measured / not reported)."""
    measured = pd.DataFrame([r.row for r in runs])
    frame = pd.concat([measured, reported], ignore_index=True, sort=False)
    extra = sorted({c for r in runs for c in r.record.get("metrics", [])} - set(METRICS))
    lead = ["kind", "table", "dataset", "protocol", "split", "method", "model", "variant", *METRICS, *extra]
    rest = [c for c in frame.columns if c not in lead]
    for c in lead:
        if c not in frame.columns:
            frame[c] = pd.NA
    return frame[lead + rest]


def metric_columns(frame: pd.DataFrame) -> list[str]:
    """Metric columns present in a leaderboard frame, in display order."""
    known = [m for m in METRICS if m in frame.columns]
    static = {"kind", "table", "dataset", "protocol", "split", "method", "model", "variant", "frames", "weights_sha256",
              "code_commit", "upstream_commit", "run", "date", "source", "note", "flops", "missing"}
    return known + [c for c in frame.columns if c not in static and c not in known]


def ranks(values: list[float], better_high: bool) -> dict[int, int]:
    """Row index -> 1 (best) or 2 (second best) among the non-NaN ``values`` (ties share the rank).

    Nothing is marked when fewer than two rows have a value: a lone row is not "best" of anything.
    """
    if sum(not math.isnan(v) for v in values) < 2:
        return {}
    present = sorted({v for v in values if not math.isnan(v)}, reverse=better_high)
    marks = {}
    for i, v in enumerate(values):
        if not math.isnan(v) and v in present[:2]:
            marks[i] = present.index(v) + 1
    return marks
