"""Shift-Net (Li et al.): ``basicsr/models/archs/gshift_deblur1.py:GShiftNet`` as in ``inference/test_deblur.py``.

``GShiftNet(future_frames=2, past_frames=2)``, weights under ``params``, run in fp16; it takes
``one_len + 4`` frames (48 + 2 before + 2 after) and returns the middle 48, so windows overlap by 4
and the two frames beyond each sequence end are copies of the end frame (the authors skip those frames).
Frames are padded to multiples of 4 (the authors crop to them).
"""

from __future__ import annotations

from pathlib import Path

from cpgd_bench.models.baselines.adapter import UpstreamRestorer, UpstreamSpec

SPEC = UpstreamSpec(
    name="shift-net",
    repo="https://github.com/dasongli1/Shift-Net",
    weights_hint="net_gopro_deblur.pth or net_dvd_deblur.pth (pretrained_models/README.md links)",
    module="basicsr.models.archs.gshift_deblur1",
    cls="GShiftNet",
    kwargs=dict(future_frames=2, past_frames=2),
    state_keys=("params",),
    convention="clip",
    context=2,
    pad_multiple=4,
    window=52,
    overlap=4,
    precision="half",
    notes="fp16 on CUDA as the authors test; end frames replicated for the 2-frame context",
)


def build(weights: Path | None = None, device: str | None = None, upstream: Path | None = None) -> UpstreamRestorer:
    """Shift-Net from a checkout of dasongli1/Shift-Net and its released deblurring weights."""
    return UpstreamRestorer(SPEC, upstream, weights, device)
