"""Evaluation protocols (``manifests/protocols/<name>.yaml``): what is scored and how scores are averaged.

A protocol fixes: colour space for PSNR/SSIM (``rgb`` or ``y``: BT.601 studio-range luma as MATLAB
``rgb2ycbcr``), a border crop applied before every metric, rounding predictions to uint8 first, which SSIM
implementation the ``ssim`` column uses, which frames count (temporal windows, frames dropped at each
window edge, a frame never scored twice) and how scores are averaged (per frame, per sequence then mean,
or per window then mean over all windows). Exactly one protocol file says ``default: true``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import yaml

from cpgd_bench.metrics.errors import ProtocolError
from cpgd_bench.metrics.fidelity import rgb_to_y
from cpgd_bench.resources import manifest
from cpgd_bench.tiling import window_starts

PROTOCOL_DIR = manifest("protocols")
COLOURS = ("rgb", "y")
AVERAGES = ("frame", "sequence", "window")
SSIM_VARIANTS = ("ssim", "ssim_skimage", "ssim_bsst")
#: Metrics whose inputs follow the protocol's colour space; the others always see RGB.
COLOUR_METRICS = ("psnr", "ssim", "ssim_skimage", "ssim_bsst")


@dataclass(frozen=True)
class ScoredWindow:
    """Window ``index`` of a sequence covers frames ``[start, end)``; ``frames`` of them are scored."""

    index: int
    start: int
    end: int
    frames: tuple[int, ...]


@dataclass(frozen=True)
class Protocol:
    """One evaluation protocol; see the module docstring for the fields' meaning."""

    name: str
    version: int
    description: str = ""
    source: str = ""
    default: bool = False
    colour: str = "rgb"
    crop: int = 0
    round_uint8: bool = True
    ssim: str = "ssim"
    window: int | None = None
    overlap: int = 0
    drop_edges: int = 0
    average: str = "sequence"
    metrics: tuple[str, ...] = ("psnr", "ssim", "lpips", "niqe", "musiq")

    def __post_init__(self) -> None:
        where = f"protocol {self.name!r}"
        if self.colour not in COLOURS:
            raise ProtocolError(f"{where}: colour {self.colour!r} is not one of {COLOURS}")
        if self.average not in AVERAGES:
            raise ProtocolError(f"{where}: average {self.average!r} is not one of {AVERAGES}")
        if self.ssim not in SSIM_VARIANTS:
            raise ProtocolError(f"{where}: ssim {self.ssim!r} is not one of {SSIM_VARIANTS}")
        if self.crop < 0 or self.drop_edges < 0:
            raise ProtocolError(f"{where}: crop and drop_edges must be >= 0")
        if self.window is not None and not 0 <= self.overlap < self.window:
            raise ProtocolError(f"{where}: need 0 <= overlap < window, got {self.window=}, {self.overlap=}")

    def as_dict(self) -> dict[str, Any]:
        """All fields (for provenance records)."""
        d = dataclasses.asdict(self)
        d["metrics"] = list(self.metrics)
        return d

    def replace(self, **changes: Any) -> Protocol:
        """A copy with some fields changed (used to measure how much each choice moves the scores)."""
        return dataclasses.replace(self, **changes)

    def windows(self, num_frames: int) -> list[ScoredWindow]:
        """The scored frames of a sequence, window by window (windows without scored frames are left out).

        Windows start every ``window - overlap`` frames, the last one flush with the sequence end (as the
        runner's temporal windows). Each window scores ``[start + drop_edges, end - drop_edges)`` minus the
        frames an earlier window already scored. With ``overlap == 2 * drop_edges`` every frame but the first
        and last ``drop_edges`` of the sequence is scored exactly once (the CPGD code's 48/4/2 scheme).
        """
        length = num_frames if self.window is None else min(self.window, num_frames)
        out, scored_until = [], 0
        for start in window_starts(num_frames, length, length - self.overlap):
            lo, hi = max(start + self.drop_edges, scored_until), start + length - self.drop_edges
            if hi > lo:
                out.append(ScoredWindow(len(out), start, start + length, tuple(range(lo, hi))))
                scored_until = hi
        return out

    def prepare(self, frames: torch.Tensor) -> torch.Tensor:
        """Crop and (if the protocol says so) round float (N,3,H,W) frames in [0,1] to uint8 levels."""
        if self.crop:
            if min(frames.shape[-2:]) <= 2 * self.crop:
                raise ProtocolError(
                    f"protocol {self.name!r} crops {self.crop} px per border; frames are {tuple(frames.shape[-2:])}"
                )
            frames = frames[..., self.crop : -self.crop, self.crop : -self.crop]
        if self.round_uint8:
            frames = torch.round(frames.clamp(0, 1) * 255) / 255
        return frames

    def colour_space(self, frames: torch.Tensor) -> torch.Tensor:
        """The frames PSNR/SSIM see: RGB as is, or the BT.601 luma channel."""
        return rgb_to_y(frames) if self.colour == "y" else frames

    def metric_impl(self, metric: str) -> str:
        """Registry name computing column ``metric`` (``ssim`` maps to the protocol's SSIM variant)."""
        return self.ssim if metric == "ssim" else metric


