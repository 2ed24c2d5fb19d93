"""Motion vectors -> dense per-pixel flows to the previous and next frame, and backward warping.

Codec convention (store schema): the 4x4 block at p in frame t, list l, with ``mv_ref`` d != 0 is
predicted from frame t + d at p + mv / 16. Flows are in pixels, channels (x, y), in ``grid_sample``
direction: pixel p of frame t is found at p + flow(p) in the neighbour, so
``backward_warp(neighbour, flow)`` aligns the neighbour to frame t. Two methods (:data:`FLOW_METHODS`),
both computed only from what the decoder exports (``mv``, ``mv_ref``):

``"scaled"`` (the first method, kept for comparison): constant motion over the reference distance,
the flow to the adjacent frame in the same direction is ``mv / 16 / |d|``:

* ``flow_prev`` (to t - 1) uses the list with d < 0 and the smallest |d|;
* ``flow_next`` (to t + 1) uses the list with d > 0 and the smallest |d|;
* ties go to list 0; a direction with no such list is invalid (intra blocks: both invalid);
* blocks are upsampled nearest-neighbour (4x4 pixels each).

``"composed"`` (the default) measures the motion between adjacent frames t and u = t + s (s = -1
for ``flow_prev``, +1 for ``flow_next``) from the MVs of *both* frames, along the reference structure,
before any constant-velocity assumption (in a hierarchical-B GOP one frame of every adjacent pair
usually predicts from the other at distance 1):

1. direct (exact): a list of t with d = s gives ``mv``; a list of u with d' = -s gives ``-mv'``, moved
   to the block of t it lands on (block of u at q -> block of t at q + mv'/16, rounded; blocks landing
   on the same block are averaged: forward projection, no motion model). Direct candidates are averaged;
2. common reference (where there is no direct one): t and u both predict from the same frame r, so
   F(t->u)(p) = F(t->r)(p) - F(u->r)(q), with q = p + F(t->u)(p) the block of u found with a first
   estimate (the direct flows, or rule 3); every matching pair of lists is averaged;
3. constant velocity (blocks with no exact candidate within ``FILL_RADIUS`` blocks):
   each used list of t gives ``mv * s / d``, each used list of u ``-mv' * (-s) / d'`` (same block), at
   cost |d| (+1 when d points away from the neighbour); the lowest-cost candidates are averaged.
   Blocks without an exact candidate but within ``FILL_RADIUS`` of exact blocks take the mean of those
   instead (measured better on real footage than the extrapolation);
4. link check: when fewer than ``MIN_LINK`` of the blocks of t and t + 1 predict across the boundary
   between them (t from a later frame, t + 1 from an earlier one), the bitstream does not connect the
   two frames (a scene cut the encoder coded as intra, or an IDR picture whose trailing pictures cannot
   reference it): both flows across that boundary are 0 and invalid;
5. valid = a block with a candidate of rules 1-3, on a linked boundary. Invalid blocks on a linked
   boundary take the mean flow of valid blocks within ``FILL_RADIUS`` (0 where none), validity 0;
6. block flows are upsampled bilinearly between block centres (edge blocks extended); validity nearest.

Both methods see only the frames they are given: the dataset passes the clip, so at its ends (and
where a reference lies outside it) the rules fall back to what the clip holds.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

MV_UNIT = 16  # motion vectors are stored in 1/16 pel
FLOW_METHODS = ("composed", "scaled")
DEFAULT_FLOW = "composed"
MIN_LINK = 0.05  # fraction of blocks of two adjacent frames predicting across their boundary
FILL_RADIUS = 2  # blocks


def _check(method: str) -> None:
    if method not in FLOW_METHODS:
        raise ValueError(f"flow must be one of {FLOW_METHODS}, got {method!r}")


def _scaled(mv: np.ndarray, mv_ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


def _estimates(vec: np.ndarray, ref: np.ndarray, s: int) -> tuple[np.ndarray, np.ndarray]:
    """Per list: flow toward t + s by constant velocity (T, L, 2, h4, w4) and its cost (T, L, h4, w4)."""
    used = ref != 0
    est = vec * (s / np.where(used, ref, 1))[:, :, None]
    cost = np.where(used, np.abs(ref) + (np.sign(ref) != s), np.inf)
    return est.astype(np.float32), cost


def _fill(flows: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Invalid blocks take the mean of valid ones within FILL_RADIUS (box filter over (..., 2, h4, w4))."""
    k = 2 * FILL_RADIUS + 1
    w = torch.from_numpy(valid.astype(np.float32)).reshape(-1, 1, *valid.shape[-2:])
    f = torch.from_numpy(flows).reshape(-1, 2, *flows.shape[-2:]) * w
    num = F.avg_pool2d(f, k, 1, FILL_RADIUS, count_include_pad=False)
    den = F.avg_pool2d(w, k, 1, FILL_RADIUS, count_include_pad=False)
    filled = torch.where(den > 0, num / den.clamp_min(1e-6), torch.zeros(()))
    return np.where(valid[..., None, :, :], flows, filled.numpy().reshape(flows.shape)).astype(np.float32)


