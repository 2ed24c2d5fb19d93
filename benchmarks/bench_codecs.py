"""Cross-codec coding-prior comparison: VVC vs HEVC vs H.264 at matched bitrate, on sample and realclips.

Per dataset (the sample's test split and realclips) and codec, stores are built with the codec's random-access
structure (``ra``, ``hevc-ra``, ``h264-ra``) at QP 32 and, for HEVC and H.264, at QPs 5 apart until the bitrate of
VVC ``ra-qp32`` lies between two of them, and measured: bits per pixel of the bitstreams, decoded PSNR against
the encoder's input, the prior's quality as ``cpgd-bench dataset quality`` measures it (``gain``: the fraction of OpenCV
DIS's warp-error gain over zero motion that the bitstream-only flows reach; ``epe_dis``), the fraction of 4x4
blocks with motion in at least one list, and the pixels with a valid flow. Each metric is then read at the
bitrate of VVC ``ra-qp32`` on that dataset by interpolating between the two QPs whose bitrates bracket it
(linear in log bpp): "matched bitrate". Also per codec, on a 720p clip (30 frames, the codec's default
profile): the export overhead, decode with export / plain decode (``--null``, threads auto and 1, interleaved
rounds, medians).

``python -m benchmarks bench_codecs`` writes bench-results/bench_codecs.json; ``table(result)`` renders the
markdown table of docs/codec-comparison.md.
"""

from __future__ import annotations

import json
import math
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bench_codec import _clip, _time_pair
from cpgd_bench.build import build_store
from cpgd_bench.codec import dump_tool_path, encode_sequence, load_profile
from cpgd_bench.codec.profiles import CODECS
from cpgd_bench.data.quality import store_quality
from cpgd_bench.sources import get_source
from cpgd_bench.store import open_store

DATASETS = ("sample", "realclips")
QPS = (22, 27, 32, 37, 42)
QP_STEP = 5
REFERENCE = ("vvc", 32)
METRICS = ("bpp", "psnr", "gain", "epe_dis", "mv_blocks", "valid")


def _structure(codec: str) -> str:
    return "ra" if codec == "vvc" else f"{codec}-ra"


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * math.log10(255.0**2 / max(mse, 1e-12))


def measure_store(store: Path) -> dict[str, float]:
    """bpp, decoded PSNR (dB, all frames), prior quality (mean over sequences and directions), MV block share."""
    opened = open_store(store)
    bits = pixels = 0
    sq_err, n_px, mv_blocks, n_blocks = 0.0, 0, 0, 0
    for split in opened.splits():
        for name in opened.sequences(split):
            group = opened.group(split, name)
            blur, decoded = group["blur"][...], group["decoded"][...]
            bits += 8 * group["bitstream"].shape[0]
            pixels += blur.shape[0] * blur.shape[1] * blur.shape[2]
            sq_err += float(np.sum((blur.astype(np.float64) - decoded.astype(np.float64)) ** 2))
            n_px += blur.size
            moving = (group["mv_ref"][...] != 0).any(axis=1)
            mv_blocks += int(moving.sum())
            n_blocks += moving.size
    rows = [r for r in store_quality(store) if r["gain"] is not None]
    return {
        "bpp": bits / pixels,
        "psnr": 10 * math.log10(255.0**2 / max(sq_err / n_px, 1e-12)),
        "gain": float(np.mean([r["gain"] for r in rows])),
        "epe_dis": float(np.mean([r["epe_dis"] for r in rows if r["epe_dis"] is not None])),
        "mv_blocks": mv_blocks / n_blocks,
        "valid": float(np.mean([r["valid"] for r in rows])),
    }


def at_bitrate(points: list[dict[str, float]], bpp: float) -> dict[str, Any]:
    """Every metric at ``bpp``, linear in log(bpp) between the two nearest points around it (or beyond the ends)."""
    pts = sorted(points, key=lambda p: p["bpp"])
    i = next((k for k in range(1, len(pts)) if pts[k]["bpp"] >= bpp), len(pts) - 1)
    lo, hi = pts[i - 1], pts[i]
    w = (math.log(bpp) - math.log(lo["bpp"])) / (math.log(hi["bpp"]) - math.log(lo["bpp"]))
    out: dict[str, Any] = {m: lo[m] + w * (hi[m] - lo[m]) for m in METRICS}
    out["extrapolated"] = not pts[0]["bpp"] <= bpp <= pts[-1]["bpp"]
    return out


def export_overhead(codec: str, workdir: Path, repeats: int = 11) -> dict[str, dict]:
    """Decode with export / plain decode of the codec's default profile on a 720p clip (threads auto and 1): per
    thread setting the median per-round ratio of wall and of CPU time and their ranges
    (:class:`benchmarks.bench_codec.Pair`)."""
    bitstream, _ = encode_sequence(_clip(), load_profile("default", codec), workdir, f"overhead-{codec}")
    tool = str(dump_tool_path())

    def dump(*args: str) -> None:
        subprocess.run([tool, "--null", "--codec", codec, *args, str(bitstream)], check=True, capture_output=True)

    dump()
    return {f"threads_{th}": _time_pair(lambda th=th: dump("--no-export", "--threads", th),
                                        lambda th=th: dump("--threads", th), repeats).summary()
            for th in ("0", "1")}  # fmt: skip


