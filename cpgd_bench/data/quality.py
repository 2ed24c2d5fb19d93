"""How well a store's coding-prior flows describe motion: warp error vs zero motion vs OpenCV DIS optical flow.

For each sequence, direction (``prev``: frame t to t-1, ``next``: t to t+1) and pair of adjacent
decoded frames, on grey levels (BT.601 luma of the decoded RGB, 0-255):

* ``warp_prior``, ``warp_zero``, ``warp_dis``: mean absolute difference between frame t and the
  neighbour backward-warped (bilinear, :func:`cpgd_bench.data.flow.backward_warp`) to it by the
  prior's flow as :class:`~cpgd_bench.data.CodingPriorDataset` hands it for full frames (method
  ``flow``; where invalid: 0, or filled as the method's rules say), by no motion, and by DIS
  optical flow (``cv2.DISOpticalFlow``, medium preset; optional dependency
  ``opencv-python-headless``), averaged over all pixels and pairs;
* ``gain``: the fraction of DIS's gain the prior reaches, ``(zero - prior) / (zero - dis)``;
* ``epe_dis``: mean end-point error (px) of the prior against DIS on textured moving pixels (valid
  prior, DIS motion >= ``MOVING_PX``, grey gradient magnitude >= ``TEXTURE``, DIS consistent with the
  frames: its warp error there <= ``DIS_TRUSTED`` grey levels);
* ``valid``: the fraction of pixels with a valid prior flow;
* ``dup_excess``: on duplicated frame pairs (as the source recorded them in the sequence attributes,
  or found in the decoded frames by :func:`cpgd_bench.sources.realclips.frame_events`), the largest
  per-pair ``warp_prior - warp_zero``; ``cut_valid``: the largest fraction of valid prior flow on a
  pair across a scene cut (recorded or found likewise). Pairs across cuts are left out of every
  other mean.

:func:`store_quality` measures a store, :func:`write_summary` records the per-sequence summary in its
root attributes (``prior_quality``) under the store lock.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cpgd_bench.data.flow import (
    DEFAULT_FLOW,
    FLOW_METHODS,
    backward_warp,
    block_flows,
    upsample_blocks,
    upsample_flows,
)
from cpgd_bench.sources.realclips import frame_events
from cpgd_bench.store import StoreError, StoreWriter, open_store
from cpgd_bench.store.reader import read_frames

MOVING_PX = 0.5
TEXTURE = 8.0
DIS_TRUSTED = 8.0
DIRECTIONS = ("prev", "next")
COLUMNS = ("sequence", "direction", "pairs", "warp_prior", "warp_zero", "warp_dis", "gain", "epe_dis", "valid",
           "dup_excess", "cut_valid")  # fmt: skip


def _dis() -> Any:
    try:
        import cv2
    except ImportError:
        raise StoreError("dataset quality needs OpenCV: pip install opencv-python-headless") from None
    return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)


def grey(frames: np.ndarray) -> np.ndarray:
    """uint8 RGB (..., 3) -> float32 BT.601 luma (...,) in grey levels."""
    return frames.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def _warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Backward-warp a grey (H, W) image by a (2, H, W) flow."""
    return backward_warp(torch.from_numpy(image)[None, None], torch.from_numpy(flow)[None])[0, 0].numpy()


