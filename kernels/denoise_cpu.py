"""Numba CPU kernel of the csp fitter's denoising: robust local-plane projection, one point
per parallel iteration (the NumPy form ran on one core, and was a large share of a GPU
fit's host set-up)."""

from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(parallel=True, cache=True)
def project_on_local_planes(points, dist, nbr, out, normals):
    """Project (N, 3) float64 ``points`` onto their robust local planes.

    ``nbr`` (N, k) int64 and ``dist`` (N, k) float64: each point's k nearest points (itself
    first) and their distances. A plane is the weighted least-squares plane of the
    neighbours: Gaussian weights of distance (width 0.6 x the k-th distance), then, twice,
    divided by 1 + (residual / (1.5 x median |residual|))^2, so outliers and the far side of
    thin parts pull less. Writes the projections to ``out`` (N, 3) and the planes' unit
    normals (unoriented) to ``normals`` (N, 3).
    """
    n, k = nbr.shape
    for i in numba.prange(n):
        bw = max(dist[i, k - 1], 1e-12) * 0.6
        g = np.empty(k)
        w = np.empty(k)
        for a in range(k):
            t = dist[i, a] / bw
            g[a] = math.exp(-t * t)
            w[a] = g[a]
        cov = np.empty((3, 3))
        r = np.empty(k)
        c = np.zeros(3)
        nrm = np.zeros(3)
        for _ in range(2):
            ws = 0.0
            c[:] = 0.0
            for a in range(k):
                ws += w[a]
                for e in range(3):
                    c[e] += w[a] * points[nbr[i, a], e]
            for e in range(3):
                c[e] /= ws
            cov[:, :] = 0.0
            for a in range(k):
                j = nbr[i, a]
                for e in range(3):
                    de = points[j, e] - c[e]
                    for f in range(e, 3):
                        cov[e, f] += w[a] * de * (points[j, f] - c[f])
            for e in range(3):
                for f in range(e):
                    cov[e, f] = cov[f, e]
            _, vecs = np.linalg.eigh(cov)
            for e in range(3):
                nrm[e] = vecs[e, 0]
            for a in range(k):
                j = nbr[i, a]
                r[a] = ((points[j, 0] - c[0]) * nrm[0] + (points[j, 1] - c[1]) * nrm[1]
                        + (points[j, 2] - c[2]) * nrm[2])
            sigma = 1.5 * np.median(np.abs(r)) + 1e-12
            for a in range(k):
                q = r[a] / sigma
                w[a] = g[a] / (1.0 + q * q)
        off = (points[i, 0] - c[0]) * nrm[0] + (points[i, 1] - c[1]) * nrm[1] + (points[i, 2] - c[2]) * nrm[2]
        for e in range(3):
            out[i, e] = points[i, e] - off * nrm[e]
            normals[i, e] = nrm[e]
