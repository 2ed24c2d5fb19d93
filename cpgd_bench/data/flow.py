"""Motion vectors -> dense per-pixel flows to the previous and next frame, and backward warping.

Codec convention (store schema): the 4x4 block at p in frame t, list l, with ``mv_ref`` d != 0 is
predicted from frame t + d at p + mv / 16. Assuming constant motion over the reference distance,
the flow to the adjacent frame in the same direction is ``mv / 16 / |d|``:

* ``flow_prev`` (to t - 1) uses the list with d < 0 and the smallest |d|;
* ``flow_next`` (to t + 1) uses the list with d > 0 and the smallest |d|;
* ties go to list 0; a direction with no such list is invalid (intra blocks: both invalid).

Flows are in pixels, channels (x, y), in ``grid_sample`` direction: pixel p of frame t is found at
p + flow(p) in the neighbour, so ``backward_warp(neighbour, flow)`` aligns the neighbour to frame t.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

MV_UNIT = 16  # motion vectors are stored in 1/16 pel


def block_flows(mv: np.ndarray, mv_ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-block flows to the previous/next frame.

    Args:
        mv: int16 (T, 2, h4, w4, 2), 1/16 pel, lists 0 and 1.
        mv_ref: int16 (T, 2, h4, w4), reference POC distance, 0 = list unused.

    Returns:
        flows float32 (T, 2, 2, h4, w4) as (frame, direction [prev, next], xy, by, bx), and
        valid bool (T, 2, h4, w4) as (frame, direction, by, bx). Invalid flows are 0.
    """
    ref = mv_ref.astype(np.int32)
    vec = np.moveaxis(mv, -1, 2).astype(np.float32) / MV_UNIT  # (T, list, xy, h4, w4)
    flows, valid = [], []
    for sign in (-1, 1):
        dist = np.where(np.sign(ref) == sign, np.abs(ref), np.iinfo(np.int32).max)  # (T, list, h4, w4)
        best = np.argmin(dist, axis=1)  # first list wins ties
        d = np.take_along_axis(dist, best[:, None], axis=1)[:, 0]
        ok = d != np.iinfo(np.int32).max
        v = np.take_along_axis(vec, best[:, None, None], axis=1)[:, 0]  # (T, xy, h4, w4)
        flows.append(np.where(ok[:, None], v / np.where(ok, d, 1)[:, None], 0.0).astype(np.float32))
        valid.append(ok)
    return np.stack(flows, 1), np.stack(valid, 1)


def upsample_blocks(blocks: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour 4x upsampling of a block grid (..., h4, w4), cropped to ``height`` x ``width``."""
    dense = np.repeat(np.repeat(blocks, 4, axis=-2), 4, axis=-1)
    return dense[..., :height, :width]


def dense_flows(mv: np.ndarray, mv_ref: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel flows float32 (T, 2, 2, H, W) (frame, [prev, next], xy, y, x) and validity (T, 2, H, W)."""
    flows, valid = block_flows(mv, mv_ref)
    return upsample_blocks(flows, height, width), upsample_blocks(valid, height, width)


def backward_warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``image`` (N, C, H, W) at p + ``flow`` (N, 2, H, W) (pixels, x then y), bilinear.

    Points outside the image take the border value.
    """
    n, _, h, w = image.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=flow.dtype, device=flow.device),
        torch.arange(w, dtype=flow.dtype, device=flow.device),
        indexing="ij",
    )
    gx = (xs + flow[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys + flow[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack([gx, gy], dim=-1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)
