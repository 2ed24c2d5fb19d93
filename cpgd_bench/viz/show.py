"""`cpgd-bench dataset show`: per-frame pictures of a sequence's coding priors and an HTML viewer.

For frames ``a:b`` of one sequence it writes, under ``out``:

* ``layers/<frame>_<layer>.png`` at the frame's own resolution: ``decoded``, ``sharp`` (ground truth,
  when the store has it), ``flow_prev`` / ``flow_next`` (the flows to t-1 / t+1 the dataset gives models,
  :func:`cpgd_bench.data.flow.block_flows` with its default method, one colour per 4x4 block on the
  Middlebury wheel, :mod:`cpgd_bench.viz.flowviz`; black where the flow is invalid), ``blocks`` (what each
  4x4 block itself predicts from, from ``mv_ref``: intra, earlier frames only, later frames only, both) and
  ``residual`` (|luma residual|, inferno colour map, square-root scale);
* ``panels/<frame>.png``: all layers side by side with the wheel legend, block legend and colour bar;
* ``strip.png``: slice type, QP and POC of every frame of the sequence (requested frames shaded);
* ``index.html``: the viewer (frame slider, zoom, layer toggles; state in the URL hash), ``show.json``.

Only the requested frames of the frame and residual arrays are read; of the MV grids also the frame just
before and after (flows may pair neighbouring frames), and the per-frame scalars (one small chunk).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first
import numpy as np  # noqa: E402
from matplotlib.colors import PowerNorm  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from PIL import Image  # noqa: E402

from cpgd_bench.data.flow import block_flows, upsample_blocks  # noqa: E402
from cpgd_bench.store import StoreError, open_store  # noqa: E402
from cpgd_bench.store.reader import read_frames  # noqa: E402
from cpgd_bench.viz.flowviz import flow_to_rgb, wheel_image  # noqa: E402
from cpgd_bench.viz.viewer import viewer_html  # noqa: E402

#: Frames shown when ``--frames`` is not given.
DEFAULT_FRAMES = 16
#: (name, title) of every layer, in panel order; ``sharp`` only where the store has ground truth.
LAYERS = (
    ("decoded", "decoded"),
    ("sharp", "ground truth"),
    ("residual", "|residual| (luma, sqrt scale)"),
    ("flow_prev", "MV flow to t-1"),
    ("flow_next", "MV flow to t+1"),
    ("blocks", "prediction per 4x4 block"),
)
#: Colour of each block class, indexed by ``refs_earlier + 2 * refs_later`` (from the block's own ``mv_ref``).
BLOCK_CLASSES = (
    ("intra", (214, 39, 40)),
    ("earlier frames only", (31, 119, 180)),
    ("later frames only", (255, 127, 14)),
    ("both", (44, 160, 44)),
)
SLICE_TYPES = {0: "B", 1: "P", 2: "I"}
_SLICE_COLOURS = {0: "#2ca02c", 1: "#1f77b4", 2: "#d62728"}
RESIDUAL_CMAP = "inferno"
#: |residual| is drawn on a square-root scale: residuals are sparse and mostly small.
RESIDUAL_GAMMA = 0.5


@dataclass(frozen=True)
class ShowResult:
    """What :func:`show_sequence` wrote."""

    out: Path
    frames: range
    num_frames: int
    flow_radius: int
    residual_max: int
    has_sharp: bool

    def format(self) -> str:
        """One summary line."""
        truth = "with ground truth" if self.has_sharp else "no ground truth in the store"
        return (f"frames {self.frames.start}-{self.frames.stop - 1} of {self.num_frames} ({truth}; wheel radius "
                f"{self.flow_radius} px/frame, |residual| scale 0-{self.residual_max}): "
                f"open {self.out / 'index.html'}")


def parse_frames(text: str | None, num_frames: int, where: str) -> range:
    """Frames ``a:b`` (end exclusive, either end may be left out) of a sequence of ``num_frames``.

    ``None`` means the first :data:`DEFAULT_FRAMES`. A malformed or empty range is a one-line StoreError.
    """
    if text is None:
        return range(0, min(num_frames, DEFAULT_FRAMES))
    start, sep, stop = text.partition(":")
    try:
        a = int(start) if start.strip() else 0
        b = int(stop) if stop.strip() else num_frames if sep else a + 1
    except ValueError:
        raise StoreError(f"--frames {text!r}: not a:b with whole numbers (e.g. --frames 0:8)") from None
    if not 0 <= a < b <= num_frames:
        raise StoreError(f"--frames {text!r}: {where} has frames 0-{num_frames - 1}; pick a:b with 0 <= a < b <= "
                         f"{num_frames}")
    return range(a, b)


def _save_png(path: Path, image: np.ndarray) -> None:
    Image.fromarray(image).save(path, compress_level=3)


def _residual_norm(vmax: float) -> PowerNorm:
    return PowerNorm(RESIDUAL_GAMMA, 0, vmax, clip=True)


def _residual_rgb(magnitude: np.ndarray, vmax: float) -> np.ndarray:
    cmap = plt.get_cmap(RESIDUAL_CMAP)
    return (cmap(_residual_norm(vmax)(magnitude))[..., :3] * 255).astype(np.uint8)


def _strip(path: Path, poc: np.ndarray, slice_type: np.ndarray, qp: np.ndarray, shown: range, title: str) -> None:
    """Slice type (bar colour), QP (bar height) and POC (line) over the whole sequence."""
    t = np.arange(len(poc))
    fig, ax = plt.subplots(figsize=(10, 2.4), dpi=100)
    ax.axvspan(shown.start - 0.5, shown.stop - 0.5, color="#ffe9a8", zorder=0, label="shown")
    ax.bar(t, qp, color=[_SLICE_COLOURS.get(int(s), "grey") for s in slice_type], width=0.8, zorder=2)
    ax.set_xlim(-0.5, len(poc) - 0.5)
    ax.set_ylim(0, max(1, int(qp.max())) * 1.15)
    ax.set_xlabel("frame (display order)")
    ax.set_ylabel("QP")
    ax2 = ax.twinx()
    ax2.plot(t, poc, color="black", lw=1, marker=".", ms=3, label="POC")
    ax2.set_ylabel("POC")
    handles = [Patch(color=c, label=f"{SLICE_TYPES[s]} slice") for s, c in _SLICE_COLOURS.items()]
    handles += [Patch(color="#ffe9a8", label="shown"), *ax2.get_legend_handles_labels()[0]]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.08, 1.0), fontsize=8, frameon=False)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _panel(path: Path, layers: dict[str, np.ndarray], info: str, radius: int, vmax: int) -> None:
    """All layers of one frame in a 2 x 3 grid, legends in a narrow fourth column."""
    h, w = layers["decoded"].shape[:2]
    tile = 4.2
    fig = plt.figure(figsize=(3 * tile + 2.2, 2 * tile * h / w + 0.9), dpi=100)
    grid = fig.add_gridspec(2, 4, width_ratios=[1, 1, 1, 0.5], left=0.01, right=0.99, top=0.9, bottom=0.02,
                            wspace=0.16, hspace=0.14)
    for k, (name, title) in enumerate(LAYERS):
        ax = fig.add_subplot(grid[k // 3, k % 3])
        ax.set_axis_off()
        ax.set_title(title, fontsize=10)
        if name not in layers:
            ax.text(0.5, 0.5, "no ground truth\nin this store", ha="center", va="center", transform=ax.transAxes)
            continue
        ax.imshow(layers[name], interpolation="nearest" if name in ("blocks", "flow_prev", "flow_next") else None)
        if name == "residual":
            mappable = plt.cm.ScalarMappable(_residual_norm(vmax), plt.get_cmap(RESIDUAL_CMAP))
            ticks = sorted({round(vmax * f**2) for f in (0, 0.25, 0.5, 0.75, 1)})
            bar = fig.colorbar(mappable, ax=ax, fraction=0.046, pad=0.02, ticks=ticks)
            bar.ax.tick_params(labelsize=8)
    host = fig.add_subplot(grid[1, 3])
    host.set_axis_off()
    wheel = host.inset_axes((0.25, 0.15, 0.72, 0.72))
    wheel.imshow(wheel_image(), extent=(-radius, radius, radius, -radius))
    wheel.set_title(f"flow wheel\nradius {radius} px/frame", fontsize=9)
    wheel.set_xticks([-radius, 0, radius])
    wheel.set_yticks([-radius, 0, radius])
    wheel.set_xlabel("x (px, right)", fontsize=8)
    wheel.set_ylabel("y (px, down)", fontsize=8, labelpad=0)
    wheel.tick_params(labelsize=7, pad=1)
    legend = fig.add_subplot(grid[0, 3])
    legend.set_axis_off()
    handles = [Patch(color=np.array(c) / 255, label=n) for n, c in BLOCK_CLASSES]
    handles.append(Patch(color="black", label="flow: invalid"))
    legend.legend(handles=handles, loc="upper left", fontsize=8, title="blocks", title_fontsize=9, frameon=False)
    legend.text(0, 0.3, info, fontsize=9, va="top", transform=legend.transAxes)
    fig.savefig(path)
    plt.close(fig)


def show_sequence(
    store_path: str | Path, split: str, sequence: str, out: Path, frames: str | None = None
) -> ShowResult:
    """Write layer PNGs, panels, the frame-type strip and the viewer for ``frames`` (``a:b``) of one sequence."""
    store = open_store(store_path)
    group = store.group(split, sequence)
    num_frames, height, width = group["decoded"].shape[:3]
    shown = parse_frames(frames, num_frames, f"{store.path} {split}/{sequence}")
    window = slice(shown.start, shown.stop)
    decoded = read_frames(group["decoded"], window)
    sharp = read_frames(group["sharp"], window) if "sharp" in group else None
    around = slice(max(0, shown.start - 1), min(num_frames, shown.stop + 1))  # neighbours for paired flows
    mv_ref = read_frames(group["mv_ref"], around)
    flows, valid = block_flows(read_frames(group["mv"], around), mv_ref)
    inside = slice(shown.start - around.start, shown.stop - around.start)
    flows, valid, mv_ref = flows[inside], valid[inside], mv_ref[inside]
    residual = np.abs(read_frames(group["residual"], window).astype(np.float32))
    poc, slice_type, qp = (read_frames(group[name]) for name in ("poc", "slice_type", "qp"))

    speed = np.hypot(flows[:, :, 0], flows[:, :, 1])[valid]
    nonzero = residual[residual > 0]
    radius = max(1, math.ceil(np.percentile(speed, 99))) if speed.size else 1
    residual_max = max(1, math.ceil(np.percentile(nonzero, 99))) if nonzero.size else 1
    classes = np.array([c for _, c in BLOCK_CLASSES], np.uint8)

    for sub in ("layers", "panels"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    entries: list[dict[str, Any]] = []
    for i, t in enumerate(shown):
        layers = {"decoded": decoded[i], "residual": _residual_rgb(residual[i], residual_max)}
        if sharp is not None:
            layers["sharp"] = sharp[i]
        for d, name in enumerate(("flow_prev", "flow_next")):
            colours = flow_to_rgb(flows[i, d, 0], flows[i, d, 1], radius)
            colours[~valid[i, d]] = 0
            layers[name] = upsample_blocks(np.moveaxis(colours, -1, 0), height, width).transpose(1, 2, 0)
        code = (mv_ref[i] < 0).any(0).astype(np.int64) + 2 * (mv_ref[i] > 0).any(0)
        layers["blocks"] = upsample_blocks(np.moveaxis(classes[code], -1, 0), height, width).transpose(1, 2, 0)
        for name, image in layers.items():
            _save_png(out / "layers" / f"{t:05d}_{name}.png", np.ascontiguousarray(image))
        kind = SLICE_TYPES.get(int(slice_type[t]), "?")
        info = f"frame {t}\nPOC {int(poc[t])}\n{kind} slice, QP {int(qp[t])}"
        _panel(out / "panels" / f"{t:05d}.png", layers, info, radius, residual_max)
        entries.append({"frame": t, "poc": int(poc[t]), "slice": kind, "qp": int(qp[t])})

    title = f"{store.dataset} {split}/{sequence}: {num_frames} frames, {width}x{height}"
    _strip(out / "strip.png", poc, slice_type, qp, shown, title)
    _save_png(out / "wheel.png", wheel_image(257))
    bar = _residual_rgb(np.linspace(0, 1, 256)[None].repeat(12, 0) ** 2 * residual_max, residual_max)
    _save_png(out / "residual_scale.png", bar)
    meta = {
        "title": title, "store": str(store.path), "split": split, "sequence": sequence, "width": width,
        "height": height, "num_frames": num_frames, "flow_radius": radius, "residual_max": residual_max,
        "layers": [{"name": n, "title": t} for n, t in LAYERS if n != "sharp" or sharp is not None],
        "blocks": [{"name": n, "colour": "#" + "".join(f"{v:02x}" for v in c)} for n, c in BLOCK_CLASSES],
        "frames": entries,
    }
    (out / "show.json").write_text(json.dumps(meta, indent=1))
    (out / "index.html").write_text(viewer_html(meta))
    return ShowResult(out, shown, num_frames, radius, residual_max, sharp is not None)
