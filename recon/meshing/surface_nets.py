"""Surface nets on the grid edges an unsigned surface crosses (open surfaces of CSP fields).

Marching cubes needs a sign at every node, and on an unsigned field those signs come from
a labelling of the nodes into two sides. Surfaces that end, branch or meet (the boundary
of an open sheet, a panel welded onto another) cannot be coloured in two sides, so a
labelling must break somewhere; with a fitted field's directions, which are noise right
at the surface, it breaks on the surface and the mesh tears there. Here no node gets a
side: each grid edge is tested on its own, and each crossed edge makes one quad joining
the four cells around it, at one vertex per cell (the mean of the cell's crossings, moved
onto the surface). An edge is tested once for all the cells around it, so the mesh has no
cracks where the tests agree, and a wrong test costs a quad, not a seam.

The test of edge (a, b): the node nearer the surface lies across the tangent plane at the
farther node's closest point (the farther node's direction is the surer one), and the two
directions oppose. On a noisy field the closest points jitter, and a node next to the
surface may lie a little short of that plane; the caller can allow for it (``slack``).

Unlike side labels and marching cubes, the net needs no consistent labelling, so sheets
that end, branch or meet keep their normals right (``recon.meshing.unsigned`` says whether
it reads the network's closest points or its data's planes).
"""

from __future__ import annotations

import numpy as np


def grid_edges(nodes, index):
    """Grid edges between listed nodes: nodes (M, 3) int64 grid indices, index the grid
    (X, Y, Z) int64 of node numbers (-1 where no node). Returns (a (E,) int64, b (E,) int64,
    axis (E,) int8): b is a's neighbour one step along +axis."""
    out_a, out_b, out_axis = [], [], []
    n = np.array(index.shape)
    for axis in range(3):
        nb = nodes.copy()
        nb[:, axis] += 1
        ok = nb[:, axis] < n[axis]
        j = np.full(len(nodes), -1, np.int64)
        j[ok] = index[tuple(nb[ok].T)]
        a = np.flatnonzero(j >= 0)
        out_a.append(a)
        out_b.append(j[a])
        out_axis.append(np.full(len(a), axis, np.int8))
    return np.concatenate(out_a), np.concatenate(out_b), np.concatenate(out_axis)


def crossed_edges(nodes, pos, feet, dist, dirs, index, *, oppose_cos: float = 0.0, slack: float = 0.0):
    """Grid edges between near-surface nodes that the surface crosses.

    nodes (M, 3) int64 grid indices; pos, feet (M, 3) float64 the nodes' positions and their
    closest points; dist (M,) |pos - feet|; dirs (M, 3) unit (pos - feet) / dist; index: the
    grid (X, Y, Z) int64 of node numbers (-1 where no node). Returns (a (E,) int64, b (E,)
    int64, axis (E,) int8): b is a's neighbour one step along +axis. ``slack`` (input
    units, the jitter of a noisy field's closest points, which puts nodes next to the
    surface on either side of it): a nearer node within twice this of its own closest
    point may lie up to this far short of the farther node's tangent plane.
    """
    a, b, axis = grid_edges(nodes, index)
    far_a = dist[a] >= dist[b]
    ref = np.where(far_a, a, b)
    other = np.where(far_a, b, a)
    depth = -np.einsum("ij,ij->i", pos[other] - feet[ref], dirs[ref])  # how far across ref's plane
    # only a node within the jitter of its own closest point can be on the wrong side by it
    across = (depth > 0.0) | ((depth > -slack) & (dist[other] < 2.0 * slack))
    oppose = np.einsum("ij,ij->i", dirs[a], dirs[b]) < oppose_cos
    keep = across & oppose
    return a[keep], b[keep], axis[keep]


def _cells_around(axis: int) -> np.ndarray:
    """(4, 3) int64: the low corners of the four cells around an edge along ``axis``, as
    offsets from the edge's low node, in the order that makes a quad face +axis."""
    o1, o2 = (axis + 1) % 3, (axis + 2) % 3  # cyclic: e_o1 x e_o2 = e_axis
    cells = np.zeros((4, 3), np.int64)
    for k, (d1, d2) in enumerate(((1, 1), (0, 1), (0, 0), (1, 0))):
        cells[k, o1], cells[k, o2] = -d1, -d2
    return cells


_AROUND = {axis: _cells_around(axis) for axis in range(3)}


