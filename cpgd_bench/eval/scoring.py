"""Score a method's saved frames against a store's ground truth (``sharp``) under one protocol.

Writes per-frame, per-window and per-sequence tables and a summary averaged as the protocol says, with
provenance: the protocol (name, version, fields), each metric's implementation and weights' sha256,
library versions and the code commit. A metric that cannot be built (missing weights) fails the run, or
with ``skip_unavailable`` is recorded as missing: NaN in every table, never 0. On a split where some
sequence has no ``sharp``, only the no-reference metrics are scored and ``provenance["not_scored"]`` says
in one line which metrics need the ground truth; asking for full-reference metrics only is an error.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from cpgd_bench.eval.predictions import Predictions
from cpgd_bench.metrics.base import Metric
from cpgd_bench.metrics.errors import MetricInputError, WeightsError
from cpgd_bench.metrics.protocol import COLOUR_METRICS, Protocol, average_scores, load_protocol
from cpgd_bench.metrics.registry import get_metric, metric_info
from cpgd_bench.provenance import code_version
from cpgd_bench.store import CodingPriorStore, open_store
from cpgd_bench.store.reader import read_frames

GROUND_TRUTH = "sharp"
#: Array whose shape gives frame count and size when a sequence has no ground truth.
SHAPE_ARRAY = "decoded"


def json_number(v: float) -> float | str | None:
    """A score for JSON: NaN (missing) -> null, infinities -> "inf"/"-inf"."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, float) and math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return float(v)


