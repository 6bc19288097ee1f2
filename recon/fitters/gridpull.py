"""GridPull: a signed distance field on a grid, fitted by pulling queries onto the surface.

After Chen et al., "GridPull: Towards Scalability in Learning Implicit Representations
from 3D Point Clouds", ICCV 2023. No network and no normals: the field's values on the
grid nodes of a narrow band around the points are the parameters, optimised with Adam on

- pull: a query q near the points, moved by q' = q - f(q) grad f(q) / |grad f(q)| with f and
  grad f from trilinear interpolation (analytic gradient), should land on q's nearest input
  point t: |q' - t|^2;
- surface: f(p) = 0 at the input points;
- gradient consistency: grad f(q) points like grad f(t): 1 - cos;
- continuity: neighbouring band nodes vary smoothly (squared second differences along each
  axis), so the field between the points stays a distance-like ramp.

Where this differs from the reference code, and why:
- The sign comes from the geometry, not from training: nodes outside the band are
  labelled outside (connected to the grid's boundary) or inside (enclosed by the band);
  band nodes start as the distance to the nearest input point with the sign of the side
  they are closer to. Optimisation then starts near the answer and needs few steps.
- The band is a ball of the same radius around each point (symmetric), its radius grows
  where points are sparse so it stays closed, and the gradient sums of band nodes are
  gathered in a fixed order (no dependence on loop order).
- The grid transform is node-centred (node (i, j, k) at origin + (i, j, k) h) in every step,
  fitting and meshing alike, so there is no half- or one-voxel offset to undo.
- Nodes outside the band keep their sign and a value that is a lower bound of the
  distance to the band, so they never create a surface and sphere tracing stays safe.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace
from types import SimpleNamespace

import numpy as np

from recon.cloud import Cloud, Normalization
from recon.errors import InputError
from recon.fields import SignedDistanceGrid
from recon.fitters import FitterSpec, register
from recon.points.preprocess import check_merge_cells, dense_voxel_means, local_planes, thick_noise_keep
from recon.fitters._progress import progress_due


@dataclass
class GridPullConfig:
    resolution: int = 256
    "Grid cells across the longest side of the bounding box (noisy clouds get fewer: cells stay wider than the noise)."
    iterations: int = 60
    "Adam steps (three times as many for sparse noisy clouds, see denoise)."
    learning_rate: float = 0.1
    "Adam step size, in voxels."
    band_width: float = 2.5
    "Half-width of the optimised band around the points, in voxels (grows where points are sparse)."
    queries_per_point: int = 6
    "Query points sampled around each input point."
    query_neighbors: int = 16
    "The query spread around a point is its distance to this many-th nearest neighbour."
    pull_weight: float = 1.0
    "Weight of the pull loss."
    surface_weight: float = 1.0
    "Weight of the loss f = 0 at the input points."
    consistency_weight: float = 0.5
    "Weight of the gradient-consistency loss."
    smooth_weight: float = 2.0
    "Weight of the continuity loss on the band (squared second differences)."
    merge_cells: float = 0.75
    "Clouds far denser than the grid (on average at least three points per occupied voxel of this many cells) are fitted to each voxel's mean point; 0 fits every point."
    denoise: str = "auto"
    "Move points onto their neighbours' plane first: auto (when the cloud looks noisy and is dense enough; sparse noisy clouds get a heavier continuity loss instead; noise thicker than the surface is flat loses its outer points), on or off."
    seed: int = 0
    "Random seed (query sampling)."
    device: str = "auto"
    "Where the optimisation runs: auto, cpu or cuda."


def _validate(config: GridPullConfig) -> None:
    if not isinstance(config.resolution, int) or not 16 <= config.resolution <= 2048:
        raise InputError(f"resolution must be an integer in 16..2048, got {config.resolution!r}")
    if config.iterations < 0:
        raise InputError(f"iterations must be >= 0, got {config.iterations}")
    if not config.band_width >= 1.0:
        raise InputError(f"band_width must be at least 1 voxel, got {config.band_width}")
    if config.queries_per_point < 1:
        raise InputError(f"queries_per_point must be >= 1, got {config.queries_per_point}")
    if config.query_neighbors < 1:
        raise InputError(f"query_neighbors must be >= 1, got {config.query_neighbors}")
    check_merge_cells(config.merge_cells)
    if config.denoise not in ("auto", "on", "off"):
        raise InputError(f"denoise must be auto, on or off, got {config.denoise!r}")
    for name in ("learning_rate", "pull_weight", "surface_weight", "consistency_weight", "smooth_weight"):
        value = getattr(config, name)
        if not (math.isfinite(value) and value >= 0):
            raise InputError(f"{name} must be a finite number >= 0, got {value}")


def fit_gridpull(cloud: Cloud, config: GridPullConfig | None = None, *, progress=None,
                 timings: dict | None = None) -> SignedDistanceGrid:
    """Fit a signed distance grid to ``cloud`` (normals, if any, are not needed or used).

    Returns a :class:`SignedDistanceGrid` in the cloud's own units and frame: negative
    inside, zero on the surface. ``progress(step, total, losses)`` is called every hundredth
    of the run (``recon.fitters._progress.progress_due``); ``timings``, when given, gets the
    seconds of each phase (they are not stored in the field, so a saved field is the same
    bytes for the same input and seed).
    """
    from recon.device import resolve_device

    config = config or GridPullConfig()
    _validate(config)
    device = resolve_device(config.device)
    timings = {} if timings is None else timings
    t0 = time.perf_counter()
    norm = Normalization.fit_unit_cube(cloud.points)
    points = norm.to_unit(cloud.points)
    world = cloud.points
    merged = dense_voxel_means(points, config.merge_cells / config.resolution)
    if merged is not None:
        points, world = merged, norm.to_world(merged)
    keep = thick_noise_keep(points) if config.denoise != "off" else None
    if keep is not None:  # the grid then spans the kept points only
        norm = Normalization.fit_unit_cube(world[keep])
        points = norm.to_unit(world[keep])
    problem = _set_up(points, config)
    timings["setup_s"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    run = config
    if problem.sparse_noisy:
        run = replace(config, smooth_weight=config.smooth_weight * SPARSE_NOISY_SMOOTHING,
                      iterations=config.iterations * SPARSE_NOISY_STEPS)
    _optimise(problem, run, progress, device)
    timings["optimise_s"] = time.perf_counter() - t1
    dense = _finish(problem)
    params = asdict(config)
    params.update(method="gridpull", device_used=device, n_points=len(cloud),
                  resolution_used=int(round(1.0 / problem.h)), denoised=bool(problem.denoised), noise_ratio=float(problem.noise_ratio),
                  sparse_noisy=bool(problem.sparse_noisy),
                  merged_points=0 if merged is None else len(merged),
                  trimmed=0 if keep is None else int(len(keep) - np.count_nonzero(keep)), iterations_used=run.iterations,
                  smooth_weight_used=run.smooth_weight,
                  band_nodes=int(problem.n_nodes), grid_shape=list(dense.shape))
    # unit cube -> input units: uniform scale, so distances divide by it too
    return SignedDistanceGrid(
        dense / np.float32(norm.scale),
        norm.to_world(problem.origin[None, :])[0],
        problem.h / norm.scale,
        kind="signed",
        normalization=norm,
        params=params,
    )


# A cloud is noisy when its points stray from their neighbours' plane by more than this
# fraction of their spacing (clean samples of the bench: 0.02-0.05, 500 clean points on a
# kitten: 0.17; 0.25 % noise: 0.27-0.4).
NOISY_RATIO = 0.2
# Heavy noise (range scans with scanner noise: 0.35-0.4): twice the neighbours, twice
# the passes.
HEAVY_NOISE_RATIO = 0.345
# Noisy clouds: a grid cell is at least the noise's RMS divided by this.
NOISE_PER_CELL = 0.6
# ... but at most this many times coarser than asked (sparse clouds look noisy too).
MAX_COARSENING = 2.0
# Sparse clouds: at most this many cells per 8-neighbour spacing (dense bench clouds
# have 2-4 cells per spacing at 256, so this only coarsens sparse ones).
CELLS_PER_SPACING = 6.0
# Morphological closing steps (voxels) tried in turn until the band encloses an inside.
CLOSING_STEPS = (0, 4, 8, 16, 32)
# Denoising: neighbours of each local plane, and how many times points move onto it.
DENOISE_NEIGHBORS = 16
DENOISE_PASSES = 1
# A noisy cloud so sparse that a denoising neighbourhood spans more than this share of
# its diagonal (500 points on a kitten: 0.095; the dense bench scans: 0.007-0.011) is not
# projected: planes that wide flatten the shape itself. Its noise is smoothed by the
# continuity loss instead, this many times heavier, over this many times the steps (a
# stiffer problem, but a small one).
SPARSE_SPAN = 0.04
SPARSE_NOISY_SMOOTHING = 30.0
SPARSE_NOISY_STEPS = 3


class _Problem:
    """Everything the iterations need, in the unit cube (float32 values, float64 positions)."""


def _set_up(points: np.ndarray, config: GridPullConfig) -> _Problem:
    """The whole problem in the unit cube: points (denoised where noisy), the closing band
    and its signs, initial values, the optimised band, queries and their targets."""
    from recon.kernels import gridpull_cpu as K

    c = _prepare_points(points, config)
    lo, shape, labels, dnn, nearest, closing_ijk = _closing_band(K, c)
    dense, sign = _initial_values(K, c, lo, shape, labels, dnn, nearest, closing_ijk)

    # the optimised nodes: those within the narrow band of their nearest point
    in_opt = dnn <= c.radii[nearest]
    node_ijk = np.ascontiguousarray(closing_ijk[in_opt], dtype=np.int32)
    n_nodes = len(node_ijk)
    band_index = np.full(shape, -1, np.int32)
    band_index[tuple(node_ijk.T)] = np.arange(n_nodes, dtype=np.int32)

    queries, target, target_pos, target_start = _queries(c, config)
    sites = np.ascontiguousarray(np.concatenate([queries, c.points]))
    entry_start, entry_site, entry_w = K.build_entries(sites, lo, c.h, band_index, n_nodes)

    P = _Problem()
    P.h = c.h
    P.denoised = c.denoised
    P.noise_ratio = c.noise_ratio
    P.sparse_noisy = c.sparse_noisy
    P.origin = lo
    P.dense = dense
    P.band_index = band_index
    P.node_ijk = node_ijk
    P.n_nodes = n_nodes
    P.values = dense[tuple(node_ijk.T)].copy()
    P.init_sign = sign[in_opt].astype(np.float32)
    P.node_dnn = dnn[in_opt].astype(np.float32)
    P.node_radius = np.float32(np.median(c.radii))
    P.sites = sites
    P.n_queries = len(queries)
    P.n_points = len(c.points)
    P.target = target
    P.target_pos = np.ascontiguousarray(target_pos)
    P.target_start = target_start
    P.entry_start = entry_start
    P.entry_site = entry_site
    P.entry_w = entry_w
    P.neighbors = K.neighbor_table(node_ijk, band_index)
    # triples (m - e, m, m + e) of band nodes: the continuity loss's terms
    P.n_triples = max(int(((P.neighbors[:, 0::2] >= 0) & (P.neighbors[:, 1::2] >= 0)).sum()), 1)
    return P


def _prepare_points(points: np.ndarray, config: GridPullConfig) -> SimpleNamespace:
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
    return SimpleNamespace(
        points=pts64, tree=tree, dists=dists, nbr=nbr, normals=normals, h=h, radii=radii,
        k_band=k_band, k_close=k_close, k_query=k_query, denoised=denoise,
        noise_ratio=noise_ratio, sparse_noisy=sparse_noisy,
    )


def _closing_band(K, c: SimpleNamespace):
    """Sign regions: nodes off a (wider) closing band are outside when connected to the
    grid's boundary, else inside. Where the outside leaks in (holes in a scan, gaps between
    sparse points) the band is closed morphologically, by ever larger steps. Returns the
    grid's origin and shape, the region labels, and for the band's nodes (their (B, 3)
    indices) the distance to and index of their nearest point."""
    pts64, h = c.points, c.h
    c.close_radii = np.maximum(c.radii, c.dists[:, c.k_close])
    for closing in CLOSING_STEPS:
        pad = int(math.ceil(c.close_radii.max() / h)) + 3 + closing
        lo = pts64.min(axis=0) - pad * h
        shape = tuple(int(x) for x in np.ceil((pts64.max(axis=0) + pad * h - lo) / h).astype(int) + 1)
        dist2 = np.full(shape, np.inf, np.float32)
        nearest_grid = np.zeros(shape, np.int32)
        K.splat_nearest(pts64, c.close_radii, lo, h, dist2, nearest_grid)
        labels = _label_with_closing(K, dist2 < np.inf, closing)
        n_inside = int(np.count_nonzero(labels == K.INSIDE))
        if n_inside >= 0.02 * np.count_nonzero(labels == 0):
            break
    if n_inside == 0:
        raise InputError(
            "the points enclose no inside at this resolution (an open surface, a single sheet, "
            "or too few points): GridPull needs a closed surface; for open surfaces use "
            "--method csp, else try a lower --resolution or a larger --band-width"
        )
    closing_ijk = np.argwhere(labels == 0)
    at_band = tuple(closing_ijk.T)
    dnn = np.sqrt(dist2[at_band]).astype(np.float64)
    nearest = nearest_grid[at_band]
    return lo, shape, labels, dnn, nearest, closing_ijk


def _initial_values(K, c: SimpleNamespace, lo, shape, labels, dnn, nearest, closing_ijk):
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
    pts64, normals, h = c.points, c.normals, c.h
    at_band = tuple(closing_ijk.T)
    orientation = _orientation_from_regions(labels, lo, h, pts64, normals, c.close_radii + 1.5 * h)
    K.propagate_orientation(normals, c.nbr[:, 1 : c.k_band + 1], orientation)
    offset = np.einsum("ij,ij->i", lo + closing_ijk * h - pts64[nearest], normals[nearest])
    # points no seed reached (a stray cluster off the surface) make no inside
    sign = np.where((orientation[nearest] != 0) & (offset < 0), -1.0, 1.0)
    # A closing band also seals narrow openings; regions it sealed off are outside.
    node_sign = np.zeros(shape, np.int8)
    node_sign[at_band] = sign
    K.relabel_enclosed(labels, node_sign)
    del node_sign
    close = dnn < 2.0 * c.radii[nearest]
    near = np.flatnonzero(close)
    blended, ok = _blended_planes(K, pts64, normals, orientation, c.dists[:, c.k_band], closing_ijk[near], lo, h, shape)
    offset[near[ok]] = blended
    sign[near[ok]] = np.where(blended < 0, -1.0, 1.0)
    magnitude = np.where(close, np.abs(offset), dnn)
    # nodes off the closing band: a lower bound of the distance to it (6-neighbour steps
    # over-count Euclidean distance by at most sqrt(3)), plus the smallest ball radius
    dense = np.empty(shape, np.float32)
    K.far_values(labels, K.l1_distance(labels == 0), float(c.close_radii.min()), h / math.sqrt(3.0), dense)
    dense[at_band] = (sign * magnitude).astype(np.float32)
    return dense, sign


def _queries(c: SimpleNamespace, config: GridPullConfig):
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


def _label_with_closing(K, band: np.ndarray, closing: int) -> np.ndarray:
    """Region labels of the nodes off ``band``; with ``closing`` > 0 the band is first
    dilated by that many (6-neighbour) steps, the outside flooded, and the outside then
    dilated back, so openings narrower than about twice ``closing`` are sealed."""
    if closing == 0:
        return K.label_regions(band)
    grown = K.l1_distance(band) <= closing
    flooded = K.label_regions(grown)
    outside = K.l1_distance(flooded == K.OUTSIDE) <= closing
    labels = np.where(outside, np.uint8(K.OUTSIDE), np.uint8(K.INSIDE))
    labels[band] = 0
    return labels


def _blended_planes(K, points, normals, orientation, spacing, node_ijk, origin, h, shape):
    """Signed distance at (M, 3) int nodes (of a grid of ``shape``) from the local mean
    plane: through the Gaussian-weighted mean of the nearby oriented points, normal to
    the weighted mean of their normals, each point's weight of width ``spacing`` (its
    8th-neighbour distance). Unlike a mean of the points' own plane offsets, it stays a
    distance (not shrinking with it) off curved surfaces. Returns the values where some
    point reaches (float64) and the (M,) bool mask of those nodes. Points whose
    orientation is unknown take no part."""
    sigma = np.where(orientation != 0, spacing, 0.0)
    node_index = np.full(shape, -1, np.int32)
    node_index[tuple(node_ijk.T)] = np.arange(len(node_ijk), dtype=np.int32)
    sums = np.zeros((len(node_ijk), 7))
    K.splat_planes(points, normals, sigma, origin, h, node_index, sums)
    del node_index
    length = np.linalg.norm(sums[:, 4:], axis=1)
    ok = (sums[:, 0] > 1e-6) & (length > 1e-3 * sums[:, 0])
    s = sums[ok]
    x = origin + node_ijk[ok] * h
    value = np.einsum("ij,ij->i", x - s[:, 1:4] / s[:, :1], s[:, 4:]) / length[ok]
    return value, ok


def loss_scales(P: _Problem, config: GridPullConfig) -> dict:
    """Each term's weight divided by its count (and by h^2 for the length terms), so the
    weights mean the same at every resolution and point count."""
    h2 = P.h * P.h
    return {
        "pull": config.pull_weight / (P.n_queries * h2),
        "surface": config.surface_weight / (P.n_points * h2),
        "consistency": config.consistency_weight / P.n_queries,
        "smooth": config.smooth_weight / (P.n_triples * h2),
    }


def learning_rate(config: GridPullConfig, h: float, step: int) -> float:
    """Cosine decay from learning_rate voxels to a tenth of it."""
    total = max(config.iterations, 1)
    frac = (step - 1) / total
    return config.learning_rate * h * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * frac)))


def _optimise(P: _Problem, config: GridPullConfig, progress, device: str) -> None:
    """Adam on the band nodes. The CPU and CUDA pass modules share names and arguments,
    so this loop is the same on both; on CUDA the arrays live on the GPU throughout."""
    if device == "cuda":
        from recon.kernels import gridpull_cuda as K

        put, get = K.to_device, K.to_host
    else:
        from recon.kernels import gridpull_cpu as K

        put = get = lambda a: a
    scales = loss_scales(P, config)
    S = len(P.sites)
    zeros = lambda *shape: put(np.zeros(shape, np.float32))  # noqa: E731
    site_f, site_g, site_df, site_dg = zeros(S), zeros(S, 3), zeros(S), zeros(S, 3)
    query_dgt, query_loss = zeros(P.n_queries, 3), zeros(P.n_queries, 2)
    adam_m, adam_v, second_diff = zeros(P.n_nodes), zeros(P.n_nodes), zeros(P.n_nodes, 3)
    dense, values, origin = put(P.dense), put(P.values), put(P.origin)
    sites, target, target_pos, target_start = put(P.sites), put(P.target), put(P.target_pos), put(P.target_start)
    neighbors, node_ijk = put(P.neighbors), put(P.node_ijk)
    entry_start, entry_site, entry_w = put(P.entry_start), put(P.entry_site), put(P.entry_w)
    # Adam divides by the gradient's running size; eps keeps round-off-sized gradients
    # (nodes no term reaches) from taking full steps. 1 / (points * h) is the gradient
    # scale of the surface term, so eps means the same at every size and resolution.
    beta1, beta2, eps = 0.9, 0.999, 1e-3 / (P.n_points * P.h)
    for step in range(1, config.iterations + 1):
        K.eval_sites(dense, origin, P.h, sites, site_f, site_g)
        K.query_terms(sites, site_f, site_g, P.n_queries, target, target_pos, scales["pull"],
                      scales["consistency"], site_df, site_dg, query_dgt, query_loss)
        K.point_terms(site_f, P.n_queries, target_start, scales["surface"], query_dgt, site_df, site_dg)
        K.second_differences(values, neighbors, second_diff)
        K.update_nodes(values, neighbors, second_diff, entry_start, entry_site, entry_w,
                       site_df, site_dg, scales["smooth"], adam_m, adam_v,
                       learning_rate(config, P.h, step), beta1, beta2, eps,
                       1.0 - beta1**step, 1.0 - beta2**step)
        K.scatter_values(node_ijk, values, dense)
        if progress is not None and progress_due(step, config.iterations):
            progress(step, config.iterations, _losses(P, get(site_f), get(query_loss)))
    P.values = get(values)
    P.dense = get(dense)


def _losses(P: _Problem, site_f, query_loss) -> dict:
    """The unweighted terms, in voxels (pull, surface) or as 1 - cos (consistency)."""
    h = P.h
    surf = site_f[P.n_queries:]
    return {
        "pull": float(np.sqrt(query_loss[:, 0].mean()) / h),
        "surface": float(np.sqrt(np.mean(surf.astype(np.float64) ** 2)) / h),
        "consistency": float(query_loss[:, 1].mean()),
    }


def _finish(P: _Problem) -> np.ndarray:
    """The final dense grid. Band nodes far from every point keep their initial sign, so
    the optimisation cannot leave a stray surface where there is no data."""
    far_from_data = P.node_dnn > np.maximum(3.0 * P.h, 0.75 * P.node_radius)
    flipped = far_from_data & (np.sign(P.values) != P.init_sign)
    if flipped.any():
        P.values[flipped] = P.init_sign[flipped] * np.abs(P.values[flipped])
        ijk = P.node_ijk[flipped]
        P.dense[ijk[:, 0], ijk[:, 1], ijk[:, 2]] = P.values[flipped]
    return P.dense


register(FitterSpec(
    name="gridpull",
    config_cls=GridPullConfig,
    fit=fit_gridpull,
    description="GridPull: signed distance grid pulled onto the points (closed surfaces, no normals needed)",
    min_points=10, needs_volume=True,
))
