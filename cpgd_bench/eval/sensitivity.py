"""How much each protocol choice moves PSNR/SSIM: score the same frames under one-field variations of a protocol."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from tqdm import tqdm

from cpgd_bench.eval.scoring import score_predictions
from cpgd_bench.metrics.protocol import Protocol, load_protocol

#: (label, field changes) relative to the base protocol; a string names a whole other protocol.
VARIATIONS: list[tuple[str, dict | str]] = [
    ("colour: Y (BT.601) instead of RGB", {"colour": "y"}),
    ("crop 4 px per border", {"crop": 4}),
    ("no uint8 rounding", {"round_uint8": False}),
    ("SSIM: MATLAB/BasicSR per channel", {"ssim": "ssim"}),
    ("SSIM: scikit-image defaults", {"ssim": "ssim_skimage"}),
    ("SSIM: CPGD/BSSTNet 3-D Gaussian", {"ssim": "ssim_bsst"}),
    ("all frames (no windows, no dropped edges)", {"window": None, "overlap": 0, "drop_edges": 0}),
    ("average: per frame", {"average": "frame"}),
    ("average: per sequence", {"average": "sequence"}),
    ("average: per window", {"average": "window"}),
]


def protocol_sensitivity(
    predictions: Path,
    store: Path,
    split: str,
    protocol: str | None = None,
    *,
    array: str = "pred",
    others: list[str] | None = None,
    device: str | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """PSNR/SSIM under ``protocol`` and each variation that changes it, with the change from the base row
    (``progress``: a bar on stderr when it is a terminal, one step per protocol scored)."""
    base = load_protocol(protocol)
    variants: list[tuple[str, Protocol]] = [(f"{base.name} (base)", base)]
    for label, change in VARIATIONS:
        variant = base.replace(**change)
        if variant != base:
            variants.append((label, variant))
    variants += [(f"protocol {name}", load_protocol(name)) for name in others or []]
    rows = []
    for label, proto in tqdm(variants, desc="sensitivity", unit="protocol", disable=None if progress else True):
        result = score_predictions(
            predictions, store, split, proto, metrics=["psnr", "ssim"], device=device, progress=False, array=array
        )
        rows.append({"variant": label, **result.summary})
    table = pd.DataFrame(rows)
    table["d_psnr"] = table["psnr"] - table["psnr"].iloc[0]
    table["d_ssim"] = table["ssim"] - table["ssim"].iloc[0]
    return table


def to_markdown(table: pd.DataFrame) -> str:
    """The sensitivity table as GitHub markdown (PSNR dB to 3 decimals, SSIM to 4)."""
    lines = ["| protocol choice | PSNR (dB) | ΔPSNR | SSIM | ΔSSIM |", "|---|---:|---:|---:|---:|"]
    for r in table.itertuples():
        d_psnr, d_ssim = round(r.d_psnr, 3) + 0.0, round(r.d_ssim, 4) + 0.0  # no "-0.000"
        lines.append(f"| {r.variant} | {r.psnr:.3f} | {d_psnr:+.3f} | {r.ssim:.4f} | {d_ssim:+.4f} |")
    return "\n".join(lines)
