"""recon.kernels.parity_union_cpu: two-side labels from same / opposite relations."""

import numpy as np

from recon.kernels.parity_union_cpu import parity_union


def run(n, edges, conf_min=0.5):
    e = np.array(edges, dtype=np.float64).reshape(-1, 4)
    return parity_union(n, e[:, 0].astype(np.int64), e[:, 1].astype(np.int64), e[:, 2].astype(np.int8),
                        e[:, 3], conf_min)


def test_a_consistent_chain_gets_alternating_sides_and_no_conflict():
    # 0 -opp- 1 -same- 2 -opp- 3
    side, conflicts = run(4, [(0, 1, 1, 0.9), (1, 2, 0, 0.9), (2, 3, 1, 0.9)])
    assert conflicts == 0
    assert side[0] != side[1] and side[1] == side[2] and side[2] != side[3]


def test_a_contradicting_cycle_counts_only_confident_conflicts():
    # a triangle of three "opposite" relations cannot be two-coloured; the least sure edge
    # (last) is the one that conflicts
    tri = [(0, 1, 1, 0.9), (1, 2, 1, 0.8)]
    side, conflicts = run(3, tri + [(2, 0, 1, 0.7)])
    assert conflicts == 1 and side[0] != side[1] and side[1] != side[2]
    _, unsure = run(3, tri + [(2, 0, 1, 0.2)])
    assert unsure == 0