def _linked(ref: np.ndarray) -> np.ndarray:
    """bool (T, 2): whether the bitstream links frame t to t - 1 / t + 1 (see MIN_LINK); False outside the run."""
    t_len = len(ref)
    linked = np.zeros((t_len, 2), bool)
    if t_len > 1:
        across = (ref[:-1] > 0).any(1).mean((1, 2)) + (ref[1:] < 0).any(1).mean((1, 2))
        linked[1:, 0] = linked[:-1, 1] = across / 2 >= MIN_LINK
    return linked


def _velocity(vec: np.ndarray, ref: np.ndarray, s: int) -> tuple[np.ndarray, np.ndarray]:
    """Constant-velocity flow toward t + s from the frame's and its neighbour's lists, lowest cost averaged."""
    est, cost = _estimates(vec, ref, s)
    nb_est, nb_cost = _estimates(vec, ref, -s)
    nb_est, nb_cost = np.roll(-nb_est, -s, axis=0), np.roll(nb_cost, -s, axis=0)  # frame t + s, negated
    nb_cost[0 if s < 0 else -1] = np.inf
    est, cost = np.concatenate([est, nb_est], 1), np.concatenate([cost, nb_cost], 1)
    best = cost.min(1)
    pick = (cost == best[:, None]) & np.isfinite(best)[:, None]
    flow = (est * pick[:, :, None]).sum(1) / np.maximum(pick.sum(1), 1)[:, None]
    return flow.astype(np.float32), np.isfinite(best)


def _gather(field: np.ndarray, qy: np.ndarray, qx: np.ndarray) -> np.ndarray:
    """``field`` (T, ..., h4, w4) read at block indices ``qy``, ``qx`` (T, h4, w4) of each frame."""
    t, h4, w4 = qy.shape
    flat = field.reshape(t, -1, h4 * w4)
    idx = np.broadcast_to((qy * w4 + qx).reshape(t, 1, -1), flat.shape)
    return np.take_along_axis(flat, idx, 2).reshape(field.shape)


