"""GridPull kernels on the CPU: grid set-up (band, inside/outside, far values) and the
per-iteration loss/gradient/Adam passes, parallel over sites and band nodes.

Every pass gathers (no two threads write one location), so a fixed seed gives the same
field twice on one machine.
"""

import math

import numba
import numpy as np

from recon.kernels._compile import cpu

_cell_coords = cpu.cell_coords
_eval_site = cpu.eval_site
_query_term = cpu.query_term
_point_term = cpu.point_term
_second_differences_at = cpu.second_differences_at
_update_node = cpu.update_node
_scatter_value = cpu.scatter_value

BAND = 0  # region label of band nodes (in neither region)
OUTSIDE = 1
INSIDE = 2


# ---------------------------------------------------------------- set-up (CPU only)


@numba.njit(inline="always", cache=True)
def _ball_box(points, n, origin, h, rv, nx, ny, nz):
    """Point n in grid units (gx, gy, gz) and the node index range (clipped to the grid)
    of the box around its ball of radius rv grid units."""
    gx = (points[n, 0] - origin[0]) / h
    gy = (points[n, 1] - origin[1]) / h
    gz = (points[n, 2] - origin[2]) / h
    i0 = max(int(math.ceil(gx - rv)), 0)
    i1 = min(int(math.floor(gx + rv)), nx - 1)
    j0 = max(int(math.ceil(gy - rv)), 0)
    j1 = min(int(math.floor(gy + rv)), ny - 1)
    k0 = max(int(math.ceil(gz - rv)), 0)
    k1 = min(int(math.floor(gz + rv)), nz - 1)
    return gx, gy, gz, i0, i1, j0, j1, k0, k1


@numba.njit(cache=True)
def splat_nearest(points, radii, origin, h, dist2, nearest):
    """For every node within radii[n] of points[n]: the nearest such point and its squared
    distance. dist2 (X,Y,Z) f32 starts at +inf (it stays inf off the union of the balls,
    which is the band); nearest (X,Y,Z) int32. Serial, so ties resolve the same way
    every run (the lower point index wins)."""
    nx, ny, nz = dist2.shape
    for n in range(points.shape[0]):
        gx, gy, gz, i0, i1, j0, j1, k0, k1 = _ball_box(points, n, origin, h, radii[n] / h, nx, ny, nz)
        rv = radii[n] / h
        r2 = rv * rv
        for i in range(i0, i1 + 1):
            dx2 = (i - gx) ** 2
            for j in range(j0, j1 + 1):
                dy2 = dx2 + (j - gy) ** 2
                if dy2 > r2:
                    continue
                for k in range(k0, k1 + 1):
                    d2 = dy2 + (k - gz) ** 2
                    if d2 <= r2 and d2 * h * h < dist2[i, j, k]:
                        dist2[i, j, k] = d2 * h * h
                        nearest[i, j, k] = n


@numba.njit(cache=True)
def splat_planes(points, normals, sigma, origin, h, node_index, sums):
    """Gaussian-weighted sums of the points and of their normals at the nodes: for every
    node m = node_index[i, j, k] >= 0 within 3 sigma[n] of points[n], with
    w = exp(-|x - p_n|^2 / sigma[n]^2): sums[m] += (w, w p_n, w n_n) (7 columns).
    Points with sigma 0 are skipped. Serial, so sums run in the same order every time."""
    nx, ny, nz = node_index.shape
    for n in range(points.shape[0]):
        if sigma[n] <= 0.0:
            continue
        inv = (h / sigma[n]) ** 2
        rv = 3.0 * sigma[n] / h
        r2 = rv * rv
        gx, gy, gz, i0, i1, j0, j1, k0, k1 = _ball_box(points, n, origin, h, rv, nx, ny, nz)
        for i in range(i0, i1 + 1):
            dx = i - gx
            for j in range(j0, j1 + 1):
                dy = j - gy
                dxy2 = dx * dx + dy * dy
                if dxy2 > r2:
                    continue
                for k in range(k0, k1 + 1):
                    m = node_index[i, j, k]
                    if m < 0:
                        continue
                    dz = k - gz
                    d2 = dxy2 + dz * dz
                    if d2 > r2:
                        continue
                    w = math.exp(-d2 * inv)
                    sums[m, 0] += w
                    for a in range(3):
                        sums[m, 1 + a] += w * points[n, a]
                        sums[m, 4 + a] += w * normals[n, a]


