"""The numpy core of :mod:`cpgd_bench.data.flow`: motion vectors -> per-4x4-block flows and validity.

A bottom module (numpy only) so that the build (below ``cpgd_bench.data`` in the layers) can store the
flows with each sequence; the methods and their rules are documented in :mod:`cpgd_bench.data.flow`,
which re-exports :func:`block_flows` and the constants.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

MV_UNIT = 16  # motion vectors are stored in 1/16 pel
FLOW_METHODS = ("composed", "composed-v1", "scaled")
DEFAULT_FLOW = "composed"
MIN_LINK = 0.05  # fraction of blocks of two adjacent frames predicting across their boundary
FILL_RADIUS = 2  # blocks
COMPOSED_WEIGHT = 0.5  # weight of rule 2-3 candidates beside rule-1 ones


def check_method(method: str) -> None:
    """Raise ValueError unless ``method`` is one of :data:`FLOW_METHODS`."""
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


def _box(x: np.ndarray) -> np.ndarray:
    """Sums over (2 FILL_RADIUS + 1)^2 windows of the last two axes (zeros outside)."""
    r, (h, w) = FILL_RADIUS, x.shape[-2:]
    p = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(r, r), (r, r)])
    rows = p[..., :h, :].copy()
    for i in range(1, 2 * r + 1):
        rows += p[..., i : i + h, :]
    out = rows[..., :w].copy()
    for i in range(1, 2 * r + 1):
        out += rows[..., i : i + w]
    return out


def _fill(flows: np.ndarray, valid: np.ndarray, median: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Invalid blocks of ``flows`` (T, 2, h4, w4) take the mean (``median``: the per-component median) of the
    ``valid`` ones within FILL_RADIUS.

    Returns the filled flows and where they are defined (valid, or a valid block within reach).
    """
    t_len, _, h4, w4 = flows.shape
    stacked = np.empty((t_len, 3, h4, w4), np.float32)
    np.multiply(flows, valid[:, None], out=stacked[:, :2])
    stacked[:, 2] = valid
    sums = _box(stacked)
    den = sums[:, 2:]
    near = den[:, 0] > 0
    if median:
        return _median_fill(flows, valid, near & ~valid), near
    mean = np.divide(sums[:, :2], den, out=np.zeros_like(sums[:, :2]), where=den > 0)
    return np.where(valid[:, None], flows, mean), near


