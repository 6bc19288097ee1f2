"""Multi-resolution hashed feature grid (the CSP network's encoding): CPU kernels.

Layout (see ``recon.fields.closest_point_network``): ``tables`` (L, T, F) float32, one table per
level; level l has ``res[l]`` cells across the encoding box; dense levels index node
(i, j, k) as i + (r + 1) (j + (r + 1) k), hashed ones as
(i * P0 ^ j * P1 ^ k * P2) mod T (T a power of two, P the primes of HASH_PRIMES).
A point's features at a level are the trilinear blend of its cell's 8 corner rows.

- ``encode``: features of many points, parallel over points.
- ``encode_backward``: gradient of a loss with respect to the tables, parallel over
  levels (each level's rows belong to one thread, so the sums are race-free and their
  order, hence the result, is the same on every run).
- ``adam_step``: one fused Adam update of the tables that also clears the gradient,
  parallel over rows; rows past ``used[l]`` (the unused tail of a dense level) are skipped.
"""

from __future__ import annotations

import math

import numba
import numpy as np

P1 = np.int64(2654435761)
P2 = np.int64(805459861)


@numba.njit(inline="always", cache=True)
def _cell(s, r):
    """Cell index and fraction along one axis for s in [0, 1] at r cells."""
    p = s * r
    i = int(math.floor(p))
    if i > r - 1:
        i = r - 1
    return i, p - i


@numba.njit(inline="always", cache=True)
def _row(i, j, k, r, dense, mask):
    if dense:
        r1 = r + 1
        return i + r1 * (j + r1 * k)
    return ((np.int64(i)) ^ (np.int64(j) * P1) ^ (np.int64(k) * P2)) & mask


@numba.njit(inline="always", cache=True)
def _unit(x, lo, ext):
    s = (np.float64(x) - lo) / ext
    if s < 0.0:
        s = 0.0
    if s > 1.0:
        s = 1.0
    return s


@numba.njit(inline="always", cache=True)
def _encode_point(x, p, tables, res, dense, lo, ext, mask, feat):
    """Point p's features (level-major) and normalised coordinates into ``feat`` (1-D,
    at least L * F + 3 long)."""
    L, _, F = tables.shape
    sx = _unit(x[p, 0], lo[0], ext[0])
    sy = _unit(x[p, 1], lo[1], ext[1])
    sz = _unit(x[p, 2], lo[2], ext[2])
    for lv in range(L):
        r = res[lv]
        d = dense[lv]
        i, fx = _cell(sx, r)
        j, fy = _cell(sy, r)
        k, fz = _cell(sz, r)
        for f in range(F):
            feat[lv * F + f] = 0.0
        for c in range(8):
            ci = (c >> 2) & 1
            cj = (c >> 1) & 1
            ck = c & 1
            w = (fx if ci else 1.0 - fx) * (fy if cj else 1.0 - fy) * (fz if ck else 1.0 - fz)
            row = _row(i + ci, j + cj, k + ck, r, d, mask)
            for f in range(F):
                feat[lv * F + f] += np.float32(w) * tables[lv, row, f]
    feat[L * F] = 2.0 * sx - 1.0
    feat[L * F + 1] = 2.0 * sy - 1.0
    feat[L * F + 2] = 2.0 * sz - 1.0


@numba.njit(parallel=True, cache=True)
def encode(x, tables, res, dense, lo, ext, out):
    """Features and normalised coordinates of points.

    x      : (N, 3) float32, cube units
    tables : (L, T, F) float32 (T a power of two)
    res    : (L,) int64 cells across the encoding box; dense : (L,) bool
    lo, ext: (3,) float64, the encoding box's low corner and extent
    out    : (N, L * F + 3) float32, written: level-major features, then 2 s - 1 where s is
             the point's position in the box (0..1, clamped)
    """
    n = x.shape[0]
    mask = np.int64(tables.shape[1] - 1)
    for p in numba.prange(n):
        _encode_point(x, p, tables, res, dense, lo, ext, mask, out[p])


