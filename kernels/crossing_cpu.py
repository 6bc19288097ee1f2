"""Which cells of a grid does a level set cross: CPU, parallel over x-planes.

CPU only on purpose: the mask feeds scikit-image's marching cubes, which runs on the CPU.
"""

import numba
import numpy as np


@numba.njit(parallel=True, cache=True)
def crossing_mask_cpu(values, level, near, out_mask, scratch):
    """Mark the cells whose corners bracket ``level``, dilated by one cell.

    values   : (X, Y, Z) float32
    level    : float, the iso-value
    near     : float >= 0; nodes with |value - level| < near are counted
    out_mask : (X, Y, Z) bool, written: True where a crossing cell is within one cell
               (cell (i, j, k) spans nodes i..i+1, j..j+1, k..k+1 and sits at index (i, j, k))
    scratch  : (X, Y, Z) bool, overwritten
    returns  : the number of nodes with |value - level| < near
    """
    nx, ny, nz = values.shape
    lv = np.float32(level)
    lo_near = np.float32(level - near)
    hi_near = np.float32(level + near)
    n_near = 0
    # Crossing cells into scratch; count nodes near the level.
    for i in numba.prange(nx):
        for j in range(ny):
            for k in range(nz):
                v = values[i, j, k]
                if v > lo_near and v < hi_near:
                    n_near += 1
                cross = False
                if i < nx - 1 and j < ny - 1 and k < nz - 1:
                    up = 0
                    for di in range(2):
                        for dj in range(2):
                            for dk in range(2):
                                if values[i + di, j + dj, k + dk] > lv:
                                    up += 1
                    cross = up > 0 and up < 8
                scratch[i, j, k] = cross
    # Dilate along z (scratch -> out), y (out -> scratch), x (scratch -> out).
    for i in numba.prange(nx):
        for j in range(ny):
            for k in range(nz):
                out_mask[i, j, k] = (
                    scratch[i, j, k] or (k > 0 and scratch[i, j, k - 1]) or (k < nz - 1 and scratch[i, j, k + 1])
                )
    for i in numba.prange(nx):
        for j in range(ny):
            for k in range(nz):
                scratch[i, j, k] = (
                    out_mask[i, j, k] or (j > 0 and out_mask[i, j - 1, k]) or (j < ny - 1 and out_mask[i, j + 1, k])
                )
    for i in numba.prange(nx):
        for j in range(ny):
            for k in range(nz):
                out_mask[i, j, k] = (
                    scratch[i, j, k] or (i > 0 and scratch[i - 1, j, k]) or (i < nx - 1 and scratch[i + 1, j, k])
                )
    return n_near
