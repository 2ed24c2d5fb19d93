"""Prior-aware augmentation of a clip: pixels and coding priors move together.

A clip is a dict of arrays laid out (T, C, H, W): ``lq``, ``gt`` (optional), ``flow_prev``,
``flow_next`` (channels x, y, in pixels), ``flow_valid`` (channel 0: prev, 1: next), ``residual``.
Maps may be at different resolutions (the dataset flips flows on the 4x4 block grid before
upsampling them) as long as each covers the same whole-block window.

* horizontal flip mirrors every map and negates flow x;
* vertical flip mirrors every map and negates flow y;
* temporal reversal reverses the frames and swaps previous/next (flows and validity).

Crops are taken by the dataset at 4-pixel-aligned origins and sizes so the 4x4 MV grid stays aligned.
"""

from __future__ import annotations

import numpy as np

Clip = dict[str, np.ndarray]
FLOWS = ("flow_prev", "flow_next")


def _flip(clip: Clip, axis: int, flow_channel: int) -> Clip:
    out = {key: np.flip(value, axis=axis) for key, value in clip.items()}
    for key in FLOWS:
        flow = out[key].copy()
        flow[:, flow_channel] *= -1.0
        out[key] = flow
    return out


def hflip(clip: Clip) -> Clip:
    """Mirror left-right; flow x changes sign."""
    return _flip(clip, axis=-1, flow_channel=0)


def vflip(clip: Clip) -> Clip:
    """Mirror top-bottom; flow y changes sign."""
    return _flip(clip, axis=-2, flow_channel=1)


def reverse(clip: Clip) -> Clip:
    """Play the clip backwards: frame order reversed, previous and next swapped."""
    out = {key: value[::-1] for key, value in clip.items()}
    out["flow_prev"], out["flow_next"] = out["flow_next"], out["flow_prev"]
    out["flow_valid"] = out["flow_valid"][:, ::-1]
    return out
