"""RVRT (Liang et al.): ``models/network_rvrt.py:RVRT`` with the GoPro deblurring setting of ``main_test_rvrt.py``.

Task ``005_RVRT_videodeblurring_GoPro_16frames`` (``004_..._DVD_16frames`` is the same architecture):
the whole sequence at once (``--tile 0 256 256``), 256-pixel tiles overlapping by 20, clips of 2 frames
(time padded to even), frames padded to multiples of 8; weights under ``params``.
"""

from __future__ import annotations

from pathlib import Path

from cpgd_bench.models.baselines.adapter import UpstreamRestorer, UpstreamSpec

SPEC = UpstreamSpec(
    name="rvrt",
    repo="https://github.com/JingyunLiang/RVRT",
    weights_hint="005_RVRT_videodeblurring_GoPro_16frames.pth or 004_..._DVD_16frames.pth (v0.0 release)",
    module="models.network_rvrt",
    cls="RVRT",
    kwargs=dict(
        upscale=1, clip_size=2, img_size=[2, 64, 64], window_size=[2, 8, 8], num_blocks=[1, 2, 1],
        depths=[2, 2, 2], embed_dims=[192, 192, 192], num_heads=[6, 6, 6], inputconv_groups=[1, 3, 3, 3, 3, 3],
        deformable_groups=12, attention_heads=12, attention_window=[3, 3], cpu_cache_length=100,
    ),
    state_keys=("params",),
    convention="clip",
    pad_multiple=8,
    time_multiple=2,
    window=None,
    tile=256,
    tile_overlap=20,
    notes="needs the checkout's compiled deform_attn op (models/op)",
)


def build(weights: Path | None = None, device: str | None = None, upstream: Path | None = None) -> UpstreamRestorer:
    """RVRT from a checkout of JingyunLiang/RVRT and its released deblurring weights."""
    return UpstreamRestorer(SPEC, upstream, weights, device)
