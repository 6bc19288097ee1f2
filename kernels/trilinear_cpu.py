"""Trilinear value and gradient of a grid at many points: CPU, parallel over points."""

import numba

from recon.kernels._compile import cpu

cpu_trilinear = cpu.trilinear


@numba.njit(parallel=True, cache=True)
def trilinear_batch_cpu(values, origin, h, points, out_f, out_g):
    """values (X,Y,Z) f32; origin (3,) f64; points (N,3) f64 -> out_f (N,) f32, out_g (N,3) f32."""
    ox, oy, oz = origin[0], origin[1], origin[2]
    for n in numba.prange(points.shape[0]):
        f, gx, gy, gz = cpu_trilinear(values, ox, oy, oz, h, points[n, 0], points[n, 1], points[n, 2])
        out_f[n] = f
        out_g[n, 0] = gx
        out_g[n, 1] = gy
        out_g[n, 2] = gz


from recon.kernels import _math  # noqa: E402
from recon.kernels._compile import drop_stale_caches  # noqa: E402

drop_stale_caches(globals(), (_math,))
