"""Occupancy fitter kernels (CPU): the feature gather's backward scatter-add, winding numbers, smoothness gradient."""

import numba
import numpy as np


@numba.njit(cache=True)
def scatter_rows(rows, weights, grad, out):
    """out[rows[m, c]] += weights[m, c] * grad[m] for every query m and corner c.

    rows (M, 8) int64; weights (M, 8) float32; grad (M, C) float32; out (T, C) float32
    (accumulated into, not cleared). One thread: the sum's order, hence its bits, is fixed.
    """
    M, K = rows.shape
    C = grad.shape[1]
    for m in range(M):
        for c in range(K):
            r = rows[m, c]
            w = weights[m, c]
            for k in range(C):
                out[r, k] += w * grad[m, k]


def winding_numbers(queries, points, normals, areas, out):
    """Generalized winding numbers of oriented points (Barill et al. 2018, direct sum).

    queries (M, 3), points (N, 3), normals (N, 3) outward unit, areas (N,): all float64,
    one unit -> out (M,) float64: about 1 inside a closed sampled surface, 0 outside,
    fractions near holes. w(q) = sum_i areas_i (p_i - q) . n_i / (4 pi |p_i - q|^3); a
    point at a query adds nothing.
    """
    p = np.asarray(points, np.float64)
    n = np.asarray(normals, np.float64)
    # one contiguous array per coordinate: the inner loop then vectorises (4x on this machine)
    _winding_sum(np.ascontiguousarray(queries, np.float64), *(np.ascontiguousarray(p[:, k]) for k in range(3)),
                 *(np.ascontiguousarray(n[:, k]) for k in range(3)), np.ascontiguousarray(areas, np.float64), out)


@numba.njit(parallel=True, fastmath=True, cache=True)
def _winding_sum(queries, px, py, pz, nx, ny, nz, areas, out):
    inv4pi = 1.0 / (4.0 * np.pi)
    for m in numba.prange(queries.shape[0]):
        qx, qy, qz = queries[m, 0], queries[m, 1], queries[m, 2]
        acc = 0.0
        for i in range(px.shape[0]):
            dx = px[i] - qx
            dy = py[i] - qy
            dz = pz[i] - qz
            r2 = dx * dx + dy * dy + dz * dz
            inv = 1.0 / (r2 * np.sqrt(r2)) if r2 > 0.0 else 0.0
            acc += areas[i] * (dx * nx[i] + dy * ny[i] + dz * nz[i]) * inv
        out[m] = acc * inv4pi


@numba.njit(cache=True)
def add_smoothness_grad(dev, scale, grad):
    """grad += the gradient of scale * sum over axes and neighbour pairs of (dev[a] - dev[b])^2.

    dev, grad (S, S, S, C) float32 (grad accumulated into); scale float. One thread (fixed order).
    """
    S0, S1, S2, C = dev.shape
    s2 = 2.0 * scale
    for i in range(S0):
        for j in range(S1):
            for k in range(S2):
                for c in range(C):
                    v = dev[i, j, k, c]
                    acc = 0.0
                    if i > 0:
                        acc += v - dev[i - 1, j, k, c]
                    if i < S0 - 1:
                        acc += v - dev[i + 1, j, k, c]
                    if j > 0:
                        acc += v - dev[i, j - 1, k, c]
                    if j < S1 - 1:
                        acc += v - dev[i, j + 1, k, c]
                    if k > 0:
                        acc += v - dev[i, j, k - 1, c]
                    if k < S2 - 1:
                        acc += v - dev[i, j, k + 1, c]
                    grad[i, j, k, c] += s2 * acc