def net_quads(nodes, a, axis, points, shape, *, flip=None):
    """Quads of a surface net: one per crossed edge.

    nodes (M, 3) int64; a (E,) the edges' low nodes; axis (E,) their axes; points (E, 3)
    their crossing points; shape: the grid's node counts (3,). ``flip`` (E,) bool turns a
    quad to face -axis. Returns (vertices (V, 3) float64: per cell, the mean of its
    crossings; quads (Q, 4) int64, in order around their edge; edge (Q,) int64: the edge
    each quad was made from). Edges on the grid's border (fewer than four cells) make no
    quad.
    """
    cells_shape = np.asarray(shape) - 1
    quads, pts, edges = [], [], []
    for ax in range(3):
        sel = np.flatnonzero(axis == ax)
        cells = nodes[a[sel]][:, None, :] + _AROUND[ax][None]  # (e, 4, 3)
        inside = ((cells >= 0) & (cells < cells_shape)).all(axis=(1, 2))
        sel, cells = sel[inside], cells[inside]
        keys = np.ravel_multi_index(cells.reshape(-1, 3).T, tuple(cells_shape)).reshape(-1, 4)
        if flip is not None:
            keys = np.where(flip[sel][:, None], keys[:, ::-1], keys)
        quads.append(keys)
        pts.append(points[sel])
        edges.append(sel)
    quads = np.concatenate(quads)
    pts = np.concatenate(pts)
    cell_keys, inv = np.unique(quads, return_inverse=True)
    inv = inv.reshape(-1, 4)
    total = np.zeros((len(cell_keys), 3))
    count = np.zeros(len(cell_keys))
    for k in range(4):
        np.add.at(total, inv[:, k], pts)
        np.add.at(count, inv[:, k], 1.0)
    return total / count[:, None], inv, np.concatenate(edges)


def split_quads(verts, quads, quad_of):
    """(Q, 4) quads -> (2Q, 3) triangles, each quad cut along its shorter diagonal, and the
    (2Q,) values of ``quad_of`` (Q,) for them; triangles that repeat a vertex are dropped."""
    d02 = np.linalg.norm(verts[quads[:, 0]] - verts[quads[:, 2]], axis=1)
    d13 = np.linalg.norm(verts[quads[:, 1]] - verts[quads[:, 3]], axis=1)
    short02 = (d02 <= d13)[:, None]
    first = np.where(short02, quads[:, [0, 1, 2]], quads[:, [0, 1, 3]])
    second = np.where(short02, quads[:, [0, 2, 3]], quads[:, [1, 2, 3]])
    faces = np.concatenate([first, second])
    of = np.concatenate([quad_of, quad_of])
    ok = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    return faces[ok], of[ok]


def consistent_winding(faces, seed_votes=None):
    """Faces (F, 3) turned so that neighbours across each edge shared by two faces wind
    alike (a walk over each connected piece; a piece that cannot be wound alike, a Moebius
    band, keeps the turns the walk made). ``seed_votes`` (F,) float: each piece ends up
    wound the way the larger total of its faces' votes prefers (positive: as given).
    Returns the new (F, 3) int64 faces."""
    from recon.kernels.winding_cpu import wind_alike
    from recon.triangles import face_edges

    f = np.ascontiguousarray(faces, np.int64)
    if len(f) == 0:
        return f
    e, key = face_edges(f)
    owner = np.tile(np.arange(len(f)), 3)
    order = np.argsort(key, kind="stable")
    ks = key[order]
    # edges used by exactly two faces
    start = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
    count = np.diff(np.r_[start, len(ks)])
    pair = start[count == 2]
    f1, f2 = owner[order[pair]], owner[order[pair + 1]]
    same = e[order[pair], 0] == e[order[pair + 1], 0]  # both walk the edge the same way: one must turn
    src, dst = np.concatenate([f1, f2]), np.concatenate([f2, f1])
    both = np.concatenate([same, same])
    order = np.argsort(src, kind="stable")
    indptr = np.zeros(len(f) + 1, np.int64)
    np.cumsum(np.bincount(src, minlength=len(f)), out=indptr[1:])
    votes = np.zeros(len(f)) if seed_votes is None else np.asarray(seed_votes, np.float64)
    turn = np.zeros(len(f), np.bool_)
    wind_alike(indptr, np.ascontiguousarray(dst[order], np.int64), np.ascontiguousarray(both[order]),
               np.ascontiguousarray(votes), turn)
    out = f.copy()
    out[turn] = out[turn][:, [0, 2, 1]]
    return out
