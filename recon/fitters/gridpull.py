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
from typing import Callable

import numpy as np

from recon.cloud import Cloud, Normalization
from recon.errors import InputError
from recon.fields.grid import SignedDistanceGrid
from recon.fitters import FitterSpec, register
from recon.fitters._gridpull_setup import SPARSE_NOISY_SMOOTHING, SPARSE_NOISY_STEPS, GridPullProblem, set_up
from recon.fitters._progress import progress_due
from recon.points.preprocess import check_merge_cells, dense_voxel_means, thick_noise_keep


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
    problem = set_up(points, config)
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


def loss_scales(P: GridPullProblem, config: GridPullConfig) -> dict:
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


@dataclass(frozen=True)
class AdamPasses:
    """The per-iteration kernels of one device (``recon.kernels.gridpull_cpu`` or
    ``gridpull_cuda``, which share names and arguments), and the array transfers."""

    eval_sites: Callable
    query_terms: Callable
    point_terms: Callable
    second_differences: Callable
    update_nodes: Callable
    scatter_values: Callable
    put: Callable
    "Host array -> an array the kernels take (on CUDA: a device array)."
    get: Callable
    "The reverse."

    @classmethod
    def on(cls, device: str) -> "AdamPasses":
        """The passes for ``device`` ("cpu" or "cuda")."""
        if device == "cuda":
            from recon.kernels import gridpull_cuda as kernels

            put, get = kernels.to_device, kernels.to_host
        else:
            from recon.kernels import gridpull_cpu as kernels

            put = get = _same
        return cls(kernels.eval_sites, kernels.query_terms, kernels.point_terms, kernels.second_differences,
                   kernels.update_nodes, kernels.scatter_values, put, get)


def _same(a):
    return a


def _optimise(P: GridPullProblem, config: GridPullConfig, progress, device: str) -> None:
    """Adam on the band nodes; the loop is the same on the CPU and on CUDA, where the
    arrays live on the GPU throughout."""
    K = AdamPasses.on(device)
    put, get = K.put, K.get
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


def _losses(P: GridPullProblem, site_f, query_loss) -> dict:
    """The unweighted terms, in voxels (pull, surface) or as 1 - cos (consistency)."""
    h = P.h
    surf = site_f[P.n_queries:]
    return {
        "pull": float(np.sqrt(query_loss[:, 0].mean()) / h),
        "surface": float(np.sqrt(np.mean(surf.astype(np.float64) ** 2)) / h),
        "consistency": float(query_loss[:, 1].mean()),
    }


def _finish(P: GridPullProblem) -> np.ndarray:
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
