"""Cost of the flow methods in the loader: ms per 720p frame, "composed" stored / derived, "composed-v1", "scaled".

One 720p sequence (24 frames, default profile) in a store with the block flows a build stores
(``flow_blocks``, "composed"); CodingPriorDataset reads the same items with each ``flow`` method derived
per item (``stored_flows=False``) and with the stored "composed" flows (``stored``), item by item in a
rotating order, in two settings: full 1280x720 frames (``mode="test"``, 7-frame windows, stride 1) and
7x256x256 training crops. Reported per setting: the median over rounds of the read time per frame and each
loader's ratio to "scaled" of the summed times (median and range over rounds; target for the default: at
most 1.20). Also the build's cost of deriving the stored flows (whole sequence, CPU seconds per frame).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.bench_codec import _clip
from benchmarks.bench_loader import _write
from cpgd_bench.build import stored_flows
from cpgd_bench.codec import extract_priors, load_profile
from cpgd_bench.data import CodingPriorDataset

CLIP_LEN, CROP, ITEMS, ROUNDS = 7, 256, 12, 5


#: Loader name -> (flow method, read the stored flows).
METHODS = {"scaled": ("scaled", False), "composed-v1": ("composed-v1", False), "composed": ("composed", False),
           "stored": ("composed", True)}  # fmt: skip


def _side_by_side(make: Any) -> dict:
    """Per-frame read times (ms) of the loaders on the same items, and their ratios to "scaled", over rounds."""
    loaders = {name: make(*how) for name, how in METHODS.items()}
    order = torch.randperm(len(loaders["scaled"]), generator=torch.Generator().manual_seed(0))[:ITEMS].tolist()
    for ds in loaders.values():
        ds[order[0]]  # open files, warm caches
    per_frame: dict[str, list[float]] = {name: [] for name in METHODS}
    ratios: dict[str, list[float]] = {name: [] for name in METHODS if name != "scaled"}
    pairs = list(loaders.items())
    for r in range(ROUNDS):
        spent = dict.fromkeys(loaders, 0.0)
        for k, i in enumerate(order):
            shift = (k + r) % len(pairs)
            for name, ds in pairs[shift:] + pairs[:shift]:
                torch.manual_seed(i)
                start = time.perf_counter()
                ds[i]
                spent[name] += time.perf_counter() - start
        for name, s in spent.items():
            per_frame[name].append(1000 * s / (ITEMS * CLIP_LEN))
        for name in ratios:
            ratios[name].append(spent[name] / spent["scaled"])
    out: dict[str, Any] = {f"{n}_ms_per_frame": round(statistics.median(v), 2) for n, v in per_frame.items()}
    for name, v in ratios.items():
        out[f"{name}_over_scaled_median"] = round(statistics.median(v), 3)
        out[f"{name}_over_scaled_range"] = [round(min(v), 3), round(max(v), 3)]
    return out


def run() -> dict:
    frames = _clip()[:24]
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        coded = extract_priors(frames, load_profile(), workdir=tmp_path, name="bench")
        store = tmp_path / "bench.zarr"
        arrays = coded.arrays()
        stored_flows(arrays["mv"][:2], arrays["mv_ref"][:2])  # load (or compile) the flow loops first
        start = time.process_time()
        stored_flows(arrays["mv"], arrays["mv_ref"])
        build_s = time.process_time() - start
        _write(store, {**arrays, "blur": frames, "sharp": frames}, coded.attrs)
        full = _side_by_side(
            lambda flow, stored: CodingPriorDataset(
                store, "train", clip_len=CLIP_LEN, mode="test", stride=1, flow=flow, stored_flows=stored
            )
        )
        crops = _side_by_side(
            lambda flow, stored: CodingPriorDataset(
                store, "train", clip_len=CLIP_LEN, crop=CROP, flow=flow, stored_flows=stored
            )
        )
    return {
        "frames": "1280x720, 24 frames, default profile",
        "build_flow_cpu_s_per_frame": round(build_s / len(frames), 3),
        "full_frame": full,
        "crop_256": crops,
        "target_slowdown": 1.20,
    }
