"""Run directories: naming, the store a run was made from, ``run.json``, and the results tables in them.

A run directory ``runs/<model>-<store name>-<YYYYMMDD>/`` holds ``predictions.zarr``
(``<split>/<sequence>/pred`` uint8 (T, H, W, 3)), ``per_frame.{csv,parquet}``,
``per_sequence.{csv,parquet}``, ``per_window.csv``, ``scores.json`` (written by :mod:`cpgd_bench.metrics`)
and ``run.json`` (provenance; ``"status": "complete"`` once everything else is on disk).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from cpgd_bench.errors import CpgdBenchError
from cpgd_bench.store import open_store

RUN_JSON = "run.json"
PREDICTIONS = "predictions.zarr"
PER_FRAME = "per_frame.csv"
PER_SEQUENCE = "per_sequence.csv"
PER_WINDOW = "per_window.csv"
COMPLETE = "complete"


class RunError(CpgdBenchError, RuntimeError):
    """A run directory is inconsistent, from another store, or a results table lacks what it should hold."""


def store_name(store: Path) -> str:
    """``data/stores/sample.zarr`` -> ``sample``."""
    name = Path(store).name
    return name[: -len(".zarr")] if name.endswith(".zarr") else name


def run_dir_for(runs_root: Path, model: str, store: Path, date: _dt.date | None = None) -> Path:
    """``<runs_root>/<model>-<store name>-<YYYYMMDD>``."""
    day = (date or _dt.datetime.now(_dt.timezone.utc).date()).strftime("%Y%m%d")
    return Path(runs_root) / f"{model}-{store_name(store)}-{day}"


def store_identity(store: Path) -> dict[str, Any]:
    """What identifies a store: its resolved path and the dataset/creation time recorded in it."""
    opened = open_store(store)
    return {
        "path": str(Path(store).resolve()),
        "dataset": opened.dataset,
        "created": opened.attrs.get("created"),
        "format_version": opened.attrs.get("format_version"),
    }


def read_run(run_dir: Path) -> dict[str, Any] | None:
    """The run's ``run.json``, or None if there is none yet."""
    path = Path(run_dir) / RUN_JSON
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        raise RunError(f"{path} is not valid JSON; remove the run directory or rerun with --force") from None


def check_same_store(run_dir: Path, run: dict[str, Any], identity: dict[str, Any]) -> None:
    """One-line RunError if ``run`` (a run.json) was made from a store other than ``identity``."""
    made = run.get("store", {})
    if made.get("path") != identity["path"] or made.get("created") != identity["created"]:
        raise RunError(
            f"run directory {run_dir} was made from store {made.get('path')} (created {made.get('created')}), "
            f"not {identity['path']} (created {identity['created']}); use another --runs-dir or delete it"
        )


def write_run_json(run_dir: Path, record: dict[str, Any]) -> Path:
    """Write ``run.json`` atomically (temp file + rename)."""
    path = Path(run_dir) / RUN_JSON
    tmp = path.with_name(f".{RUN_JSON}.{os.getpid()}")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
    tmp.replace(path)
    return path


def load_table(run_dir: Path, name: str, metrics: list[str]) -> pd.DataFrame:
    """Results table ``name`` of a run, checked to hold every metric in ``metrics`` (one-line RunError if not)."""
    path = Path(run_dir) / name
    if not path.exists():
        raise RunError(f"{path} is missing; rerun the run with --force")
    table = pd.read_csv(path)
    absent = [m for m in metrics if m not in table.columns]
    if absent:
        raise RunError(
            f"results table {path} has no column for metric {', '.join(absent)} that run.json lists; "
            "rerun it with `cpgd-bench run ... --force`"
        )
    return table
