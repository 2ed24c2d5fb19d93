"""STDAN (Zhang et al.): ``models/STDAN_Stack.py:STDAN_Stack`` as ``core/build.py`` builds it (its defaults).

``STDAN_Stack(in_channels=3, n_sequence=5, out_channels=3, n_resblock=3, n_feat=32)``: at commit f826116
it holds only the reconstruction net ``STDAN.STDAN`` (no flow net; ``load_flow_net`` is accepted and
unused), weights under ``deblurnet_state_dict`` with ``module.`` prefixes; 5 frames in [0, 1] give the
middle frame (4th of the 6 outputs). GPU only: needs the checkout's compiled MultiScaleDeformableAttention
op (``models/ops/setup.py``, CUDA) and ``mmflow.ops.Warp`` (mmflow on mmcv-full). Frames padded to multiples of 4.
"""

from __future__ import annotations

from pathlib import Path

from cpgd_bench.models.baselines.adapter import UpstreamRestorer, UpstreamSpec


def build(weights: Path | None = None, device: str | None = None, upstream: Path | None = None) -> UpstreamRestorer:
    """STDAN from a checkout of huicongzhang/STDAN and its released weights."""
    return UpstreamRestorer(spec(device), upstream, weights, device)


def spec(device: str | None = None) -> UpstreamSpec:
    """The STDAN spec; the network takes the device it runs on as a constructor argument."""
    import torch

    return UpstreamSpec(
        name="stdan",
        repo="https://github.com/huicongzhang/STDAN",
        weights_hint="the GoPro / DVD checkpoint (*.pth.tar) linked from the README",
        module="models.STDAN_Stack",
        cls="STDAN_Stack",
        kwargs=dict(
            in_channels=3, n_sequence=5, out_channels=3, n_resblock=3, n_feat=32, load_flow_net=False,
            load_recons_net=False, is_mask_filter=True,
            device=device or ("cuda" if torch.cuda.is_available() else "cpu"),
        ),
        state_keys=("deblurnet_state_dict",),
        convention="sliding",
        context=2,
        pad_multiple=4,
        window=24,
        overlap=4,
        select=lambda out: out[3],
        notes="5-frame sliding window, middle frame out; end frames replicated",
    )
