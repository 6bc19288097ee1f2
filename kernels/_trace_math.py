"""Sphere tracing of one ray through a grid-backed field, written once for CPU and CUDA.

``make_trace_math(jit, m)`` compiles the functions below with ``jit`` (``numba.njit`` for
the CPU kernel, ``numba.cuda.jit(device=True)`` for the CUDA kernel) on top of ``m``, the
shared grid math of ``_math.py`` compiled for the same target (``m.trilinear``). They take
scalars and arrays only and allocate nothing.

Field modes (``mode``):

- ``MODE_SIGNED``: ``values`` is a signed distance grid; the surface is ``values == level``.
  March by the value (at least a fraction of the pixel footprint), refine the hit by
  bisection on the sign change.
- ``MODE_UNSIGNED``: ``values`` is an unsigned distance grid. No sign change: march by
  ``safety * value``, hit when the value drops under a threshold tied to the pixel
  footprint (and, for a grid, to the voxel: its interpolant never reaches 0), then step
  onto the local tangent plane (closest point ``p - f * grad / |grad|``).
- ``MODE_OCCUPANCY``: ``values`` is an occupancy grid (inside > ``level``, usually 0.5).
  Fixed conservative steps to the first crossing, then bisection.
- ``MODE_CLOSEST``: ``cp`` (3, X, Y, Z) holds, per node, the offset from the node to its
  closest surface point; the distance is the offset's length. March like ``MODE_UNSIGNED``,
  then step onto the tangent plane at the closest point (repeated ``refine`` times).
- ``MODE_CLOSEST_SPARSE``: the same offsets on a block-sparse grid
  (``recon.fields.sparse_closest_point_grid``): ``values`` (BX, BY, BZ) is the block table (brick
  index, or ``-1 - bound`` for an empty block) and ``cp`` (3, K * (B + 1), B + 1, B + 1)
  the bricks. A ray counts as near the surface only inside a brick the data supports
  (others are marked by a table value k + 0.5, and passed), and leaves an empty block in
  one step (by its bound, or to its far face when that is farther).

Every ray is first clipped to the grid's box. ``params`` is a float64 array indexed by the
``P_*`` constants (see ``recon.render.trace`` for what each means and its default).
Returned status: ``STATUS_MISS``, ``STATUS_HIT`` or ``STATUS_NOT_CONVERGED`` (the step
budget ran out first).
"""

import math
from typing import Callable, NamedTuple

MODE_SIGNED = 0
MODE_UNSIGNED = 1
MODE_OCCUPANCY = 2
MODE_CLOSEST = 3
MODE_CLOSEST_SPARSE = 4

STATUS_MISS = 0
STATUS_HIT = 1
STATUS_NOT_CONVERGED = 2

P_HIT_DIST = 0  # absolute hit distance (input units)
P_MISS_T = 1  # rays end at this distance from the eye (input units; inf: the box decides)
P_PIX = 2  # pixel footprint per unit of ray length: 2 tan(fov / 2) / height
P_HIT_PIX = 3  # unsigned: hit when the distance < this many pixel footprints
P_MIN_STEP_PIX = 4  # signed / occupancy: smallest step, in pixel footprints
P_SAFETY = 5  # unsigned: step = safety * distance (< 1)
P_BISECT = 6  # bisection iterations after a sign change
P_REFINE = 7  # unsigned: tangent-plane steps after a hit
P_OCC_STEP = 8  # occupancy: step length (input units)
P_HIT_FLOOR = 9  # unsigned: hit threshold never below this (input units)
P_NORMAL_EPS = 10  # half-width of the central differences for normals (input units)
P_MAX_STEPS = 11  # step budget of the march
P_STEP_SCALE = 12  # signed: step = scale * value
P_MIN_COS = 13  # unsigned: tangent-plane step uses max(|dir . n|, this)
P_RESIDUAL_PIX = 14  # unsigned: after refinement, a hit must be this close (pixel footprints)
P_BEAM = 15  # > 0: skip empty space per TILE x TILE tile with one cone-marched ray first
N_PARAMS = 16


