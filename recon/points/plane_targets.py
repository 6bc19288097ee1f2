"""Closest points on a point cloud's blended local planes.

The csp fitter's training targets (``recon.fitters.csp``), and the data planes its field's
meshes end on (``ClosestPointField.onto_data``): one function, so the two cannot drift
apart. The loop over queries is the numba kernel ``recon.kernels.plane_targets_cpu``.
"""

from __future__ import annotations

import numpy as np

TARGET_RADIUS_SPACINGS = 1.5
"A target's reach along its plane from the nearest point, in that point's spacings (past the gaps of uneven sampling)."


def make_targets(queries, surf, surf_normals, surf_radius, spacing, tree, *, neighbors: int = 8) -> np.ndarray:
    """Closest points of (Q, 3) queries on the denoised surface, as the foot of the
    perpendicular on the local mean plane around the query's nearest denoised point, its
    tangential part clamped to that point's radius (so the surface ends near the last
    samples and open boundaries stay open).

    The mean plane is that of the ``neighbors`` nearest denoised points, Gaussian-weighted
    by distance (width: the nearest point's spacing), their normals turned to agree with
    the nearest one's, and points farther than a spacing off its plane left out (the other
    side of a thin part). A single point's plane jumps from one point to the next, and a
    field fitted to it is faceted and dimpled between samples; the blend is smooth there
    and the same on a plane."""
    from recon.kernels.plane_targets_cpu import plane_targets

    k = min(neighbors, len(surf))
    out = np.empty((len(queries), 3), np.float64)
    step = 65536  # bounds the (step, k) neighbour arrays
    for s in range(0, len(queries), step):
        q = np.ascontiguousarray(queries[s: s + step], np.float64)
        d, j = tree.query(q, k=k, workers=-1)
        plane_targets(q, np.asarray(d, np.float64).reshape(len(q), k), np.asarray(j, np.int64).reshape(len(q), k),
                      surf, surf_normals, spacing, surf_radius, out[s: s + step])
    return out
