"""VRT (Liang et al.): ``models/network_vrt.py:VRT`` with the GoPro deblurring configuration of ``main_test_vrt.py``.

Task ``006_VRT_videodeblurring_GoPro`` (``005_..._DVD`` has the same architecture): 18-frame clips
overlapping by 2, 192-pixel tiles overlapping by 20, inputs padded to multiples of the (6, 8, 8) window;
the checkpoint keeps the weights under ``params``.
"""

from __future__ import annotations

from pathlib import Path

from cpgd_bench.models.baselines.adapter import UpstreamRestorer, UpstreamSpec

SPEC = UpstreamSpec(
    name="vrt",
    repo="https://github.com/JingyunLiang/VRT",
    weights_hint="006_VRT_videodeblurring_GoPro.pth or 005_VRT_videodeblurring_DVD.pth from the v0.0 release",
    module="models.network_vrt",
    cls="VRT",
    kwargs=dict(
        upscale=1, img_size=[6, 192, 192], window_size=[6, 8, 8], depths=[8, 8, 8, 8, 8, 8, 8, 4, 4, 4, 4],
        indep_reconsts=[9, 10], embed_dims=[96, 96, 96, 96, 96, 96, 96, 120, 120, 120, 120],
        num_heads=[6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6], pa_frames=2, deformable_groups=16,
    ),
    state_keys=("params",),
    convention="clip",
    pad_multiple=8,
    time_multiple=6,
    window=18,
    overlap=2,
    tile=192,
    tile_overlap=20,
    notes="authors' test blends overlapping windows by averaging; here each frame comes from one window",
)


def build(weights: Path | None = None, device: str | None = None, upstream: Path | None = None) -> UpstreamRestorer:
    """VRT from a checkout of JingyunLiang/VRT and its released deblurring weights."""
    return UpstreamRestorer(SPEC, upstream, weights, device)
