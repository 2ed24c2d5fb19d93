"""Motion vectors -> dense per-pixel flows to the previous and next frame, and backward warping.

Codec convention (store schema): the 4x4 block at p in frame t, list l, with ``mv_ref`` d != 0 is
predicted from frame t + d at p + mv / 16. Flows are in pixels, channels (x, y), in ``grid_sample``
direction: pixel p of frame t is found at p + flow(p) in the neighbour, so
``backward_warp(neighbour, flow)`` aligns the neighbour to frame t. Three methods (:data:`FLOW_METHODS`),
all computed only from what the decoder exports (``mv``, ``mv_ref``):

``"scaled"`` (the first method, kept for comparison): constant motion over the reference distance,
the flow to the adjacent frame in the same direction is ``mv / 16 / |d|``:

* ``flow_prev`` (to t - 1) uses the list with d < 0 and the smallest |d|;
* ``flow_next`` (to t + 1) uses the list with d > 0 and the smallest |d|;
* ties go to list 0; a direction with no such list is invalid (intra blocks: both invalid);
* blocks are upsampled nearest-neighbour (4x4 pixels each).

``"composed"`` (the default) measures the motion between adjacent frames t and u = t + s (s = -1
for ``flow_prev``, +1 for ``flow_next``) from the MVs of *both* frames and of the frames they
reference, along the reference structure, before any constant-velocity assumption (in a
hierarchical-B GOP one frame of every adjacent pair usually predicts from the other at distance 1).
Every block of t collects *candidates*, each an exact composition of decoded MVs, and takes their
weighted mean (weight 1 for rule 1; ``COMPOSED_WEIGHT`` for rules 2-3 where rule 1 has a candidate,
else 1) -- independent measurements of the same motion average out the encoder's rate-driven
choices (measured on real footage: 0.83 -> 0.91 of DIS's gain on carphone):

1. direct: a list of t with d = s gives ``mv``; a list of u with d' = -s gives ``-mv'``, moved
   to the block of t it lands on (block of u at q -> block of t at q + mv'/16, rounded; forward
   projection);
2. common reference: t and u both predict from the same frame r (r != t, u), so
   F(t->u)(p) = F(t->r)(p) - F(u->r)(q), with q the block of u that a first estimate places p on
   (rule 1 where it has a candidate, else rule 5's constant velocity), re-read once at the block the
   rule-2 estimate places p on (blocks without a rule-1 candidate); the matching pairs of lists are
   averaged into one candidate;
3. chain: t predicts from r = t + d (r != u, inside the run) and the block of r that t's MV lands on
   predicts from u, so F(t->u)(p) = mv/16 + mv_r/16 (each such pair of lists is a candidate);
4. projected compositions (only blocks with no candidate of rules 1-3): the blocks of u whose rules
   2-3 give a flow F(u->t) (their mean) are moved to the block of t they land on, which takes
   ``-F(u->t)`` (the mean over the blocks landing there) -- what rule 1 does with u's direct MVs;
   measured on real footage: +0.002 to +0.024 of DIS's gain;
5. constant velocity (only blocks with no candidate of rules 1-4 within ``FILL_RADIUS`` blocks):
   each used list of t gives ``mv * s / d``, each used list of u (same block) ``-mv' * (-s) / d'``, at
   cost |d| (+1 when d points away from the other frame); the lowest-cost candidates are averaged;
6. blocks without a candidate but within ``FILL_RADIUS`` blocks of blocks with one take their
   per-component median (measured on real footage: better than rule 5, and than the mean by up to
   0.006 of DIS's gain); validity 0 unless rule 5 applies. A block that has nothing takes the median
   of valid blocks within ``FILL_RADIUS`` (else 0), validity 0;
7. link check: when fewer than ``MIN_LINK`` of the blocks of t and t + 1 predict across the boundary
   between them (t from a later frame, t + 1 from an earlier one), the bitstream does not connect the
   two frames (a scene cut the encoder coded as intra, or the pair after an IDR picture: the frames
   after it in display order are the next IDR's leading pictures, which cannot reference it): both
   flows across that boundary are 0 and invalid;
8. valid = a candidate of rules 1-4, or a rule-5 flow, on a linked boundary; block flows are
   upsampled bilinearly between block centres (edge blocks extended), validity nearest-neighbour.

``"composed-v1"`` (the previous default, kept for comparison) is ``"composed"`` without rules 3 and 4,
with rule 2 only at blocks without a rule-1 candidate and the mean instead of the median in rule 6;
its upsampling is the same.

Measured and not kept (no gain or worse on the real clips): median filtering of block flows (3x3,
5x5), nearest-neighbour instead of bilinear upsampling, filling from the neighbour closest to the
block's own constant-velocity estimate, reading u's MVs at the estimated position (gather) for
blocks without a rule-1 candidate, a larger fill radius, the opposite direction's flow negated for
blocks without a candidate, and extrapolating it across unlinked IDR boundaries (a duplicated frame
there got 2.2 grey levels worse than zero motion). Measured for issue 15 on the real clips, not kept
(within +-0.003 of DIS's gain or worse on bikes): rule 4 at every block, or at weight 0.5 (carphone
+0.03, bikes -0.006 to -0.012); weighting candidates by the residual energy of their blocks
(1 / (1 + (E / E0)^2), E0 = 4, 10, 25); splitting a projected block over the (up to) four blocks it
overlaps (bilinear weights); projected rule-1 candidates at weight 0.5 or 2; filling with the
neighbour of least or largest motion (-0.007 to -0.016), or at radius 1, 3 or 4; repeated fills
instead of rule 5; ``COMPOSED_WEIGHT`` 0.35 or 0.7; ``MIN_LINK`` 0.02; other frames' MVs whose reference span
covers t and u, moved onto t at constant velocity (for empty blocks, or beside the candidates); interpolation
between the centroids of regions of equal block flow (better end-point error against DIS, worse warp error);
rule 1's inverse MVs gathered (a fixed point of q + mv(q) = p) instead of scattered, or only where none lands;
weights for rules 2-3 that depend on whether the rule-1 candidate is t's own MV or u's moved one, or moved
candidates at weight 0.5 / 1.5.
Earlier, for ``"composed-v1"``: residual-based unreliability marks, smoothing, multi-step chaining
through computed flows, averaging both lists of symmetric bi-predicted blocks, bilinear projection.

All methods see only the frames they are given: the dataset passes the clip, so at its ends (and
where a reference lies outside it) the rules fall back to what the clip holds.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from cpgd_bench.motion import (
    COMPOSED_WEIGHT,
    DEFAULT_FLOW,
    FILL_RADIUS,
    FLOW_METHODS,
    MIN_LINK,
    MV_UNIT,
    block_flows,
    check_method,
)

__all__ = [
    "COMPOSED_WEIGHT", "DEFAULT_FLOW", "FILL_RADIUS", "FLOW_METHODS", "MIN_LINK", "MV_UNIT",
    "backward_warp", "block_flows", "dense_flows", "upsample_blocks", "upsample_flows",
]  # fmt: skip


def upsample_blocks(blocks: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour 4x upsampling of a block grid (..., h4, w4), cropped to ``height`` x ``width``."""
    dense = np.repeat(np.repeat(blocks, 4, axis=-2), 4, axis=-1)
    return dense[..., :height, :width]


def upsample_flows(blocks: np.ndarray, height: int, width: int, method: str = DEFAULT_FLOW) -> np.ndarray:
    """Block flows (..., h4, w4) -> float32 pixels (..., height, width): nearest for ``"scaled"``, else
    bilinear between block centres (edge blocks extended)."""
    check_method(method)
    if method == "scaled":
        return np.ascontiguousarray(upsample_blocks(blocks, height, width), np.float32)
    lead, (h4, w4) = blocks.shape[:-2], blocks.shape[-2:]
    x = torch.from_numpy(np.ascontiguousarray(blocks, np.float32)).reshape(-1, 1, h4, w4)
    dense = F.interpolate(x, scale_factor=4, mode="bilinear", align_corners=False)
    return dense[..., :height, :width].reshape(*lead, height, width).numpy()


def dense_flows(
    mv: np.ndarray, mv_ref: np.ndarray, height: int, width: int, method: str = DEFAULT_FLOW
) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel flows float32 (T, 2, 2, H, W) (frame, [prev, next], xy, y, x) and validity (T, 2, H, W)."""
    flows, valid = block_flows(mv, mv_ref, method)
    return upsample_flows(flows, height, width, method), upsample_blocks(valid, height, width)


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
