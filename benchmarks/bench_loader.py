"""Loader throughput: CodingPriorDataset (default and compact items) vs the previous loader and a PNG-folder loader.

Four loaders read the same 7x256x256 random clips (same crops and flips) from one 720p sequence coded with
the default profile, all in one process:

* ``previous``: ``cpgd_bench/data/dataset.py`` as of git rev :data:`PREVIOUS_REV` (the loader before issue
  16), checked out with ``git show`` into a temporary module (skipped outside a git checkout);
* ``full``: today's ``CodingPriorDataset`` with its default item (float32, full-resolution flows);
* ``compact``: ``prior_resolution="block", dtype="stored"`` (block flows, uint8 frames, int16 residual);
  its item expands to the default one on the model's device (``expand_item``), which is not timed here;
* ``compact_derived``: ``compact`` with ``stored_flows=False``: the flows derived from the clip's MVs per
  item, as before the store held them (``full`` and ``compact`` read the flows the build stored);
* ``png``: the layout the paper's authors ship (one PNG per frame for the input and the ground truth,
  one ``.npy`` per frame and prior), producing the default item.

Rounds interleave the loaders clip by clip (their order rotating), so a drift of a shared machine's speed
hits all alike; ratios are per round (summed times), median and range over the rounds, both of clips/s
(wall clock) and of CPU time per clip (this process, all its threads: what a loaded machine does not
distort). The rounds run twice: as the machine is, and with :data:`LOAD_PROCESSES` busy-looping processes
beside them (the load generator). Bytes per clip: the summed tensor sizes of one item.

Integrity cost: the compact loader with every chunk's CRC-32C verified (the default) and with
``checksums=False``, alternating clip by clip (target: at most 10% slower).
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from benchmarks.bench_codec import SPIN, _clip, load_generator
from cpgd_bench.build import stored_flows
from cpgd_bench.codec import extract_priors, load_profile
from cpgd_bench.data import CodingPriorDataset
from cpgd_bench.motion import DEFAULT_FLOW, flow_tag
from cpgd_bench.store import StoreWriter
from cpgd_bench.store.schema import FLOW_METHOD_ATTR

CLIP_LEN, CROP, ITEMS, ROUNDS, INTEGRITY_ITEMS, INTEGRITY_ROUNDS = 7, 256, 10, 4, 16, 7
PREVIOUS_REV = "23c50c1"  # the loader before issue 16
LOAD_PROCESSES = 2
PRIOR_ARRAYS = ("mv", "mv_ref", "residual")
COMPACT = {"prior_resolution": "block", "dtype": "stored"}
TARGETS = {"compact_over_previous": 2.0, "compact_over_png": 12.0}


class PngFolderDataset(CodingPriorDataset):
    """The same items, read from ``<root>/<sequence>/{decoded,sharp}/NNNNN.png`` and ``<prior>/NNNNN.npy``."""

    def __init__(self, png_root: Path, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.png_root = png_root

    def _read(
        self, sequence: str, name: str, selection: tuple[slice, ...], out: np.ndarray | None = None
    ) -> np.ndarray:
        frames = range(*selection[0].indices(10**9))
        folder = self.png_root / sequence / name
        if name in PRIOR_ARRAYS:
            data = np.stack([np.load(folder / f"{t:05d}.npy")[selection[1:]] for t in frames])
        else:
            data = np.stack([np.asarray(Image.open(folder / f"{t:05d}.png"))[selection[1:]] for t in frames])
        if out is not None:
            out[...] = data
        return data if out is None else out


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


def _write(store: Path, arrays: dict[str, np.ndarray], codec: dict) -> None:
    """One 24-frame sequence ``train/seq`` with the block flows a build stores (``stored_flows``)."""
    attrs = {"fps": 30.0, "frame_names": [f"{i:05d}" for i in range(24)], "codec": codec}
    attrs[FLOW_METHOD_ATTR] = flow_tag(DEFAULT_FLOW)
    arrays = {**arrays, **stored_flows(arrays["mv"], arrays["mv_ref"])}
    with StoreWriter(store, "bench") as writer:
        writer.write_sequence("train", "seq", arrays, attrs)


def _previous_class(workdir: Path) -> type[CodingPriorDataset] | None:
    """``CodingPriorDataset`` as of :data:`PREVIOUS_REV`, imported from a temporary module (None without git)."""
    repo = Path(__file__).resolve().parents[1]
    try:
        source = subprocess.run(["git", "-C", str(repo), "show", f"{PREVIOUS_REV}:cpgd_bench/data/dataset.py"],
                                capture_output=True, text=True, check=True).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return None
    path = workdir / "previous_dataset.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("previous_dataset", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["previous_dataset"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.CodingPriorDataset


def _nbytes(item: dict[str, Any]) -> int:
    return sum(v.nbytes for k, v in item.items() if k != "key")


def _check_same_items(loaders: dict[str, CodingPriorDataset], indices: list[int]) -> None:
    """Every loader gives the default item (the compact ones once expanded): same crops, flips, values; the
    flows equal those of ``full`` (stored) or ``compact_derived`` (derived from the clip), as the loader does."""
    for i in indices:
        items = {}
        for name, dataset in loaders.items():
            torch.manual_seed(i)
            item = dataset[i]
            items[name] = dataset.expand(item) if name.startswith("compact") else item
        for name, item in items.items():
            want = items["full" if name in ("full", "compact") else "compact_derived"]
            assert all(torch.equal(item[k], want[k]) for k in want if k != "key"), f"loader {name} differs"
            assert torch.equal(item["lq"], items["full"]["lq"]), f"loader {name} differs"


def _rounds(loaders: dict[str, CodingPriorDataset], order: list[int], rounds: int) -> list[dict[str, float]]:
    """Per round: clips/s of each loader (wall clock) and its CPU ms per clip (this process, all threads).

    The loaders are interleaved clip by clip in a rotating order. The CPU time does not count the time
    other processes take from this one, so it holds on a loaded machine where clips/s does not.
    """
    names = list(loaders)
    out = []
    for r in range(rounds):
        wall, cpu = dict.fromkeys(names, 0.0), dict.fromkeys(names, 0.0)
        for k, i in enumerate(order):
            shift = (k + r) % len(names)
            for name in names[shift:] + names[:shift]:
                torch.manual_seed(i)
                start, start_cpu = time.perf_counter(), time.process_time()
                loaders[name][i]
                wall[name] += time.perf_counter() - start
                cpu[name] += time.process_time() - start_cpu
        out.append({name: len(order) / wall[name] for name in names})
        out[-1].update({f"{name}_cpu_ms": 1e3 * cpu[name] / len(order) for name in names})
    return out


def _summary(rates: list[dict[str, float]]) -> dict[str, Any]:
    """Median and range of each loader's clips/s and CPU ms per clip, and of the per-round ratios
    (speed-ups: clips/s ratios, and CPU-time ratios previous/new)."""

    def spread(values: list[float]) -> dict[str, Any]:
        return {"median": round(statistics.median(values), 2), "range": [round(min(values), 2), round(max(values), 2)]}

    names = [name for name in rates[0] if not name.endswith("_cpu_ms")]
    out: dict[str, Any] = {f"{name}_clips_per_s": spread([r[name] for r in rates]) for name in names}
    out |= {f"{name}_cpu_ms_per_clip": spread([r[f"{name}_cpu_ms"] for r in rates]) for name in names}
    pairs = [("compact", "previous"), ("full", "previous"), ("compact", "png"), ("full", "png"), ("compact", "full"),
             ("compact", "compact_derived")]  # fmt: skip
    for a, b in pairs:
        if a in names and b in names:
            out[f"{a}_over_{b}"] = spread([r[a] / r[b] for r in rates])
            out[f"{a}_over_{b}_by_cpu_time"] = spread([r[f"{b}_cpu_ms"] / r[f"{a}_cpu_ms"] for r in rates])
    return out


def _integrity_cost(checked: CodingPriorDataset, unchecked: CodingPriorDataset) -> dict:
    """Checked/unchecked read time of the same clips (> 1: the checks cost time), per round.

    Within a round the two loaders alternate clip by clip (which one goes first alternates too), so a
    drift of the machine's speed hits both alike; each round's ratio is the ratio of the summed times.
    """
    order = torch.randperm(len(checked), generator=torch.Generator().manual_seed(0))[:INTEGRITY_ITEMS].tolist()
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
        rates.append((len(order) / spent["checked"], len(order) / spent["unchecked"]))
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

        args = (store, "train")
        kwargs = {"clip_len": CLIP_LEN, "crop": CROP}
        loaders: dict[str, CodingPriorDataset] = {}
        previous = _previous_class(tmp_path)
        if previous is not None:
            loaders["previous"] = previous(*args, **kwargs)
        loaders["full"] = CodingPriorDataset(*args, **kwargs)
        loaders["compact"] = CodingPriorDataset(*args, **kwargs, **COMPACT)
        loaders["compact_derived"] = CodingPriorDataset(*args, **kwargs, **COMPACT, stored_flows=False)
        loaders["png"] = PngFolderDataset(tmp_path / "png", *args, **kwargs, stored_flows=False)
        order = torch.randperm(len(loaders["full"]), generator=torch.Generator().manual_seed(0))[:ITEMS].tolist()
        _check_same_items(loaders, order[:3])  # also opens files and warms caches
        item_bytes = {}
        for name, dataset in loaders.items():
            torch.manual_seed(0)
            item_bytes[name] = _nbytes(dataset[order[0]])
        load_before = os.getloadavg()
        as_is = _rounds(loaders, order, ROUNDS)
        load_between = os.getloadavg()
        with load_generator(LOAD_PROCESSES, SPIN):
            loaded = _rounds(loaders, order, ROUNDS)
            load_after = os.getloadavg()
        unchecked = CodingPriorDataset(*args, **kwargs, **COMPACT, checksums=False)
        integrity = _integrity_cost(loaders["compact"], unchecked)
        used = ("decoded", "sharp", *PRIOR_ARRAYS)
        store_mb = sum(_size(store / "train" / "seq" / name) for name in used)
        png_mb = _size(tmp_path / "png")
        flows_mb = sum(_size(store / "train" / "seq" / name) for name in ("flow_blocks", "flow_blocks_valid"))
    return {
        "clips": f"{CLIP_LEN}x{CROP}x{CROP} random crops with flows and residual, from 24 frames of 1280x720",
        "previous_loader": f"git {PREVIOUS_REV}" if previous is not None else "skipped: not a git checkout",
        "rounds": f"{ROUNDS} rounds of {ITEMS} clips per loader, interleaved clip by clip",
        "targets": TARGETS,
        "mib_per_clip": {name: round(n / 2**20, 2) for name, n in item_bytes.items()},
        "as_is": {"load_avg_1min": [round(load_before[0], 1), round(load_between[0], 1)], **_summary(as_is)},
        "with_load_generator": {
            "processes": LOAD_PROCESSES,
            "load_avg_1min": round(load_after[0], 1),
            **_summary(loaded),
        },
        "cpu_count": os.cpu_count(),
        "zarr_mib_of_these_arrays": round(store_mb, 1),
        "png_folder_mib": round(png_mb, 1),
        "stored_flow_arrays_mib": round(flows_mb, 1),
        **integrity,
    }