TILE = 8  # pixels are visited in TILE x TILE tiles: neighbouring rays read neighbouring voxels


class TraceMath(NamedTuple):
    """The tracing functions, compiled for one target by :func:`make_trace_math`."""

    clip_box: Callable
    beam_start: Callable
    sample: Callable
    sample_scalar: Callable
    pixel_of: Callable
    n_pixel_slots: Callable
    trace_ray: Callable
    sparse_offset: Callable
    refine_unsigned: Callable
    camera_ray: Callable
    tile_ray: Callable
    central_gradient: Callable
    facing: Callable
    bisect: Callable
    store_pixel: Callable


def make_trace_math(jit, m, jit_inline=None):
    """Compile the per-ray functions with ``jit`` over the grid math namespace ``m``.

    ``jit_inline`` (default ``jit``) compiles the one small function the march calls at every
    step, so the CPU build can inline it without inlining the whole march (which makes
    numba's compile time and memory explode).
    """
    trilinear = m.trilinear
    cell_coords = m.cell_coords
    jit_inline = jit_inline or jit

    @jit_inline
    def sample_scalar(values, mode, level, ox, oy, oz, h, x, y, z):
        """March quantity of a scalar grid: value - level (signed), level - value (occupancy)."""
        f, _, _, _ = trilinear(values, ox, oy, oz, h, x, y, z)
        if mode == MODE_OCCUPANCY:
            return level - f
        return f - level

    @jit
    def pixel_of(p, width, height):
        """Pixel (row, column, inside) visited by thread / iteration p (tiled order)."""
        tiles_x = (width + TILE - 1) // TILE
        tile = p // (TILE * TILE)
        k = p - tile * (TILE * TILE)
        ti = tile // tiles_x
        i = ti * TILE + k // TILE
        j = (tile - ti * tiles_x) * TILE + (k - (k // TILE) * TILE)
        return i, j, (i < height) and (j < width)

    @jit
    def n_pixel_slots(width, height):
        """How many p to visit: whole tiles covering the image."""
        return ((width + TILE - 1) // TILE) * ((height + TILE - 1) // TILE) * TILE * TILE

    @jit
    def clip_box(ex, ey, ez, dx, dy, dz, lx, ly, lz, hx, hy, hz):
        """Slab test: (t_enter, t_exit) of the ray e + t d with the box [l, h]; t_enter >= 0."""
        t0 = 0.0
        t1 = math.inf
        for a in range(3):
            if a == 0:
                e, d, lo, hi = ex, dx, lx, hx
            elif a == 1:
                e, d, lo, hi = ey, dy, ly, hy
            else:
                e, d, lo, hi = ez, dz, lz, hz
            if d == 0.0:
                if e < lo or e > hi:
                    return 1.0, 0.0
            else:
                ta = (lo - e) / d
                tb = (hi - e) / d
                if ta > tb:
                    ta, tb = tb, ta
                if ta > t0:
                    t0 = ta
                if tb < t1:
                    t1 = tb
        return t0, t1

    @jit
    def brick_lerp(bricks, a, base, i, j, k, tx, ty, tz):
        """Trilinear interpolation of component ``a`` in the cell (i, j, k) of the brick that
        starts at x-row ``base``."""
        i += base
        c00 = bricks[a, i, j, k] + (bricks[a, i + 1, j, k] - bricks[a, i, j, k]) * tx
        c10 = bricks[a, i, j + 1, k] + (bricks[a, i + 1, j + 1, k] - bricks[a, i, j + 1, k]) * tx
        c01 = bricks[a, i, j, k + 1] + (bricks[a, i + 1, j, k + 1] - bricks[a, i, j, k + 1]) * tx
        c11 = bricks[a, i, j + 1, k + 1] + (bricks[a, i + 1, j + 1, k + 1] - bricks[a, i, j + 1, k + 1]) * tx
        c0 = c00 + (c10 - c00) * ty
        c1 = c01 + (c11 - c01) * ty
        return c0 + (c1 - c0) * tz

    @jit
    def sparse_offset(table, bricks, ox, oy, oz, h, x, y, z):
        """Mode 4: (offset to the closest surface point, -1) from (x, y, z) where a brick is
        stored (-2: a brick off the data's support); (0, 0, 0, bound) in an empty block,
        bound a lower bound on the distance.
        Outside the blocks' box, the offset of the nearest box point plus the way there."""
        b = bricks.shape[2] - 1
        nbx = table.shape[0]
        nby = table.shape[1]
        nbz = table.shape[2]
        cx = min(max(x, ox), ox + nbx * b * h)
        cy = min(max(y, oy), oy + nby * b * h)
        cz = min(max(z, oz), oz + nbz * b * h)
        gx = (cx - ox) / h
        gy = (cy - oy) / h
        gz = (cz - oz) / h
        bi = min(int(math.floor(gx / b)), nbx - 1)
        bj = min(int(math.floor(gy / b)), nby - 1)
        bk = min(int(math.floor(gz / b)), nbz - 1)
        code = table[bi, bj, bk]
        if code < 0.0:
            ex = x - cx
            ey = y - cy
            ez = z - cz
            return 0.0, 0.0, 0.0, -1.0 - code + math.sqrt(ex * ex + ey * ey + ez * ez)
        i, tx = cell_coords(b + 1, gx - bi * b)
        j, ty = cell_coords(b + 1, gy - bj * b)
        k, tz = cell_coords(b + 1, gz - bk * b)
        base = int(code) * (b + 1)
        ax = brick_lerp(bricks, 0, base, i, j, k, tx, ty, tz) + (cx - x)
        ay = brick_lerp(bricks, 1, base, i, j, k, tx, ty, tz) + (cy - y)
        az = brick_lerp(bricks, 2, base, i, j, k, tx, ty, tz) + (cz - z)
        if code - int(code) > 0.25:
            return ax, ay, az, -2.0
        return ax, ay, az, -1.0

    @jit
    def sparse_sample(table, bricks, ox, oy, oz, h, x, y, z):
        """Mode 4: (march quantity, where): the distance in a brick, the bound in an empty
        block; where -1 in a brick, -2 in a brick off the data's support, >= 0 empty."""
        ax, ay, az, where = sparse_offset(table, bricks, ox, oy, oz, h, x, y, z)
        if where >= 0.0:
            return where, where
        return math.sqrt(ax * ax + ay * ay + az * az), where

    @jit
    def block_exit(table, bricks, ox, oy, oz, h, x, y, z, dx, dy, dz):
        """Mode 4: how far along d the ray from (x, y, z) runs before it leaves its block."""
        b = bricks.shape[2] - 1
        size = b * h
        t = math.inf
        for a in range(3):
            if a == 0:
                p, o, d, nb = x, ox, dx, table.shape[0]
            elif a == 1:
                p, o, d, nb = y, oy, dy, table.shape[1]
            else:
                p, o, d, nb = z, oz, dz, table.shape[2]
            i = min(max(int(math.floor((p - o) / size)), 0), nb - 1)
            if d > 0.0:
                ta = (o + (i + 1) * size - p) / d
            elif d < 0.0:
                ta = (o + i * size - p) / d
            else:
                continue
            if ta < t:
                t = ta
        if t < 0.0:
            t = 0.0
        return t

    @jit
    def sample(values, cp, mode, level, ox, oy, oz, h, x, y, z):
        """The march quantity at (x, y, z): signed distance (MODE_SIGNED), level -
        occupancy (MODE_OCCUPANCY, positive outside) or unsigned distance (the other modes)."""
        if mode == MODE_CLOSEST_SPARSE:
            d, _ = sparse_sample(values, cp, ox, oy, oz, h, x, y, z)
            return d
        if mode == MODE_CLOSEST:
            qx, qy, qz = x, y, z
            ax, _, _, _ = trilinear(cp[0], ox, oy, oz, h, qx, qy, qz)
            ay, _, _, _ = trilinear(cp[1], ox, oy, oz, h, qx, qy, qz)
            az, _, _, _ = trilinear(cp[2], ox, oy, oz, h, qx, qy, qz)
            return math.sqrt(ax * ax + ay * ay + az * az)
        f, _, _, _ = trilinear(values, ox, oy, oz, h, x, y, z)
        if mode == MODE_OCCUPANCY:
            return level - f
        return f - level

    @jit
    def central_gradient(values, ox, oy, oz, h, eps, x, y, z):
        """Gradient of the trilinear interpolant by central differences of half-width eps
        (second-order accurate, and smoother than its cell-wise analytic gradient)."""
        fa, _, _, _ = trilinear(values, ox, oy, oz, h, x + eps, y, z)
        fb, _, _, _ = trilinear(values, ox, oy, oz, h, x - eps, y, z)
        gx = fa - fb
        fa, _, _, _ = trilinear(values, ox, oy, oz, h, x, y + eps, z)
        fb, _, _, _ = trilinear(values, ox, oy, oz, h, x, y - eps, z)
        gy = fa - fb
        fa, _, _, _ = trilinear(values, ox, oy, oz, h, x, y, z + eps)
        fb, _, _, _ = trilinear(values, ox, oy, oz, h, x, y, z - eps)
        gz = fa - fb
        s = 0.5 / eps
        return gx * s, gy * s, gz * s

    @jit
    def direction_to_surface(values, cp, mode, ox, oy, oz, h, eps, x, y, z):
        """Unit vector from (x, y, z) towards the surface point closest to it, the unsigned
        and closest-point modes (zero where unknown: an empty block of MODE_CLOSEST_SPARSE)."""
        if mode == MODE_CLOSEST_SPARSE:
            ax, ay, az, _ = sparse_offset(values, cp, ox, oy, oz, h, x, y, z)
        elif mode == MODE_CLOSEST:
            ax, _, _, _ = trilinear(cp[0], ox, oy, oz, h, x, y, z)
            ay, _, _, _ = trilinear(cp[1], ox, oy, oz, h, x, y, z)
            az, _, _, _ = trilinear(cp[2], ox, oy, oz, h, x, y, z)
        else:
            gx, gy, gz = central_gradient(values, ox, oy, oz, h, eps, x, y, z)
            ax, ay, az = -gx, -gy, -gz
        n = math.sqrt(ax * ax + ay * ay + az * az)
        if n < 1e-30:
            return 0.0, 0.0, 0.0
        return ax / n, ay / n, az / n

    @jit
    def facing(nx, ny, nz, dx, dy, dz):
        """Normalise (nx, ny, nz) and flip it to face against the ray direction d."""
        n = math.sqrt(nx * nx + ny * ny + nz * nz)
        if n < 1e-30:
            return -dx, -dy, -dz
        nx /= n
        ny /= n
        nz /= n
        if nx * dx + ny * dy + nz * dz > 0.0:
            return -nx, -ny, -nz
        return nx, ny, nz

    @jit
    def bisect(values, cp, mode, level, ox, oy, oz, h, ex, ey, ez, dx, dy, dz, ta, sa, tb, sb, iters, tol):
        """Root of the march quantity in [ta, tb] (sa > 0 > sb): up to ``iters`` steps of
        false position (Illinois variant: the stale end's value is halved, so it converges
        fast on the nearly linear interpolant and never stalls); stops when |s| < tol."""
        side = 0
        for _ in range(iters):
            tm = (ta * sb - tb * sa) / (sb - sa)
            if not (ta < tm < tb):
                tm = 0.5 * (ta + tb)
            sm = sample_scalar(values, mode, level, ox, oy, oz, h, ex + tm * dx, ey + tm * dy, ez + tm * dz)
            if abs(sm) < tol:
                return tm
            if sm < 0.0:
                tb = tm
                sb = sm
                if side == -1:
                    sa *= 0.5
                side = -1
            else:
                ta = tm
                sa = sm
                if side == 1:
                    sb *= 0.5
                side = 1
        return (ta * sb - tb * sa) / (sb - sa)

    @jit
    def refine_unsigned(values, cp, mode, level, ox, oy, oz, h, neps, ex, ey, ez, dx, dy, dz, t, s, iters,
                        min_cos, t0, eps):
        """Tangent-plane (Newton) steps from a near hit at depth t, distance s.

        Each step moves to where the ray meets the plane through the closest point with the
        normal there (oriented like the first one, which faces the ray). Returns
        (t, nx, ny, nz, residual distance).
        """
        px = ex + t * dx
        py = ey + t * dy
        pz = ez + t * dz
        ux, uy, uz = direction_to_surface(values, cp, mode, ox, oy, oz, h, neps, px, py, pz)
        if ux == 0.0 and uy == 0.0 and uz == 0.0:
            return t, -dx, -dy, -dz, s
        ax, ay, az = facing(-ux, -uy, -uz, dx, dy, dz)  # reference orientation
        nx, ny, nz = ax, ay, az
        off = s  # signed offset of p from the surface along n
        for r in range(iters):
            if r > 0:
                s = sample(values, cp, mode, level, ox, oy, oz, h, px, py, pz)
                ux, uy, uz = direction_to_surface(values, cp, mode, ox, oy, oz, h, neps, px, py, pz)
                # the direction to the surface is reliable only away from it: turn the plane
                # there, otherwise keep the last normal and take the offset along it
                if s > 0.25 * eps:
                    if -(ux * ax + uy * ay + uz * az) >= 0.0:
                        nx, ny, nz = -ux, -uy, -uz
                    else:
                        nx, ny, nz = ux, uy, uz
                off = -s * (ux * nx + uy * ny + uz * nz)
            cosd = -(nx * dx + ny * dy + nz * dz)
            if cosd < min_cos:
                cosd = min_cos
            t += off / cosd
            if t < t0:
                t = t0
            px = ex + t * dx
            py = ey + t * dy
            pz = ez + t * dz
        res = sample(values, cp, mode, level, ox, oy, oz, h, px, py, pz)
        # the normal, read from a point eps off the surface (the direction is ill-posed on it)
        qx = px + eps * nx
        qy = py + eps * ny
        qz = pz + eps * nz
        ux, uy, uz = direction_to_surface(values, cp, mode, ox, oy, oz, h, neps, qx, qy, qz)
        if not (ux == 0.0 and uy == 0.0 and uz == 0.0):
            nx, ny, nz = facing(-ux, -uy, -uz, dx, dy, dz)
        return t, nx, ny, nz, res

    @jit
    def beam_start(values, cp, mode, level, ox, oy, oz, h, lx, ly, lz, hx, hy, hz,
                   ex, ey, ez, dx, dy, dz, slope, params):
        """Cone march of a tile's central ray: how far every ray of the tile may skip.

        The tile's rays lie within angle ``slope`` (radians) of this one, so at depth t
        they are within slope * t of its point. A distance f there bounds an empty ball;
        while f exceeds that radius the whole tile is in empty space, and the step
        (f - slope t) / (1 + slope) keeps it so up to the next point. Returns the last
        depth known empty for the whole tile (0: no skip), inf when the beam leaves the
        box with nothing found. Occupancy fields have no distance: 0.
        """
        if mode == MODE_OCCUPANCY:
            return 0.0
        t0, t1 = clip_box(ex, ey, ez, dx, dy, dz, lx, ly, lz, hx, hy, hz)
        if params[P_MISS_T] < t1:
            t1 = params[P_MISS_T]
        if not t0 < t1:
            return 0.0  # the centre misses the box; other rays of the tile may not
        scale = params[P_STEP_SCALE] if mode == MODE_SIGNED else params[P_SAFETY]
        safe = 0.0
        t = t0
        for _ in range(int(params[P_MAX_STEPS])):
            f = scale * sample(values, cp, mode, level, ox, oy, oz, h, ex + t * dx, ey + t * dy, ez + t * dz)
            r = slope * t
            if f <= r:
                return safe
            safe = t
            if f <= 2.0 * r:  # little left to gain: the rays take over from here
                return safe
            t += (f - r) / (1.0 + slope)
            if t > t1:
                return math.inf
        return safe

    @jit
    def trace_ray(values, cp, mode, level, ox, oy, oz, h, lx, ly, lz, hx, hy, hz,
                  ex, ey, ez, dx, dy, dz, params, t_skip):
        """March one ray (e + t d, |d| = 1) from depth ``t_skip`` on (a beam's empty-space
        skip; 0 for none). Returns (status, t, nx, ny, nz, steps)."""
        t0, t1 = clip_box(ex, ey, ez, dx, dy, dz, lx, ly, lz, hx, hy, hz)
        if params[P_MISS_T] < t1:
            t1 = params[P_MISS_T]
        if t_skip > t0:
            t0 = t_skip
        if not t0 < t1:
            return STATUS_MISS, math.inf, 0.0, 0.0, 0.0, 0
        hit_dist = params[P_HIT_DIST]
        pix = params[P_PIX]
        max_steps = int(params[P_MAX_STEPS])
        iters = int(params[P_BISECT])
        neps = params[P_NORMAL_EPS]
        t = t0
        s = sample(values, cp, mode, level, ox, oy, oz, h, ex + t * dx, ey + t * dy, ez + t * dz)
        steps = 1
        status = STATUS_NOT_CONVERGED
        if mode == MODE_SIGNED or mode == MODE_OCCUPANCY:
            if s < 0.0:
                # already inside where the ray enters the box: the surface is cut by the box
                return STATUS_HIT, t, -dx, -dy, -dz, steps
            min_step = params[P_MIN_STEP_PIX] * pix
            scale = params[P_STEP_SCALE]
            occ_step = params[P_OCC_STEP]
            while steps < max_steps:
                if s < hit_dist:
                    status = STATUS_HIT
                    break
                if mode == MODE_SIGNED:
                    dt = s * scale
                else:
                    dt = occ_step
                fp = min_step * t
                if dt < fp:
                    dt = fp
                tn = t + dt
                last = False
                if tn >= t1:
                    tn = t1
                    last = True
                sn = sample_scalar(values, mode, level, ox, oy, oz, h, ex + tn * dx, ey + tn * dy, ez + tn * dz)
                steps += 1
                if sn < 0.0:
                    t = bisect(values, cp, mode, level, ox, oy, oz, h, ex, ey, ez, dx, dy, dz, t, s, tn, sn, iters,
                               hit_dist)
                    status = STATUS_HIT
                    break
                t = tn
                s = sn
                if last:
                    status = STATUS_MISS
                    break
            if status != STATUS_HIT:
                return status, math.inf, 0.0, 0.0, 0.0, steps
            px = ex + t * dx
            py = ey + t * dy
            pz = ez + t * dz
            gx, gy, gz = central_gradient(values, ox, oy, oz, h, neps, px, py, pz)
            if mode == MODE_OCCUPANCY:
                gx, gy, gz = -gx, -gy, -gz
            nx, ny, nz = facing(gx, gy, gz, dx, dy, dz)
            return STATUS_HIT, t, nx, ny, nz, steps
        # unsigned distance / closest-point offsets
        safety = params[P_SAFETY]
        hit_pix = params[P_HIT_PIX] * pix
        res_pix = params[P_RESIDUAL_PIX] * pix
        floor = params[P_HIT_FLOOR]
        refine = int(params[P_REFINE])
        min_cos = params[P_MIN_COS]
        where = -1.0  # MODE_CLOSEST_SPARSE: -1 a brick, -2 a brick off the data's support, >= 0 empty
        if mode == MODE_CLOSEST_SPARSE:
            s, where = sparse_sample(values, cp, ox, oy, oz, h, ex + t * dx, ey + t * dy, ez + t * dz)
        while steps < max_steps:
            eps = hit_pix * t
            if eps < hit_dist:
                eps = hit_dist
            if eps < floor:
                eps = floor
            if where >= 0.0:
                # no surface is stored in an empty block: leave it in one step
                t += max(safety * s, block_exit(values, cp, ox, oy, oz, h, ex + t * dx, ey + t * dy, ez + t * dz,
                                                dx, dy, dz) + 1e-3 * h)
            elif s < eps and where < -1.5:
                t += eps  # the network's guess off the data: pass it, as the NumPy march does
            elif s < eps:
                tr, nx, ny, nz, res = refine_unsigned(values, cp, mode, level, ox, oy, oz, h, neps, ex, ey, ez,
                                                     dx, dy, dz, t, s, refine, min_cos, t0, eps)
                tol = res_pix * tr
                if tol < hit_dist:
                    tol = hit_dist
                if tol < floor:
                    tol = floor
                if res <= tol:
                    return STATUS_HIT, tr, nx, ny, nz, steps
                # the ray passes the surface (by a boundary): step past and march on
                t += eps
            else:
                t += safety * s
            if t > t1:
                status = STATUS_MISS
                break
            if mode == MODE_CLOSEST_SPARSE:  # one block lookup gives both
                s, where = sparse_sample(values, cp, ox, oy, oz, h, ex + t * dx, ey + t * dy, ez + t * dz)
            else:
                s = sample(values, cp, mode, level, ox, oy, oz, h, ex + t * dx, ey + t * dy, ez + t * dz)
            steps += 1
        return status, math.inf, 0.0, 0.0, 0.0, steps

    @jit
    def tile_ray(cam, width, height, tile):
        """Direction through the centre of tile ``tile`` and the cone slope that holds all of
        its pixels (half the tile's diagonal in tangent units bounds the angle)."""
        tiles_x = (width + TILE - 1) // TILE
        ti = tile // tiles_x
        tj = tile - ti * tiles_x
        dx, dy, dz = camera_ray(cam, width, height, ti * TILE + TILE // 2, tj * TILE + TILE // 2, 0.0, 0.0)
        # one pixel spans 2 tan(fov/2) / height in tangent units (cam[9:12] is up * tan(fov/2))
        pix = 2.0 * math.sqrt(cam[9] * cam[9] + cam[10] * cam[10] + cam[11] * cam[11]) / height
        return dx, dy, dz, 0.5 * math.sqrt(2.0) * TILE * pix

    @jit
    def store_pixel(out_depth, out_normal, out_steps, out_status, i, j, status, t, nx, ny, nz, steps):
        """Write one traced ray's results into the image arrays at pixel (i, j)."""
        out_depth[i, j] = t
        out_normal[i, j, 0] = nx
        out_normal[i, j, 1] = ny
        out_normal[i, j, 2] = nz
        out_steps[i, j] = steps
        out_status[i, j] = status

    @jit
    def camera_ray(cam, width, height, i, j, sx, sy):
        """Unit direction of pixel (row i, column j) at sub-pixel offset (sx, sy) in [0, 1).

        cam (12,) float64: eye, forward, right * tan(fov/2) * aspect, up * tan(fov/2).
        """
        u = 2.0 * (j + sx) / width - 1.0
        v = 1.0 - 2.0 * (i + sy) / height
        dx = cam[3] + u * cam[6] + v * cam[9]
        dy = cam[4] + u * cam[7] + v * cam[10]
        dz = cam[5] + u * cam[8] + v * cam[11]
        n = math.sqrt(dx * dx + dy * dy + dz * dz)
        return dx / n, dy / n, dz / n

    defined = locals()
    return TraceMath(**{name: defined[name] for name in TraceMath._fields})
