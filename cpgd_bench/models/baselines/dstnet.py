"""DSTNet (Pan et al.): ``basicsr/archs/deblur_arch.py:Deblur`` as in ``options/test/Deblur/test_Deblur_GOPRO.yml``.

``network_g: {type: Deblur, num_feat: 64, num_block: 15}``; the test splits sequences into 30-frame clips
without overlap (``VideoRecurrentSplitClipsTestDataset``); BasicSR checkpoints keep the weights under
``params``. The padding multiple (8) is ours: the test code crops nothing and the encoder halves twice.
"""

from __future__ import annotations

from pathlib import Path

from cpgd_bench.models.baselines.adapter import UpstreamRestorer, UpstreamSpec

SPEC = UpstreamSpec(
    name="dstnet",
    repo="https://github.com/xuboming8/DSTNet",
    weights_hint="GOPRO.pth / DVD.pth linked from the README (experiments/)",
    module="basicsr.archs.deblur_arch",
    cls="Deblur",
    kwargs=dict(num_feat=64, num_block=15),
    state_keys=("params", "params_ema"),
    convention="clip",
    pad_multiple=8,
    window=30,
    overlap=0,
    notes="30-frame clips without overlap, as the authors test",
)


def build(weights: Path | None = None, device: str | None = None, upstream: Path | None = None) -> UpstreamRestorer:
    """DSTNet from a checkout of xuboming8/DSTNet and its released weights."""
    return UpstreamRestorer(SPEC, upstream, weights, device)
