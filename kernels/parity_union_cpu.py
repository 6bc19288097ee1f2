"""Numba CPU kernel: a parity union-find that labels the nodes of a graph with two sides
from "same side" / "opposite side" relations, most confident first (the unsigned mesher's signs)."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def _find(parent, parity, i):
    """Root of i and i's parity relative to it (0 same side, 1 opposite); compresses the path."""
    r = i
    p = 0
    while parent[r] != r:
        p ^= parity[r]
        r = parent[r]
    cur = i
    cp = p
    while parent[cur] != cur:
        nxt = parent[cur]
        old = parity[cur]
        parent[cur] = r
        parity[cur] = cp
        cp ^= old
        cur = nxt
    return r, p


@numba.njit(cache=True)
def parity_union(n_nodes, edge_a, edge_b, edge_rel, edge_conf, conf_min):
    """Side labels of nodes joined by edges that say "same side" (rel 0) or "opposite" (rel 1).

    Edges must come sorted by confidence, most confident first (a maximum spanning forest
    of the relations, as Kruskal's algorithm builds it). An edge that contradicts the labels
    already fixed is a conflict; conflicts with confidence >= conf_min are counted.
    Returns (side (n_nodes,) int8 in {0, 1}, conflicts).
    """
    parent = np.arange(n_nodes)
    parity = np.zeros(n_nodes, np.int8)
    conflicts = 0
    for e in range(edge_a.shape[0]):
        ra, pa = _find(parent, parity, edge_a[e])
        rb, pb = _find(parent, parity, edge_b[e])
        if ra != rb:
            parent[ra] = rb
            parity[ra] = pa ^ pb ^ edge_rel[e]
        elif (pa ^ pb) != edge_rel[e] and edge_conf[e] >= conf_min:
            conflicts += 1
    side = np.empty(n_nodes, np.int8)
    for i in range(n_nodes):
        _, side[i] = _find(parent, parity, i)
    return side, conflicts