@numba.njit(inline="always", cache=True)
def _unflat(c, ny, nz):
    """(i, j, k) of flat index c = (i * ny + j) * nz + k."""
    return c // (ny * nz), (c // nz) % ny, c % nz


@numba.njit(inline="always", cache=True)
def _neighbor(i, j, k, d, nx, ny, nz):
    """The d-th of the six face neighbours of (i, j, k) (+x, -x, +y, -y, +z, -z), and
    whether it lies inside the grid."""
    a = i + (1 if d == 0 else (-1 if d == 1 else 0))
    b = j + (1 if d == 2 else (-1 if d == 3 else 0))
    e = k + (1 if d == 4 else (-1 if d == 5 else 0))
    return a, b, e, 0 <= a < nx and 0 <= b < ny and 0 <= e < nz


@numba.njit(cache=True)
def label_regions(band):
    """Label non-band nodes: OUTSIDE if 6-connected to the grid's boundary, else INSIDE.

    band: (X,Y,Z) bool. Returns labels (X,Y,Z) uint8: 0 band, 1 outside, 2 inside.
    """
    nx, ny, nz = band.shape
    labels = np.zeros(band.shape, np.uint8)
    queue = np.empty(nx * ny * nz, np.int32)
    head = 0
    tail = 0
    for i in range(nx):
        for j in range(ny):
            for k in range(nz):
                if not band[i, j, k] and (i == 0 or j == 0 or k == 0 or i == nx - 1 or j == ny - 1 or k == nz - 1):
                    labels[i, j, k] = OUTSIDE
                    queue[tail] = (i * ny + j) * nz + k
                    tail += 1
    while head < tail:  # breadth-first from the border, through non-band nodes
        i, j, k = _unflat(queue[head], ny, nz)
        head += 1
        for d in range(6):
            a, b, e, ok = _neighbor(i, j, k, d, nx, ny, nz)
            if ok and not band[a, b, e] and labels[a, b, e] == BAND:
                labels[a, b, e] = OUTSIDE
                queue[tail] = (a * ny + b) * nz + e
                tail += 1
    for i in range(nx):
        for j in range(ny):
            for k in range(nz):
                if not band[i, j, k] and labels[i, j, k] == BAND:
                    labels[i, j, k] = INSIDE
    return labels


FAR = 1 << 29


@numba.njit(parallel=True, cache=True)
def _l1_sweeps(d):
    """Forward and backward min-plus sweeps along each axis, in place. Every sweep runs
    along the contiguous last axis or over whole contiguous rows, so memory is read in
    order; the parallel loop is over the rows that do not depend on each other."""
    nx, ny, nz = d.shape
    # axis 2 (contiguous): independent lines
    for i in numba.prange(nx):
        for j in range(ny):
            for k in range(1, nz):
                d[i, j, k] = min(d[i, j, k], d[i, j, k - 1] + 1)
            for k in range(nz - 2, -1, -1):
                d[i, j, k] = min(d[i, j, k], d[i, j, k + 1] + 1)
    # axis 1: rows of planes, sequential in j
    for i in numba.prange(nx):
        for j in range(1, ny):
            for k in range(nz):
                d[i, j, k] = min(d[i, j, k], d[i, j - 1, k] + 1)
        for j in range(ny - 2, -1, -1):
            for k in range(nz):
                d[i, j, k] = min(d[i, j, k], d[i, j + 1, k] + 1)
    # axis 0: whole planes, sequential in i, parallel within a plane
    for i in range(1, nx):
        for j in numba.prange(ny):
            for k in range(nz):
                d[i, j, k] = min(d[i, j, k], d[i - 1, j, k] + 1)
    for i in range(nx - 2, -1, -1):
        for j in numba.prange(ny):
            for k in range(nz):
                d[i, j, k] = min(d[i, j, k], d[i + 1, j, k] + 1)


def l1_distance(source: np.ndarray) -> np.ndarray:
    """Exact L1 (6-neighbour step) distance, in nodes, from every node to the nearest
    node where ``source`` is true: separable, so each axis is one parallel sweep.
    Returns int32 (X,Y,Z); FAR where there is no source at all."""
    d = np.where(source, np.int32(0), np.int32(FAR))
    _l1_sweeps(d)
    return d