def protocol_names() -> list[str]:
    """Names of the protocols in ``manifests/protocols``."""
    return sorted(p.stem for p in PROTOCOL_DIR.glob("*.yaml"))


@cache
def _read(path: Path) -> Protocol:
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ProtocolError(f"protocol file {path} is unreadable ({e}); restore it from git") from None
    if not isinstance(raw, dict):
        raise ProtocolError(f"protocol file {path} is not a mapping of fields")
    frames = raw.pop("frames", {}) or {}
    fields = {f.name for f in dataclasses.fields(Protocol)}
    unknown = sorted(set(raw) - fields) + sorted(set(frames) - {"window", "overlap", "drop_edges"})
    if unknown:
        raise ProtocolError(f"protocol file {path} has unknown fields {unknown}; see manifests/protocols/README")
    if raw.get("name") != path.stem:
        raise ProtocolError(f"protocol file {path} must say name: {path.stem}")
    if "metrics" in raw:
        raw["metrics"] = tuple(raw["metrics"])
    try:
        return Protocol(**raw, **frames)
    except TypeError as e:
        raise ProtocolError(f"protocol file {path}: {e}") from None


def default_protocol_name() -> str:
    """The one protocol marked ``default: true``."""
    defaults = [n for n in protocol_names() if _read(PROTOCOL_DIR / f"{n}.yaml").default]
    if len(defaults) != 1:
        raise ProtocolError(f"exactly one protocol in {PROTOCOL_DIR} must say default: true, found {defaults}")
    return defaults[0]


def load_protocol(name: str | None = None) -> Protocol:
    """Protocol ``name`` (``None``: the default one); unknown names are a one-line ProtocolError."""
    name = name or default_protocol_name()
    path = PROTOCOL_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ProtocolError(f"unknown protocol {name!r}; known: {', '.join(protocol_names())}")
    return _read(path)


def average_scores(
    per_frame: pd.DataFrame, windows: pd.DataFrame, metrics: list[str], average: str
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, float]]:
    """Per-window and per-sequence means and the summary a protocol's ``average`` asks for.

    ``per_frame`` has one row per scored (sequence, frame) with a column per metric; ``windows`` maps each
    scored (sequence, frame) to its ``window``. A NaN frame makes every mean it enters NaN.
    """
    merged = per_frame.merge(windows, on=["sequence", "frame"])
    means = {m: (m, _mean) for m in metrics}
    per_window = (
        merged.groupby(["sequence", "window"], sort=False)
        .agg(start=("frame", "min"), end=("frame", "max"), frames=("frame", "count"), **means)
        .reset_index()
    )
    per_window["end"] += 1  # scored frames are [start, end)
    base = per_window if average == "window" else merged
    per_sequence = merged.groupby("sequence", sort=False).agg(frames=("frame", "count"))
    per_sequence = per_sequence.join(base.groupby("sequence", sort=False).agg(**means)).reset_index()
    table = {"frame": per_frame, "sequence": per_sequence, "window": per_window}[average]
    return per_window, per_sequence, {m: _mean(table[m]) for m in metrics}


def window_members(per_window: pd.DataFrame) -> pd.DataFrame:
    """(sequence, frame, window) rows of a per-window table's scored ranges ``[start, end)``."""
    rows = [(w.sequence, f, w.window) for w in per_window.itertuples() for f in range(int(w.start), int(w.end))]
    return pd.DataFrame(rows, columns=["sequence", "frame", "window"])


def _mean(values: pd.Series) -> float:
    return float(values.astype(float).mean(skipna=False))
