"""Loader throughput: CodingPriorDataset on the Zarr store vs a PNG-folder loader of the same 7x256x256 clips.

The PNG-folder loader is the layout the paper's authors ship: one PNG per frame for the input and the
ground truth, one ``.npy`` per frame for each prior. Both loaders return the same tensors (checked on the
first clips) from the same 720p sequence, coded with the default profile; both run in one process.

Integrity cost: the same clips read with every chunk's CRC-32C verified (the default) and with
``checksums=False`` (the opt-out), alternating clip by clip; the ratio of the summed read times per round,
median and range over the rounds (target: at most 10% slower).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmarks.bench_codec import _clip
from cpgd_bench.codec import extract_priors, load_profile
from cpgd_bench.data import CodingPriorDataset
from cpgd_bench.store import StoreWriter

CLIP_LEN, CROP, ITEMS, INTEGRITY_ROUNDS = 7, 256, 40, 7
PRIOR_ARRAYS = ("mv", "mv_ref", "residual")


class PngFolderDataset(CodingPriorDataset):
    """The same items, read from ``<root>/<sequence>/{decoded,sharp}/NNNNN.png`` and ``<prior>/NNNNN.npy``."""

    def __init__(self, png_root: Path, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.png_root = png_root

    def _read(self, sequence: str, name: str, selection: tuple[slice, ...]) -> np.ndarray:
        frames = range(*selection[0].indices(10**9))
        folder = self.png_root / sequence / name
        if name in PRIOR_ARRAYS:
            return np.stack([np.load(folder / f"{t:05d}.npy")[selection[1:]] for t in frames])
        return np.stack([np.asarray(Image.open(folder / f"{t:05d}.png"))[selection[1:]] for t in frames])


def _write_png_folder(root: Path, sequence: str, arrays: dict[str, np.ndarray]) -> None:
    for name, frames in arrays.items():
        folder = root / sequence / name
        folder.mkdir(parents=True)
        for t, frame in enumerate(frames):
            if name in PRIOR_ARRAYS:
                np.save(folder / f"{t:05d}.npy", frame)
            else:
                Image.fromarray(frame).save(folder / f"{t:05d}.png")


def _size(path: Path) -> float:
    """MiB of all files below ``path``."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def _throughput(dataset: CodingPriorDataset, items: int) -> float:
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[:items]
    torch.manual_seed(1)
    dataset[int(order[0])]  # open files, warm caches
    start = time.perf_counter()
    for i in order.tolist():
        dataset[i]
    return items / (time.perf_counter() - start)


def _write(store: Path, arrays: dict[str, np.ndarray], codec: dict) -> None:
    attrs = {"fps": 30.0, "frame_names": [f"{i:05d}" for i in range(24)], "codec": codec}
    with StoreWriter(store, "bench") as writer:
        writer.write_sequence("train", "seq", arrays, attrs)


def _integrity_cost(checked: CodingPriorDataset, unchecked: CodingPriorDataset) -> dict:
    """Checked/unchecked read time of the same clips (> 1: the checks cost time), per round.

    Within a round the two loaders alternate clip by clip (which one goes first alternates too), so a
    drift of the machine's speed hits both alike; each round's ratio is the ratio of the summed times.
    """
    order = torch.randperm(len(checked), generator=torch.Generator().manual_seed(0))[:ITEMS].tolist()
    checked[order[0]], unchecked[order[0]]  # open files, warm caches
    ratios, rates = [], []
    for r in range(INTEGRITY_ROUNDS):
        spent = {"checked": 0.0, "unchecked": 0.0}
        for k, i in enumerate(order):
            pair = [("checked", checked), ("unchecked", unchecked)]
            for name, dataset in pair if (k + r) % 2 else pair[::-1]:
                torch.manual_seed(i)
                start = time.perf_counter()
                dataset[i]
                spent[name] += time.perf_counter() - start
        ratios.append(spent["checked"] / spent["unchecked"])
        rates.append((ITEMS / spent["checked"], ITEMS / spent["unchecked"]))
    return {
        "checked_clips_per_s_range": [round(min(r[0] for r in rates), 2), round(max(r[0] for r in rates), 2)],
        "unchecked_clips_per_s_range": [round(min(r[1] for r in rates), 2), round(max(r[1] for r in rates), 2)],
        "integrity_slowdown_median": round(statistics.median(ratios), 3),
        "integrity_slowdown_range": [round(min(ratios), 3), round(max(ratios), 3)],
        "integrity_slowdown_target": 1.10,
    }


def run() -> dict:
    frames = _clip()[:24]
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        coded = extract_priors(frames, load_profile(), workdir=tmp_path, name="bench")
        arrays = {**coded.arrays(), "blur": frames, "sharp": frames}
        store = tmp_path / "bench.zarr"
        _write(store, arrays, coded.attrs)
        _write_png_folder(tmp_path / "png", "seq", {k: arrays[k] for k in ("decoded", "sharp", *PRIOR_ARRAYS)})

        zarr_ds = CodingPriorDataset(store, "train", clip_len=CLIP_LEN, crop=CROP)
        png_ds = PngFolderDataset(tmp_path / "png", store, "train", clip_len=CLIP_LEN, crop=CROP)
        for i in (0, 5):  # same seed, same crop and flips: identical items
            torch.manual_seed(i)
            a = zarr_ds[i]
            torch.manual_seed(i)
            b = png_ds[i]
            assert all(torch.equal(a[k], b[k]) for k in ("lq", "gt", "flow_prev", "residual")), "loaders differ"
        zarr_rate = _throughput(zarr_ds, ITEMS)
        png_rate = _throughput(png_ds, ITEMS)
        unchecked_ds = CodingPriorDataset(store, "train", clip_len=CLIP_LEN, crop=CROP, checksums=False)
        integrity = _integrity_cost(zarr_ds, unchecked_ds)
        used = ("decoded", "sharp", *PRIOR_ARRAYS)
        store_mb = sum(_size(store / "train" / "seq" / name) for name in used)
        png_mb = _size(tmp_path / "png")
    return {
        "clips": f"{CLIP_LEN}x{CROP}x{CROP} random crops with flows and residual, from 24 frames of 1280x720",
        "zarr_clips_per_s": round(zarr_rate, 2),
        "png_folder_clips_per_s": round(png_rate, 2),
        "zarr_over_png_speedup": round(zarr_rate / png_rate, 2),
        "target_speedup": 5.0,
        "zarr_mib_of_these_arrays": round(store_mb, 1),
        "png_folder_mib": round(png_mb, 1),
        **integrity,
    }
