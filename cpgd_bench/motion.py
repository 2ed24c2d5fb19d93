"""The compiled core of :mod:`cpgd_bench.data.flow`: motion vectors -> per-4x4-block flows and validity.

A bottom module (numpy and numba only) so that the build (below ``cpgd_bench.data`` in the layers) can store
the flows with each sequence; the methods and their rules are documented in :mod:`cpgd_bench.data.flow`,
which re-exports :func:`block_flows` and the constants. The ``composed`` rules run as numba loops over the
blocks (compiled on first use and cached on disk, ``cache=True``); their float arithmetic follows the
numpy formulation they replaced step by step (float32 sums, float64 where numpy promoted), so the flows
are bit-identical to it (tests/test_motion.py pins them). Blocks are numbered block-major: block (t, y, x)
is ``(t * h4 + y) * w4 + x``; ``rb`` (N, L) holds the reference distances and ``vb`` (N, L, 2) the MVs in
pixels of the N blocks and L lists.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit

MV_UNIT = 16  # motion vectors are stored in 1/16 pel
FLOW_METHODS = ("composed", "composed-v1", "scaled")
DEFAULT_FLOW = "composed"
#: Bumped whenever a method's output changes: flows stored by a build name the method and its revision, and the
#: loader uses them only when both match (tests/test_motion.py fails on a changed output without a bump).
FLOW_REVISIONS = {"composed": 2, "composed-v1": 1, "scaled": 1}  # composed 2: rules 4 and 6 (median fill)
MIN_LINK = 0.05  # fraction of blocks of two adjacent frames predicting across their boundary
FILL_RADIUS = 2  # blocks
COMPOSED_WEIGHT = 0.5  # weight of rule 2-3 candidates beside rule-1 ones
_QUARTER = np.float32(0.25)  # pixels -> 4x4 blocks


def check_method(method: str) -> None:
    """Raise ValueError unless ``method`` is one of :data:`FLOW_METHODS`."""
    if method not in FLOW_METHODS:
        raise ValueError(f"flow must be one of {FLOW_METHODS}, got {method!r}")


def flow_tag(method: str) -> str:
    """``method@revision``: what a store records beside the flows it holds (:data:`FLOW_REVISIONS`)."""
    check_method(method)
    return f"{method}@{FLOW_REVISIONS[method]}"


def parse_flow_tag(tag: object) -> tuple[str, str] | None:
    """(method, revision) of a :func:`flow_tag` a store recorded (its ``flow_blocks_method`` attribute); a bare method
    name (stores built before revisions) is revision 1; None for anything that is not a string."""
    if not isinstance(tag, str):
        return None
    method, _, revision = tag.partition("@")
    return method, revision or "1"


def flows_are_current(tag: object, method: str) -> bool:
    """Whether flows a store recorded as ``tag`` are what ``method`` gives today (same method and revision)."""
    return parse_flow_tag(tag) == (method, str(FLOW_REVISIONS[method]))


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


@njit(cache=True, nogil=True)
def _land(f, y, x, vx, vy, d, h4, w4):
    """Flat index of the block of frame f + d that block (f, y, x) moved by (vx, vy) pixels lands on (rounded
    half to even, clamped to the frame)."""
    qy = min(max(np.rint(np.float32(y) + vy * _QUARTER), np.float32(0)), np.float32(h4 - 1))
    qx = min(max(np.rint(np.float32(x) + vx * _QUARTER), np.float32(0)), np.float32(w4 - 1))
    return ((f + d) * h4 + int(qy)) * w4 + int(qx)


@njit(cache=True, nogil=True)
def _linked(ref):
    """Rule 7, bool (T, 2): whether the bitstream links frame t to t - 1 / t + 1; False outside the run."""
    t_len, lists, h4, w4 = ref.shape
    linked = np.zeros((t_len, 2), np.bool_)
    for t in range(t_len - 1):
        later, earlier = 0, 0  # blocks of t predicting from a later frame, of t + 1 from an earlier one
        for y in range(h4):
            for x in range(w4):
                fwd, bwd = False, False
                for lst in range(lists):
                    fwd = fwd or ref[t, lst, y, x] > 0
                    bwd = bwd or ref[t + 1, lst, y, x] < 0
                later += fwd
                earlier += bwd
        linked[t + 1, 0] = linked[t, 1] = (later / (h4 * w4) + earlier / (h4 * w4)) / 2 >= MIN_LINK
    return linked


@njit(cache=True, nogil=True)
def _direct(vb, rb, t_len, h4, w4, s, sums, counts):
    """Rule 1 into ``sums`` (N, 2) / ``counts`` (N,): candidates toward u = t + s of every block of t, where t
    predicts from u (its MV) or u from t (minus u's MV, moved to the block of t it lands on)."""
    n, lists = rb.shape
    for i in range(n):
        sx, sy, c = np.float32(0), np.float32(0), np.float32(0)
        for a in range(lists):
            if rb[i, a] == s:
                sx += vb[i, a, 0]
                sy += vb[i, a, 1]
                c += np.float32(1)
        sums[i, 0], sums[i, 1], counts[i] = sx, sy, c
    landed = np.zeros((n, 2), np.float64)  # float64 sums, as numpy's bincount
    landed_n = np.zeros(n, np.int64)
    for f in range(max(0, s), min(t_len, t_len + s)):  # frames u whose t = u - s is inside the run
        for y in range(h4):
            for x in range(w4):
                j = (f * h4 + y) * w4 + x
                for lst in range(lists):
                    if rb[j, lst] == -s:
                        at = _land(f, y, x, vb[j, lst, 0], vb[j, lst, 1], -s, h4, w4)
                        landed[at, 0] += vb[j, lst, 0]
                        landed[at, 1] += vb[j, lst, 1]
                        landed_n[at] += 1
    for i in range(n):
        sums[i, 0] -= np.float32(landed[i, 0])
        sums[i, 1] -= np.float32(landed[i, 1])
        counts[i] += np.float32(landed_n[i])


@njit(cache=True, nogil=True)
def _chains(vb, rb, t_len, h4, w4, sums, counts):
    """Rule 3 for both directions into ``sums`` (2, N, 2) / ``counts`` (2, N): mv + mv_r where t predicts from
    r = t + d (inside the run) and r's block where t's MV lands predicts from t + s, d != s."""
    lists = rb.shape[1]
    i = -1
    for f in range(t_len):
        for y in range(h4):
            for x in range(w4):
                i += 1
                for a in range(lists):
                    d = rb[i, a]
                    if d == 0 or not 0 <= f + d < t_len:
                        continue
                    vx, vy = vb[i, a, 0], vb[i, a, 1]
                    at = _land(f, y, x, vx, vy, d, h4, w4)
                    for b in range(lists):
                        on = rb[at, b] + d if rb[at, b] != 0 else 0  # the frame r's list b points to, from t
                        for k in range(2):
                            s = 2 * k - 1
                            if on == s and d != s:
                                sums[k, i, 0] += vx + vb[at, b, 0]
                                sums[k, i, 1] += vy + vb[at, b, 1]
                                counts[k, i] += np.float32(1)


@njit(cache=True, nogil=True)
def _velocity(vb, rb, t_len, hw, i, f, s):
    """Rule 5 at block i of frame f: (fx, fy, ok). Each used list of t (then of t + s, same block) gives
    ``mv * s / d`` at cost |d| (+1 where d points away from the other frame); the cheapest are averaged (with no
    used list all tie at infinity: the mean of ``mv * s``, zero as unused lists carry zero MVs)."""
    lists = rb.shape[1]
    inside = 0 <= f + s < t_len
    at = i + s * hw if inside else i
    best = np.inf
    for c in range(2 * lists):
        r = rb[i, c] if c < lists else (rb[at, c - lists] if inside else 0)
        if r != 0:
            best = min(best, abs(r) + (1 if np.sign(r) != (s if c < lists else -s) else 0))
    fx, fy, picked = np.float32(0), np.float32(0), np.float32(0)
    for c in range(2 * lists):
        j, lst = (i, c) if c < lists else (at, c - lists)
        r = rb[j, lst] if c < lists or inside else 0
        cost = abs(r) + (1 if np.sign(r) != (s if c < lists else -s) else 0) if r != 0 else np.inf
        if cost == best:
            factor = np.float64(s) / np.float64(r if r != 0 else 1)
            fx = np.float32(np.float64(fx) + np.float64(vb[j, lst, 0]) * factor)
            fy = np.float32(np.float64(fy) + np.float64(vb[j, lst, 1]) * factor)
            picked += np.float32(1)
    if picked > 0:
        fx, fy = fx / picked, fy / picked
    return fx, fy, best < np.inf


@njit(cache=True, nogil=True)
def _common(vb, rb, h4, w4, i, f, y, x, px, py, s):
    """Rule 2 at block i = (f, y, x) placed on u = t + s by (px, py): t and u predict from the same frame r, so
    F(t->u) = F(t->r) - F(u->r); returns (found, fx, fy), the mean over matching pairs of lists (float64)."""
    lists = rb.shape[1]
    at = _land(f, y, x, px, py, s, h4, w4)
    sx, sy, n = np.float32(0), np.float32(0), 0
    for b in range(lists):
        ub = rb[at, b]
        if ub == 0 or ub == -s:
            continue
        for a in range(lists):
            if rb[i, a] == ub + s:
                sx += vb[i, a, 0] - vb[at, b, 0]
                sy += vb[i, a, 1] - vb[at, b, 1]
                n += 1
    if n == 0:
        return False, 0.0, 0.0
    return True, np.float64(sx) / n, np.float64(sy) / n


@njit(cache=True, nogil=True)
def _window_sum(flows, valid, t, c, y, x):
    """Sum of component c (c = 2: the count) of the valid blocks within FILL_RADIUS of (t, y, x): a box sum of
    ``flows * valid`` (zeros outside the frame), column by column, each column top to bottom, in float32."""
    r = FILL_RADIUS
    _, _, h4, w4 = flows.shape
    acc = np.float32(0)
    for xx in range(max(0, x - r), min(w4, x + r + 1)):
        col = np.float32(0)
        for yy in range(max(0, y - r), min(h4, y + r + 1)):
            v = np.float32(1) if valid[t, yy, xx] else np.float32(0)
            col += v if c == 2 else flows[t, c, yy, xx] * v
        acc += col
    return acc


@njit(cache=True, nogil=True)
def _median_of_valid(flows, valid, t, c, y, x, window):
    """The median of component c of the valid blocks within FILL_RADIUS of (t, y, x) (at least one): the mean of
    the two middle values of an even count, in float32."""
    r = FILL_RADIUS
    t_len, _, h4, w4 = flows.shape
    m = 0
    for yy in range(max(0, y - r), min(h4, y + r + 1)):
        for xx in range(max(0, x - r), min(w4, x + r + 1)):
            if valid[t, yy, xx]:
                window[m] = flows[t, c, yy, xx]
                m += 1
    ordered = np.sort(window[:m])
    return (ordered[(m - 1) // 2] + ordered[m // 2]) / np.float32(2)


@njit(cache=True, nogil=True)
def _fill(flows, valid, median, t, y, x, window):
    """Rule 6 at an invalid block (t, y, x) of ``flows`` (T, 2, h4, w4): (near, fx, fy), near when a ``valid``
    block lies within FILL_RADIUS, whose mean (``median``: per-component median) fills it; else (False, 0, 0)."""
    den = _window_sum(flows, valid, t, 2, y, x)
    if den == 0:
        return False, np.float32(0), np.float32(0)
    if median:
        return (True, _median_of_valid(flows, valid, t, 0, y, x, window),
                _median_of_valid(flows, valid, t, 1, y, x, window))  # fmt: skip
    return True, _window_sum(flows, valid, t, 0, y, x) / den, _window_sum(flows, valid, t, 1, y, x) / den


@njit(cache=True, nogil=True)
def _candidates(vb, rb, t_len, h4, w4, k, used, chain_sums, chain_counts, v1):
    """Rules 1-3 and 5 toward t + s, s = 2k - 1: candidate sums (N, 2) and weights (N,), the constant-velocity
    flows (N, 2) and where they exist (N,), and (composed only) rules 2-3 alone, unweighted: sums and counts."""
    s = 2 * k - 1
    n, hw = rb.shape[0], h4 * w4
    sums, counts = np.empty((n, 2), np.float32), np.empty(n, np.float32)
    _direct(vb, rb, t_len, h4, w4, s, sums, counts)
    hit = counts > 0
    placed = np.empty((n, 2), np.float32)  # first estimate: rule 1, else rule 5
    velocity = np.zeros((n, 2), np.float32)
    velocity_ok = np.zeros(n, np.bool_)
    for i in range(n):
        if hit[i]:
            den = max(counts[i], np.float32(1))
            placed[i, 0], placed[i, 1] = sums[i, 0] / den, sums[i, 1] / den
        else:
            velocity[i, 0], velocity[i, 1], velocity_ok[i] = _velocity(vb, rb, t_len, hw, i, i // hw, s)
            placed[i, 0], placed[i, 1] = velocity[i, 0], velocity[i, 1]
    comp_sums, comp_counts = chain_sums[k].copy(), chain_counts[k].copy()
    lo, hi = max(0, -s), min(t_len, t_len - s)  # frames whose neighbour t + s is inside the run
    for f in range(lo, hi):  # rule 2 re-places the blocks without a rule-1 candidate
        for y in range(h4):
            for x in range(w4):
                i = (f * h4 + y) * w4 + x
                if not hit[i] and used[i]:
                    found, fx, fy = _common(vb, rb, h4, w4, i, f, y, x, placed[i, 0], placed[i, 1], s)
                    if found:
                        placed[i, 0], placed[i, 1] = np.float32(fx), np.float32(fy)
    for f in range(lo, hi):  # rule 2 candidates (composed-v1: those blocks only)
        for y in range(h4):
            for x in range(w4):
                i = (f * h4 + y) * w4 + x
                if v1 and (hit[i] or not used[i]):
                    continue
                found, fx, fy = _common(vb, rb, h4, w4, i, f, y, x, placed[i, 0], placed[i, 1], s)
                if found:
                    w = np.float32(COMPOSED_WEIGHT) if hit[i] else np.float32(1)
                    sums[i, 0] = np.float32(np.float64(sums[i, 0]) + fx * np.float64(w))
                    sums[i, 1] = np.float32(np.float64(sums[i, 1]) + fy * np.float64(w))
                    counts[i] += w
                    if not v1:
                        comp_sums[i, 0] = np.float32(np.float64(comp_sums[i, 0]) + fx)
                        comp_sums[i, 1] = np.float32(np.float64(comp_sums[i, 1]) + fy)
                        comp_counts[i] += np.float32(1)
    if not v1:  # rule 3 candidates
        for i in range(n):
            w = np.float32(COMPOSED_WEIGHT) if hit[i] else np.float32(1)
            sums[i, 0] += chain_sums[k, i, 0] * w
            sums[i, 1] += chain_sums[k, i, 1] * w
            counts[i] += chain_counts[k, i] * w
    return sums, counts, velocity, velocity_ok, comp_sums, comp_counts


@njit(cache=True, nogil=True)
def _project(sums, counts, vec, have, t_len, h4, w4, s):
    """Rule 4, in place: the blocks of t = u - s without candidates take minus the flows from u to t of the
    blocks of u with rules 2-3 candidates (``vec`` sums over ``have`` of them) that land on them."""
    empty = counts == 0  # before any projection: every block of u landing on an empty block counts
    for f in range(max(0, s), min(t_len, t_len + s)):  # frames u whose t = u - s is inside the run
        for y in range(h4):
            for x in range(w4):
                j = (f * h4 + y) * w4 + x
                if have[j] == 0:
                    continue
                vx, vy = vec[j, 0] / have[j], vec[j, 1] / have[j]
                at = _land(f, y, x, vx, vy, -s, h4, w4)
                if empty[at]:
                    sums[at, 0] -= vx
                    sums[at, 1] -= vy
                    counts[at] += np.float32(1)


@njit(cache=True, nogil=True)
def _finish(sums, counts, velocity, velocity_ok, t_len, h4, w4, v1):
    """Rules 5, 6 and 8 on one direction's candidates: flows (T, 2, h4, w4) and validity (T, h4, w4)."""
    exact, hit = np.empty((t_len, 2, h4, w4), np.float32), np.empty((t_len, h4, w4), np.bool_)
    i = -1
    for t in range(t_len):
        for y in range(h4):
            for x in range(w4):
                i += 1
                hit[t, y, x] = counts[i] > 0
                den = counts[i] if counts[i] > 0 else np.float32(1)
                exact[t, 0, y, x], exact[t, 1, y, x] = sums[i, 0] / den, sums[i, 1] / den
    flow, ok = np.empty((t_len, 2, h4, w4), np.float32), np.empty((t_len, h4, w4), np.bool_)
    lost = np.zeros((t_len, h4, w4), np.bool_)  # blocks with nothing: neither candidates, neighbours nor velocity
    window = np.empty((2 * FILL_RADIUS + 1) ** 2, np.float32)
    i = -1
    for t in range(t_len):
        for y in range(h4):
            for x in range(w4):
                i += 1
                ok[t, y, x] = hit[t, y, x]
                if hit[t, y, x]:
                    flow[t, 0, y, x], flow[t, 1, y, x] = exact[t, 0, y, x], exact[t, 1, y, x]
                    continue
                near, fx, fy = _fill(exact, hit, not v1, t, y, x, window)
                if near:
                    flow[t, 0, y, x], flow[t, 1, y, x] = fx, fy
                else:
                    flow[t, 0, y, x], flow[t, 1, y, x] = velocity[i, 0], velocity[i, 1]
                    ok[t, y, x] = velocity_ok[i]
                    lost[t, y, x] = not velocity_ok[i]
    for t in range(t_len):  # blocks with nothing: filled from the valid blocks within reach (else kept)
        for y in range(h4):
            for x in range(w4):
                if lost[t, y, x]:
                    near, fx, fy = _fill(flow, ok, not v1, t, y, x, window)
                    if near or v1:
                        flow[t, 0, y, x], flow[t, 1, y, x] = fx, fy
    return flow, ok


@njit(cache=True, nogil=True)
def _blocks(mv, mv_ref, v1):
    """The block-major inputs of both directions: ``rb``, ``vb``, which blocks use a list, the rule-7 links and
    (composed only) the rule-3 chains."""
    t_len, lists, h4, w4 = mv_ref.shape
    n = t_len * h4 * w4
    rb, vb, used = np.empty((n, lists), np.int16), np.empty((n, lists, 2), np.float32), np.zeros(n, np.bool_)
    i = -1
    for t in range(t_len):
        for y in range(h4):
            for x in range(w4):
                i += 1
                for lst in range(lists):
                    rb[i, lst] = mv_ref[t, lst, y, x]
                    vb[i, lst, 0] = np.float32(mv[t, lst, y, x, 0]) / np.float32(MV_UNIT)
                    vb[i, lst, 1] = np.float32(mv[t, lst, y, x, 1]) / np.float32(MV_UNIT)
                    used[i] = used[i] or rb[i, lst] != 0
    linked = _linked(mv_ref)
    chain_sums, chain_counts = np.zeros((2, n, 2), np.float32), np.zeros((2, n), np.float32)
    if not v1:
        _chains(vb, rb, t_len, h4, w4, chain_sums, chain_counts)
    return rb, vb, used, linked, chain_sums, chain_counts


@njit(cache=True, nogil=True)
def _direction(k, own, other, linked, t_len, h4, w4, v1):
    """Flows and validity (T, 2, h4, w4) / (T, h4, w4) toward t - 1 (k = 0) or t + 1 (k = 1) from the
    :func:`_candidates` of that direction (``own``) and of the other one; zero and invalid where rule 7 unlinks."""
    sums, counts, velocity, velocity_ok = own[0], own[1], own[2], own[3]
    if not v1:  # rule 4 where rules 1-3 found nothing: the other direction's compositions, projected
        _project(sums, counts, other[4], other[5], t_len, h4, w4, 2 * k - 1)
    flow, ok = _finish(sums, counts, velocity, velocity_ok, t_len, h4, w4, v1)
    for t in range(t_len):
        if not linked[t, k]:  # rule 7: unlinked boundaries stay 0 and invalid
            flow[t] = 0
            ok[t] = False
    return flow, ok


def _composed(mv: np.ndarray, mv_ref: np.ndarray, v1: bool) -> tuple[np.ndarray, np.ndarray]:
    """The composed rules; the two directions run on two threads (the loops release the GIL)."""
    t_len, _, h4, w4 = mv_ref.shape
    rb, vb, used, linked, chain_sums, chain_counts = _blocks(mv, mv_ref, v1)
    with ThreadPoolExecutor(2) as pool:
        cands = list(pool.map(lambda k: _candidates(vb, rb, t_len, h4, w4, k, used, chain_sums, chain_counts, v1),
                              (0, 1)))  # fmt: skip
        # _candidates' comp_sums / comp_counts ([4], [5]) are read by the other direction, never written
        flows, valid = zip(*pool.map(lambda k: _direction(k, cands[k], cands[1 - k], linked, t_len, h4, w4, v1),
                                     (0, 1)), strict=True)  # fmt: skip
    return np.stack(flows, 1), np.stack(valid, 1)


#: Every compiled function of this module (their on-disk caches are dropped together when one cannot be loaded).
_KERNELS = (_land, _linked, _direct, _chains, _velocity, _common, _window_sum, _median_of_valid, _fill,
            _candidates, _project, _finish, _blocks, _direction)  # fmt: skip


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
    if mv_ref.ndim != 4 or mv.shape != (*mv_ref.shape, 2):  # the compiled loops do not check their indices
        raise ValueError(f"mv {mv.shape} and mv_ref {mv_ref.shape} must be (T, L, h4, w4, 2) and (T, L, h4, w4)")
    if method == "scaled":
        return _scaled(mv, mv_ref)
    mv, mv_ref = np.ascontiguousarray(mv, np.int16), np.ascontiguousarray(mv_ref, np.int16)
    try:
        return _composed(mv, mv_ref, method == "composed-v1")
    except Exception:
        if _blocks.overloads and _direction.overloads:  # the loops compiled (or loaded) fine: a real error
            raise
        # numba could not load its on-disk cache of the loops (a truncated or garbled file): drop it, compile anew
        for kernel in _KERNELS:
            kernel._cache.flush()
        return _composed(mv, mv_ref, method == "composed-v1")

