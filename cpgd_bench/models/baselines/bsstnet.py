"""BSSTNet (Zhang et al.): ``basicsr/archs/BSST_arch.py:BSST`` fed as ``basicsr/models/Video_BSST_model.py`` does.

``network_g: {type: BSST}`` (default arguments), weights under ``params``; the network takes
``(lqs, flows_forwards, flows_backwards)`` with bidirectional flows at 1/4 resolution computed by the
checkout's own frozen RAFT (``basicsr/archs/RAFT/raft.py:RAFT()``) on half-resolution frames, halved
again and divided by 2 (``get_bi_flows``, fp32); the network runs under fp16 autocast on CUDA
(``test_by_patch``: ``torch.cuda.amp.autocast()``). 48-frame windows (``num_frame: 48``) overlapping by 4,
256-pixel tiles overlapping by 64 (exactly 256 x 256: frames padded to multiples of 8 and at least 256).
Here flows are computed per tile.

``RAFT()`` loads ``model_zoos/raft-things.pth`` relative to the working directory: the file is resolved
here (``<checkout>/model_zoos/raft-things.pth``, else by the weights lookup of :mod:`cpgd_bench.weights`, e.g.
``$CPGD_BENCH_WEIGHTS/raft-things.pth``), RAFT is built in a folder holding just that file, and its path and
sha256 go to the run's provenance.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from cpgd_bench.models.baselines.adapter import ClipCall, UpstreamRestorer, UpstreamSpec, import_upstream

RAFT_MODULE = "basicsr.archs.RAFT.raft"


def bi_flows(raft: nn.Module, lqs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``get_bi_flows``: RAFT on half-resolution neighbours, then halved again: (n, t-1, 2, h/4, w/4) each."""
    b, t, c, h, w = lqs.shape
    first = F.interpolate(lqs[:, :-1].reshape(-1, c, h, w), scale_factor=0.5, mode="bilinear")
    second = F.interpolate(lqs[:, 1:].reshape(-1, c, h, w), scale_factor=0.5, mode="bilinear")

    def quarter(flow: torch.Tensor) -> torch.Tensor:
        return F.interpolate(flow, scale_factor=0.5, mode="bilinear").view(b, t - 1, 2, h // 4, w // 4) / 2

    return quarter(raft(second, first)), quarter(raft(first, second))


def raft_call(root: Path, files: Mapping[str, Path]) -> ClipCall:
    """The net call with fp32 flows from the checkout's RAFT (built as ``ModelBSST`` builds it: ``RAFT()``).

    ``RAFT()`` reads ``files["raft"]`` itself, from the working directory :func:`authors_cwd` prepares.
    """
    raft = import_upstream(root, RAFT_MODULE).RAFT().eval()

    def call(net: nn.Module, lqs: torch.Tensor) -> torch.Tensor:
        raft.to(lqs.device)
        forwards, backwards = bi_flows(raft, lqs.float())
        return net(lqs, forwards, backwards)

    return call


SPEC = UpstreamSpec(
    name="bsstnet",
    repo="https://github.com/huicongzhang/BSSTNet",
    weights_hint="BSST_gopro.pth / BSST_dvd.pth and raft-things.pth (README's Google Drive folder, into model_zoos/)",
    module="basicsr.archs.BSST_arch",
    cls="BSST",
    state_keys=("params",),
    convention="clip",
    pad_multiple=8,
    window=48,
    overlap=4,
    tile=256,
    tile_overlap=64,
    min_size=256,  # the sparse transformer folds fixed 64 x 64 feature maps: whole 256 x 256 tiles only
    precision="autocast",
    files={"raft": "model_zoos/raft-things.pth"},
    call=raft_call,
    extra_modules=(RAFT_MODULE,),
    notes="flows from the checkout's RAFT per tile (authors: per frame, then sliced); net under fp16 autocast on CUDA",
)


def build(weights: Path | None = None, device: str | None = None, upstream: Path | None = None) -> UpstreamRestorer:
    """BSSTNet from a checkout of huicongzhang/BSSTNet, its released weights and the RAFT weights it loads."""
    return UpstreamRestorer(SPEC, upstream, weights, device)
