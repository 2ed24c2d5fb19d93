"""Perception–distortion plots (PSNR against NIQE / MUSIQ), static SVG files via matplotlib.

One point per row that has both values; each point is an SVG group ``point-<i>`` and text stays text
(``svg.fonttype = none``), so the files can be checked and searched. ``plots.json`` lists every plot
with its axis labels and points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first
import pandas as pd  # noqa: E402

AXES = {
    "psnr": "PSNR (dB), higher is better",
    "niqe": "NIQE, lower is better",
    "musiq": "MUSIQ, higher is better",
}


@dataclass(frozen=True)
class Plot:
    """A written plot: its files, axis labels and the points drawn (label, x, y)."""

    svg: Path
    title: str
    x_label: str
    y_label: str
    points: list[tuple[str, float, float]]
    skipped: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"svg": self.svg.name, "title": self.title, "x_label": self.x_label,
                "y_label": self.y_label, "points": [{"label": p[0], "x": p[1], "y": p[2]} for p in self.points],
                "skipped": self.skipped}


def perception_distortion(rows: pd.DataFrame, labels: list[str], y: str, stem: Path, title: str) -> Plot:
    """Scatter PSNR (x) against metric ``y`` for ``rows`` (labels alongside), saved as ``stem``.svg."""
    points, skipped = [], []
    for label, (_, row) in zip(labels, rows.iterrows(), strict=True):
        px, py = float(row.get("psnr", math.nan)), float(row.get(y, math.nan))
        if math.isnan(px) or math.isnan(py):
            skipped.append(label)
        else:
            points.append((label, px, py))
    # labels and titles come from run.json: "$" is text, never mathtext (which could fail to parse)
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "cpgd-bench", "text.parse_math": False}):
        fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=100)
        for i, (label, px, py) in enumerate(points):
            ax.scatter([px], [py], s=36, gid=f"point-{i}", zorder=3)
            ax.annotate(label, (px, py), textcoords="offset points", xytext=(5, 4), fontsize=8)
        ax.set_xlabel(AXES["psnr"])
        ax.set_ylabel(AXES.get(y, y))
        ax.set_title(title, fontsize=10)
        ax.grid(True, alpha=0.3)
        if not points:
            ax.text(0.5, 0.5, "no row has both values", ha="center", va="center", transform=ax.transAxes)
        fig.tight_layout()
        svg = stem.with_suffix(".svg")
        fig.savefig(svg, metadata={"Date": None})
        plt.close(fig)
    return Plot(svg, title, AXES["psnr"], AXES.get(y, y), points, skipped)
