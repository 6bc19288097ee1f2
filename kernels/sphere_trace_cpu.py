"""Sphere tracing of a grid-backed field: CPU, parallel over pixels (numba prange)."""

import numba
import numpy as np

from recon.kernels._compile import cpu
from recon.kernels._trace_math import P_BEAM, TILE, make_trace_math

# The march functions compile as ordinary functions (numba's IR-level inlining of all of
# them into the kernel makes compilation blow up); only the per-step sample is inlined.
# They allocate nothing, so they run without numba's reference counting (_nrt=False): with
# it, every call that passes the grid pays atomic increments and decrements, which cost
# more than the interpolation itself. They are not cached on their own: the kernel's cache
# holds their code, and drop_stale_caches below keeps it in step with their sources.
_tm = make_trace_math(lambda fn: numba.njit(_nrt=False)(fn), cpu,
                      jit_inline=lambda fn: numba.njit(inline="always", _nrt=False)(fn))
_trace_ray = _tm.trace_ray
_camera_ray = _tm.camera_ray
_pixel_of = _tm.pixel_of
_n_pixel_slots = _tm.n_pixel_slots
_tile_ray = _tm.tile_ray
_beam_start = _tm.beam_start
_store_pixel = _tm.store_pixel


@numba.njit(parallel=True, cache=True)
def sphere_trace_grid_cpu(values, cp, mode, level, origin, h, lo, hi, cam, width, height, sx, sy, params,
                          out_depth, out_normal, out_steps, out_status):
    """Trace a width x height image through a grid.

    values (X, Y, Z) float32 (scalar modes; the block table in MODE_CLOSEST_SPARSE); cp
    (3, X, Y, Z) float32 closest-point offsets (MODE_CLOSEST; the bricks in
    MODE_CLOSEST_SPARSE; any (3, 2, 2, 2) array otherwise); origin (3,) f64; h voxel size; lo, hi (3,)
    f64 clip box; cam (12,) f64 (see ``camera_ray``); sx, sy sub-pixel offset in [0, 1);
    params (N_PARAMS,) f64. Writes out_depth (H, W) f32 (inf on miss), out_normal (H, W, 3)
    f32, out_steps (H, W) i32, out_status (H, W) u8.
    """
    ox, oy, oz = origin[0], origin[1], origin[2]
    ex, ey, ez = cam[0], cam[1], cam[2]
    n_slots = _n_pixel_slots(width, height)
    n_tiles = n_slots // (TILE * TILE)
    skip = np.zeros(n_tiles, np.float64)
    if params[P_BEAM] > 0.0:
        for tile in numba.prange(n_tiles):
            bx, by, bz, slope = _tile_ray(cam, width, height, tile)
            skip[tile] = _beam_start(values, cp, mode, level, ox, oy, oz, h, lo[0], lo[1], lo[2], hi[0], hi[1],
                                     hi[2], ex, ey, ez, bx, by, bz, slope, params)
    for p in numba.prange(n_slots):
        i, j, inside = _pixel_of(p, width, height)
        if not inside:
            continue
        dx, dy, dz = _camera_ray(cam, width, height, i, j, sx, sy)
        status, t, nx, ny, nz, steps = _trace_ray(
            values, cp, mode, level, ox, oy, oz, h, lo[0], lo[1], lo[2], hi[0], hi[1], hi[2],
            ex, ey, ez, dx, dy, dz, params, skip[p // (TILE * TILE)])
        _store_pixel(out_depth, out_normal, out_steps, out_status, i, j, status, t, nx, ny, nz, steps)


from recon.kernels import _math, _trace_math  # noqa: E402
from recon.kernels._compile import drop_stale_caches  # noqa: E402

drop_stale_caches(globals(), (_math, _trace_math))
