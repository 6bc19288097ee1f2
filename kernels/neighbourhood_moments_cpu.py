"""Numba CPU kernel of point normals' adaptive-scale plane fits: the first and second
moments of each point's nearest neighbours, for several neighbourhood sizes at once.

Cumulative sums over all 320 neighbours of every point in NumPy need a (chunk, 320, 3, 3)
array per chunk, and its temporaries cost as much time as the sums. Here each point runs
one sequential sum, as cumsum does, so the moments are bit for bit the same.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(parallel=True, cache=True)
def prefix_moments(points, query, nbr, ks, s1, s2):
    """For each query point i and each size ks[j]: the sums over its ks[j] nearest points of
    the offsets d = points[nbr[i, a]] - query[i] (``s1[i, j]``, 3) and of their outer
    products d d^T (``s2[i, j]``, 3 x 3).

    points (N, 3) float64; query (Q, 3) float64; nbr (Q, K) int64, nearest first;
    ks (M,) int64 ascending, each at most K; s1 (Q, M, 3) and s2 (Q, M, 3, 3) float64, written.
    """
    q_count, k_max = nbr.shape
    m = ks.shape[0]
    for i in numba.prange(q_count):
        a1 = np.zeros(3)
        a2 = np.zeros((3, 3))
        j = 0
        for a in range(k_max):
            if j >= m:
                break
            for u in range(3):
                du = points[nbr[i, a], u] - query[i, u]
                a1[u] += du
                for v in range(3):
                    a2[u, v] += du * (points[nbr[i, a], v] - query[i, v])
            if a + 1 == ks[j]:
                for u in range(3):
                    s1[i, j, u] = a1[u]
                    for v in range(3):
                        s2[i, j, u, v] = a2[u, v]
                j += 1
