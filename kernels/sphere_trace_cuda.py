"""Sphere tracing of a grid-backed field: CUDA, one thread per pixel."""

from functools import lru_cache

import numpy as np
from numba import cuda  # importing numba.cuda needs no GPU; launching does

from recon.kernels._compile import cuda_math
from recon.kernels._trace_math import P_BEAM, TILE, make_trace_math


@lru_cache(maxsize=None)
def _kernel():
    tm = make_trace_math(lambda fn: cuda.jit(device=True)(fn), cuda_math())
    trace_ray = tm.trace_ray
    camera_ray = tm.camera_ray
    pixel_of = tm.pixel_of
    tile_ray = tm.tile_ray
    beam_start = tm.beam_start
    store_pixel = tm.store_pixel

    @cuda.jit
    def beam(values, cp, mode, level, origin, h, lo, hi, cam, width, height, params, skip):
        tile = cuda.grid(1)
        if tile < skip.shape[0]:
            bx, by, bz, slope = tile_ray(cam, width, height, tile)
            skip[tile] = beam_start(values, cp, mode, level, origin[0], origin[1], origin[2], h, lo[0], lo[1],
                                    lo[2], hi[0], hi[1], hi[2], cam[0], cam[1], cam[2], bx, by, bz, slope, params)

    @cuda.jit
    def sphere_trace_grid(values, cp, mode, level, origin, h, lo, hi, cam, width, height, sx, sy, params, skip,
                          out_depth, out_normal, out_steps, out_status):
        p = cuda.grid(1)
        i, j, inside = pixel_of(p, width, height)
        if inside:
            dx, dy, dz = camera_ray(cam, width, height, i, j, sx, sy)
            status, t, nx, ny, nz, steps = trace_ray(
                values, cp, mode, level, origin[0], origin[1], origin[2], h,
                lo[0], lo[1], lo[2], hi[0], hi[1], hi[2], cam[0], cam[1], cam[2], dx, dy, dz, params,
                skip[p // (TILE * TILE)])
            store_pixel(out_depth, out_normal, out_steps, out_status, i, j, status, t, nx, ny, nz, steps)

    return beam, sphere_trace_grid


def sphere_trace_grid_cuda(values, cp, mode, level, origin, h, lo, hi, cam, width, height, sx, sy, params,
                           out_depth, out_normal, out_steps, out_status, *, threads_per_block):
    """Same contract as ``sphere_trace_grid_cpu``. ``values`` and ``cp`` may be device arrays
    (upload a grid once and trace many images); the outputs may be host or device arrays."""
    n = ((width + TILE - 1) // TILE) * ((height + TILE - 1) // TILE) * TILE * TILE
    if width * height:
        beam, trace = _kernel()
        n_tiles = n // (TILE * TILE)
        params_d = cuda.to_device(params)
        cam_d = cuda.to_device(cam)
        skip = cuda.to_device(np.zeros(n_tiles, np.float64))
        if params[P_BEAM] > 0:
            tb = (n_tiles + threads_per_block - 1) // threads_per_block
            beam[tb, threads_per_block](values, cp, mode, level, origin, h, lo, hi, cam_d, width, height, params_d,
                                        skip)
        blocks = (n + threads_per_block - 1) // threads_per_block
        trace[blocks, threads_per_block](values, cp, mode, level, origin, h, lo, hi, cam_d, width, height,
                                         sx, sy, params_d, skip, out_depth, out_normal, out_steps, out_status)
