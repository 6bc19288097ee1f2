"""Math shared by the CPU and CUDA kernels, written once as plain Python.

``make_math(jit)`` compiles these functions with the given decorator and returns them
as a namespace: ``numba.njit(inline="always")`` for the CPU kernels and
``numba.cuda.jit(device=True)`` for the CUDA kernels (see ``_compile.py``). They take
scalars and arrays only and allocate nothing, so both targets accept them.

Grid convention: node (i, j, k) of ``values`` (X, Y, Z) sits at ``origin + (i, j, k) * h``.
"""

import math
from types import SimpleNamespace


def make_math(jit):
    """Compile the shared functions with ``jit`` and return them as a namespace."""

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

    return SimpleNamespace(
        cell_coords=cell_coords,
        trilinear=trilinear,
        pull_site=pull_site,
        consistency_site=consistency_site,
        site_gradient=site_gradient,
        adam_update=adam_update,
    )
