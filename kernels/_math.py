"""Math shared by the CPU and CUDA kernels, written once as plain Python.

``make_math(jit)`` compiles these functions with the given decorator and returns them
by name (a ``GridMath``): ``numba.njit(inline="always")`` for the CPU kernels and
``numba.cuda.jit(device=True)`` for the CUDA kernels (see ``_compile.py``). They take
scalars and arrays only and allocate nothing, so both targets accept them.

Grid convention: node (i, j, k) of ``values`` (X, Y, Z) sits at ``origin + (i, j, k) * h``.
"""

import math
from typing import Callable, NamedTuple


class GridMath(NamedTuple):
    """The shared functions, compiled for one target (CPU or CUDA) by :func:`make_math`."""

    eval_site: Callable
    query_term: Callable
    point_term: Callable
    second_differences_at: Callable
    update_node: Callable
    scatter_value: Callable
    cell_coords: Callable
    trilinear: Callable
    pull_site: Callable
    consistency_site: Callable
    site_gradient: Callable
    adam_update: Callable


def make_math(jit) -> GridMath:
    """Compile the shared functions with ``jit`` and return them, by name."""

    @jit
    def cell_coords(n, g):
        """Cell index and fraction along one axis for grid coordinate g (nodes 0..n-1)."""
        i = int(math.floor(g))
        if i < 0:
            i = 0
        if i > n - 2:
            i = n - 2
        t = g - i
        if t < 0.0:
            t = 0.0
        if t > 1.0:
            t = 1.0
        return i, t

    @jit
    def trilinear(values, ox, oy, oz, h, px, py, pz):
        """Value and analytic gradient of the trilinear interpolant at (px, py, pz).

        Outside the grid's box the value continues as (value at the nearest box point) +
        (distance to the box), gradient pointing away from the box, so a field that is
        positive at the boundary stays positive outside.
        """
        nx = values.shape[0]
        ny = values.shape[1]
        nz = values.shape[2]
        cx = min(max(px, ox), ox + (nx - 1) * h)
        cy = min(max(py, oy), oy + (ny - 1) * h)
        cz = min(max(pz, oz), oz + (nz - 1) * h)
        i, tx = cell_coords(nx, (cx - ox) / h)
        j, ty = cell_coords(ny, (cy - oy) / h)
        k, tz = cell_coords(nz, (cz - oz) / h)
        c000 = values[i, j, k]
        c100 = values[i + 1, j, k]
        c010 = values[i, j + 1, k]
        c110 = values[i + 1, j + 1, k]
        c001 = values[i, j, k + 1]
        c101 = values[i + 1, j, k + 1]
        c011 = values[i, j + 1, k + 1]
        c111 = values[i + 1, j + 1, k + 1]
        # interpolate along x, then y, then z; the derivatives follow the same tree
        c00 = c000 + (c100 - c000) * tx
        c10 = c010 + (c110 - c010) * tx
        c01 = c001 + (c101 - c001) * tx
        c11 = c011 + (c111 - c011) * tx
        c0 = c00 + (c10 - c00) * ty
        c1 = c01 + (c11 - c01) * ty
        f = c0 + (c1 - c0) * tz
        dx0 = (c100 - c000) + ((c110 - c010) - (c100 - c000)) * ty
        dx1 = (c101 - c001) + ((c111 - c011) - (c101 - c001)) * ty
        gx = (dx0 + (dx1 - dx0) * tz) / h
        gy = ((c10 - c00) + ((c11 - c01) - (c10 - c00)) * tz) / h
        gz = (c1 - c0) / h
        dx = px - cx
        dy = py - cy
        dz = pz - cz
        d2 = dx * dx + dy * dy + dz * dz
        if d2 > 0.0:
            d = math.sqrt(d2)
            return f + d, dx / d, dy / d, dz / d
        return f, gx, gy, gz

    @jit
    def pull_site(f, gx, gy, gz, qx, qy, qz, tx, ty, tz):
        """GridPull's pull loss at one query and its derivatives by f and grad f.

        q' = q - f * g / |g| is the query pulled onto the zero level set; the loss is
        |q' - t|^2 with t the query's nearest input point. Returns
        (loss, dL/df, dL/dgx, dL/dgy, dL/dgz).
        """
        gn = math.sqrt(gx * gx + gy * gy + gz * gz) + 1e-12
        nx = gx / gn
        ny = gy / gn
        nz = gz / gn
        rx = qx - f * nx - tx
        ry = qy - f * ny - ty
        rz = qz - f * nz - tz
        rn = rx * nx + ry * ny + rz * nz
        c = -2.0 * f / gn
        return (
            rx * rx + ry * ry + rz * rz,
            -2.0 * rn,
            c * (rx - rn * nx),
            c * (ry - rn * ny),
            c * (rz - rn * nz),
        )

    @jit
    def consistency_site(ax, ay, az, bx, by, bz):
        """1 - cos(a, b) for two gradients, with its derivatives by a and by b.

        Returns (loss, dL/dax, dL/day, dL/daz, dL/dbx, dL/dby, dL/dbz).
        """
        an = math.sqrt(ax * ax + ay * ay + az * az) + 1e-12
        bn = math.sqrt(bx * bx + by * by + bz * bz) + 1e-12
        ux = ax / an
        uy = ay / an
        uz = az / an
        vx = bx / bn
        vy = by / bn
        vz = bz / bn
        cos = ux * vx + uy * vy + uz * vz
        return (
            1.0 - cos,
            -(vx - cos * ux) / an,
            -(vy - cos * uy) / an,
            -(vz - cos * uz) / an,
            -(ux - cos * vx) / bn,
            -(uy - cos * vy) / bn,
            -(uz - cos * vz) / bn,
        )

    @jit
    def site_gradient(m, entry_start, entry_site, entry_w, site_df, site_dg):
        """d(site losses)/d(value of band node m), gathered over the sites that touch it.

        entry_w[e] = (w, dw/dx, dw/dy, dw/dz): node m's trilinear weight at entry e's site,
        so the site's dL/df and dL/dgrad reach the node as df * w + dg . grad w.
        """
        g = 0.0
        for e in range(entry_start[m], entry_start[m + 1]):
            s = entry_site[e]
            g += (site_df[s] * entry_w[e, 0] + site_dg[s, 0] * entry_w[e, 1]
                  + site_dg[s, 1] * entry_w[e, 2] + site_dg[s, 2] * entry_w[e, 3])
        return g

    @jit
    def adam_update(x, g, m, v, lr, beta1, beta2, eps, bias1, bias2):
        """One Adam step for one scalar (bias1, bias2 = 1 - beta^step); returns (x, m, v)."""
        m = beta1 * m + (1.0 - beta1) * g
        v = beta2 * v + (1.0 - beta2) * g * g
        mhat = m / bias1
        vhat = v / bias2
        return x - lr * mhat / (math.sqrt(vhat) + eps), m, v

    # GridPull's per-element passes: one call per site or band node, the same on both
    # targets (the CPU kernels loop over them with prange, the CUDA kernels one per thread).

    @jit
    def eval_site(s, dense, origin, h, sites, out_f, out_g):
        """Trilinear value and gradient of the current field at site s."""
        f, gx, gy, gz = trilinear(dense, origin[0], origin[1], origin[2], h, sites[s, 0], sites[s, 1], sites[s, 2])
        out_f[s] = f
        out_g[s, 0] = gx
        out_g[s, 1] = gy
        out_g[s, 2] = gz

    @jit
    def query_term(q, sites, site_f, site_g, n_queries, target, target_pos, w_pull, w_cons,
                   site_df, site_dg, query_dgt, query_loss):
        """Pull and gradient-consistency terms at query q (sites[0:n_queries]).

        Input points are sites[n_queries:]; target[q] is the input-point index of q's
        nearest point and target_pos[q] where the pull should bring q. Writes dL/df and
        dL/dg at the query, and the consistency term's dL/dg at the target (query_dgt,
        gathered per point by ``point_term``). w_pull, w_cons: weights already divided by
        their term counts (and h^2 for the pull).
        """
        t = n_queries + target[q]
        lp, dfp, dgx, dgy, dgz = pull_site(
            site_f[q], site_g[q, 0], site_g[q, 1], site_g[q, 2],
            sites[q, 0], sites[q, 1], sites[q, 2], target_pos[q, 0], target_pos[q, 1], target_pos[q, 2])
        lc, cax, cay, caz, cbx, cby, cbz = consistency_site(
            site_g[q, 0], site_g[q, 1], site_g[q, 2], site_g[t, 0], site_g[t, 1], site_g[t, 2])
        site_df[q] = w_pull * dfp
        site_dg[q, 0] = w_pull * dgx + w_cons * cax
        site_dg[q, 1] = w_pull * dgy + w_cons * cay
        site_dg[q, 2] = w_pull * dgz + w_cons * caz
        query_dgt[q, 0] = w_cons * cbx
        query_dgt[q, 1] = w_cons * cby
        query_dgt[q, 2] = w_cons * cbz
        query_loss[q, 0] = lp
        query_loss[q, 1] = lc

    @jit
    def point_term(p, site_f, n_queries, target_start, w_surf, query_dgt, site_df, site_dg):
        """Surface term f(p)^2 at input point p, plus the consistency terms of the queries
        whose target it is (queries sorted by target: target_start[p]..target_start[p+1])."""
        s = n_queries + p
        site_df[s] = w_surf * 2.0 * site_f[s]
        gx = 0.0
        gy = 0.0
        gz = 0.0
        for q in range(target_start[p], target_start[p + 1]):
            gx += query_dgt[q, 0]
            gy += query_dgt[q, 1]
            gz += query_dgt[q, 2]
        site_dg[s, 0] = gx
        site_dg[s, 1] = gy
        site_dg[s, 2] = gz

    @jit
    def second_differences_at(m, values, neighbors, out):
        """out[m, a] = f[m-e_a] - 2 f[m] + f[m+e_a] (NaN where a neighbour is not a band
        node). neighbors: (M, 6) band indices of +x, -x, +y, -y, +z, -z (-1: none)."""
        for a in range(3):
            p = neighbors[m, 2 * a]
            q = neighbors[m, 2 * a + 1]
            if p >= 0 and q >= 0:
                out[m, a] = values[q] - 2.0 * values[m] + values[p]
            else:
                out[m, a] = math.nan

    @jit
    def update_node(m, values, neighbors, second_diff, entry_start, entry_site, entry_w, site_df,
                    site_dg, smooth_scale, adam_m, adam_v, lr, beta1, beta2, eps, bias1, bias2):
        """Gradient of band node m (sites + continuity) and its Adam step, in place.

        Reads only per-node data computed before this pass (second_diff, site terms), so
        the result does not depend on the order nodes are visited.
        """
        g = site_gradient(m, entry_start, entry_site, entry_w, site_df, site_dg)
        for a in range(3):
            d = second_diff[m, a]
            if d == d:  # not NaN: m is the centre of a triple
                g -= smooth_scale * 4.0 * d
            for side in range(2):
                nb = neighbors[m, 2 * a + side]
                if nb >= 0:
                    d = second_diff[nb, a]
                    if d == d:  # m is an end of nb's triple
                        g += smooth_scale * 2.0 * d
        x, mm, vv = adam_update(values[m], g, adam_m[m], adam_v[m], lr, beta1, beta2, eps, bias1, bias2)
        values[m] = x
        adam_m[m] = mm
        adam_v[m] = vv

    @jit
    def scatter_value(m, node_ijk, values, dense):
        dense[node_ijk[m, 0], node_ijk[m, 1], node_ijk[m, 2]] = values[m]

    defined = locals()
    return GridMath(**{name: defined[name] for name in GridMath._fields})
