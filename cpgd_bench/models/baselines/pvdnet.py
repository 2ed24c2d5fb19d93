"""PVDNet (Son et al.): ``models/trainers/trainer.py:DeblurNet`` (BIMNet + PVDNet) as in ``eval.py``.

``DeblurNet(config)`` with ``network_BIMNet='liteFlowNet'``, ``network='PVDNet'``, ``PV_ksize=5``; one
frame at a time from (previous, current, next, previous output), frames in [-1, 1] (``read_frame``
maps x -> 2x - 1), padded to multiples of 4 (the authors crop to ``refine_val``, 4 in both
``config_PVDNet.py`` and ``config_PVDNet_large.py``); the previous output of frame 0 is frame 0 itself,
the neighbours of the end frames are the end frames (index clipping). GPU only: the correlation layer of
its LiteFlowNet (``models/archs/torch_correlation.py``) is a cupy kernel.
The checkpoint is a plain state dict (``module.`` prefixes removed).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from cpgd_bench.models.baselines.adapter import UpstreamRestorer, UpstreamSpec

SPEC = UpstreamSpec(
    name="pvdnet",
    repo="https://github.com/codeslake/PVDNet",
    weights_hint="PVDNet_TOG2021.pytorch (or PVDNet_large) from the README's checkpoint links",
    module="models.trainers.trainer",
    cls="DeblurNet",
    kwargs=dict(
        config=SimpleNamespace(
            dist=False, network_BIMNet="liteFlowNet", network="PVDNet", PV_ksize=5, fix_BIMNet=True,
            save_sample=False, wi=1.0,
        )
    ),
    state_keys=("state_dict",),
    convention="recurrent",
    value_range=(-1.0, 1.0),
    pad_multiple=4,
    window=None,
    select=lambda out: out["result"],
    notes="recurrent over the whole sequence, previous output fed back",
)


def build(weights: Path | None = None, device: str | None = None, upstream: Path | None = None) -> UpstreamRestorer:
    """PVDNet from a checkout of codeslake/PVDNet and its released weights."""
    return UpstreamRestorer(SPEC, upstream, weights, device)
