"""`cpgd-bench run`: a registered model over one split of a store, then scoring, into one run directory.

Each sequence is cut into temporal windows (:func:`cpgd_bench.tiling.temporal_windows` with the
model's ``window``/``overlap``); each window is read as a test-mode :class:`CodingPriorDataset` clip
(frames, MV flows, residuals: the same code training uses), restored, and its kept frames written to
``predictions.zarr``. The predictions are then scored by :func:`cpgd_bench.eval.score_predictions`
and ``run.json`` records how everything was made. A finished run is not redone unless ``force``; a run
that raised says ``"status": "failed"`` and the error. On a store without ground truth (``sharp``) only the
no-reference metrics are scored (``RunResult.note`` says so); full-reference metrics alone fail before any work.
"""

from __future__ import annotations

import datetime as _dt
import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zarr
from tqdm import tqdm

from cpgd_bench.data import CodingPriorDataset
from cpgd_bench.eval import results as rs
from cpgd_bench.models.registry import Restorer, get_model, resolve_name
from cpgd_bench.store import open_store
from cpgd_bench.tiling import temporal_windows


class _WindowReader(CodingPriorDataset):
    """A test-mode dataset that reads any window ``[start, start + length)`` of a sequence, without gt."""

    def __init__(self, store: Path, split: str) -> None:
        super().__init__(store, split, clip_len=1, crop=None, augment=False, mode="test")
        self.has_gt = False  # the runner never shows the model the ground truth

    def read(self, sequence: int, start: int, length: int) -> dict[str, Any]:
        self.clip_len, self.index = length, [(sequence, start)]
        return self[0]


@dataclass(frozen=True)
class RunResult:
    """What :func:`run_model` did: the run directory, whether it was already complete, the summary scores,
    and one line about metrics not scored (no ground truth), if any."""

    run_dir: Path
    skipped: bool
    summary: dict[str, float]
    note: str | None = None


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """(T, 3, H, W) float [0, 1] -> (T, H, W, 3) uint8, rounded."""
    return (frames.clamp(0, 1) * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def predict(model: Restorer, store: Path, split: str, out: Path, progress: bool = True) -> dict[str, Any]:
    """Restore every sequence of ``split`` into ``out`` (a Zarr v3 predictions store); returns timings.
    ``progress``: a bar of frames on stderr when it is a terminal."""
    reader = _WindowReader(store, split)
    root = zarr.open_group(out, mode="w", zarr_format=3)
    group = root.create_group(split)
    seconds = 0.0
    total = sum(seq.frames for seq in reader.sequences)
    bar = tqdm(total=total, desc=f"restore {split}", unit="frame", disable=None if progress else True)
    with bar:  # disable=None: a bar only when stderr is a terminal
        for i, seq in enumerate(reader.sequences):
            bar.set_postfix_str(seq.name)
            pred = group.create_group(seq.name).create_array(
                "pred", shape=(seq.frames, seq.height, seq.width, 3), chunks=(1, seq.height, seq.width, 3),
                dtype="uint8",
            )
            for win in temporal_windows(seq.frames, model.window, model.overlap):
                item = reader.read(i, win.start, win.end - win.start)
                clip = {k: v for k, v in item.items() if k not in ("key", "gt")}
                t0 = time.perf_counter()
                restored = model.restore(clip)
                seconds += time.perf_counter() - t0
                if restored.shape != clip["lq"].shape:
                    raise rs.RunError(
                        f"model {model.name} returned {tuple(restored.shape)} for a clip of "
                        f"{tuple(clip['lq'].shape)}; a Restorer must keep (T, 3, H, W)"
                    )
                keep = slice(win.keep_start - win.start, win.keep_end - win.start)
                pred[win.keep_start:win.keep_end] = to_uint8(restored[keep])
                bar.update(win.keep_end - win.keep_start)
    return {"frames": total, "inference_seconds": round(seconds, 3),
            "frames_per_second": round(total / seconds, 3) if seconds else None}


def run_model(
    model: str,
    store: Path,
    split: str = "test",
    weights: Path | None = None,
    upstream: Path | None = None,
    protocol: str | None = None,
    device: str | None = None,
    force: bool = False,
    runs_root: Path = Path("runs"),
    metrics: list[str] | None = None,
    metric_weights: Path | None = None,
    skip_unavailable: bool = False,
    date: _dt.date | None = None,
    progress: bool = True,
) -> RunResult:
    """Run ``model`` on ``split`` of ``store`` and score it into ``runs/<model>-<store>-<date>/``."""
    name = resolve_name(model).name  # unknown names fail here, before any work
    from cpgd_bench.eval.scoring import scorable_metrics, score_predictions
    from cpgd_bench.metrics import load_protocol

    store = Path(store)
    identity = rs.store_identity(store)  # one-line StoreError for a missing or stale store
    proto = load_protocol(protocol)
    scorable_metrics(proto, list(metrics or proto.metrics), open_store(store), split)  # no metric left: fail now
    run_dir = rs.run_dir_for(runs_root, name, store, date)
    previous = rs.read_run(run_dir)
    if previous is not None:
        rs.check_same_store(run_dir, previous, identity)
        if previous.get("status") == rs.COMPLETE and not force:
            return RunResult(run_dir, True, dict(previous.get("summary", {})))
    options: dict[str, Any] = {"weights": weights, "device": device}
    if upstream is not None:
        options["upstream"] = upstream
    restorer = get_model(name, **options)
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    begin = _dt.datetime.now(_dt.timezone.utc)
    record: dict[str, Any] = {
        "model": name, "split": split, "store": identity, "status": "running",
        "started": begin.isoformat(timespec="seconds"), "provenance": restorer.provenance(),
        "window": restorer.window, "overlap": restorer.overlap,
    }
    rs.write_run_json(run_dir, record)
    try:
        with torch.inference_mode():
            timing = predict(restorer, store, split, run_dir / rs.PREDICTIONS, progress)
        scored = score_predictions(
            run_dir / rs.PREDICTIONS, store, split, protocol=proto, metrics=metrics, weights_dir=metric_weights,
            skip_unavailable=skip_unavailable, device=device, progress=progress,
        )
        scored.write(run_dir)
    except BaseException as e:
        record.update(status="failed", error=" ".join(str(e).split()) or type(e).__name__)
        rs.write_run_json(run_dir, record)
        raise
    summary = {k: (None if v is None or np.isnan(v) else float(v)) for k, v in scored.summary.items()}
    record.update(
        status=rs.COMPLETE,
        finished=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        timing=timing,
        metrics=[c for c in scored.per_frame.columns if c not in ("sequence", "frame")],
        summary=summary,
        scoring=scored.provenance,
        code_commit=scored.provenance.get("code_commit"),
        environment={"python": platform.python_version(), "torch": torch.__version__,
                     "device": str(getattr(restorer, "device", None) or scored.provenance.get("device"))},
    )
    rs.write_run_json(run_dir, record)
    return RunResult(run_dir, False, summary, scored.provenance.get("not_scored"))