@numba.njit(parallel=True, cache=True)
def far_values(labels, steps, base, step_length, dense):
    """dense = +-(base + (steps - 1) * step_length) off the band (minus inside), in place."""
    nx, ny, nz = labels.shape
    for i in numba.prange(nx):
        for j in range(ny):
            for k in range(nz):
                v = base + max(steps[i, j, k] - 1, 0) * step_length
                dense[i, j, k] = -v if labels[i, j, k] == INSIDE else v


@numba.njit(cache=True)
def build_entries(sites, origin, h, band_index, n_nodes):
    """Transpose the sites' trilinear stencils into per-node lists (CSR), once.

    sites: (S,3) f64 positions; band_index: (X,Y,Z) int32 (-1 = not optimised).
    Returns entry_start (n_nodes+1,) int64, entry_site (E,) int32, entry_w (E,4) f32 with
    (w, dw/dx, dw/dy, dw/dz) of the node's trilinear weight at the site. Entries of a
    node are in increasing site order, so the gather sums in a fixed order.
    """
    nx, ny, nz = band_index.shape
    S = sites.shape[0]
    counts = np.zeros(n_nodes + 1, np.int64)
    cells = np.empty((S, 3), np.int32)
    fracs = np.empty((S, 3), np.float64)
    for s in range(S):
        i, tx = _cell_coords(nx, (sites[s, 0] - origin[0]) / h)
        j, ty = _cell_coords(ny, (sites[s, 1] - origin[1]) / h)
        k, tz = _cell_coords(nz, (sites[s, 2] - origin[2]) / h)
        cells[s, 0] = i
        cells[s, 1] = j
        cells[s, 2] = k
        fracs[s, 0] = tx
        fracs[s, 1] = ty
        fracs[s, 2] = tz
        for c in range(8):
            m = band_index[i + (c & 1), j + ((c >> 1) & 1), k + ((c >> 2) & 1)]
            if m >= 0:
                counts[m + 1] += 1
    for m in range(n_nodes):
        counts[m + 1] += counts[m]
    start = counts.copy()
    fill = counts[:-1].copy()
    E = start[n_nodes]
    entry_site = np.empty(E, np.int32)
    entry_w = np.empty((E, 4), np.float32)
    for s in range(S):
        i = cells[s, 0]
        j = cells[s, 1]
        k = cells[s, 2]
        tx = fracs[s, 0]
        ty = fracs[s, 1]
        tz = fracs[s, 2]
        for c in range(8):
            a = c & 1
            b = (c >> 1) & 1
            d = (c >> 2) & 1
            m = band_index[i + a, j + b, k + d]
            if m < 0:
                continue
            wx = tx if a else 1.0 - tx
            wy = ty if b else 1.0 - ty
            wz = tz if d else 1.0 - tz
            sx = 1.0 if a else -1.0
            sy = 1.0 if b else -1.0
            sz = 1.0 if d else -1.0
            e = fill[m]
            fill[m] += 1
            entry_site[e] = s
            entry_w[e, 0] = wx * wy * wz
            entry_w[e, 1] = sx * wy * wz / h
            entry_w[e, 2] = wx * sy * wz / h
            entry_w[e, 3] = wx * wy * sz / h
    return start, entry_site, entry_w


# ---------------------------------------------------------------- one iteration


# ---------------------------------------------------------------- one iteration
# Each pass loops over sites or band nodes; the per-element math is ``_math.py``'s, shared
# with the CUDA passes in ``gridpull_cuda.py`` (same names and arguments).


@numba.njit(parallel=True, cache=True)
def eval_sites(dense, origin, h, sites, out_f, out_g):
    for s in numba.prange(sites.shape[0]):
        _eval_site(s, dense, origin, h, sites, out_f, out_g)


@numba.njit(parallel=True, cache=True)
def query_terms(sites, site_f, site_g, n_queries, target, target_pos, w_pull, w_cons,
                site_df, site_dg, query_dgt, query_loss):
    for q in numba.prange(n_queries):
        _query_term(q, sites, site_f, site_g, n_queries, target, target_pos, w_pull, w_cons,
                    site_df, site_dg, query_dgt, query_loss)


