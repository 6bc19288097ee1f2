"""CSP: a network that maps any point to its closest point on the surface.

After Venkatesh et al., "Deep Implicit Surface Point Prediction Networks", ICCV 2021: the
field is C(x) = x + v(x). Unsigned distance |x - C(x)|, the direction (x - C(x)) / |x - C(x)|
and the tangent plane (from the Jacobian of C) stay defined on open surfaces (a single
sheet, a car body with no inside, one side of a range scan), where a signed field has no
inside to work with.

What is kept from the paper: the closest-point parameterisation C(x) = x + v(x), queries
supervised with their closest surface point, surface points mapping onto themselves, and
the consistency term C(C(x)) = C(x) (a closest point is its own closest point).

What is changed, and why:
- The network. The paper's plain MLP (about 9.7M weights) takes hours on a GPU. Here a
  multi-resolution grid encoding (learnable feature tables, dense at coarse levels, hashed
  at fine ones, trilinearly interpolated) feeds a 2 x 32 ReLU MLP: most of the capacity
  lives in the tables, each step touches few of their rows, and a fit takes seconds to a
  minute on a laptop CPU. On the CPU the encoding, its backward pass and the tables' Adam
  step are numba kernels (``recon.kernels.hashgrid_cpu``; torch runs only the small MLP,
  on one thread), and 300 steps of 8192 queries suffice (more steps, or 64 hidden units
  instead of 32, fit the scanner noise of noisy clouds).
- The supervision. The paper trains on meshes (exact closest points). From a point cloud
  alone, the input is first denoised (each point projected onto a robust, distance-weighted
  local plane of its neighbours); a query's target is the foot of the perpendicular on the
  local plane around its nearest denoised point, clamped to that point's neighbourhood, so
  the surface ends near the last samples (open boundaries stay open).
- The loss. Errors are divided by the query's distance to its target (plus a floor of a
  few point spacings): near-surface precision matters most, and far queries otherwise
  dominate a plain squared error. The surface term (weight 0.1) and the consistency term
  (0.01) are light: at full weight both pin C to the identity in a thin shell around the
  points, so points a fraction of a spacing off the surface became fixed points and the
  meshed surface sat that far off it.
- The targets are smooth: the local mean plane of a few nearby denoised points, not one
  point's plane, so the field is not faceted between samples; clean inputs are not moved
  at all. Coarse clouds get a coarser finest feature grid (at most CELLS_PER_SPACING
  cells per spacing, SPARSE_CELLS_PER_SPACING on sparse ones): finer cells between the
  samples would hold untrained features.
- Noise thicker than the surface is flat (a thin plate in range-scanner noise) first loses
  its outer points (``recon.points.preprocess.thick_noise_keep``, as for GridPull): targets on
  local planes cannot average it out.
- Open or closed is decided from the fitted field (does a region exist that the free space
  around the surface cannot reach from the box boundary?), or forced with ``surface``.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, replace
from typing import Literal

import numpy as np

from recon.cloud import Cloud, Normalization
from recon.errors import InputError
from recon.fitters import FitterSpec, register
from recon.points.plane_targets import TARGET_RADIUS_SPACINGS, make_targets

SURFACES = ("auto", "open", "closed")
ENCODING_PAD = 0.1
"Margin of the encoding box around the unit cube, in cube units (queries and the field's bounds live inside it)."


@dataclass
class CSPConfig:
    iterations: int = 300
    "Adam steps."
    batch_size: int = 8192
    "Query points per step (plus a quarter as many surface points)."
    net_learning_rate: float = 0.01
    "Adam step size of the network and its feature tables (cosine decay to lr_floor of it)."
    lr_floor: float = 0.1
    "Share of net_learning_rate reached at the end of the cosine decay."
    levels: int = 8
    "Levels of the multi-resolution feature grid."
    features: int = 2
    "Features per level."
    resolution: int = 256
    "Finest feature-grid resolution (cells across the fitting cube); sparse clouds get fewer (resolution_used)."
    merge_cells: float = 0.75
    "Clouds far denser than the grid (on average at least three points per occupied voxel of this many cells) are fitted to each voxel's mean point; 0 fits every point."
    base_resolution: int = 16
    "Coarsest feature-grid resolution."
    table_log2: int = 17
    "Rows of each level's feature table, as a power of two (finer levels are hashed into it)."
    hidden: int = 32
    "Width of the MLP's hidden layers."
    layers: int = 2
    "Hidden layers of the MLP."
    lazy_adam: bool = False
    "Feature-table rows that no point of a step touched keep their Adam state (faster; CPU only)."
    neighbors: int = 24
    "Neighbours in the robust local-plane denoising of noisy input points."
    clean_neighbors: int = 8
    "Neighbours of the first, light denoising (kept when the input turns out clean)."
    clean_threshold: float = 0.02
    "The input counts as clean when the light denoising moves points by less than this share of their spacing (median)."
    queries_per_point: int = 8
    "Query points sampled around each input point."
    uniform_fraction: float = 0.1
    "Share of extra query points drawn uniformly in the field's box."
    surface_weight: float = 0.1
    "Weight of the term C(p) = p at the (denoised) input points."
    consistency_weight: float = 0.01
    "Weight of the consistency term C(C(x)) = C(x)."
    surface: Literal["auto", "open", "closed"] = "auto"
    "Open or closed surface: auto decides from the fitted field."
    support_resolution: int = 128
    "Cells across the box of the grid that marks where the data is (meshing ignores the rest)."
    support_voxels: float = 3.0
    "Reach of the data support, in point spacings (95th percentile), at least 1.5 support cells."
    mesh_resolution: int = 256
    "Nodes along the longest side when the field is meshed (recon fit / mesh)."
    seed: int = 0
    "Random seed (query sampling, initial weights, batches)."
    device: str = "auto"
    "Where the network trains: auto, cpu or cuda."


def _validate(config: CSPConfig) -> None:
    ints = {"iterations": 0, "batch_size": 16, "levels": 1, "features": 1, "resolution": 4,
            "base_resolution": 2, "table_log2": 8, "hidden": 4, "layers": 1, "neighbors": 4,
            "queries_per_point": 1, "mesh_resolution": 8, "support_resolution": 8, "clean_neighbors": 4}
    for name, lo in ints.items():
        v = getattr(config, name)
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise InputError(f"{name} must be an integer >= {lo}, got {v!r}")
    if config.table_log2 > 24:
        raise InputError(f"table_log2 must be at most 24 (16M rows per level), got {config.table_log2}")
    if config.base_resolution > config.resolution:
        raise InputError(f"base_resolution ({config.base_resolution}) must not exceed resolution ({config.resolution})")
    if not (isinstance(config.support_voxels, (int, float)) and config.support_voxels > 0):
        raise InputError(f"support_voxels must be a number > 0, got {config.support_voxels!r}")
    for name in ("net_learning_rate", "lr_floor", "surface_weight", "consistency_weight", "clean_threshold"):
        v = getattr(config, name)
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
            raise InputError(f"{name} must be a finite number >= 0, got {v!r}")
    from recon.points.preprocess import check_merge_cells

    check_merge_cells(config.merge_cells)
    if not (0.0 <= config.uniform_fraction <= 1.0):
        raise InputError(f"uniform_fraction must be in [0, 1], got {config.uniform_fraction}")
    if config.surface not in SURFACES:
        raise InputError(f"surface must be one of {', '.join(SURFACES)}, got {config.surface!r}")
    if config.device not in ("auto", "cpu", "cuda"):
        raise InputError(f"device must be auto, cpu or cuda, got {config.device!r}")


def _import_torch():
    try:
        import torch
    except ImportError:
        raise InputError(
            "--method csp needs PyTorch, which is not installed: pip install 'recon[csp]' "
            "(or pip install torch; a CPU build is enough)"
        ) from None
    return torch


def _torch_device(torch, device: str) -> str:
    if device == "cpu":
        return "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise InputError("--device cuda: torch sees no CUDA GPU (use --device cpu or auto)")
        return "cuda"
    return "cuda" if torch.cuda.is_available() else "cpu"


# --------------------------------------------------------------------------- training data


def denoise(points: np.ndarray, neighbors: int, *, tree=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Robust local-plane projection of (N, 3) cube-unit points.

    Each point's plane is the weighted least-squares plane of its ``neighbors`` nearest
    points (Gaussian weights of distance, then down-weighted by their residual from a
    first fit, so outliers and the far side of thin parts pull less). Returns the projected
    points (N, 3) float64, unit normals (N, 3) float64 (unoriented) and each point's
    spacing (N,) float64 (mean distance to its 8 nearest neighbours).
    """
    from scipy.spatial import cKDTree

    from recon.kernels.denoise_cpu import project_on_local_planes

    n = len(points)
    k = min(neighbors, n)
    tree = tree or cKDTree(points)
    dist, nbr = tree.query(points, k=k, workers=-1)
    spacing = dist[:, 1: min(9, k)].mean(axis=1) if k > 1 else np.full(n, 1e-3)
    out = np.empty((n, 3), np.float64)
    normals = np.empty((n, 3), np.float64)
    project_on_local_planes(np.ascontiguousarray(points, np.float64), np.asarray(dist, np.float64).reshape(n, k),
                            np.asarray(nbr, np.int64).reshape(n, k), out, normals)
    return out, normals, spacing


