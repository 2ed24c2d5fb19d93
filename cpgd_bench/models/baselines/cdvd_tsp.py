"""CDVD-TSP (Pan et al.): ``code/model/cdvd_tsp.py:CDVD_TSP`` as in ``code/inference.py``.

``CDVD_TSP(in_channels=3, n_sequence=5, out_channels=3, n_resblock=3, n_feat=32, is_mask_filter=True)``,
loaded non-strictly from a plain state dict; 5 input frames in [0, 1] give the middle frame (4th of the
5 outputs); sequence ends as ``--border`` does (the first/last two frames repeated as a block); frames
padded to multiples of 4 (the authors crop to them).
"""

from __future__ import annotations

from pathlib import Path

from cpgd_bench.models.baselines.adapter import UpstreamRestorer, UpstreamSpec


def build(weights: Path | None = None, device: str | None = None, upstream: Path | None = None) -> UpstreamRestorer:
    """CDVD-TSP from a checkout of csbhr/CDVD-TSP and its released weights."""
    return UpstreamRestorer(spec(device), upstream, weights, device)


def spec(device: str | None = None) -> UpstreamSpec:
    """The CDVD-TSP spec; the network takes the device it runs on as a constructor argument."""
    import torch

    return UpstreamSpec(
        name="cdvd-tsp",
        repo="https://github.com/csbhr/CDVD-TSP",
        weights_hint="CDVD_TSP_DVD_Convergent.pt or CDVD_TSP_GOPRO.pt (pretrain_models, README links)",
        src_dir="code",
        module="model.cdvd_tsp",
        cls="CDVD_TSP",
        kwargs=dict(
            in_channels=3, n_sequence=5, out_channels=3, n_resblock=3, n_feat=32, is_mask_filter=True,
            device=device or ("cuda" if torch.cuda.is_available() else "cpu"),
        ),
        strict=False,
        convention="sliding",
        context=2,
        temporal_edge="repeat_block",
        pad_multiple=4,
        window=24,
        overlap=4,
        select=lambda out: out[3],
        notes="5-frame sliding window, middle frame out",
    )
