"""Visual comparisons on the leaderboard page: crops of the input, each measured method and the ground truth.

Per store and split of the measured runs, per sequence every run predicted, two frames are picked,
deterministically: the one where the runs' per-frame PSNR differs most (ties: the earliest), and the middle
frame. The crop (``CROP`` pixels square, or the frame if smaller) is where the outputs differ most from each
other and from the input (largest summed per-pixel spread). Crops are PNG files under ``compare/``; the page
shows them side by side with their per-frame metric values, and a before/after slider with a zoom shared by
every crop. Runs whose store or predictions are gone are named in a note instead.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from cpgd_bench.eval import results as rs
from cpgd_bench.eval.predictions import Predictions
from cpgd_bench.metrics.errors import MetricInputError
from cpgd_bench.report.collect import MeasuredRun
from cpgd_bench.report.render import fmt, title
from cpgd_bench.store import StoreError, open_store
from cpgd_bench.store.reader import read_frames

#: Edge of a comparison crop in pixels.
CROP = 160


@dataclass(frozen=True)
class Crop:
    """One image of a comparison: who made it, its file (relative to the page) and its metric values."""

    label: str
    image: str
    metrics: dict[str, float]


@dataclass(frozen=True)
class Comparison:
    """Crops of one frame: the input (the store's decoded frame, or the ``input`` run's) first, then each run,
    then the ground truth (where the store has it)."""

    heading: str
    sequence: str
    frame: int
    why: str
    box: tuple[int, int, int, int]  # y, x, height, width
    crops: list[Crop]
    after: int  # crop shown right of the slider first: the best run by PSNR on this frame


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")


def pick_frames(psnr: dict[str, dict[int, float]], num_frames: int) -> list[tuple[int, str]]:
    """(frame, why) to show: where the runs' PSNR (run -> frame -> dB) differs most, then the middle frame."""
    picks: list[tuple[int, str]] = []
    spreads = {}
    for frame in range(num_frames):
        values = [v[frame] for v in psnr.values() if frame in v and not math.isnan(v[frame])]
        if len(values) >= 2:
            spreads[frame] = max(values) - min(values)
    if spreads:
        frame = max(spreads, key=lambda f: (spreads[f], -f))
        picks.append((frame, f"methods differ most here (PSNR spread {spreads[frame]:.2f} dB)"))
    middle = num_frames // 2
    if all(f != middle for f, _ in picks):
        picks.append((middle, "fixed: the middle frame"))
    return picks