CELLS_PER_SPACING = 2.0
"Finest feature-grid cells per point spacing (median), at most: coarse clouds get a coarser grid."
SPARSE_CELLS_PER_SPACING = 1.5
"The same for sparse clouds (SPARSE_SPACING), whose features between samples would go untrained at 2."
SPARSE_SPACING = 0.02
"A cloud whose median point spacing exceeds this share of its diagonal is sparse (dense scans: about 0.003)."
QUERY_SCALES = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)
"Spreads of the query points around an input point, in its spacings (cycled)."
SPARSE_ROUGHNESS = 0.15
"A sparse cloud is clean when its quadric residual (recon.points.preprocess.roughness) is at most this many spacings."


def _is_sparse(spacing, pts) -> bool:
    return float(np.median(spacing)) > SPARSE_SPACING * float(np.linalg.norm(np.ptp(pts, axis=0)))


def _target_neighbors(clean: bool, sparse: bool) -> int:
    """Denoised points a target's mean plane blends: few on clean clouds (the plane of a
    curved surface cuts its chord), more on noisy ones (what the denoising left of the noise
    averages out), but not on sparse noisy ones, where 16 points span much of the shape."""
    if clean:
        return 4
    return 8 if sparse else 16


def _sample_queries(pts, spacing, config: CSPConfig, gen, box) -> np.ndarray:
    n = len(pts)
    m = config.queries_per_point
    owner = np.repeat(np.arange(n), m)
    # scales from half a spacing (precision at the surface) to several (the field's reach)
    mult = np.asarray(QUERY_SCALES)[np.arange(len(owner)) % len(QUERY_SCALES)]
    sigma = spacing[owner] * mult
    q = pts[owner] + gen.standard_normal((len(owner), 3)) * sigma[:, None]
    n_uni = int(round(config.uniform_fraction * len(q)))
    uni = box[0] + gen.random((n_uni, 3)) * (box[1] - box[0])
    q = np.concatenate([pts, q, uni])  # the input points themselves are queries too
    return np.clip(q, box[0], box[1])


