"""Numba CPU kernel of the csp fitter's training targets: closest points on blended local planes.

The fitter finds each query's nearest denoised points (a k-d tree query); this kernel turns
them into the query's target, one query per parallel iteration. On a GPU machine the fit's
set-up runs here too, on the host's cores, where in NumPy it took most of the fit.
"""

from __future__ import annotations

import math

import numba


@numba.njit(parallel=True, cache=True)
def plane_targets(queries, dist, nbr, surf, surf_normals, spacing, radius, out):
    """Targets of (Q, 3) float64 ``queries`` from their ``nbr`` (Q, k) int64 nearest rows of
    ``surf`` (S, 3) float64 at distances ``dist`` (Q, k) float64, nearest first.

    For each query: the Gaussian-weighted mean plane of its neighbours (width: the nearest
    point's ``spacing`` (S,), in the points' units), their unoriented ``surf_normals``
    (S, 3) turned to agree with the nearest one's, neighbours far off the nearest point's
    plane weighted down as ``exp(-(off / width)^2)`` (the other side of a thin part); the
    target is the query's foot on that plane, its tangential reach from the nearest point
    clamped to that point's ``radius`` (S,). Writes ``out`` (Q, 3) float64.
    """
    n_q, k = nbr.shape
    for b in numba.prange(n_q):
        j0 = nbr[b, 0]
        sig = max(spacing[j0], 1e-12)
        n0x, n0y, n0z = surf_normals[j0, 0], surf_normals[j0, 1], surf_normals[j0, 2]
        s0x, s0y, s0z = surf[j0, 0], surf[j0, 1], surf[j0, 2]
        wsum = 0.0
        cx = cy = cz = 0.0
        nx = ny = nz = 0.0
        for i in range(k):
            j = nbr[b, i]
            px, py, pz = surf[j, 0], surf[j, 1], surf[j, 2]
            off = (px - s0x) * n0x + (py - s0y) * n0y + (pz - s0z) * n0z
            dot = surf_normals[j, 0] * n0x + surf_normals[j, 1] * n0y + surf_normals[j, 2] * n0z
            align = 1.0 if dot > 0.0 else (-1.0 if dot < 0.0 else 0.0)
            r = dist[b, i] / sig
            o = off / sig
            w = math.exp(-r * r - o * o) if align != 0.0 else 0.0
            if i == 0:
                w = max(w, 1e-12)  # the nearest point always counts
            wsum += w
            cx += w * px
            cy += w * py
            cz += w * pz
            wa = w * align
            nx += wa * surf_normals[j, 0]
            ny += wa * surf_normals[j, 1]
            nz += wa * surf_normals[j, 2]
        cx /= wsum
        cy /= wsum
        cz /= wsum
        nl = max(math.sqrt(nx * nx + ny * ny + nz * nz), 1e-12)
        nx /= nl
        ny /= nl
        nz /= nl
        qx, qy, qz = queries[b, 0], queries[b, 1], queries[b, 2]
        h = (qx - cx) * nx + (qy - cy) * ny + (qz - cz) * nz
        fx, fy, fz = qx - h * nx, qy - h * ny, qz - h * nz
        rx, ry, rz = fx - s0x, fy - s0y, fz - s0z
        rn = rx * nx + ry * ny + rz * nz
        tx, ty, tz = rx - rn * nx, ry - rn * ny, rz - rn * nz
        tl = math.sqrt(tx * tx + ty * ty + tz * tz)
        over = max(tl - radius[j0], 0.0) / max(tl, 1e-12)
        out[b, 0] = fx - tx * over
        out[b, 1] = fy - ty * over
        out[b, 2] = fz - tz * over
