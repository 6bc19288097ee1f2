"""Public entry for trilinear interpolation of a grid: value and gradient at points."""

from __future__ import annotations

import numpy as np

from recon.kernels import config


def trilinear_value_grad(values, origin, voxel_size, points, *, device: str = "cpu"):
    """Trilinear value and analytic gradient.

    values : (X, Y, Z) float32; origin : (3,) float64; voxel_size : float (same units)
    points : (N, 3) float64, same units as origin
    returns f (N,) float32, grad (N, 3) float32
    """
    values = np.ascontiguousarray(values, dtype=np.float32)
    origin = np.ascontiguousarray(origin, dtype=np.float64)
    points = np.ascontiguousarray(points, dtype=np.float64)
    out_f = np.empty(len(points), np.float32)
    out_g = np.empty((len(points), 3), np.float32)
    if device == "cuda":
        from recon.kernels.trilinear_cuda import trilinear_batch_cuda

        trilinear_batch_cuda(values, origin, float(voxel_size), points, out_f, out_g,
                             threads_per_block=config.THREADS_PER_BLOCK)
    else:
        from recon.kernels.trilinear_cpu import trilinear_batch_cpu

        if len(points):
            trilinear_batch_cpu(values, origin, float(voxel_size), points, out_f, out_g)
    return out_f, out_g


def trilinear_value(values, origin, voxel_size, points, *, device: str = "cpu"):
    """(N,) float32 trilinear values; see :func:`trilinear_value_grad`."""
    return trilinear_value_grad(values, origin, voxel_size, points, device=device)[0]
