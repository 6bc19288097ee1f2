"""Wind the faces of a mesh alike across their shared edges: CPU (a walk is sequential)."""

import numba
import numpy as np


@numba.njit(cache=True)
def wind_alike(indptr, neighbor, same, votes, turn):
    """Choose which faces to turn so that neighbours wind alike, piece by piece.

    indptr (F + 1,) int64, neighbor (K,) int64: the faces across face i's shared edges are
    neighbor[indptr[i]:indptr[i + 1]]; same (K,) bool: that pair walks its edge the same
    way (so one of them must turn); votes (F,) float64: how much each face prefers its
    given winding (negative: the other). turn (F,) bool, written: True where a face turns.
    A breadth-first walk from each unvisited face fixes each reached face relative to the
    face it came from; a piece whose turned faces outvote the rest is turned as a whole.
    """
    n = indptr.shape[0] - 1
    seen = np.zeros(n, np.bool_)
    queue = np.empty(n, np.int64)
    for s in range(n):
        if seen[s]:
            continue
        seen[s] = True
        turn[s] = False
        queue[0] = s
        head, tail = 0, 1
        total = 0.0
        while head < tail:
            i = queue[head]
            head += 1
            total += -votes[i] if turn[i] else votes[i]
            for t in range(indptr[i], indptr[i + 1]):
                j = neighbor[t]
                if seen[j]:
                    continue
                seen[j] = True
                turn[j] = turn[i] ^ same[t]
                queue[tail] = j
                tail += 1
        if total < 0.0:
            for q in range(tail):
                turn[queue[q]] = not turn[queue[q]]
