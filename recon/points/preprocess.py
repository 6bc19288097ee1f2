"""Clean-up of a cloud before fitting: voxel down-sampling and outlier removal (optional,
on a :class:`recon.cloud.Cloud`, same units and frame), and what the fitters share on
plain arrays: local planes, and the trimming of noise thicker than the surface is flat.
All deterministic (no random draw).
"""

from __future__ import annotations

import math

import numpy as np

from recon.cloud import Cloud
from recon.device import query_workers
from recon.errors import InputError


def _voxel_groups(points: np.ndarray, size: float):
    """Group (N, 3) points by voxel of ``size`` (aligned to their minimum corner), voxels
    ordered x slowest: (first (M,) index of a point in each voxel, inverse (N,) each
    point's voxel, counts (M,))."""
    keys = np.floor((points - points.min(axis=0)) / size).astype(np.int64)
    dims = keys.max(axis=0) + 1
    if float(dims[0]) * float(dims[1]) * float(dims[2]) < 2.0**62:
        # One int64 per voxel, ordered like the rows (x slowest): a 1-D unique is ~10x faster.
        linear = (keys[:, 0] * dims[1] + keys[:, 1]) * dims[2] + keys[:, 2]
        _, first, inverse, counts = np.unique(linear, return_index=True, return_inverse=True, return_counts=True)
    else:
        _, first, inverse, counts = np.unique(keys, axis=0, return_index=True, return_inverse=True, return_counts=True)
    return first, inverse.reshape(-1), counts


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
    first, inverse, counts = _voxel_groups(pts, float(voxel_size))
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


# Clouds much denser than the grid are fitted to voxel means (of merge_cells cells) when
# the occupied voxels hold at least DENSE_POINTS_PER_VOXEL points on average and the
# points fill them as a surface does: voxels twice as wide are at least SURFACE_FILL times
# fewer (a densely sampled surface: 4; a LiDAR sweep, dense along its scan lines only: 2).
# Fixed-size neighbourhoods (denoising planes, query spreads) shrink below a cell on such
# clouds, and every point costs time: merged, a dense noisy scan fits about three times
# faster and no worse. The price: two faces closer than a voxel merge into one sheet, so
# the bar is high (typical scans hold 1 to 1.25 points per voxel; a LiDAR sweep's scan
# lines more, but they do not fill voxels twice as wide as a surface does, and merging
# them moves the mesh off the points).
DENSE_POINTS_PER_VOXEL = 3.0
SURFACE_FILL = 3.0


