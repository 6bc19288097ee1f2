"""GridPull's set-up: everything the iterations need, from the points to the initial grid.

In the unit cube: the points (denoised where noisy), the closing band and its inside /
outside regions, the oriented normals, the initial signed values, the optimised band,
the queries and their pull targets, and each band node's trilinear entries. ``config``
is the fit's :class:`~recon.fitters.gridpull.GridPullConfig` throughout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from recon.errors import InputError
from recon.points.preprocess import local_planes

# A cloud is noisy when its points stray from their neighbours' plane by more than this
# fraction of their spacing (clean dense samples stray 0.02-0.05 spacings, a few hundred
# clean points on a curved shape about 0.17, scans with 0.25 % noise 0.27-0.4).
NOISY_RATIO = 0.2
# Heavy noise (range scans with scanner noise: 0.35-0.4): twice the neighbours, twice
# the passes.
HEAVY_NOISE_RATIO = 0.345
# Noisy clouds: a grid cell is at least the noise's RMS divided by this.
NOISE_PER_CELL = 0.6
# ... but at most this many times coarser than asked (sparse clouds look noisy too).
MAX_COARSENING = 2.0
# Sparse clouds: at most this many cells per 8-neighbour spacing (dense clouds have 2-4
# cells per spacing at 256, so this only coarsens sparse ones).
CELLS_PER_SPACING = 6.0
# Morphological closing steps (voxels) tried in turn until the band encloses an inside.
CLOSING_STEPS = (0, 4, 8, 16, 32)
# Denoising: neighbours of each local plane, and how many times points move onto it.
DENOISE_NEIGHBORS = 16
DENOISE_PASSES = 1
# A noisy cloud so sparse that a denoising neighbourhood spans more than this share of
# its diagonal (a few hundred points: about 0.1; dense scans: 0.007-0.011) is not
# projected: planes that wide flatten the shape itself. Its noise is smoothed by the
# continuity loss instead, this many times heavier, over this many times the steps (a
# stiffer problem, but a small one).
SPARSE_SPAN = 0.04
SPARSE_NOISY_SMOOTHING = 30.0
SPARSE_NOISY_STEPS = 3


@dataclass
class PreparedPoints:
    """The fitted points and what the set-up derives from them, in the unit cube.

    N points; k = max(k_band, k_close, k_query) neighbours queried per point.
    """

    points: np.ndarray
    "(N, 3) float64 points in grid order, denoised where the cloud is noisy."
    tree: object
    "scipy cKDTree over ``points``."
    dists: np.ndarray
    "(N, k + 1) float64 distances to each point's nearest points (itself first)."
    nbr: np.ndarray
    "(N, k + 1) int64 indices of those points."
    normals: np.ndarray
    "(N, 3) float64 unoriented unit normals (principal axis of k_close + 1 neighbours)."
    h: float
    "Grid cell size (unit cube)."
    radii: np.ndarray
    "(N,) float64 radius of each point's ball of the optimised band."
    close_radii: np.ndarray
    "(N,) float64 radius of each point's ball of the (wider) closing band."
    k_band: int
    "Neighbour whose distance is a point's spacing (band radii, blended planes)."
    k_close: int
    "Neighbours of the normals and the closing band."
    k_query: int
    "Neighbour whose distance is the spread of a point's queries."
    denoised: bool
    "Whether the points were moved onto their neighbours' planes."
    noise_ratio: float
    "Median plane residual over the median spacing."
    sparse_noisy: bool
    "Noisy but too sparse to denoise: the continuity loss is made heavier instead."


@dataclass
class GridPullProblem:
    """Everything the iterations need, in the unit cube (float32 values, float64 positions).

    B band nodes are optimised; S = Q + N sites (Q queries, then the N points) are where
    the losses read the field.
    """

    h: float
    "Grid cell size."
    origin: np.ndarray
    "(3,) float64 position of node (0, 0, 0)."
    dense: np.ndarray
    "(X, Y, Z) float32 whole grid: band values, and lower bounds of the distance off the band."
    band_index: np.ndarray
    "(X, Y, Z) int32 band node of each grid node, -1 off the band."
    node_ijk: np.ndarray
    "(B, 3) int32 grid indices of the band nodes."
    values: np.ndarray
    "(B,) float32 the band nodes' values (the parameters)."
    init_sign: np.ndarray
    "(B,) float32 each band node's initial sign (+1 / -1)."
    node_dnn: np.ndarray
    "(B,) float32 distance from each band node to its nearest point."
    node_radius: float
    "Median band-ball radius."
    sites: np.ndarray
    "(S, 3) float64 queries, then the points."
    n_queries: int
    "Q."
    n_points: int
    "N."
    target: np.ndarray
    "(Q,) int64 nearest point of each query (queries are sorted by it)."
    target_pos: np.ndarray
    "(Q, 3) float64 where the pull should bring each query: its foot on the target's tangent plane."
    target_start: np.ndarray
    "(N + 1,) int64 first query of each point."
    entry_start: np.ndarray
    "(B + 1,) int64 each band node's first entry in entry_site / entry_w."
    entry_site: np.ndarray
    "Sites whose trilinear stencils touch a band node, grouped by node."
    entry_w: np.ndarray
    "The trilinear weight of each such entry."
    neighbors: np.ndarray
    "(B, 6) int32 band neighbours (-x, +x, -y, +y, -z, +z), -1 where none."
    n_triples: int
    "Triples (m - e, m, m + e) of band nodes: the continuity loss's terms (at least 1)."
    denoised: bool
    "Whether the points were denoised."
    noise_ratio: float
    "Median plane residual over the median spacing."
    sparse_noisy: bool
    "Noisy but too sparse to denoise."

    @property
    def n_nodes(self) -> int:
        """B."""
        return len(self.node_ijk)


def set_up(points: np.ndarray, config) -> GridPullProblem:
    """The whole problem in the unit cube: points (denoised where noisy), the closing band
    and its signs, initial values, the optimised band, queries and their targets."""
    from recon.kernels.gridpull_cpu import build_entries, neighbor_table

    c = prepare_points(points, config)
    lo, shape, labels, dnn, nearest, closing_ijk = _closing_band(c)
    dense, sign = _initial_values(c, lo, shape, labels, dnn, nearest, closing_ijk)

    # the optimised nodes: those within the narrow band of their nearest point
    in_opt = dnn <= c.radii[nearest]
    node_ijk = np.ascontiguousarray(closing_ijk[in_opt], dtype=np.int32)
    n_nodes = len(node_ijk)
    band_index = np.full(shape, -1, np.int32)
    band_index[tuple(node_ijk.T)] = np.arange(n_nodes, dtype=np.int32)

    queries, target, target_pos, target_start = _queries(c, config)
    sites = np.ascontiguousarray(np.concatenate([queries, c.points]))
    entry_start, entry_site, entry_w = build_entries(sites, lo, c.h, band_index, n_nodes)
    neighbors = neighbor_table(node_ijk, band_index)
    return GridPullProblem(
        h=c.h, origin=lo, dense=dense, band_index=band_index, node_ijk=node_ijk,
        values=dense[tuple(node_ijk.T)].copy(),
        init_sign=sign[in_opt].astype(np.float32),
        node_dnn=dnn[in_opt].astype(np.float32),
        node_radius=np.float32(np.median(c.radii)),
        sites=sites, n_queries=len(queries), n_points=len(c.points),
        target=target, target_pos=np.ascontiguousarray(target_pos), target_start=target_start,
        entry_start=entry_start, entry_site=entry_site, entry_w=entry_w, neighbors=neighbors,
        n_triples=max(int(((neighbors[:, 0::2] >= 0) & (neighbors[:, 1::2] >= 0)).sum()), 1),
        denoised=c.denoised, noise_ratio=c.noise_ratio, sparse_noisy=c.sparse_noisy,
    )


def prepare_points(points: np.ndarray, config) -> PreparedPoints:
    """Points in grid order, denoised when noisy (and dense enough), with their kNN
    distances and unoriented normals, the cell size and the band radii."""
    from scipy.spatial import cKDTree

    n = len(points)
    pts64 = points.astype(np.float64)
    # Points (and so the queries, sorted by their nearest point) in grid order: the
    # per-node gathers then read nearby memory.
    cell = np.floor((pts64 - pts64.min(axis=0)) * (config.resolution / 8.0)).astype(np.int64)
    pts64 = pts64[np.lexsort((cell[:, 2], cell[:, 1], cell[:, 0]))]
    h = 1.0 / config.resolution
    k_band = min(8, n - 1)
    k_close = min(16, n - 1)
    k_query = min(config.query_neighbors, n - 1)
    tree = cKDTree(pts64)
    dists, nbr = tree.query(pts64, k=max(k_band, k_close, k_query) + 1, workers=-1)
    normals, _, noise = local_planes(pts64, nbr[:, : k_close + 1])
    # Noisy scans: fit to the points moved onto their neighbours' plane. Clean samples
    # are left alone (the plane would flatten curvature by a fraction of a voxel).
    noise_rms = float(np.median(noise))
    noise_ratio = noise_rms / max(float(np.median(dists[:, k_band])), 1e-12)
    denoise = config.denoise == "on" or (config.denoise == "auto" and noise_ratio > NOISY_RATIO)
    # how far a denoising neighbourhood reaches (DENOISE_NEIGHBORS = k_close, already queried)
    span = float(np.median(dists[:, min(DENOISE_NEIGHBORS, k_close)]))
    sparse_noisy = config.denoise == "auto" and denoise and span > SPARSE_SPAN * float(
        np.linalg.norm(np.ptp(pts64, axis=0)))
    denoise = denoise and not sparse_noisy
    # Detail finer than the noise is noise: cells stay wider than it, so a noisy cloud
    # gets a coarser grid than asked for (fewer bubbles, a smoother surface, less time).
    if denoise and noise_rms > NOISE_PER_CELL * h:
        h = min(noise_rms / NOISE_PER_CELL, MAX_COARSENING * h)
    if denoise:
        heavy = noise_ratio > HEAVY_NOISE_RATIO
        k_denoise = min(DENOISE_NEIGHBORS * (2 if heavy else 1), n - 1)
        for _ in range(DENOISE_PASSES * (2 if heavy else 1)):
            _, nb = tree.query(pts64, k=k_denoise + 1, workers=-1)
            nrm, cen, _ = local_planes(pts64, nb)
            pts64 = pts64 - np.einsum("ij,ij->i", pts64 - cen, nrm)[:, None] * nrm
            tree = cKDTree(pts64)
        dists, nbr = tree.query(pts64, k=max(k_band, k_close, k_query) + 1, workers=-1)
        normals, _, _ = local_planes(pts64, nbr[:, : k_close + 1])
    # A sparse cloud needs no cells much finer than its spacing: they only make the band
    # (and the time) huge, with nothing to pin the surface between the points.
    h = max(h, float(np.median(dists[:, k_band])) / CELLS_PER_SPACING)
    # Optimised band: a ball around each point, wider where points are sparse.
    radii = np.minimum(np.maximum(config.band_width * h, 0.75 * dists[:, k_band]), 0.25)
    return PreparedPoints(
        points=pts64, tree=tree, dists=dists, nbr=nbr, normals=normals, h=h, radii=radii,
        close_radii=np.maximum(radii, dists[:, k_close]),
        k_band=k_band, k_close=k_close, k_query=k_query, denoised=denoise,
        noise_ratio=noise_ratio, sparse_noisy=sparse_noisy,
    )


def _closing_band(c: PreparedPoints):
    """Sign regions: nodes off a (wider) closing band are outside when connected to the
    grid's boundary, else inside. Where the outside leaks in (holes in a scan, gaps between
    sparse points) the band is closed morphologically, by ever larger steps. Returns the
    grid's origin and shape, the region labels, and for the band's nodes (their (B, 3)
    indices) the distance to and index of their nearest point."""
    from recon.kernels.gridpull_cpu import BAND, INSIDE, splat_nearest

    pts64, h = c.points, c.h
    for closing in CLOSING_STEPS:
        pad = int(math.ceil(c.close_radii.max() / h)) + 3 + closing
        lo = pts64.min(axis=0) - pad * h
        shape = tuple(int(x) for x in np.ceil((pts64.max(axis=0) + pad * h - lo) / h).astype(int) + 1)
        dist2 = np.full(shape, np.inf, np.float32)
        nearest_grid = np.zeros(shape, np.int32)
        splat_nearest(pts64, c.close_radii, lo, h, dist2, nearest_grid)
        labels = _label_with_closing(dist2 < np.inf, closing)
        n_inside = int(np.count_nonzero(labels == INSIDE))
        if n_inside >= 0.02 * np.count_nonzero(labels == BAND):
            break
    if n_inside == 0:
        raise InputError(
            "the points enclose no inside at this resolution (an open surface, a single sheet, "
            "or too few points): GridPull needs a closed surface; for open surfaces use "
            "--method csp, else try a lower --resolution or a larger --band-width"
        )
    closing_ijk = np.argwhere(labels == BAND)
    at_band = tuple(closing_ijk.T)
    dnn = np.sqrt(dist2[at_band]).astype(np.float64)
    nearest = nearest_grid[at_band]
    return lo, shape, labels, dnn, nearest, closing_ijk


def _initial_values(c: PreparedPoints, lo, shape, labels, dnn, nearest, closing_ijk):
    """The dense initial grid (float32 over ``shape``) and the closing band's signs.

    Normals (principal axes of each point's neighbours) are oriented where the regions
    around a point say clearly which side is out, and carried to neighbours elsewhere; so
    parts thinner than the band (ear tips, tails, wings), which have no inside region of
    their own, still get one. Near the points a node takes the signed distance from the
    local mean plane of the points around it, not from its nearest point's plane: across
    gaps between sparse points (chamfers, pit floors, big flat triangles) the nearest plane
    jumps from one point to the next and leaves seams the optimisation cannot smooth out in
    a few dozen steps; the blend is smooth there and agrees with it on dense clouds.
    Farther off, the distance to the nearest point (a plane is no model there)."""
    from recon.kernels.gridpull_cpu import BAND, far_values, l1_distance, relabel_enclosed
    from recon.kernels.orientation_cpu import propagate_orientation

    pts64, normals, h = c.points, c.normals, c.h
    at_band = tuple(closing_ijk.T)
    orientation = _orientation_from_regions(labels, lo, h, pts64, normals, c.close_radii + 1.5 * h)
    propagate_orientation(normals, c.nbr[:, 1 : c.k_band + 1], orientation)
    offset = np.einsum("ij,ij->i", lo + closing_ijk * h - pts64[nearest], normals[nearest])
    # points no seed reached (a stray cluster off the surface) make no inside
    sign = np.where((orientation[nearest] != 0) & (offset < 0), -1.0, 1.0)
    # A closing band also seals narrow openings; regions it sealed off are outside.
    node_sign = np.zeros(shape, np.int8)
    node_sign[at_band] = sign
    relabel_enclosed(labels, node_sign)
    del node_sign
    close = dnn < 2.0 * c.radii[nearest]
    near = np.flatnonzero(close)
    blended, ok = blended_planes(pts64, normals, orientation, c.dists[:, c.k_band], closing_ijk[near], lo, h, shape)
    offset[near[ok]] = blended
    sign[near[ok]] = np.where(blended < 0, -1.0, 1.0)
    magnitude = np.where(close, np.abs(offset), dnn)
    # nodes off the closing band: a lower bound of the distance to it (6-neighbour steps
    # over-count Euclidean distance by at most sqrt(3)), plus the smallest ball radius
    dense = np.empty(shape, np.float32)
    far_values(labels, l1_distance(labels == BAND), float(c.close_radii.min()), h / math.sqrt(3.0), dense)
    dense[at_band] = (sign * magnitude).astype(np.float32)
    return dense, sign


def _queries(c: PreparedPoints, config):
    """Queries (Gaussian around each point, spread = distance to its k-th neighbour, kept
    inside its band ball so every query's stencil is mostly optimised), sorted by their
    nearest point; that point's index, the pull's target and each point's first query.

    The pull brings a query to the foot of its nearest point's tangent plane (not to the
    point itself): between sparse points the surface stays flat instead of dimpling towards
    each point, and on dense clouds the two agree."""
    from recon.seeding import rng

    pts64, n = c.points, len(c.points)
    gen = rng(config.seed)
    sigma = np.minimum(c.dists[:, c.k_query], 0.5 * c.radii)
    owner = np.repeat(np.arange(n), config.queries_per_point)
    queries = pts64[owner] + gen.standard_normal((len(owner), 3)) * sigma[owner, None]
    _, target = c.tree.query(queries, k=1, workers=-1)
    order = np.argsort(target, kind="stable")
    queries = queries[order]
    target = target[order].astype(np.int64)
    tn = c.normals[target]
    target_pos = queries - np.einsum("ij,ij->i", queries - pts64[target], tn)[:, None] * tn
    target_start = np.searchsorted(target, np.arange(n + 1)).astype(np.int64)
    return queries, target, target_pos, target_start


def _orientation_from_regions(labels, origin, h, points, normals, reach) -> np.ndarray:
    """+1 where a point's normal, followed for ``reach`` either way, leaves the band into
    the outside region ahead and the inside region behind; -1 for the reverse; 0 where
    the probes land in the band or agree (then the orientation comes from neighbours)."""
    from recon.kernels.gridpull_cpu import INSIDE, OUTSIDE

    def label_at(p):
        ijk = np.rint((p - origin) / h).astype(np.int64)
        ijk = np.clip(ijk, 0, np.array(labels.shape) - 1)
        return labels[ijk[:, 0], ijk[:, 1], ijk[:, 2]]

    ahead = label_at(points + normals * reach[:, None])
    behind = label_at(points - normals * reach[:, None])
    out = np.zeros(len(points), np.int8)
    out[(ahead == OUTSIDE) & (behind == INSIDE)] = 1
    out[(ahead == INSIDE) & (behind == OUTSIDE)] = -1
    return out


def _label_with_closing(band: np.ndarray, closing: int) -> np.ndarray:
    """Region labels of the nodes off ``band``; with ``closing`` > 0 the band is first
    dilated by that many (6-neighbour) steps, the outside flooded, and the outside then
    dilated back, so openings narrower than about twice ``closing`` are sealed."""
    from recon.kernels.gridpull_cpu import BAND, INSIDE, OUTSIDE, l1_distance, label_regions

    if closing == 0:
        return label_regions(band)
    grown = l1_distance(band) <= closing
    flooded = label_regions(grown)
    outside = l1_distance(flooded == OUTSIDE) <= closing
    labels = np.where(outside, np.uint8(OUTSIDE), np.uint8(INSIDE))
    labels[band] = BAND
    return labels


def blended_planes(points, normals, orientation, spacing, node_ijk, origin, h, shape):
    """Signed distance at (M, 3) int nodes (of a grid of ``shape``) from the local mean
    plane: through the Gaussian-weighted mean of the nearby oriented points, normal to
    the weighted mean of their normals, each point's weight of width ``spacing`` (its
    8th-neighbour distance). Unlike a mean of the points' own plane offsets, it stays a
    distance (not shrinking with it) off curved surfaces. Returns the values where some
    point reaches (float64) and the (M,) bool mask of those nodes. Points whose
    orientation is unknown take no part."""
    from recon.kernels.gridpull_cpu import splat_planes

    sigma = np.where(orientation != 0, spacing, 0.0)
    node_index = np.full(shape, -1, np.int32)
    node_index[tuple(node_ijk.T)] = np.arange(len(node_ijk), dtype=np.int32)
    sums = np.zeros((len(node_ijk), 7))
    splat_planes(points, normals, sigma, origin, h, node_index, sums)
    del node_index
    length = np.linalg.norm(sums[:, 4:], axis=1)
    ok = (sums[:, 0] > 1e-6) & (length > 1e-3 * sums[:, 0])
    s = sums[ok]
    x = origin + node_ijk[ok] * h
    value = np.einsum("ij,ij->i", x - s[:, 1:4] / s[:, :1], s[:, 4:]) / length[ok]
    return value, ok