@numba.njit(parallel=True, cache=True)
def encode_backward(x, grad, res, dense, lo, ext, grad_tables):
    """Accumulate d(loss)/d(tables) into ``grad_tables`` (L, T, F) float32 from ``grad``
    (N, >= L * F) float32, the gradient of the loss with respect to :func:`encode`'s
    features (its first L * F columns); other arguments as for :func:`encode`."""
    n = x.shape[0]
    L, T, F = grad_tables.shape
    mask = np.int64(T - 1)
    for lv in numba.prange(L):
        r = res[lv]
        d = dense[lv]
        for p in range(n):
            i, fx = _cell(_unit(x[p, 0], lo[0], ext[0]), r)
            j, fy = _cell(_unit(x[p, 1], lo[1], ext[1]), r)
            k, fz = _cell(_unit(x[p, 2], lo[2], ext[2]), r)
            for c in range(8):
                ci = (c >> 2) & 1
                cj = (c >> 1) & 1
                ck = c & 1
                w = np.float32((fx if ci else 1.0 - fx) * (fy if cj else 1.0 - fy) * (fz if ck else 1.0 - fz))
                row = _row(i + ci, j + cj, k + ck, r, d, mask)
                for f in range(F):
                    grad_tables[lv, row, f] += w * grad[p, lv * F + f]


@numba.njit(parallel=True, cache=True)
def adam_step(params, grad, m, v, used, lr, beta1, beta2, eps, step, lazy):
    """One Adam step (as torch.optim.Adam) on (L, T, F) float32 ``params`` with moments
    ``m``, ``v``; clears ``grad``. Only rows < ``used[l]`` (L,) int64 of each level change.
    ``step`` counts from 1. ``lazy``: entries whose gradient is exactly zero (no point of
    this step touched their row) keep their value and moments, as in Instant-NGP's
    optimiser, and cost only the read of their gradient."""
    L, T, F = params.shape
    bc1 = 1.0 - beta1 ** step
    bc2 = 1.0 - beta2 ** step
    step_size = np.float32(lr / bc1)
    inv_bc2 = np.float32(1.0 / math.sqrt(bc2))
    b1 = np.float32(beta1)
    b2 = np.float32(beta2)
    e = np.float32(eps)
    chunk = 4096
    n_chunks = (T + chunk - 1) // chunk
    for job in numba.prange(L * n_chunks):
        lv = job // n_chunks
        r0 = (job % n_chunks) * chunk
        r1 = min(r0 + chunk, used[lv])
        for row in range(r0, r1):
            for f in range(F):
                g = grad[lv, row, f]
                if lazy and g == 0.0:
                    continue
                mm = b1 * m[lv, row, f] + (1 - b1) * g
                vv = b2 * v[lv, row, f] + (1 - b2) * g * g
                m[lv, row, f] = mm
                v[lv, row, f] = vv
                params[lv, row, f] -= step_size * mm / (math.sqrt(vv) * inv_bc2 + e)
                grad[lv, row, f] = 0.0


@numba.njit(parallel=True, fastmath=True, cache=True)
def network(x, tables, res, dense, lo, ext, weights, biases, widths, out_scale, out):
    """The whole network (encoding, then a ReLU MLP) at points, for evaluation.

    x       : (N, 3) float32, cube units
    tables, res, dense, lo, ext : as for :func:`encode`
    weights : (K, W, W) float32, layer k's matrix transposed (in, out) in its top-left
              widths[k] x widths[k + 1] corner; biases (K, W) float32; widths (K + 1,) int64
    out     : (N, 3) float32, written: the last layer's output times ``out_scale``
    """
    n = x.shape[0]
    K = weights.shape[0]
    W = weights.shape[1]
    mask = np.int64(tables.shape[1] - 1)
    block = 64
    n_blocks = (n + block - 1) // block
    for b in numba.prange(n_blocks):
        h = np.empty(W, np.float32)
        nxt = np.empty(W, np.float32)
        for p in range(b * block, min(n, (b + 1) * block)):
            _encode_point(x, p, tables, res, dense, lo, ext, mask, h)
            for layer in range(K):
                n_in = widths[layer]
                n_out = widths[layer + 1]
                for o in range(n_out):
                    nxt[o] = biases[layer, o]
                for a in range(n_in):
                    v = h[a]
                    for o in range(n_out):
                        nxt[o] += v * weights[layer, a, o]
                last = layer == K - 1
                for o in range(n_out):
                    v = nxt[o]
                    h[o] = v if (last or v > 0.0) else 0.0
            for o in range(3):
                out[p, o] = h[o] * out_scale
