"""Ray visibility on an occupancy grid (numba, CPU): which way out of a closed shape is open,
and how deep the occupied band runs on each side of a point."""

from __future__ import annotations

import math

import numba


@numba.njit(inline="always", cache=True)
def _occupied(occ, origin, h, x, y, z):
    """-1 outside the grid, else the grid's cell value at (x, y, z)."""
    i = int(math.floor((x - origin[0]) / h))
    j = int(math.floor((y - origin[1]) / h))
    k = int(math.floor((z - origin[2]) / h))
    if i < 0 or j < 0 or k < 0 or i >= occ.shape[0] or j >= occ.shape[1] or k >= occ.shape[2]:
        return -1
    return 1 if occ[i, j, k] else 0


@numba.njit(inline="always", cache=True)
def _escapes(occ, origin, h, px, py, pz, dx, dy, dz, band_steps):
    """1 when a ray from p along d leaves the grid without meeting occupied cells again
    after it has left p's own occupied band (at most ``band_steps`` half-cell steps)."""
    step = 0.5 * h
    t = step
    s = 0
    # leave the point's own band
    while s < band_steps:
        v = _occupied(occ, origin, h, px + t * dx, py + t * dy, pz + t * dz)
        if v == -1:
            return 1
        if v == 0:
            break
        t += step
        s += 1
    while True:
        v = _occupied(occ, origin, h, px + t * dx, py + t * dy, pz + t * dz)
        if v == -1:
            return 1
        if v == 1:
            return 0
        t += step


@numba.njit(inline="always", cache=True)
def _band_exit(occ, origin, h, px, py, pz, dx, dy, dz, max_steps):
    """Distance along d at which a ray from p first reaches a free cell or leaves the grid
    (quarter-cell steps, at most ``max_steps`` of them)."""
    step = 0.25 * h
    t = step
    s = 0
    while s < max_steps:
        if _occupied(occ, origin, h, px + t * dx, py + t * dy, pz + t * dz) != 1:
            break
        t += step
        s += 1
    return t


@numba.njit(inline="always", cache=True)
def _tangent_frame(nx, ny, nz, phase):
    """Two unit vectors spanning the plane normal to the unit (nx, ny, nz), turned about it
    by ``phase`` radians."""
    if abs(nx) < 0.9:
        ax, ay, az = 1.0, 0.0, 0.0
    else:
        ax, ay, az = 0.0, 1.0, 0.0
    e1x, e1y, e1z = ny * az - nz * ay, nz * ax - nx * az, nx * ay - ny * ax
    ln = math.sqrt(e1x * e1x + e1y * e1y + e1z * e1z)
    e1x, e1y, e1z = e1x / ln, e1y / ln, e1z / ln
    e2x, e2y, e2z = ny * e1z - nz * e1y, nz * e1x - nx * e1z, nx * e1y - ny * e1x
    c, s = math.cos(phase), math.sin(phase)
    return (c * e1x + s * e2x, c * e1y + s * e2y, c * e1z + s * e2z,
            c * e2x - s * e1x, c * e2y - s * e1y, c * e2z - s * e1z)


@numba.njit(parallel=True, cache=True)
def _ray_fans(occ, origin, h, points, normals, dirs_local, steps, depth, out):
    """The fan of rays on each side of every point: escape shares (``depth`` False, see
    :func:`escape_shares`) or band depths (True, see :func:`band_depths`)."""
    n = points.shape[0]
    nd = dirs_local.shape[0]
    for i in numba.prange(n):
        nx, ny, nz = normals[i, 0], normals[i, 1], normals[i, 2]
        e1x, e1y, e1z, e2x, e2y, e2z = _tangent_frame(nx, ny, nz, 2.399963229728653 * i)
        for side in range(2):
            sg = 1.0 if side == 0 else -1.0
            acc = 0.0
            for d in range(nd):
                a, b, w = dirs_local[d, 0], dirs_local[d, 1], sg * dirs_local[d, 2]
                dx = a * e1x + b * e2x + w * nx
                dy = a * e1y + b * e2y + w * ny
                dz = a * e1z + b * e2z + w * nz
                px, py, pz = points[i, 0], points[i, 1], points[i, 2]
                if depth:
                    acc += _band_exit(occ, origin, h, px, py, pz, dx, dy, dz, steps) * dirs_local[d, 2]
                else:
                    e = _escapes(occ, origin, h, px, py, pz, dx, dy, dz, steps)
                    acc += e
                    if d == 0:
                        out[i, 2 + side] = e
            out[i, side] = acc / (nd * h) if depth else acc / nd


def escape_shares(occ, origin, h, points, normals, dirs_local, band_steps, out):
    """out[i, 0] / out[i, 1]: share of rays that escape on the +normal / -normal side;
    out[i, 2] / out[i, 3]: 1 where the first ray (dirs_local[0]) escapes on that side.

    occ: (X, Y, Z) bool grid, origin (3,) float64, h cell size; points, normals (N, 3)
    float64 (unit normals); dirs_local (D, 3) float64 ray directions in a frame whose third
    axis is the normal (z > 0); per point the frame is turned about the normal by the
    golden angle times the point's index, so neighbours sample different directions.
    A ray leaves its own occupied band within ``band_steps`` half-cell steps.
    """
    _ray_fans(occ, origin, h, points, normals, dirs_local, band_steps, False, out)


def band_depths(occ, origin, h, points, normals, dirs_local, max_steps, out):
    """out[i, 0] / out[i, 1]: mean depth (along the normal, in cells) at which rays from
    point i on the +normal / -normal side leave the occupied band it sits in.

    Same grid, points, normals and ray frame as :func:`escape_shares`; each ray is followed
    for at most ``max_steps`` quarter-cell steps.
    """
    _ray_fans(occ, origin, h, points, normals, dirs_local, max_steps, True, out)