@numba.njit(parallel=True, cache=True)
def point_terms(site_f, n_queries, target_start, w_surf, query_dgt, site_df, site_dg):
    for p in numba.prange(target_start.shape[0] - 1):
        _point_term(p, site_f, n_queries, target_start, w_surf, query_dgt, site_df, site_dg)


@numba.njit(parallel=True, cache=True)
def second_differences(values, neighbors, out):
    for m in numba.prange(values.shape[0]):
        _second_differences_at(m, values, neighbors, out)


@numba.njit(parallel=True, cache=True)
def update_nodes(values, neighbors, second_diff, entry_start, entry_site, entry_w, site_df, site_dg,
                 smooth_scale, adam_m, adam_v, lr, beta1, beta2, eps, bias1, bias2):
    for m in numba.prange(values.shape[0]):
        _update_node(m, values, neighbors, second_diff, entry_start, entry_site, entry_w, site_df,
                     site_dg, smooth_scale, adam_m, adam_v, lr, beta1, beta2, eps, bias1, bias2)


@numba.njit(parallel=True, cache=True)
def scatter_values(node_ijk, values, dense):
    for m in numba.prange(values.shape[0]):
        _scatter_value(m, node_ijk, values, dense)


@numba.njit(parallel=True, cache=True)
def neighbor_table(node_ijk, band_index):
    """(M, 6) int32: band index of each node's +x, -x, +y, -y, +z, -z neighbour, or -1."""
    nx, ny, nz = band_index.shape
    out = np.full((node_ijk.shape[0], 6), -1, np.int32)
    for m in numba.prange(node_ijk.shape[0]):
        for a in range(3):
            for side in range(2):
                step = 1 if side == 0 else -1
                i = node_ijk[m, 0] + (step if a == 0 else 0)
                j = node_ijk[m, 1] + (step if a == 1 else 0)
                k = node_ijk[m, 2] + (step if a == 2 else 0)
                if 0 <= i < nx and 0 <= j < ny and 0 <= k < nz:
                    out[m, 2 * a + side] = band_index[i, j, k]
    return out


@numba.njit(cache=True)
def relabel_enclosed(labels, node_sign):
    """Turn INSIDE components that the band's signs say are outside into OUTSIDE.

    A closing band seals narrow openings (pits, eye sockets, gaps between fingers), so
    the region behind them looks enclosed. Each INSIDE component votes with the signs
    of the band nodes around it (node_sign: (X,Y,Z) int8, -1/+1 on band nodes): if most
    are positive it lies outside the surface, and is relabelled. Returns the count.
    """
    nx, ny, nz = labels.shape
    comp = np.full(labels.shape, -1, np.int32)
    queue = np.empty(nx * ny * nz, np.int32)
    n_relabelled = 0
    for i0 in range(nx):
        for j0 in range(ny):
            for k0 in range(nz):
                if labels[i0, j0, k0] != INSIDE or comp[i0, j0, k0] >= 0:
                    continue
                comp[i0, j0, k0] = 1
                queue[0] = (i0 * ny + j0) * nz + k0
                head = 0
                tail = 1
                pos = 0
                neg = 0
                while head < tail:
                    c = queue[head]
                    head += 1
                    i, j, k = _unflat(c, ny, nz)
                    for d in range(6):
                        a, b, e, ok = _neighbor(i, j, k, d, nx, ny, nz)
                        if ok and labels[a, b, e] == INSIDE:
                            if comp[a, b, e] < 0:
                                comp[a, b, e] = 1
                                queue[tail] = (a * ny + b) * nz + e
                                tail += 1
                        elif ok and labels[a, b, e] == BAND:
                            if node_sign[a, b, e] > 0:
                                pos += 1
                            else:
                                neg += 1
                if pos > neg:
                    for t in range(tail):
                        i, j, k = _unflat(queue[t], ny, nz)
                        labels[i, j, k] = OUTSIDE
                    n_relabelled += tail
    return n_relabelled


from recon.kernels import _math  # noqa: E402
from recon.kernels._compile import drop_stale_caches  # noqa: E402

drop_stale_caches(globals(), (_math,))
