"""Numba CPU kernel: orient unit normals consistently over a neighbour graph (used by the
GridPull set-up, the closest-point field's normals and point-cloud normals)."""

import numba
import numpy as np


@numba.njit(cache=True, inline="always")
def _flip(normals, i):
    normals[i, 0] = -normals[i, 0]
    normals[i, 1] = -normals[i, 1]
    normals[i, 2] = -normals[i, 2]


@numba.njit(cache=True)
def propagate_orientation(normals, neighbors, orientation):
    """Orient unit normals consistently over a k-nearest-neighbour graph, in place.

    orientation: (N,) int8, +1/-1 where the normal's direction is already known (flip by
    it), 0 where not. Known points seed a breadth-first walk; each reached neighbour is
    flipped to agree with the point it was reached from. Points reached from no seed
    stay 0. neighbors: (N, k) int64 indices.
    """
    n = normals.shape[0]
    queue = np.empty(n, np.int64)
    tail = 0
    for i in range(n):
        if orientation[i] != 0:
            if orientation[i] < 0:
                _flip(normals, i)
                orientation[i] = 1
            queue[tail] = i
            tail += 1
    head = 0
    while head < tail:
        i = queue[head]
        head += 1
        for t in range(neighbors.shape[1]):
            j = neighbors[i, t]
            if j < 0 or j >= n or orientation[j] != 0:
                continue
            if normals[i, 0] * normals[j, 0] + normals[i, 1] * normals[j, 1] + normals[i, 2] * normals[j, 2] < 0.0:
                _flip(normals, j)
            orientation[j] = 1
            queue[tail] = j
            tail += 1


@numba.njit(cache=True)
def orient_along_tree(normals, order, parent):
    """Flip unit normals in place so that each agrees with its parent's in a spanning tree.

    order: (M,) int64 node indices, every parent before its children (a breadth-first
    order); parent: (N,) int64, the parent of each node, or a negative number or N and
    above for a root (whose normal is kept). Nodes not in ``order`` are left alone.
    """
    n = normals.shape[0]
    for t in range(order.shape[0]):
        i = order[t]
        if i < 0 or i >= n:
            continue
        j = parent[i]
        if j < 0 or j >= n:
            continue
        if normals[i, 0] * normals[j, 0] + normals[i, 1] * normals[j, 1] + normals[i, 2] * normals[j, 2] < 0.0:
            _flip(normals, i)