def support_grid(points, spacing, box, config: CSPConfig) -> dict:
    """Where the data is: a (X, Y, Z) uint8 grid over ``box`` (input units) marking cells
    within reach of an input point. Returns the arrays the field stores."""
    from scipy import ndimage

    h = float((box[1] - box[0]).max()) / config.support_resolution
    shape = np.maximum(np.ceil((box[1] - box[0]) / h).astype(np.int64), 1)
    grid = np.zeros(tuple(shape), bool)
    ijk = np.clip(np.floor((points - box[0]) / h).astype(np.int64), 0, shape - 1)
    grid[ijk[:, 0], ijk[:, 1], ijk[:, 2]] = True
    reach = max(config.support_voxels * float(np.percentile(spacing, 95)), 1.5 * h)
    grid = ndimage.distance_transform_edt(~grid) <= reach / h + 0.5
    return {"support": grid.astype(np.uint8), "support_origin": box[0].astype(np.float64), "support_h": np.float64(h)}


# --------------------------------------------------------------------------- the fit


def initial_arrays(config: CSPConfig, gen) -> dict:
    """The network's layout and its initial weights (plain arrays)."""
    L, F = config.levels, config.features
    T = 1 << config.table_log2
    growth = (config.resolution / config.base_resolution) ** (1.0 / max(L - 1, 1))
    res = np.array([int(math.floor(config.base_resolution * growth**i + 1e-9)) for i in range(L)], np.int64)
    # the encoding box is wider than the cube by the pad: scale the resolutions so that
    # `resolution` counts cells across the cube itself
    res = np.maximum((res * (1.0 + 2 * ENCODING_PAD)).astype(np.int64), 2)
    dense = (res + 1) ** 3 <= T
    arrays = {
        "tables": gen.uniform(-1e-4, 1e-4, (L, T, F)).astype(np.float32),
        "resolutions": res,
        "dense": dense,
        "enc_box": np.array([[-0.5 - ENCODING_PAD] * 3, [0.5 + ENCODING_PAD] * 3], np.float64),
        "n_layers": np.int64(config.layers + 1),
        "out_scale": np.float64(0.1),
    }
    widths = [L * F + 3] + [config.hidden] * config.layers + [3]
    for i in range(len(widths) - 1):
        fan_in = widths[i]
        bound = math.sqrt(6.0 / fan_in) if i < len(widths) - 2 else 1e-2 / math.sqrt(fan_in)
        arrays[f"w{i}"] = gen.uniform(-bound, bound, (widths[i + 1], fan_in)).astype(np.float32)
        arrays[f"b{i}"] = np.zeros(widths[i + 1], np.float32)
    return arrays


