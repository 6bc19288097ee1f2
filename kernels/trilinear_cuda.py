"""Trilinear value and gradient of a grid at many points: CUDA, one thread per point."""

from functools import lru_cache

from numba import cuda  # importing numba.cuda needs no GPU; launching does

from recon.kernels._compile import cuda_math


@lru_cache(maxsize=None)
def _kernel():
    trilinear = cuda_math().trilinear

    @cuda.jit
    def trilinear_batch(values, origin, h, points, out_f, out_g):
        n = cuda.grid(1)
        if n < points.shape[0]:
            f, gx, gy, gz = trilinear(values, origin[0], origin[1], origin[2], h, points[n, 0], points[n, 1], points[n, 2])
            out_f[n] = f
            out_g[n, 0] = gx
            out_g[n, 1] = gy
            out_g[n, 2] = gz

    return trilinear_batch


def trilinear_batch_cuda(values, origin, h, points, out_f, out_g, *, threads_per_block):
    """Same contract as ``trilinear_batch_cpu``; arrays may be host (copied) or device arrays."""
    n = points.shape[0]
    if n:
        blocks = (n + threads_per_block - 1) // threads_per_block
        _kernel()[blocks, threads_per_block](values, origin, h, points, out_f, out_g)
