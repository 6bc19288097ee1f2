"""The backward pass of the occupancy decoder's feature gather: a scatter-add (CPU, one thread)."""

import numba


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