def fit_csp(cloud: Cloud, config: CSPConfig | None = None, *, progress=None, timings: dict | None = None):
    """Fit a closest-surface-point network to ``cloud`` (normals, if any, are not used).

    Returns a :class:`~recon.fields.closest_point_network.ClosestPointField` in the cloud's own units.
    ``progress(step, total, losses)`` is called every hundredth of the run (losses in point
    spacings; ``recon.fitters._progress.progress_due``); ``timings``, when given, gets the
    seconds of each phase (never stored in the field).
    """
    timings = {} if timings is None else timings
    from recon.fields.hashgrid_network import torch_threads

    config = config or CSPConfig()
    _validate(config)
    torch = _import_torch()
    device = _torch_device(torch, config.device)
    with torch_threads(torch_only_one=device == "cpu") as threads, _deterministic(torch, device):
        field = _fit(cloud, config, progress, torch, device, timings)
    field.params["torch_threads"] = threads
    t2 = time.perf_counter()
    if config.surface == "auto":
        from recon.fields.closest_point_geometry import decide_surface

        decided = decide_surface(field)
    else:
        decided = config.surface
    field.params["surface_decided"] = decided
    timings["decide_s"] = time.perf_counter() - t2
    return field


class _deterministic:
    """Context manager: on CUDA, torch's deterministic algorithms for the fit, so that one
    ``--seed`` gives one field. The tables' gradient is a scatter-add (``index_add_``),
    whose default CUDA form adds in whatever order the atomics land, so two same-seed fits
    would differ. The previous setting is restored afterwards."""

    def __init__(self, torch, device: str):
        self.torch, self.on = torch, device == "cuda"

    def __enter__(self):
        if self.on:
            # cuBLAS picks reproducible kernels only with a fixed workspace; it reads this
            # when its first handle is made (a no-op if the process already used cuBLAS)
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            self.before = (self.torch.are_deterministic_algorithms_enabled(),
                           self.torch.is_deterministic_algorithms_warn_only_enabled())
            self.torch.use_deterministic_algorithms(True, warn_only=True)
        return self

    def __exit__(self, *exc):
        if self.on:
            self.torch.use_deterministic_algorithms(self.before[0], warn_only=self.before[1])


