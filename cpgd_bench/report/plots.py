"""Perception–distortion plots (PSNR against NIQE / MUSIQ), static SVG files via matplotlib.

One point per row that has both values; each point is an SVG group ``point-<i>`` and text stays text
(``svg.fonttype = none``), so the files can be checked and searched. ``plots.json`` lists every plot
with its axis labels and points.

Labels never overlap each other, a point or the axes' edge: :func:`place_labels` tries positions around
each point, nearest first, and keeps the first whose box is free and inside the axes. A name that finds no
place is drawn as a number instead (the key is in ``Plot.keyed`` and the page's caption); a number that
finds none is left off and listed in ``Plot.unlabelled``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402

from cpgd_bench.metrics import metric_info  # noqa: E402
from cpgd_bench.report.render import row_label  # noqa: E402

#: Label offsets from the point (points), nearest ring first; (dx, dy) directions with their text alignment.
_RINGS = (5, 11, 19, 30)
_DIRECTIONS = ((1, 1, "left", "bottom"), (1, -1, "left", "top"), (-1, 1, "right", "bottom"),
               (-1, -1, "right", "top"), (0, 1, "center", "bottom"), (0, -1, "center", "top"),
               (1, 0, "left", "center"), (-1, 0, "right", "center"))  # fmt: skip
_FONT = 8
_MARKER = 36  # scatter size (points^2)


def caption(y: str) -> str:
    """The short caption of a plot of ``y`` against PSNR, e.g. ``NIQE ↓ vs PSNR ↑``."""
    return f"{metric_info(y).label()} vs {metric_info('psnr').label()}"


@dataclass(frozen=True)
class Plot:
    """A written plot: its files, axis labels, the points drawn (label, x, y) and how labels were placed."""

    svg: Path
    title: str
    caption: str
    x_label: str
    y_label: str
    points: list[tuple[str, float, float]]
    skipped: list[str]
    keyed: dict[str, str] = field(default_factory=dict)
    unlabelled: list[str] = field(default_factory=list)
    reported: list[tuple[str, float, float]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"svg": self.svg.name, "title": self.title, "caption": self.caption, "x_label": self.x_label,
                "y_label": self.y_label, "points": [{"label": p[0], "x": p[1], "y": p[2]} for p in self.points],
                "skipped": self.skipped, "keyed": self.keyed, "unlabelled": self.unlabelled,
                "reported": [{"label": p[0], "x": p[1], "y": p[2]} for p in self.reported]}


def _free(box: Bbox, taken: list[Bbox], inside: Bbox) -> bool:
    within = inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0 and box.y1 <= inside.y1
    return within and not any(box.overlaps(t) for t in taken)


def place_labels(
    ax: Axes, points: list[tuple[str, float, float]], colours: list[Any]
) -> tuple[dict[str, str], list[str]]:
    """Annotate each point with its label, in the point's colour (darkened), where the label's box is free.

    Returns the key of labels drawn as numbers and the labels left off.

    Call with the axes' final position and limits: boxes are measured in display coordinates.
    """
    fig = ax.figure
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    inside = ax.get_window_extent(renderer)
    radius = math.sqrt(_MARKER) / 2 * fig.dpi / 72 + 1
    taken = []
    for _, px, py in points:
        cx, cy = ax.transData.transform((px, py))
        taken.append(Bbox.from_extents(cx - radius, cy - radius, cx + radius, cy + radius))
    keyed: dict[str, str] = {}
    unlabelled: list[str] = []

    def put(text: str, px: float, py: float, colour: Any) -> bool:
        for ring in _RINGS:
            for dx, dy, ha, va in _DIRECTIONS:
                note = ax.annotate(text, (px, py), textcoords="offset points", xytext=(dx * ring, dy * ring),
                                   ha=ha, va=va, fontsize=_FONT, color=[v * 0.7 for v in colour[:3]])
                box = note.get_window_extent(renderer).padded(1)
                if _free(box, taken, inside):
                    taken.append(box)
                    if ring > _RINGS[0]:  # a detached label: a thin leader line from the point
                        end = ax.transData.transform((px, py)) + np.array([dx, dy]) * (ring - 2) * fig.dpi / 72
                        ax.add_line(Line2D([px, ax.transData.inverted().transform(end)[0]],
                                           [py, ax.transData.inverted().transform(end)[1]],
                                           lw=0.5, color=colour, alpha=0.7, zorder=2))
                    return True
                note.remove()
        return False

    for (label, px, py), colour in sorted(zip(points, colours, strict=True), key=lambda p: (p[0][1], p[0][2])):
        if put(label, px, py, colour):
            continue
        number = str(len(keyed) + 1)
        if put(number, px, py, colour):
            keyed[number] = label
        else:
            unlabelled.append(label)
    return keyed, unlabelled


def _points(rows: pd.DataFrame, labels: list[str], y: str) -> tuple[list[tuple[str, float, float]], list[str]]:
    """(label, PSNR, y) of the rows that have both values, and the labels of those that do not."""
    points, skipped = [], []
    for label, (_, row) in zip(labels, rows.iterrows(), strict=True):
        px, py = float(row.get("psnr", math.nan)), float(row.get(y, math.nan))
        if math.isnan(px) or math.isnan(py):
            skipped.append(label)
        else:
            points.append((label, px, py))
    return points, skipped


def perception_distortion(rows: pd.DataFrame, labels: list[str], y: str, stem: Path, title: str,
                          reported: pd.DataFrame | None = None) -> Plot:
    """Scatter PSNR (x) against metric ``y`` for ``rows`` (labels placed without overlap), saved as ``stem``.svg.

    ``reported``: the paper's rows for the same dataset and protocol, drawn on the same axes as hollow grey
    squares labelled "<method> (paper)" (``Plot.reported``).
    """
    points, skipped = _points(rows, labels, y)
    extra: list[tuple[str, float, float]] = []
    if reported is not None:
        extra, _ = _points(reported, [f"{row_label(r)} (paper)" for _, r in reported.iterrows()], y)
    x_label, y_label = metric_info("psnr").label(unit=True), metric_info(y).label(unit=True)
    # labels and titles come from run.json: "$" is text, never mathtext (which could fail to parse)
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "cpgd-bench", "text.parse_math": False}):
        fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=100)
        fig.subplots_adjust(left=0.11, right=0.97, bottom=0.12, top=0.9)
        colours = [ax.scatter([px], [py], s=_MARKER, gid=f"point-{i}", zorder=3).get_facecolor()[0]
                   for i, (_, px, py) in enumerate(points)]
        for i, (_, px, py) in enumerate(extra):
            ax.scatter([px], [py], s=_MARKER, marker="s", facecolors="none", edgecolors="0.45", gid=f"reported-{i}",
                       zorder=3)
        ax.set_xlabel(x_label)
        ax.set_ylabel(y_label)
        ax.set_title(title, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.margins(0.18, 0.15)  # room for labels at the edges
        if not points:
            ax.text(0.5, 0.5, "no row has both values", ha="center", va="center", transform=ax.transAxes)
        ax.autoscale_view()
        ax.set_autoscale_on(False)  # leader lines must not move the limits the labels were placed for
        keyed, unlabelled = place_labels(ax, points + extra, colours + [(0.45, 0.45, 0.45, 1.0)] * len(extra))
        svg = stem.with_suffix(".svg")
        fig.savefig(svg, metadata={"Date": None})
        plt.close(fig)
    return Plot(svg, title, caption(y), x_label, y_label, points, skipped, keyed, unlabelled, extra)