@dataclass
class ScoreResult:
    """Tables and summary of one scoring run; :meth:`write` puts them on disk."""

    per_frame: pd.DataFrame
    per_sequence: pd.DataFrame
    per_window: pd.DataFrame
    summary: dict[str, float]
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def metrics(self) -> list[str]:
        """Metric columns, in the order scored."""
        return [c for c in self.per_frame.columns if c not in ("sequence", "frame")]

    def write(self, out_dir: Path) -> Path:
        """Write per_frame/per_sequence ``.csv`` + ``.parquet``, per_window.csv and scores.json into ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for name, table in (("per_frame", self.per_frame), ("per_sequence", self.per_sequence)):
            table.to_csv(out / f"{name}.csv", index=False)
            table.to_parquet(out / f"{name}.parquet", index=False)
        self.per_window.to_csv(out / "per_window.csv", index=False)
        record = {"summary": {k: json_number(v) for k, v in self.summary.items()}, "provenance": self.provenance}
        (out / "scores.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        return out


def _versions(impls: list[str]) -> dict[str, str]:
    packages = {"torch", "numpy"}
    packages |= {"scikit-image"} if "ssim_skimage" in impls else set()
    packages |= {"lpips", "torchvision"} if "lpips" in impls else set()
    packages |= {"pyiqa"} if {"niqe", "musiq"} & set(impls) else set()
    out = {}
    for p in sorted(packages):
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = "not installed"
    try:
        out["cpgd-bench"] = metadata.version("cpgd-bench")
    except metadata.PackageNotFoundError:
        out["cpgd-bench"] = "unknown"
    return out


def build_metrics(
    proto: Protocol, names: list[str], weights_dir: Path | None, skip_unavailable: bool, device: str
) -> tuple[dict[str, Metric], dict[str, str]]:
    """Metric objects per column, and the reason for each column that could not be built (skip mode)."""
    built, missing = {}, {}
    for name in names:
        impl = proto.metric_impl(name)
        metric_info(impl)  # unknown names fail before any work
        try:
            built[name] = get_metric(impl, weights_dir=weights_dir, device=device)
        except WeightsError as e:
            if not skip_unavailable:
                raise
            missing[name] = str(e)
    return built, missing


def scorable_metrics(
    proto: Protocol, names: list[str], store: CodingPriorStore, split: str
) -> tuple[list[str], str | None]:
    """The metric columns ``split`` can be scored on and, if a sequence lacks ``sharp``, one line saying why not all.

    One-line MetricInputError when every requested metric needs the ground truth and some sequence has none.
    """
    sequences = store.sequences(split)
    lacking = [s for s in sequences if GROUND_TRUTH not in store.group(split, s)]
    full = [m for m in names if metric_info(proto.metric_impl(m)).full_reference]
    if not lacking or not full:
        return names, None
    which = "" if len(lacking) == len(sequences) else f" in sequence(s) {', '.join(lacking)}"
    verbs = "needs it and is" if len(full) == 1 else "need it and are"
    note = (f"store {store.path} split {split!r} has no {GROUND_TRUTH!r} (ground truth){which}: "
            f"{', '.join(full)} {verbs} not scored")
    rest = [m for m in names if m not in full]
    if not rest:
        raise MetricInputError(f"{note}; score no-reference metrics (e.g. --metrics niqe,musiq) or a store with it")
    return rest, note


def _to_tensor(frames: np.ndarray, device: str) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(frames)).to(device).permute(0, 3, 1, 2).float() / 255.0


def _score_batch(
    proto: Protocol, built: dict[str, Metric], names: list[str], pred: np.ndarray, gt: np.ndarray | None,
    device: str,
) -> dict[str, np.ndarray]:
    """Scores of one batch of uint8 (N,H,W,3) frames per metric column (NaN for columns without a metric).

    ``gt`` is None when only no-reference metrics are scored.
    """
    pred_t = proto.prepare(_to_tensor(pred, device))
    gt_t = None if gt is None else proto.prepare(_to_tensor(gt, device))
    scores = {m: np.full(len(pred), np.nan) for m in names}
    for name, metric in built.items():
        p, g = pred_t, gt_t
        if proto.metric_impl(name) in COLOUR_METRICS:
            p = proto.colour_space(pred_t)
            g = None if gt_t is None else proto.colour_space(gt_t)
        scores[name] = metric(p, g if metric.full_reference else None).numpy()
    return scores


def score_predictions(
    predictions: Path,
    store: Path,
    split: str,
    protocol: str | Protocol | None = None,
    metrics: list[str] | None = None,
    weights_dir: Path | None = None,
    skip_unavailable: bool = False,
    device: str | None = None,
    progress: bool = True,
    *,
    array: str = "pred",
    batch_size: int = 8,
) -> ScoreResult:
    """Score ``predictions`` (Zarr ``<split>/<seq>/<array>`` or PNG folders) against ``store``'s ``sharp`` frames.

    ``metrics`` defaults to the protocol's list; the column ``ssim`` uses the protocol's SSIM variant.
    ``array`` names the Zarr array to score (``decoded`` with the store itself as predictions scores the
    codec output, the no-restoration baseline). Without ``sharp`` only no-reference metrics are scored
    (see :func:`scorable_metrics`).
    """
    proto = protocol if isinstance(protocol, Protocol) else load_protocol(protocol)
    gt_store = open_store(store)
    names, not_scored = scorable_metrics(proto, list(dict.fromkeys(metrics or proto.metrics)), gt_store, split)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    built, missing = build_metrics(proto, names, weights_dir, skip_unavailable, device)
    needs_gt = any(metric_info(proto.metric_impl(m)).full_reference for m in names)
    preds = Predictions(Path(predictions), split, array)
    sequences = gt_store.sequences(split)
    absent = sorted(set(sequences) - set(preds.sequences()))
    if absent:
        raise MetricInputError(
            f"predictions {preds.path} lack sequence(s) {', '.join(absent)} of split {split!r}; write all of them"
        )
    rows, window_rows = [], []
    for seq in _progress(sequences, progress, "score"):
        group = gt_store.group(split, seq)
        gt = group[GROUND_TRUTH] if needs_gt else None
        num_frames, height, width, _ = (group[SHAPE_ARRAY] if gt is None else gt).shape
        preds.check(seq, num_frames, height, width)
        seq_windows = proto.windows(num_frames)
        if not seq_windows:
            raise MetricInputError(
                f"sequence {seq} has {num_frames} frames; protocol {proto.name!r} scores none of them "
                f"(it drops {proto.drop_edges} at each window edge)"
            )
        window_rows += [{"sequence": seq, "frame": f, "window": w.index} for w in seq_windows for f in w.frames]
        frames = [f for w in seq_windows for f in w.frames]
        for i in range(0, len(frames), batch_size):
            chunk = frames[i : i + batch_size]
            lo = chunk[0]
            gt_block = None if gt is None else read_frames(gt, slice(lo, chunk[-1] + 1))[[f - lo for f in chunk]]
            scores = _score_batch(proto, built, names, preds.read(seq, chunk), gt_block, device)
            rows += [{"sequence": seq, "frame": f, **{m: scores[m][k] for m in names}} for k, f in enumerate(chunk)]
    per_frame = pd.DataFrame(rows, columns=["sequence", "frame", *names])
    per_window, per_sequence, summary = average_scores(per_frame, pd.DataFrame(window_rows), names, proto.average)
    provenance = {
        "protocol": proto.as_dict(),
        "metrics": {
            m: {
                "implementation": proto.metric_impl(m),
                "higher_better": metric_info(proto.metric_impl(m)).higher_better,
                "weights_sha256": built[m].weights_sha256() if m in built else None,
            }
            for m in names
        },
        "missing": missing,
        "not_scored": not_scored,
        "store": {"path": str(Path(store).resolve()), "dataset": gt_store.dataset, "split": split,
                  "ground_truth": GROUND_TRUTH if needs_gt else None},
        "predictions": preds.describe(),
        "device": str(device),
        "versions": _versions([proto.metric_impl(m) for m in names]),
        "code_commit": code_version(),
    }
    return ScoreResult(per_frame, per_sequence, per_window, summary, provenance)


def _progress(items: list[str], enabled: bool, desc: str):
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="seq", disable=None)  # None: a bar only when stderr is a terminal
