"""The `composed` flow rules on hand-made motion vectors (no codec): rule 4 (the other frame's compositions
projected) and rule 6 (the median fill), as documented in :mod:`cpgd_bench.data.flow`."""

from __future__ import annotations

import numpy as np

from cpgd_bench.motion import MV_UNIT, block_flows

H4 = W4 = 8
NEXT = 1  # direction index of flow_next


def _empty(t_len: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((t_len, 2, H4, W4, 2), np.int16), np.zeros((t_len, 2, H4, W4), np.int16)


def test_the_next_frames_chain_is_projected_onto_a_block_without_candidates() -> None:
    """Frame 1 predicts from 2, whose block predicts from 0: F(1->0) = mv1 + mv2 lands on an intra block of 0."""
    mv, ref = _empty(3)
    ref[0, 0, :, :2] = 1  # frame 0 predicts from 1 in two columns only (the frames stay linked)
    mv1, mv2 = np.array([4, 0]), np.array([-8, 4])  # pixels; frame 1's block (4, 4) lands on (4, 5) of frame 2
    ref[1, 0, 4, 4], mv[1, 0, 4, 4] = 1, mv1 * MV_UNIT
    ref[2, 0, 4, 5], mv[2, 0, 4, 5] = -2, mv2 * MV_UNIT
    flows, valid = block_flows(mv, ref)
    # F(1->0) = (-4, 4) px: frame 1's block (4, 4) is block (5, 3) of frame 0, whose flow to frame 1 is (4, -4)
    np.testing.assert_allclose(flows[0, NEXT, :, 5, 3], [4, -4])
    assert valid[0, NEXT, 5, 3]
    assert not valid[0, NEXT, 0, 7]  # far from every candidate: no flow of its own


def test_a_block_without_candidates_takes_the_median_of_its_neighbours() -> None:
    """Frame 0 predicts from 1 with one motion, a few outliers and one intra block; frame 1 is intra."""
    mv, ref = _empty(2)
    ref[0, 0] = 1
    mv[0, 0] = np.array([4, -2]) * MV_UNIT
    mv[0, 0, 2, 2:5] = np.array([-40, 40]) * MV_UNIT  # three outliers near the hole, (-40, 40) px
    ref[0, 0, 4, 4] = 0  # an intra block: no candidate of rules 1-4
    flows, valid = block_flows(mv, ref)
    np.testing.assert_allclose(flows[0, NEXT, :, 4, 4], [4, -2])  # the mean would be pulled toward the outliers
    assert not valid[0, NEXT, 4, 4] and valid[0, NEXT, 4, 3]