def _fit(cloud, config: CSPConfig, progress, torch, device: str, timings: dict):
    from scipy.spatial import cKDTree

    from recon.fields.closest_point_network import ClosestPointField
    from recon.fields.hashgrid_network import from_torch, to_torch, torch_forward
    from recon.seeding import rng, seed_torch

    from recon.points.preprocess import dense_voxel_means, roughness, thick_noise_keep
    from recon.fitters._progress import progress_due
    from recon.fitters._torch_adam import TorchAdam

    t0 = time.perf_counter()
    points = cloud.points
    norm = Normalization.fit_unit_cube(points)
    pts = norm.to_unit(points).astype(np.float64)
    merged = dense_voxel_means(pts, config.merge_cells / config.resolution)
    if merged is not None:
        pts, points = merged, norm.to_world(merged)
    tree = cKDTree(pts)
    # noise thicker than the surface is flat: the targets would follow its outer points
    keep = thick_noise_keep(pts, tree=tree)
    if keep is not None:
        points = points[keep]
        norm = Normalization.fit_unit_cube(points)
        pts = norm.to_unit(points).astype(np.float64)
        tree = cKDTree(pts)
    if len(pts) < 10:
        raise InputError(f"{cloud.source}: {len(pts)} points; method 'csp' needs at least 10")
    gen = rng(config.seed)
    # Denoising smooths sharp features away, so clean inputs get a light one: a plane
    # through few neighbours moves clean points by a tiny share of their spacing, noisy
    # ones by much more.
    surf, surf_n, spacing = denoise(pts, min(config.clean_neighbors, config.neighbors), tree=tree)
    noise_ratio = float(np.median(np.linalg.norm(surf - pts, axis=1)) / np.median(spacing))
    sparse = _is_sparse(spacing, pts)
    clean = noise_ratio <= config.clean_threshold
    if sparse and not clean:
        # between sparse samples the light plane cuts curvature's chord, and clean points
        # look noisy: a quadric tells the two apart (denoising a clean sparse cloud over many
        # neighbours shrinks it)
        clean = roughness(pts, float(np.median(spacing)), tree=tree) <= SPARSE_ROUGHNESS
    if clean:
        # clean points stay where they are (a plane through them cuts curvature's chord);
        # only their normals are taken from the light fit
        surf, s_tree = pts, tree
    else:
        if config.neighbors > config.clean_neighbors:
            surf, surf_n, spacing = denoise(pts, config.neighbors, tree=tree)
        s_tree = cKDTree(surf)
    radius = spacing * TARGET_RADIUS_SPACINGS
    neighbors = _target_neighbors(clean, sparse)
    ext = pts.max(0) - pts.min(0)
    box = np.stack([pts.min(0) - 0.05 - 0.05 * ext.max(), pts.max(0) + 0.05 + 0.05 * ext.max()])
    box = np.clip(box, -0.5 - ENCODING_PAD, 0.5 + ENCODING_PAD)
    queries = _sample_queries(pts, spacing, config, gen, box)
    targets = make_targets(queries, surf, surf_n, radius, spacing, s_tree, neighbors=neighbors)
    eps = 2.0 * float(np.median(spacing))
    timings["setup_s"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    # no feature cells much finer than the points: on sparse clouds they would hold
    # untrained features between the samples (and spurious surfaces there)
    cells = SPARSE_CELLS_PER_SPACING if sparse else CELLS_PER_SPACING
    finest = int(min(config.resolution, max(config.base_resolution, round(cells / np.median(spacing)))))
    arrays = initial_arrays(replace(config, resolution=finest), gen)
    tgen = seed_torch(config.seed)
    params = to_torch(arrays, device, requires_grad=True)
    dev_q = torch.as_tensor(queries, dtype=torch.float32, device=device)
    dev_t = torch.as_tensor(targets, dtype=torch.float32, device=device)
    dev_w = 1.0 / (torch.linalg.norm(dev_t - dev_q, dim=1) + eps)
    dev_s = torch.as_tensor(surf, dtype=torch.float32, device=device)
    betas = (0.9, 0.99)
    trained_by_torch = params["w"] + params["b"]
    if device == "cpu":
        # the tables' gradient and Adam step are fused numba kernels (recon.kernels.hashgrid_cpu)
        from recon.kernels.hashgrid_cpu import adam_step

        tab_np = params["tables"].detach().numpy()  # shares the tensor's memory
        params["table_grad"] = np.zeros_like(tab_np)
        tab_m, tab_v = np.zeros_like(tab_np), np.zeros_like(tab_np)
        T = tab_np.shape[1]
        used = np.where(arrays["dense"], (arrays["resolutions"] + 1) ** 3, T).astype(np.int64)
    else:
        trained_by_torch.insert(0, params["tables"])
    opt = TorchAdam(trained_by_torch, betas, eps=1e-15)
    n_q, n_s = len(queries), len(surf)
    bs = min(config.batch_size, n_q)
    bs_s = min(max(bs // 4, 1), n_s)
    bs_c = max(bs // 4, 1)
    losses = {}
    for step in range(1, config.iterations + 1):
        frac = (step - 1) / max(config.iterations, 1)
        lr = config.net_learning_rate * (config.lr_floor + (1.0 - config.lr_floor) * 0.5 * (1.0 + math.cos(math.pi * frac)))
        iq = torch.randint(0, n_q, (bs,), generator=tgen).to(device)
        isf = torch.randint(0, n_s, (bs_s,), generator=tgen).to(device)
        q = dev_q[iq]
        x = torch.cat([q, dev_s[isf]])
        c = x + torch_forward(params, x)
        cq = c[:bs]
        err_q = torch.linalg.norm(cq - dev_t[iq], dim=1) * dev_w[iq]
        pull = (err_q ** 2).mean()
        err_s = torch.linalg.norm(c[bs:] - dev_s[isf], dim=1) / eps
        surface = (err_s ** 2).mean()
        loss = pull + config.surface_weight * surface
        if config.consistency_weight > 0:
            anchor = cq[:bs_c].detach()
            cc = anchor + torch_forward(params, anchor)
            consist = ((torch.linalg.norm(cc - anchor, dim=1) / eps) ** 2).mean()
            loss = loss + config.consistency_weight * consist
        opt.zero_grad()
        loss.backward()
        opt.step(lr)
        if device == "cpu":
            adam_step(tab_np, params["table_grad"], tab_m, tab_v, used, lr, betas[0], betas[1], 1e-15, step,
                      config.lazy_adam)
        report = progress is not None and progress_due(step, config.iterations)
        if report or step == config.iterations:
            losses = {"pull": float(err_q.detach().mean() * eps / np.median(spacing)),
                      "surface": float(err_s.detach().mean() * eps / np.median(spacing))}
            if report:
                progress(step, config.iterations, losses)
    timings["optimise_s"] = time.perf_counter() - t1
    trained = from_torch(params, arrays)
    trained.update(support_grid(points, spacing / norm.scale, norm.to_world(box), config))
    if not sparse:
        # the data the targets were made of: meshes end on its local planes (see
        # ClosestPointField.onto_data); between sparse samples those planes dent the surface
        trained.update(data_points=surf.astype(np.float32), data_normals=surf_n.astype(np.float32),
                       data_spacing=spacing.astype(np.float32))
    world_box = norm.to_world(box)
    out_params = asdict(config)
    out_params.update(method="csp", device_used=device, resolution_used=finest, n_points=len(cloud), sparse=sparse, clean=clean,
                      target_neighbors=neighbors, merged_points=0 if merged is None else len(merged),
                      trimmed=0 if keep is None else int(len(keep) - np.count_nonzero(keep)), noise_ratio=noise_ratio,
                      spacing_median=float(np.median(spacing)) / norm.scale, final_losses=losses)
    return ClosestPointField(trained, normalization=norm, box=world_box, params=out_params, device=device)


register(FitterSpec(
    name="csp",
    config_cls=CSPConfig,
    fit=fit_csp,
    field_kind="unsigned",
    description="CSP: closest-surface-point network (open or closed surfaces, no normals needed; needs torch)",
    min_points=10,
))
