"""Inside and outside of a closed surface's grid nodes, from the free space around it.

The closed branch of the unsigned mesher (:mod:`recon.meshing.unsigned`): band nodes take
the side of the free space their closest-point direction points to, and nodes off the
band the side of the free space they lie in, so every sign agrees with one inside.
"""

from __future__ import annotations

import math

import numpy as np


def enclosed_sides(field, origin, n, nodes, dist, dirs, h, tau, *, band: float, min_inside_nodes: int,
                   relations=None):
    """Sides of band nodes from the free space around a closed surface: (M,) int8, 1 inside,
    and the (X, Y, Z) bool grid of inside nodes off the band.

    Free space connected to the boundary of the box is outside, the rest inside. A band
    node nearer the surface than ``tau`` (input units) takes the side of the free space
    its direction points to (at twice ``tau`` from the surface); on dense fields, nodes
    that free space does not reach (the inside of thin parts) then take sides along the
    direction ``relations`` (ea, eb, rel, conf: the edges of step 2) from decided
    neighbours, and what remains the side most of its neighbours took. Unlike a labelling
    by relations alone, this cannot tear: every sign agrees with one inside. On dense
    clouds free space is what lies off the band (a wall as thick as the band: a thinner
    one leaks through the field's small gaps), and reaches band nodes farther than ``tau``
    through their neighbours; on sparse ones (``tau`` wider than the band) it is read off
    a coarser grid of its own. ``band``: the band's half-width in voxels;
    ``min_inside_nodes``: enclosed free space of fewer nodes is a pocket of noise, no
    inside. Returns None when no free space is enclosed."""
    from scipy import ndimage

    from recon.fields.closest_point_geometry import inside_outside, touches_box

    fine = tau <= band * h * 1.001
    if fine:
        free = np.ones(tuple(n), bool)
        free[tuple(nodes.T)] = False
        comp, count = ndimage.label(free)
        is_out = touches_box(comp, count)
        enclosed = ~is_out & (np.bincount(comp.ravel(), minlength=count + 1) >= min_inside_nodes)
        enclosed[0] = False
        label = np.where(is_out[comp], np.int8(-1), np.where(enclosed[comp], np.int8(1), np.int8(0)))
        label[~free] = 0  # -1 outside, 1 inside, 0 on the band (or a tiny pocket)
        del comp, free
        lo, hc = origin, h
    else:
        box = np.stack([origin, origin + (n - 1) * h])
        res = int(math.ceil(float((box[1] - box[0]).max()) / tau)) + 1
        coarse, lo, hc = inside_outside(field, resolution=max(res, 8))
        label = (-coarse).astype(np.int8)
    if not (label == 1).any():
        return None
    side = np.zeros(len(nodes), np.int8)
    near = dist <= tau
    if fine:
        # free space flows into the band's outer nodes, one neighbour step a round, both
        # sides at once (so a gap in the field splits between them)
        outer = np.flatnonzero(~near)
        for _ in range(int(math.ceil(band)) + 2):
            votes = _neighbour_votes(label, nodes[outer], n)
            newly = (side[outer] == 0) & (votes != 0)
            side[outer[newly]] = np.sign(votes[newly])
            label[tuple(nodes[outer[newly]].T)] = side[outer[newly]]
            if not newly.any():
                break
    x = origin + nodes[near] * h
    probe = x + dirs[near] * (2.0 * tau - dist[near])[:, None]
    ijk = np.clip(np.rint((probe - lo) / hc).astype(np.int64), 0, np.array(label.shape) - 1)
    side[near] = label[tuple(ijk.T)]
    if not fine:
        side[~near] = label[tuple(np.clip(np.rint((origin + nodes[~near] * h - lo) / hc).astype(np.int64), 0,
                                          np.array(label.shape) - 1).T)]
    if fine and relations is not None:
        # thin parts: their inside is all band (and the field's closest points blur into a
        # false sheet along their middle), so no free space reaches it, and the neighbours'
        # majority below would call it outside and drop the part. Sides go inward from
        # decided nodes along the direction relations instead
        _relate_undecided(side, *relations)
    # the rest: the side most of their 6 neighbours took (a few rounds reach every node)
    grid = np.zeros(tuple(n), np.int8)
    for _ in range(8):
        todo = np.flatnonzero(side == 0)
        if len(todo) == 0:
            break
        grid[tuple(nodes.T)] = side
        side[todo] = np.sign(_neighbour_votes(grid, nodes[todo], n))
    # nodes off the band: inside where their free space is (fine), or where the coarse
    # grid says so, and where it cannot tell, the side of the nearest band node
    in_band = np.zeros(tuple(n), bool)
    in_band[tuple(nodes.T)] = True
    if fine:
        inside_far = (label == 1) & ~in_band
    else:
        # the coarse cell of a node, axis by axis (separable: no (X*Y*Z, 3) index array)
        axes = [np.clip(np.rint((origin[a] + np.arange(n[a]) * h - lo[a]) / hc).astype(np.int64), 0, label.shape[a] - 1)
                for a in range(3)]
        far_label = label[np.ix_(*axes)]
        grid[tuple(nodes.T)] = side
        unsure = (far_label == 0) & ~in_band
        if unsure.any():
            idx = np.empty((3,) + tuple(n), np.int32)
            ndimage.distance_transform_edt(~in_band, return_distances=False, return_indices=True, indices=idx)
            far_label[unsure] = grid[idx[0][unsure], idx[1][unsure], idx[2][unsure]]
            del idx
        inside_far = (far_label == 1) & ~in_band
    return (side > 0).astype(np.int8), inside_far


def _relate_undecided(side, ea, eb, rel, conf, rounds: int = 64):
    """Sides (M,) int8 (-1 outside, 1 inside, 0 undecided; updated in place) spread from
    decided nodes to undecided neighbours along edges (ea, eb) of relation ``rel`` (1:
    opposite sides) and confidence ``conf``, one neighbour step a round, each node taking
    the side its decided neighbours' confidence-weighted relations favour."""
    turn = np.where(rel == 1, -1.0, 1.0) * conf
    for _ in range(rounds):
        todo = side == 0
        if not todo.any():
            break
        vote = np.zeros(len(side))
        for a, b in ((ea, eb), (eb, ea)):
            m = todo[b] & ~todo[a]
            np.add.at(vote, b[m], side[a[m]] * turn[m])
        newly = todo & (vote != 0)
        if not newly.any():
            break
        side[newly] = np.sign(vote[newly]).astype(side.dtype)


def _neighbour_votes(grid, ijk, n):
    """(K,) int64 sum of the int8 ``grid`` over the 6 neighbours of (K, 3) nodes."""
    vote = np.zeros(len(ijk), np.int64)
    for axis in range(3):
        for step in (-1, 1):
            nb = ijk.copy()
            nb[:, axis] = np.clip(nb[:, axis] + step, 0, n[axis] - 1)
            vote += grid[tuple(nb.T)]
    return vote
