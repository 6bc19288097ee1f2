"""Optional clean-up of a cloud before fitting: voxel down-sampling, outlier removal.

Both take and return a :class:`recon.cloud.Cloud` in the same units and frame, and are
deterministic (no random draw).
"""

from __future__ import annotations

import math

import numpy as np

from recon.cloud import Cloud
from recon.errors import InputError


def voxel_downsample(cloud: Cloud, *, voxel_size: float) -> Cloud:
    """One point per occupied voxel: the mean of the points in it.

    voxel_size : float, input units, > 0. Voxels are aligned to the cloud's minimum
    corner. Normals are averaged and re-normalised (a voxel whose normals cancel keeps
    the first point's normal); colours are averaged and rounded. Output points are
    float64, ordered by voxel index (x slowest), so the result does not depend on the
    input's order except through floating-point summation. Per-point arrays in
    ``cloud.extra`` are dropped (a voxel mean of labels means nothing); others are kept.
    """
    if not (isinstance(voxel_size, (int, float, np.floating)) and math.isfinite(voxel_size) and voxel_size > 0):
        raise InputError(f"voxel_size must be a positive length, got {voxel_size!r}")
    n = len(cloud)
    if n == 0:
        return cloud
    pts = cloud.points
    keys = np.floor((pts - pts.min(axis=0)) / float(voxel_size)).astype(np.int64)
    dims = keys.max(axis=0) + 1
    if float(dims[0]) * float(dims[1]) * float(dims[2]) < 2.0**62:
        # One int64 per voxel, ordered like the rows (x slowest): a 1-D unique is ~10x faster.
        linear = (keys[:, 0] * dims[1] + keys[:, 1]) * dims[2] + keys[:, 2]
        _, first, inverse, counts = np.unique(linear, return_index=True, return_inverse=True, return_counts=True)
    else:
        _, first, inverse, counts = np.unique(keys, axis=0, return_index=True, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    m = len(counts)
    out_pts = np.empty((m, 3), np.float64)
    for d in range(3):
        out_pts[:, d] = np.bincount(inverse, weights=pts[:, d], minlength=m) / counts
    normals = None
    if cloud.normals is not None:
        acc = np.empty((m, 3), np.float64)
        for d in range(3):
            acc[:, d] = np.bincount(inverse, weights=cloud.normals[:, d], minlength=m)
        norm = np.linalg.norm(acc, axis=1)
        ok = norm > 1e-12
        normals = cloud.normals[first].astype(np.float64)
        normals[ok] = acc[ok] / norm[ok, None]
        normals = normals.astype(np.float32)
    colors = None
    if cloud.colors is not None:
        col = np.empty((m, 3), np.float64)
        for d in range(3):
            col[:, d] = np.bincount(inverse, weights=cloud.colors[:, d].astype(np.float64), minlength=m) / counts
        colors = np.clip(np.rint(col), 0, 255).astype(np.uint8)
    # Per-point extras (intensity, labels) have no meaningful voxel mean: they are dropped.
    extra = {k: v for k, v in cloud.extra.items() if not (isinstance(v, np.ndarray) and v.ndim >= 1 and len(v) == n)}
    return Cloud(points=out_pts, normals=normals, colors=colors, source=cloud.source, extra=extra)


def remove_statistical_outliers(cloud: Cloud, *, neighbors: int = 20, std_ratio: float = 2.0) -> Cloud:
    """Drop points whose mean distance to their ``neighbors`` nearest points is more than
    ``std_ratio`` standard deviations above the mean of that quantity over the cloud.

    Clouds with at most ``neighbors`` points are returned unchanged (too few to judge).
    """
    if isinstance(neighbors, bool) or not isinstance(neighbors, (int, np.integer)) or neighbors < 1:
        raise InputError(f"neighbors must be a positive integer, got {neighbors!r}")
    if not (math.isfinite(std_ratio) and std_ratio > 0):
        raise InputError(f"std_ratio must be a positive number, got {std_ratio!r}")
    n = len(cloud)
    if n <= neighbors:
        return cloud
    from scipy.spatial import cKDTree

    dist, _ = cKDTree(cloud.points).query(cloud.points, k=int(neighbors) + 1, workers=-1)
    mean_d = dist[:, 1:].mean(axis=1)  # column 0 is the point itself
    limit = mean_d.mean() + std_ratio * mean_d.std()
    return cloud.subset(mean_d <= limit)