def _sources() -> dict[str, Any]:
    """The test split of the sample (two clips) and the real clips."""
    from cpgd_bench.sources.synthetic import SAMPLE_CLIPS

    return {"sample": get_source("sample", clips=tuple(c for c in SAMPLE_CLIPS if c.split == "test")),
            "realclips": get_source("realclips")}  # fmt: skip


def run(codecs: tuple[str, ...] = tuple(CODECS), datasets: tuple[str, ...] = DATASETS) -> dict:
    """Build and measure the stores (VVC at QP 32; the others from QP 32 in steps of 5 until the bitrate of VVC
    ``ra-qp32`` is bracketed), read every codec at that bitrate, and time the export per codec."""
    result: dict[str, Any] = {"points": {}, "matched": {}, "export_overhead": {}}
    sources = _sources()
    with tempfile.TemporaryDirectory() as tmp:

        def point(dataset: str, codec: str, qp: int) -> dict[str, float]:
            store = Path(tmp) / f"{dataset}-{codec}-{qp}.zarr"
            profile = f"{_structure(codec)}-qp{qp}"
            summary = build_store(sources[dataset], store, profile=profile, progress=False, workdir=Path(tmp) / "w")
            if summary.failed:
                raise RuntimeError(f"{dataset} {profile}: {summary.failed}")
            return {"qp": qp, **measure_store(store)}

        for dataset in datasets:
            reference = point(dataset, *REFERENCE)
            points = {REFERENCE[0]: [reference]}
            for codec in (c for c in codecs if c != REFERENCE[0]):
                points[codec] = [point(dataset, codec, REFERENCE[1])]
                step = QP_STEP if points[codec][0]["bpp"] > reference["bpp"] else -QP_STEP
                qp = REFERENCE[1] + step
                while qp in QPS:
                    points[codec].append(point(dataset, codec, qp))
                    if (points[codec][-1]["bpp"] > reference["bpp"]) != (step > 0):
                        break
                    qp += step
            result["points"][dataset] = points
            result["matched"][dataset] = {
                "bpp": reference["bpp"],
                **{c: at_bitrate(p, reference["bpp"]) if len(p) > 1 else {**p[0], "extrapolated": False}
                   for c, p in points.items()},
            }  # fmt: skip
        for codec in codecs:
            result["export_overhead"][codec] = export_overhead(codec, Path(tmp))
    return result


def restoration(profiles: dict[str, str], config: str = "cpfp-ablation-mv.yaml") -> dict[str, dict[str, Any]]:
    """CPFP at demo budget per codec: one config (seed, steps, data stream) trained on the whole sample coded by
    each codec's profile, validated on its test split (PSNR of the model and of its decoded input)."""
    from cpgd_bench.resources import manifest
    from cpgd_bench.train.cpfp import train

    out: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for codec, profile in profiles.items():
            store = Path(tmp) / f"{codec}.zarr"
            summary = build_store(get_source("sample"), store, profile=profile, progress=False, workdir=Path(tmp) / "w")
            if summary.failed:
                raise RuntimeError(f"sample {profile}: {summary.failed}")
            run_dir = Path(tmp) / f"train-{codec}"
            train(manifest("train", config), store, run_dir)
            lines = (run_dir / "log.jsonl").read_text().splitlines()
            last = next(r for r in map(json.loads, reversed(lines)) if "val_psnr" in r)
            out[codec] = {"profile": profile, "bpp": measure_store(store)["bpp"], "input_psnr": last["input_psnr"],
                          "cpfp_psnr": last["val_psnr"], "gain": last["val_psnr"] - last["input_psnr"]}  # fmt: skip
    return out


def table(result: dict) -> str:
    """Markdown: per dataset and codec, the metrics at matched bitrate, and the export overhead."""
    lines = ["| data | codec | bpp | QP there | decoded PSNR (dB) | prior gain (of DIS) | EPE vs DIS (px) | "
             "blocks with MV | valid flow | export overhead, CPU (auto / 1 thread) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for dataset, matched in result["matched"].items():
        for codec, m in matched.items():
            if codec == "bpp":
                continue
            pts = sorted(result["points"][dataset][codec], key=lambda p: p["bpp"])
            qp = float(np.interp(math.log(matched["bpp"]), [math.log(p["bpp"]) for p in pts], [p["qp"] for p in pts]))
            ov = {k: f"{v['cpu_ratio']}" for k, v in result["export_overhead"].get(codec, {}).items()}
            note = " (extrap.)" if m["extrapolated"] else ""
            lines.append(
                f"| {dataset} | {CODECS[codec].title} | {matched['bpp']:.4f} | {qp:.1f}{note} "
                f"| {m['psnr']:.2f} | {m['gain']:.3f} | {m['epe_dis']:.2f} | {m['mv_blocks']:.3f} | {m['valid']:.3f} "
                f"| {ov.get('threads_0', '-')}x / {ov.get('threads_1', '-')}x |"
            )
    return "\n".join(lines)
