"""Sphere tracing of a grid-backed field: CUDA, one thread per pixel."""

from functools import lru_cache

from numba import cuda  # importing numba.cuda needs no GPU; launching does

from recon.kernels._compile import cuda_math
from recon.kernels._trace_math import make_trace_math


@lru_cache(maxsize=None)
def _kernel():
    tm = make_trace_math(lambda fn: cuda.jit(device=True)(fn), cuda_math())
    trace_ray = tm.trace_ray
    camera_ray = tm.camera_ray
    pixel_of = tm.pixel_of

    @cuda.jit
    def sphere_trace_grid(values, cp, mode, level, origin, h, lo, hi, cam, width, height, sx, sy, params,
                          out_depth, out_normal, out_steps, out_status):
        p = cuda.grid(1)
        i, j, inside = pixel_of(p, width, height)
        if inside:
            dx, dy, dz = camera_ray(cam, width, height, i, j, sx, sy)
            status, t, nx, ny, nz, steps = trace_ray(
                values, cp, mode, level, origin[0], origin[1], origin[2], h,
                lo[0], lo[1], lo[2], hi[0], hi[1], hi[2], cam[0], cam[1], cam[2], dx, dy, dz, params)
            out_depth[i, j] = t
            out_normal[i, j, 0] = nx
            out_normal[i, j, 1] = ny
            out_normal[i, j, 2] = nz
            out_steps[i, j] = steps
            out_status[i, j] = status

    return sphere_trace_grid


def sphere_trace_grid_cuda(values, cp, mode, level, origin, h, lo, hi, cam, width, height, sx, sy, params,
                           out_depth, out_normal, out_steps, out_status, *, threads_per_block):
    """Same contract as ``sphere_trace_grid_cpu``. ``values`` and ``cp`` may be device arrays
    (upload a grid once and trace many images); the outputs may be host or device arrays."""
    from recon.kernels._trace_math import TILE

    n = ((width + TILE - 1) // TILE) * ((height + TILE - 1) // TILE) * TILE * TILE
    if width * height:
        blocks = (n + threads_per_block - 1) // threads_per_block
        _kernel()[blocks, threads_per_block](values, cp, mode, level, origin, h, lo, hi, cam, width, height,
                                             sx, sy, params, out_depth, out_normal, out_steps, out_status)