def sequence_quality(group: Any, flow: str = DEFAULT_FLOW) -> list[dict[str, Any]]:
    """One row per direction (see module doc) for a store sequence group, prior flows by method ``flow``."""
    dis = _dis()
    decoded = read_frames(group["decoded"])
    t_len, h, w = decoded.shape[:3]
    luma = grey(decoded)
    attrs = dict(group.attrs)
    source = attrs["source"] if isinstance(attrs.get("source"), dict) else {}
    cuts, dups = frame_events(decoded)
    cuts = sorted(set(cuts) | set(attrs.get("cuts", source.get("cuts", []))))
    dups = sorted(set(dups) | set(attrs.get("duplicates", source.get("duplicates", []))))
    blocks, valid_blocks = block_flows(read_frames(group["mv"]), read_frames(group["mv_ref"]), flow)
    rows = []
    for k, name in enumerate(DIRECTIONS):
        step = -1 if name == "prev" else 1
        sums = {"prior": 0.0, "zero": 0.0, "dis": 0.0, "valid": 0.0, "epe": 0.0, "epe_n": 0.0}
        pairs, dup_excess, cut_valid = 0, [], []
        for t in range(t_len):
            n = t + step
            if not 0 <= n < t_len:
                continue
            later = max(t, n)
            fl = upsample_flows(blocks[t, k], h, w, flow)
            ok = upsample_blocks(valid_blocks[t, k], h, w)
            if later in cuts:
                cut_valid.append(float(ok.mean()))
                continue
            cur, nb = luma[t], luma[n]
            e_prior = float(np.abs(_warp(nb, fl) - cur).mean())
            e_zero = float(np.abs(nb - cur).mean())
            if later in dups:
                dup_excess.append(e_prior - e_zero)
            d = np.moveaxis(dis.calc(cur.round().astype(np.uint8), nb.round().astype(np.uint8), None), -1, 0)
            warped_dis = _warp(nb, d)
            e_dis_map = np.abs(warped_dis - cur)
            gy, gx = np.gradient(cur)
            mask = (ok > 0) & (np.hypot(d[0], d[1]) >= MOVING_PX) & (np.hypot(gx, gy) >= TEXTURE)
            mask &= e_dis_map <= DIS_TRUSTED
            sums["prior"] += e_prior
            sums["zero"] += e_zero
            sums["dis"] += float(e_dis_map.mean())
            sums["valid"] += float(ok.mean())
            sums["epe"] += float(np.hypot(*(fl - d))[mask].sum())
            sums["epe_n"] += float(mask.sum())
            pairs += 1
        m = {key: sums[key] / max(pairs, 1) for key in ("prior", "zero", "dis", "valid")}
        denom = m["zero"] - m["dis"]
        rows.append({
            "direction": name,
            "pairs": pairs,
            "warp_prior": round(m["prior"], 3),
            "warp_zero": round(m["zero"], 3),
            "warp_dis": round(m["dis"], 3),
            "gain": round((m["zero"] - m["prior"]) / denom, 3) if denom > 0 else None,
            "epe_dis": round(sums["epe"] / sums["epe_n"], 3) if sums["epe_n"] else None,
            "valid": round(m["valid"], 3),
            "dup_excess": round(max(dup_excess), 3) if dup_excess else None,
            "cut_valid": round(max(cut_valid), 3) if cut_valid else None,
        })  # fmt: skip
    return rows


def store_quality(store: str | Path, split: str | None = None, flow: str = DEFAULT_FLOW) -> list[dict[str, Any]]:
    """Rows (``sequence`` = ``split/name``, then the :data:`COLUMNS`) for every sequence of ``split`` (all: None)."""
    if flow not in FLOW_METHODS:
        raise StoreError(f"unknown flow method {flow!r}; choose one of: {', '.join(FLOW_METHODS)}")
    opened = open_store(store)
    splits = [split] if split else opened.splits()
    rows = []
    for s in splits:
        for name in opened.sequences(s):
            for row in sequence_quality(opened.group(s, name), flow):
                rows.append({"sequence": f"{s}/{name}", **row})
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """A fixed-width text table of :func:`store_quality` rows."""
    cells = [list(COLUMNS)] + [["-" if r[c] is None else str(r[c]) for c in COLUMNS] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(v.rjust(wd) for v, wd in zip(row, widths, strict=True)) for row in cells)


def to_csv(rows: list[dict[str, Any]]) -> str:
    """The rows as CSV (header: :data:`COLUMNS`)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def write_summary(store: str | Path, rows: list[dict[str, Any]], flow: str) -> None:
    """Record the rows as ``prior_quality`` in the store's root attributes (under the store lock)."""
    import zarr

    dataset = open_store(store).dataset
    with StoreWriter(store, dataset, attributes_only=True):
        root = zarr.open_group(str(store), mode="r+", zarr_format=3)
        quality = dict(root.attrs.get("prior_quality", {}))
        for row in rows:
            quality.setdefault(row["sequence"], {})[row["direction"]] = {
                k: v for k, v in row.items() if k not in ("sequence", "direction")
            }
        root.attrs["prior_quality"] = {**quality, "flow": flow, "measure": "cpgd_bench.data.quality"}