def crop_box(images: list[np.ndarray], size: int) -> tuple[int, int, int, int]:
    """(y, x, h, w) of the ``size`` square where the images (H, W, 3) differ most (summed per-pixel spread)."""
    h, w = images[0].shape[:2]
    ch, cw = min(size, h), min(size, w)
    spread = np.stack([im.astype(np.float32).mean(-1) for im in images]).std(0)
    integral = np.pad(spread.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = integral[ch:, cw:] - integral[:-ch, cw:] - integral[ch:, :-cw] + integral[:-ch, :-cw]
    y, x = np.unravel_index(int(np.argmax(sums)), sums.shape)  # first maximum: deterministic
    return int(y), int(x), ch, cw


def build_comparisons(runs: list[MeasuredRun], out: Path, size: int = CROP) -> tuple[list[Comparison], list[str]]:
    """Write comparison crops under ``out/compare``; returns the comparisons and notes on runs left out."""
    by_store: dict[tuple[str, str], list[MeasuredRun]] = defaultdict(list)
    for run in runs:
        by_store[(str(run.record.get("store", {}).get("path", "")), str(run.record.get("split", "")))].append(run)
    comparisons: list[Comparison] = []
    notes: list[str] = []
    for (store_path, split), members in sorted(by_store.items()):
        names = ", ".join(r.run_dir.name for r in members)
        try:
            store = open_store(store_path)
        except StoreError as e:
            notes.append(f"no visual comparison for {names}: {e}")
            continue
        predicted = {}
        labels = [str(r.row["method"]) for r in members]
        for run, label in zip(members, labels, strict=True):
            if labels.count(label) > 1:  # two runs of one method (other dates, other weights): name the run
                label = f"{label} ({run.run_dir.name})"
            if (run.run_dir / rs.PREDICTIONS).is_dir():
                predicted[label] = (run, Predictions(run.run_dir / rs.PREDICTIONS, split))
            else:
                notes.append(f"no visual comparison for {run.run_dir.name}: it kept no {rs.PREDICTIONS}")
        if not predicted:
            continue
        heading = f"{store.dataset} ({split} split)"
        folder = out / "compare" / _slug(f"{store.dataset}-{split}")
        folder.mkdir(parents=True, exist_ok=True)
        shared = set.intersection(*(set(p.sequences()) for _, p in predicted.values()))
        for sequence in sorted(shared & set(store.sequences(split))):
            group = store.group(split, sequence)
            tables = {label: run.per_frame[run.per_frame["sequence"] == sequence].set_index("frame")
                      for label, (run, _) in predicted.items()}
            metrics = {label: [m for m in run.record.get("metrics", []) if m in tables[label]]
                       for label, (run, _) in predicted.items()}
            psnr = {label: t["psnr"].astype(float).to_dict() for label, t in tables.items() if "psnr" in t}
            for frame, why in pick_frames(psnr, group["decoded"].shape[0]):
                try:
                    outputs = {label: pred.read(sequence, [frame])[0] for label, (_, pred) in predicted.items()}
                except (StoreError, MetricInputError) as e:
                    notes.append(f"no visual comparison of {sequence} frame {frame}: {e}")
                    continue
                decoded = read_frames(group["decoded"], frame)
                truth = read_frames(group["sharp"], frame) if "sharp" in group else None
                box = crop_box([decoded, *outputs.values()], size)
                identity = any(run.record.get("model") == "input" for run, _ in predicted.values())
                images = [] if identity else [("input (decoded)", decoded)]  # an `input` run shows it already
                images += sorted(outputs.items(), key=lambda item: predicted[item[0]][0].record.get("model") != "input")
                images += [("ground truth", truth)] if truth is not None else []
                crops = []
                for k, (label, image) in enumerate(images):
                    y, x, h, w = box
                    name = f"{_slug(sequence)}-{frame:05d}-{k:02d}.png"
                    Image.fromarray(np.ascontiguousarray(image[y:y + h, x:x + w])).save(folder / name)
                    row = tables[label].loc[frame] if label in tables and frame in tables[label].index else None
                    values = {m: float(row[m]) for m in metrics[label]} if row is not None else {}
                    crops.append(Crop(label, f"compare/{folder.name}/{name}", values))
                ranked = [k for k, c in enumerate(crops) if not math.isnan(c.metrics.get("psnr", math.nan))]
                best = max(ranked, key=lambda k: crops[k].metrics["psnr"], default=len(crops) - 1)
                comparisons.append(Comparison(heading, sequence, frame, why, box, crops, best))
    return comparisons, notes


_SCRIPT = """<script>
"use strict";
(function () {
  const p = new URLSearchParams(location.hash.slice(1));
  const zoom = document.getElementById("cmp-zoom");
  if (parseFloat(p.get("zoom")) >= 1) zoom.value = p.get("zoom");
  const boxes = Array.from(document.querySelectorAll(".cmp"));
  function sizeAll() {
    const z = parseFloat(zoom.value);
    document.getElementById("cmp-zoom-label").textContent = z + "x";
    document.querySelectorAll(".cmp img").forEach((img) => {
      img.style.width = img.dataset.w * z + "px";
      img.style.height = img.dataset.h * z + "px";
    });
    document.querySelectorAll(".cmp .stage").forEach((s) => {
      s.style.width = s.dataset.w * z + "px";
      s.style.height = s.dataset.h * z + "px";
    });
  }
  boxes.forEach((box) => {
    const crops = JSON.parse(box.dataset.crops);
    const before = box.querySelector(".before"), after = box.querySelector(".after");
    const pos = box.querySelector(".pos"), top = box.querySelector(".stage .a"), under = box.querySelector(".stage .b");
    const bar = box.querySelector(".bar");
    if (p.has("pos")) pos.value = p.get("pos");
    function show() {
      under.src = crops[+before.value];
      top.src = crops[+after.value];
      top.style.clipPath = "inset(0 0 0 " + pos.value + "%)";
      bar.style.left = pos.value + "%";
    }
    [before, after, pos].forEach((el) => el.addEventListener("input", show));
    show();
  });
  document.querySelectorAll(".cmp img").forEach((img) => img.addEventListener("error", () =>
    console.error("comparison crop missing: " + img.getAttribute("src"))));
  zoom.addEventListener("input", sizeAll);
  sizeAll();
})();
</script>"""

_CSS = (
    ".cmp{margin:0 0 2em}.cmp .stage{position:relative;overflow:hidden;margin:6px 0}"
    ".cmp .stage img{position:absolute;left:0;top:0}.cmp img{image-rendering:pixelated}"
    ".cmp .bar{position:absolute;top:0;bottom:0;width:2px;background:#fff;box-shadow:0 0 2px #000}"
    ".cmp .row{display:flex;flex-wrap:wrap;gap:8px}.cmp figure{width:auto;margin:0;font-size:12px}"
)


def _zoom(comparisons: list[Comparison]) -> int:
    """The first zoom: 2x, or 1x when a comparison has more than six crops (many methods: rows stay short)."""
    return 1 if max((len(c.crops) for c in comparisons), default=0) > 6 else 2


def _options(labels: list[str], chosen: int) -> str:
    return "".join(f"<option value='{k}'{' selected' if k == chosen else ''}>{label}</option>"
                   for k, label in enumerate(labels))


def comparisons_html(comparisons: list[Comparison], notes: list[str]) -> str:
    """The page section: a shared zoom, then per comparison a before/after slider and all crops in a row."""
    if not comparisons and not notes:
        return ""
    parts = [f"<style>{_CSS}</style>", "<h2>Visual comparisons</h2>",
             "<p>Per sequence: the frame where the methods' PSNR differs most and the middle frame; the crop is "
             "where the outputs differ most. Drag the slider: left of it the <em>before</em> image, right of it "
             "the <em>after</em> image. <label>Zoom (all crops) <input id='cmp-zoom' type='range' min='1' "
             f"max='6' step='0.5' value='{_zoom(comparisons)}'></label> <span id='cmp-zoom-label'></span></p>"]
    parts += [f"<p><small>{html.escape(n)}</small></p>" for n in notes]
    for i, c in enumerate(comparisons):
        y, x, h, w = c.box
        labels = [html.escape(crop.label) for crop in c.crops]
        parts.append(
            f"<div class='cmp' id='cmp-{i}' data-crops='{html.escape(json.dumps([cr.image for cr in c.crops]))}'>"
            f"<h3>{html.escape(c.heading)} · {html.escape(c.sequence)}, frame {c.frame}</h3>"
            f"<small>{html.escape(c.why)}; crop x {x}–{x + w - 1}, y {y}–{y + h - 1}</small><div>"
            f"before <select class='before'>{_options(labels, 0)}</select> after <select class='after'>"
            f"{_options(labels, c.after)}</select> <input class='pos' type='range' min='0' max='100' value='50'></div>"
            f"<div class='stage' data-w='{w}' data-h='{h}'><img class='b' alt='before' data-w='{w}' data-h='{h}'>"
            f"<img class='a' alt='after' data-w='{w}' data-h='{h}'><div class='bar'></div></div><div class='row'>"
        )
        for crop in c.crops:
            values = " · ".join(f"{title(m)} {fmt(m, v)}" for m, v in crop.metrics.items())
            parts.append(f"<figure><img src='{html.escape(crop.image)}' alt='{html.escape(crop.label)}' "
                         f"data-w='{w}' data-h='{h}'><figcaption>{html.escape(crop.label)}<br>{values}"
                         "</figcaption></figure>")
        parts.append("</div></div>")
    if comparisons:
        parts.append(_SCRIPT)
    return "\n".join(parts)