def check_merge_cells(value) -> None:
    """A fitter's ``merge_cells``: a voxel of 0 to 4 grid cells (0: no merging)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and 0 <= value <= 4):
        raise InputError(f"merge_cells must be a number in 0..4 (cells), got {value!r}")


def occupied_voxels(points: np.ndarray, size: float) -> int:
    """How many cubes of ``size`` (aligned to the points' minimum corner) hold one of the (N, 3) points."""
    return len(_voxel_groups(points, size)[2])


def dense_voxel_means(points: np.ndarray, size: float) -> np.ndarray | None:
    """(M, 3) float64 means of (N, 3) points per voxel of ``size`` (the points' units; 0:
    never) when they sample a surface far more densely than such voxels (see
    DENSE_POINTS_PER_VOXEL and SURFACE_FILL), else None."""
    if not size > 0 or len(points) < 2:
        return None
    occupied = occupied_voxels(points, size)
    if len(points) < DENSE_POINTS_PER_VOXEL * occupied or occupied < SURFACE_FILL * occupied_voxels(points, 2 * size):
        return None
    return voxel_downsample(Cloud(points), voxel_size=size).points


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

    dist, _ = cKDTree(cloud.points).query(cloud.points, k=int(neighbors) + 1, workers=query_workers())
    mean_d = dist[:, 1:].mean(axis=1)  # column 0 is the point itself
    limit = mean_d.mean() + std_ratio * mean_d.std()
    return cloud.subset(mean_d <= limit)


# Noise thicker than the surface is flat: 64-neighbour patches at least this thick for
# their width (sqrt of least over largest principal variance, median; ordinary scans
# 0.04-0.54, a thin plate in scanner noise 0.76) get their outer points trimmed, those
# farther than TRIM_SIGMAS robust deviations from the TRIM_NEIGHBORS-point plane.
THICKNESS_NEIGHBORS = 64
THICK_NOISE = 0.65
TRIM_NEIGHBORS = 256
TRIM_SIGMAS = 2.0
# A patch of k neighbours shrinks as the cloud gets denser while the noise stays, so the
# same noisy surface looks thicker the more points it has (0.15 % noise reads 0.21 at
# 50,000 points and 0.66 at 2,000,000, and would be trimmed, at half the fit's time). The
# test and the trimming planes are therefore taken on at most this many of the points (a
# seeded random draw), the density the threshold was set at (typical clouds: 35,000 to
# 100,000 points).
THICKNESS_POINTS = 100_000


def local_planes(points: np.ndarray, neighbors: np.ndarray):
    """Each point's neighbourhood plane, for (N, 3) float64 points and (N, k) int indices of
    their neighbours: (N, 3) unit normals (unoriented, the least
    principal axis), (N, 3) centroids, and (N,) the RMS distance of the neighbours from
    that plane (the noise, plus a little curvature)."""
    normals = np.empty_like(points)
    centroids = np.empty_like(points)
    spread = np.empty(len(points))
    step = max(1024, (1 << 20) // neighbors.shape[1])  # bounded memory for wide patches
    for start in range(0, len(points), step):
        nb = points[neighbors[start : start + step]]
        c = nb.mean(axis=1, keepdims=True)
        centred = nb - c
        cov = np.einsum("nki,nkj->nij", centred, centred) / nb.shape[1]
        vals, vecs = np.linalg.eigh(cov)
        normals[start : start + step] = vecs[:, :, 0]
        centroids[start : start + step] = c[:, 0]
        spread[start : start + step] = np.sqrt(np.maximum(vals[:, 0], 0.0))
    return normals, centroids, spread


def sample_areas(points: np.ndarray, normals: np.ndarray | None = None, *, tree=None, neighbors: int = 8,
                 candidates: int = 24, only: np.ndarray | None = None) -> np.ndarray:
    """(N,) float64 surface area per sample of (N, 3) points (its units squared): the disc
    reaching its ``neighbors``-th nearest other sample, shared by that many (the weights of
    a winding number summed over the samples). ``tree``: a cKDTree of the points already built.
    ``only``: indices of the samples wanted (a winding number's subsample), whose areas alone
    are returned (the same values as the full call's at those indices).

    With (N, 3) unit ``normals`` the distances are measured in each sample's tangent plane,
    among its ``candidates`` nearest samples. Why: where the points are noisy, the noise
    spreads them off the surface and the 3D distances overstate the spacing; on a scan whose
    noise was a spacing (abc_00016513) the 3D discs summed to 1.58 times the true area, most
    of the excess on its densely scanned outer wall, which outweighed the sparser bore until
    the bore's winding number read 0.7; in the tangent plane they summed to 1.01 times it."""
    from scipy.spatial import cKDTree

    k = min(int(neighbors), len(points) - 1)
    tree = tree or cKDTree(points)
    at = points if only is None else points[only]
    if normals is None:
        dk, _ = tree.query(at, k=k + 1, workers=query_workers())
        return np.pi * dk[:, -1] ** 2 / k
    normals = normals if only is None else normals[only]
    m = max(k, min(int(candidates), len(points) - 1))
    _, idx = tree.query(at, k=m + 1, workers=query_workers())
    radius = np.empty(len(at))
    step = 65536  # bounds the (step, m, 3) offsets in memory
    for start in range(0, len(at), step):
        p = at[start:start + step]
        n = np.asarray(normals[start:start + step], dtype=np.float64)
        off = points[idx[start:start + step, 1:]] - p[:, None, :]
        off -= np.einsum("nki,ni->nk", off, n)[:, :, None] * n[:, None, :]
        radius[start:start + step] = np.partition(np.einsum("nki,nki->nk", off, off), k - 1, axis=1)[:, k - 1]
    return np.pi * radius / k


def onto_local_planes(points: np.ndarray, *, neighbors: int = 16, scale_neighbor: int = 8, tree=None,
                      queries: np.ndarray | None = None) -> np.ndarray:
    """(N, 3) float64: each of the (N, 3) points moved, along the plane's normal, onto the
    weighted least-squares plane of its ``neighbors`` nearest points (itself included),
    weighted by exp(-(d / d_s)^2) with d_s the distance to its ``scale_neighbor``-th nearest.
    With ``queries`` (M, 3), those are moved instead, onto the planes of their nearest
    ``points``: (M, 3) float64 (a mesh's vertices snapped onto the data).

    Noise across a surface averages out over the neighbourhood; a curved surface flattens by
    the plane fit's sagitta, which the Gaussian weights keep smaller than an unweighted fit
    of as many points would (on the bench's open scans this beat unweighted fits of 8, 10,
    12 and 24 points)."""
    from scipy.spatial import cKDTree

    p = np.asarray(points, dtype=np.float64)
    moved = p if queries is None else np.asarray(queries, dtype=np.float64).reshape(-1, 3)
    k = min(int(neighbors), len(p))
    if k < 3:
        return moved.copy()
    s = min(int(scale_neighbor), k - 1)
    tree = tree or cKDTree(p)
    step = max(1024, (1 << 20) // k)  # bounded scratch memory
    out = np.empty_like(moved)
    for start in range(0, len(moved), step):
        q = moved[start:start + step]
        dist, nbr = tree.query(q, k=k, workers=query_workers())
        weight = np.exp(-(dist / np.maximum(dist[:, s:s + 1], 1e-300)) ** 2)
        weight /= weight.sum(axis=1, keepdims=True)
        nb = p[nbr]
        centre = np.einsum("nk,nki->ni", weight, nb)
        centred = nb - centre[:, None]
        normal = np.linalg.eigh(np.einsum("nk,nki,nkj->nij", weight, centred, centred))[1][:, :, 0]
        out[start:start + step] = q - np.einsum("ij,ij->i", q - centre, normal)[:, None] * normal
    return out


def thick_noise_keep(points: np.ndarray, *, tree=None):
    """Which of (N, 3) unit-cube points to keep when the noise is thicker than the surface is flat.

    A clean or mildly noisy surface looks flatter the wider the patch (noise stays, width
    grows); noise as thick as the patches are wide keeps even 64-neighbour patches
    ball-like (a thin plate in range-scanner noise). Local planes cannot denoise such a
    cloud, and a fitted surface would wrap the noise's outer points; so points farther
    than TRIM_SIGMAS robust standard deviations from their wide (TRIM_NEIGHBORS) plane
    are dropped. Clouds of more than THICKNESS_POINTS points are judged on that many of
    them, and each point is measured from the plane of its nearest one among them.
    ``tree``: a cKDTree of ``points`` already built (used when no points are drawn).
    Returns the (N,) bool mask, or None when the noise is not that thick."""
    from scipy.spatial import cKDTree

    n = len(points)
    if n < 4 * TRIM_NEIGHBORS:
        return None
    if n > THICKNESS_POINTS:
        from recon.seeding import rng

        sample = points[np.sort(rng(0).choice(n, THICKNESS_POINTS, replace=False))]
        tree = cKDTree(sample)
    else:
        sample = points
        tree = cKDTree(points) if tree is None else tree
    m = len(sample)
    probe = sample[:: max(1, m // 2000)]
    _, nb = tree.query(probe, k=THICKNESS_NEIGHBORS, workers=query_workers())
    patch = sample[nb] - sample[nb].mean(axis=1, keepdims=True)
    ev = np.linalg.eigvalsh(np.einsum("nki,nkj->nij", patch, patch))
    thickness = float(np.median(np.sqrt(np.maximum(ev[:, 0], 0.0) / np.maximum(ev[:, 2], 1e-30))))
    if thickness <= THICK_NOISE:
        return None
    _, nb = tree.query(sample, k=TRIM_NEIGHBORS, workers=query_workers())
    normals, centroids, _ = local_planes(sample, nb)
    if m < n:  # each point against the plane of its nearest drawn point
        _, nearest = tree.query(points, k=1, workers=query_workers())
        normals, centroids = normals[nearest], centroids[nearest]
    residual = np.einsum("ij,ij->i", points - centroids, normals)
    sigma = 1.4826 * float(np.median(np.abs(residual)))
    return np.abs(residual) <= TRIM_SIGMAS * sigma


ROUGHNESS_NEIGHBORS = 16
ROUGHNESS_SAMPLE = 3000


def roughness(points: np.ndarray, spacing: float, *, tree=None) -> float:
    """How far (N, 3) points stray from a smooth surface, in units of their ``spacing``
    (a length in the points' units): the median RMS residual of local quadric height fits
    over 16 neighbours, at about 3,000 points taken at a fixed stride.

    A plane fit also counts curvature as noise, and on sparse clouds curvature between the
    samples is most of it; a quadric absorbs it. Clean clouds read 0.005 (dense, smooth) to
    0.17 (sharp edges), a few hundred clean points about 0.10, noisy clouds 0.27 to 0.45."""
    from scipy.spatial import cKDTree

    k = min(ROUGHNESS_NEIGHBORS, len(points))
    if k < 7 or not spacing > 0:
        return 0.0
    tree = tree or cKDTree(points)
    probe = points[:: max(1, len(points) // ROUGHNESS_SAMPLE)]
    _, nb = tree.query(probe, k=k, workers=query_workers())
    rel = points[nb] - probe[:, None, :]
    cen = rel - rel.mean(axis=1, keepdims=True)
    _, axes = np.linalg.eigh(np.einsum("nki,nkj->nij", cen, cen))
    u, v, w = (np.einsum("nki,ni->nk", rel, axes[:, :, a]) for a in (2, 1, 0))
    design = np.stack([u * u, u * v, v * v, u, v, np.ones_like(u)], axis=-1)  # (n, k, 6)
    coef = np.einsum("nij,nj->ni", np.linalg.pinv(design), w)
    resid = np.sqrt(np.mean((np.einsum("nkj,nj->nk", design, coef) - w) ** 2, axis=1))
    return float(np.median(resid) / spacing)