def _median_fill(flows: np.ndarray, valid: np.ndarray, todo: np.ndarray) -> np.ndarray:
    """``flows`` with the blocks ``todo`` set to the per-component median of the valid blocks within FILL_RADIUS."""
    r = FILL_RADIUS
    t, y, x = np.nonzero(todo)
    padded = np.pad(np.where(valid[:, None], flows, np.nan), [(0, 0), (0, 0), (r, r), (r, r)], constant_values=np.nan)
    window = np.stack(
        [padded[t, :, y + dy, x + dx] for dy in range(2 * r + 1) for dx in range(2 * r + 1)], -1
    )  # (n, 2, (2r + 1)^2)
    window.sort(-1)  # NaN (invalid) last
    m = np.isfinite(window[:, :1]).sum(-1, keepdims=True)  # (n, 1, 1): valid per block, same for x and y
    low = np.take_along_axis(window, (m - 1) // 2, -1)
    high = np.take_along_axis(window, m // 2, -1)
    out = flows.copy()
    out[t, :, y, x] = ((low + high) / 2)[..., 0]
    return out


def _linked(ref: np.ndarray) -> np.ndarray:
    """bool (T, 2): whether the bitstream links frame t to t - 1 / t + 1 (see MIN_LINK); False outside the run."""
    t_len = len(ref)
    linked = np.zeros((t_len, 2), bool)
    if t_len > 1:
        across = (ref[:-1] > 0).any(1).mean((1, 2)) + (ref[1:] < 0).any(1).mean((1, 2))
        linked[1:, 0] = linked[:-1, 1] = across / 2 >= MIN_LINK
    return linked


class _Grid(NamedTuple):
    """Frame, row and column of every block of a run, block-major: block (t, y, x) is (t * h4 + y) * w4 + x."""

    shape: tuple[int, int, int]
    frame: np.ndarray
    row: np.ndarray
    col: np.ndarray


@functools.lru_cache(maxsize=8)
def _grid(shape: tuple[int, int, int]) -> _Grid:
    t_len, h4, w4 = shape
    frame, row, col = (a.reshape(-1) for a in np.indices(shape, np.int32))
    row, col = row.astype(np.float32), col.astype(np.float32)  # float32 sums with float32 MVs
    for a in (frame, row, col):
        a.flags.writeable = False
    return _Grid(shape, frame, row, col)


def _land(grid: _Grid, flat: np.ndarray | slice, v: np.ndarray, d: np.ndarray | int) -> np.ndarray:
    """Flat index of the block of frame f + ``d`` that blocks ``flat`` (of frames f) moved by ``v`` (n, 2)
    pixels land on (rounded, clamped to the frame)."""
    _, h4, w4 = grid.shape
    qy = np.clip(np.rint(grid.row[flat] + v[:, 1] * np.float32(0.25)), 0, h4 - 1).astype(np.intp)
    qx = np.clip(np.rint(grid.col[flat] + v[:, 0] * np.float32(0.25)), 0, w4 - 1).astype(np.intp)
    return ((grid.frame[flat] + d) * h4 + qy) * w4 + qx


def _inside(grid: _Grid, flat: np.ndarray, d: np.ndarray | int) -> np.ndarray:
    """Whether frame f + ``d`` of blocks ``flat`` (of frames f) is inside the run."""
    u = grid.frame[flat] + d
    return (u >= 0) & (u < grid.shape[0])


def _with_neighbour(grid: _Grid, s: int) -> slice:
    """The blocks of the frames t whose neighbour t + s is inside the run."""
    t_len, h4, w4 = grid.shape
    return slice(h4 * w4, None) if s < 0 else slice(0, (t_len - 1) * h4 * w4)


def _velocity(vb: np.ndarray, rb: np.ndarray, grid: _Grid, flat: np.ndarray, s: int) -> tuple:
    """Rule 5 at blocks ``flat``: each used list of t (then of t + s, same block) gives ``vec * s / d``;
    cost |d|, +1 where d points away from the other frame; the cheapest are averaged. Returns (n, 2), ok (n,)."""
    lists = rb.shape[1]
    inside = _inside(grid, flat, s)
    at = np.where(inside, flat + s * grid.shape[1] * grid.shape[2], flat)
    ref = np.concatenate([rb[flat], np.where(inside[:, None], rb[at], 0)], 1)
    vec = np.concatenate([vb[flat], vb[at]], 1)
    cost = [np.where(r != 0, np.abs(r) + (np.sign(r) != (s if c < lists else -s)), np.inf) for c, r in enumerate(ref.T)]
    best = functools.reduce(np.minimum, cost)
    flow, picked = np.zeros((len(flat), 2), np.float32), np.zeros(len(flat), np.float32)
    for c, r in enumerate(ref.T):
        pick = cost[c] == best
        flow += vec[:, c] * (pick * s / np.where(r != 0, r, 1))[:, None]
        picked += pick
    flow /= np.maximum(picked, 1)[:, None]
    return flow.astype(np.float32), np.isfinite(best)


def _direct(vb: np.ndarray, rb: np.ndarray, grid: _Grid, s: int) -> tuple[np.ndarray, np.ndarray]:
    """Rule 1: sums (N, 2) and counts (N,) of the candidates toward u = t + s of every block of t, where t
    predicts from u or u from t (projected onto t).

    ``vb`` (N, L, 2) / ``rb`` (N, L): MVs (pixels) and reference distances of the N blocks, block-major.
    """
    n = len(rb)
    sums, counts = np.zeros((n, 2), np.float32), np.zeros(n, np.float32)
    for a in range(rb.shape[1]):  # t predicts from u
        own = rb[:, a] == s
        sums += vb[:, a] * own[:, None]
        counts += own
    j, lst = np.nonzero(rb == -s)  # u predicts from t = u - s: move the block to where it lands in t
    keep = _inside(grid, j, -s)
    j, lst = j[keep], lst[keep]
    v = vb[j, lst]
    at = _land(grid, j, v, -s)
    for c in range(2):
        sums[:, c] -= np.bincount(at, v[:, c], n).astype(np.float32)
    counts += np.bincount(at, minlength=n)
    return sums, counts


def _chains(vb: np.ndarray, rb: np.ndarray, grid: _Grid) -> tuple[np.ndarray, np.ndarray]:
    """Rule 3 for both directions: sums (2, N, 2) and counts (2, N) of mv/16 + mv_r/16 where t predicts
    from r = t + d (inside the run) and r's block where t's MV lands predicts from t + s, d != s."""
    n, lists = rb.shape
    sums = np.zeros((2, n, 2), np.float32)
    counts = np.zeros((2, n), np.float32)
    for a in range(lists):
        flat = np.flatnonzero(rb[:, a])
        d = rb[flat, a]
        keep = _inside(grid, flat, d)
        flat, d = flat[keep], d[keep]
        v = vb[flat, a]
        at = _land(grid, flat, v, d)
        r_ref, r_vec = rb[at], vb[at]
        for b in range(lists):
            on = np.where(r_ref[:, b] != 0, r_ref[:, b] + d, 0)  # the frame r's list b points to, relative to t
            for k, s in enumerate((-1, 1)):
                hit = np.flatnonzero((on == s) & (d != s))
                sums[k, flat[hit]] += v[hit] + r_vec[hit, b]  # one candidate per block and pair of lists
                counts[k, flat[hit]] += 1
    return sums, counts


def _common(
    vb: np.ndarray, rb: np.ndarray, grid: _Grid, placed: np.ndarray, flat: np.ndarray | None, s: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rule 2 at blocks ``flat`` (None: every block): t and u = t + s predict from the same frame r, so
    F(t->u) = F(t->r) - F(u->r), u read at the block ``placed`` (N, 2) puts them on.

    Returns the blocks where a candidate exists and the flows there, averaged over matching pairs of lists.
    """
    where: np.ndarray | slice = _with_neighbour(grid, s) if flat is None else flat[_inside(grid, flat, s)]
    at = _land(grid, where, placed[where], s)
    t_ref, t_vec, u_ref = rb[where], vb[where], rb[at]  # (n, L), (n, L, 2), (n, L)
    sums, counts = np.zeros((len(at), 2), np.float32), np.zeros(len(at), np.int64)
    for b in range(rb.shape[1]):
        usable = (u_ref[:, b] != 0) & (u_ref[:, b] != -s)
        for a in range(rb.shape[1]):
            hit = np.flatnonzero(usable & (t_ref[:, a] == u_ref[:, b] + s))
            sums[hit] += t_vec[hit, a] - vb[at[hit], b]
            counts[hit] += 1
    found = np.flatnonzero(counts)
    blocks = found + where.start if isinstance(where, slice) else where[found]
    return blocks, sums[found] / counts[found, None]


def _project(sums: np.ndarray, counts: np.ndarray, vec: np.ndarray, have: np.ndarray, grid: _Grid, s: int) -> None:
    """Rule 4, in place: the blocks of t = u - s with ``counts`` 0 take the flows ``vec`` (N, 2) from u to t of
    the blocks of u with ``have`` > 0 (``vec`` sums over ``have`` candidates) that land on them, negated."""
    j = np.flatnonzero(have)
    j = j[_inside(grid, j, -s)]
    v = vec[j] / have[j, None]
    at = _land(grid, j, v, -s)
    empty = counts[at] == 0
    at, v = at[empty], v[empty]
    np.subtract.at(sums, at, v)
    np.add.at(counts, at, 1)


def _composed(mv: np.ndarray, mv_ref: np.ndarray, v1: bool = False) -> tuple[np.ndarray, np.ndarray]:
    t_len, lists, h4, w4 = mv_ref.shape
    shape, n = (t_len, h4, w4), t_len * h4 * w4
    grid = _grid(shape)
    rb = np.ascontiguousarray(mv_ref.transpose(0, 2, 3, 1), dtype=np.int16).reshape(n, lists)  # block-major
    vb = np.ascontiguousarray(mv.transpose(0, 2, 3, 1, 4), dtype=np.float32).reshape(n, lists, 2) / MV_UNIT
    linked = _linked(mv_ref)
    used = functools.reduce(np.logical_or, (r != 0 for r in rb.T))
    if not v1:
        chain_sums, chain_counts = _chains(vb, rb, grid)
    stages = []  # per direction: rules 1-3 sums and counts, rule 5's flows and validity, rules 2-3 alone
    for k, s in enumerate((-1, 1)):
        sums, counts = _direct(vb, rb, grid, s)
        hit = counts > 0
        exact = sums / np.maximum(counts, 1)[:, None]
        miss = np.flatnonzero(~hit)  # rule 5 candidates, also the first placement for rule 2
        velocity, velocity_ok = np.zeros((n, 2), np.float32), np.zeros(n, bool)
        velocity[miss], velocity_ok[miss] = _velocity(vb, rb, grid, miss, s)
        placed = np.where(hit[:, None], exact, velocity)
        first = np.flatnonzero(~hit & used)
        at, common = _common(vb, rb, grid, placed, first, s)
        placed[at] = common  # read u again where the first estimate places the block
        at, common = _common(vb, rb, grid, placed, first if v1 else None, s)
        weight = np.where(hit[at], COMPOSED_WEIGHT, np.float32(1))
        sums[at] += common * weight[:, None]
        counts[at] += weight
        composed: tuple = ()
        if not v1:
            weight = np.where(hit, COMPOSED_WEIGHT, np.float32(1))
            sums += chain_sums[k] * weight[:, None]
            counts += chain_counts[k] * weight
            composed = (chain_sums[k].copy(), chain_counts[k].copy())
            composed[0][at] += common
            composed[1][at] += 1
        stages.append((sums, counts, velocity, velocity_ok, *composed))
    flows, valid = [], []
    for k, s in enumerate((-1, 1)):
        sums, counts, velocity, velocity_ok = stages[k][:4]
        if not v1:  # rule 4 where rules 1-3 found nothing: u's compositions toward t, projected onto t
            _project(sums, counts, *stages[1 - k][4:], grid, s)
        hit = counts > 0
        exact = sums / np.where(hit, counts, 1)[:, None]
        grid_hit, velocity_ok = hit.reshape(shape), velocity_ok.reshape(shape)
        exact, near = _fill(exact.reshape(*shape, 2).transpose(0, 3, 1, 2), grid_hit, median=not v1)
        flow = np.where(near[:, None], exact, velocity.reshape(*shape, 2).transpose(0, 3, 1, 2))
        ok = grid_hit | (~near & velocity_ok)
        if not (ok | near).all():
            flow = np.where(ok[:, None] | near[:, None], flow, _fill(flow, ok, median=not v1)[0])
        ok &= linked[:, k, None, None]
        flows.append(np.where(linked[:, k, None, None, None], flow, 0.0))
        valid.append(ok)
    return np.stack(flows, 1).astype(np.float32), np.stack(valid, 1)


def block_flows(mv: np.ndarray, mv_ref: np.ndarray, method: str = DEFAULT_FLOW) -> tuple[np.ndarray, np.ndarray]:
    """Per-block flows to the previous/next frame of every frame of a run of consecutive frames.

    Args:
        mv: int16 (T, 2, h4, w4, 2), 1/16 pel, lists 0 and 1.
        mv_ref: int16 (T, 2, h4, w4), reference POC distance, 0 = list unused.
        method: one of :data:`FLOW_METHODS` (see :mod:`cpgd_bench.data.flow`). The composed methods read the
            neighbours inside the run only: the first frame's previous and the last frame's next flow
            come from that frame alone.

    Returns:
        flows float32 (T, 2, 2, h4, w4) as (frame, direction [prev, next], xy, by, bx), and
        valid bool (T, 2, h4, w4) as (frame, direction, by, bx).
    """
    check_method(method)
    return _scaled(mv, mv_ref) if method == "scaled" else _composed(mv, mv_ref, v1=method == "composed-v1")