def _splat(vec: np.ndarray, hit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Move each ``hit`` block of u (flow ``vec`` (T, 2, h4, w4) to t) to the block of t it lands on.

    Returns the sum of the negated flows (the flow from t back to u) and the count per block of t.
    """
    t_len, _, h4, w4 = vec.shape
    f, by, bx = np.nonzero(hit)
    v = vec[f, :, by, bx]  # (n, 2)
    ty = np.clip(np.rint(by + v[:, 1] / 4), 0, h4 - 1).astype(np.intp)
    tx = np.clip(np.rint(bx + v[:, 0] / 4), 0, w4 - 1).astype(np.intp)
    idx, size = (f * h4 + ty) * w4 + tx, t_len * h4 * w4
    sums = np.stack([-np.bincount(idx, v[:, c], size) for c in range(2)], 1).reshape(t_len, h4, w4, 2)
    return np.moveaxis(sums, -1, 1).astype(np.float32), np.bincount(idx, minlength=size).reshape(t_len, h4, w4)


def _exact(vec: np.ndarray, ref: np.ndarray, first: np.ndarray, s: int) -> tuple[np.ndarray, np.ndarray]:
    """Flows of frames t toward u = t + s measured without a motion model, and where they exist.

    ``vec``/``ref`` hold the rows of t then of u stacked on axis 0; ``first`` (T', 2, h4, w4) is a first
    flow of t, used to find where a block of t lies in u. Direct candidates (t predicts from u, or u
    from t, splatted onto t) are averaged; where there is none, common-reference ones (both predict
    from the same frame r: F(t->u) = F(t->r) - F(u->r)) are.
    """
    (own_vec, nb_vec), (own_ref, nb_ref) = vec, ref
    h4, w4 = own_ref.shape[-2:]
    sums = np.zeros(first.shape, np.float32)
    counts = np.zeros((len(first), h4, w4), np.int64)
    for a in range(2):
        hit = own_ref[:, a] == s  # t predicts from u
        sums += np.where(hit[:, None], own_vec[:, a], 0.0)
        counts += hit
        splat, n = _splat(nb_vec[:, a], nb_ref[:, a] == -s)  # u predicts from t
        sums += splat
        counts += n
    by, bx = np.mgrid[0:h4, 0:w4]
    qy = np.clip(np.rint(by + first[:, 1] / 4), 0, h4 - 1).astype(np.intp)
    qx = np.clip(np.rint(bx + first[:, 0] / 4), 0, w4 - 1).astype(np.intp)
    nb_vec, nb_ref = _gather(nb_vec, qy, qx), _gather(nb_ref, qy, qx)
    common = np.zeros(first.shape, np.float32)
    n_common = np.zeros_like(counts)
    for a in range(2):
        for b in range(2):
            hit = (nb_ref[:, b] != 0) & (nb_ref[:, b] != -s) & (own_ref[:, a] == nb_ref[:, b] + s)
            common += np.where(hit[:, None], own_vec[:, a] - nb_vec[:, b], 0.0)
            n_common += hit
    direct = counts > 0
    flow = np.where(direct[:, None], sums / np.maximum(counts, 1)[:, None], common / np.maximum(n_common, 1)[:, None])
    return flow.astype(np.float32), direct | (n_common > 0)


def _composed(mv: np.ndarray, mv_ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ref = mv_ref.astype(np.int32)
    vec = np.moveaxis(mv, -1, 2).astype(np.float32) / MV_UNIT
    linked = _linked(ref)
    flows, valid = [], []
    for k, s in enumerate((-1, 1)):
        flow, ok = _velocity(vec, ref, s)
        if len(ref) > 1:
            own, nb = (slice(1, None), slice(None, -1)) if s < 0 else (slice(None, -1), slice(1, None))
            pair_vec, pair_ref = np.stack([vec[own], vec[nb]]), np.stack([ref[own], ref[nb]])
            guess = _fill(flow[own], ok[own])
            exact, hit = _exact(pair_vec, pair_ref, guess, s)
            exact, hit = _exact(pair_vec, pair_ref, np.where(hit[:, None], exact, guess), s)  # better placed in u
            near = _fill(np.ones_like(exact), hit)[:, 0] > 0  # within FILL_RADIUS of an exact block
            flow[own] = np.where(hit[:, None] | near[:, None], _fill(exact, hit), flow[own])
            ok[own] |= hit
        ok &= linked[:, k, None, None]
        flows.append(np.where(linked[:, k, None, None, None], _fill(flow, ok), 0.0))
        valid.append(ok)
    return np.stack(flows, 1).astype(np.float32), np.stack(valid, 1)


def block_flows(mv: np.ndarray, mv_ref: np.ndarray, method: str = DEFAULT_FLOW) -> tuple[np.ndarray, np.ndarray]:
    """Per-block flows to the previous/next frame of every frame of a run of consecutive frames.

    Args:
        mv: int16 (T, 2, h4, w4, 2), 1/16 pel, lists 0 and 1.
        mv_ref: int16 (T, 2, h4, w4), reference POC distance, 0 = list unused.
        method: one of :data:`FLOW_METHODS` (see the module doc). ``"paired"`` reads the neighbours
            inside the run only: the first frame's previous and the last frame's next flow come from
            that frame alone.

    Returns:
        flows float32 (T, 2, 2, h4, w4) as (frame, direction [prev, next], xy, by, bx), and
        valid bool (T, 2, h4, w4) as (frame, direction, by, bx).
    """
    _check(method)
    return _scaled(mv, mv_ref) if method == "scaled" else _composed(mv, mv_ref)


def upsample_blocks(blocks: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour 4x upsampling of a block grid (..., h4, w4), cropped to ``height`` x ``width``."""
    dense = np.repeat(np.repeat(blocks, 4, axis=-2), 4, axis=-1)
    return dense[..., :height, :width]


def upsample_flows(blocks: np.ndarray, height: int, width: int, method: str = DEFAULT_FLOW) -> np.ndarray:
    """Block flows (..., h4, w4) -> float32 pixels (..., height, width): nearest for ``"scaled"``, else
    bilinear between block centres (edge blocks extended)."""
    _check(method)
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
