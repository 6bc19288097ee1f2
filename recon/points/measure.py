"""What kind of cloud this is, measured in its own terms: spacing, noise, enclosure, sides.

``measure_cloud(points)`` returns :class:`CloudMeasures`, from which ``recon.choice``
picks a fitter. Every threshold and size is stated relative to the cloud itself (point
spacings, noise over spacing, shares of points or cells), never in input units, so a
cloud scaled by 1000 and moved measures the same; they all live in :class:`MeasureConfig`.

- spacing: the median distance to the nearest neighbour; ``surface_spacing`` is the side
  of the surface area per point, from the distance to the k-th neighbour (a disc holding
  k points on a surface), which noise shortens far less than the nearest distance.
- noise: quadric height fits over k neighbours of a strided subset of the points. A
  quadric absorbs the surface's curvature between samples, so the residual is the
  noise; its sum of squares is sigma^2 times a chi-square with k - 6 degrees of freedom,
  so sigma comes from the median residual over that chi-square's median. Noise as thick
  as the neighbourhood is wide hides the surface, so k grows until the neighbourhood's
  radius is at least four times the noise found. Between the samples of a sparse cloud
  the shape's own bends count as noise: there it is an upper bound.
- enclosure: the points are binned into cells as wide as the largest gap expected
  between that many random samples (3 to 4 surface spacings); the empty cells that a
  flood fill from outside the box cannot reach are inside. A closed, well-sampled
  surface encloses most of its hull; an open sheet, a one-sided scan or a closed object
  scanned with holes encloses nothing (the fill leaks in). Points deeper than two cells
  from the outside lie on surfaces inside the enclosed volume (a car's seats in its body).
- one-sidedness: projected along some direction, a height field or a one-view range scan
  has one layer of points in almost every cell of the projection; a closed surface has two
  or more in most. The directions tried are the cloud's principal axes and 13 fixed ones.
- scene or object: connected pieces of the occupied cells, and how uneven the density is
  (a LiDAR sweep thins out with range; a sampled object's density is even).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from recon.device import query_workers
from recon.errors import InputError
from recon.geometry import check_points


@dataclass(frozen=True)
class MeasureConfig:
    """Neighbourhood sizes, cell sizes and sample sizes of :func:`measure_cloud`, in one place."""

    probe_points: int = 3000
    "Local fits (noise) are made at about this many points taken at a fixed stride: the median settles well before."
    spacing_probe_points: int = 20_000
    "Spacings are medians and percentiles over about this many points taken at a fixed stride."
    noise_neighbors: tuple = (20, 40, 80)
    "Neighbours of the quadric fits, tried in order: the first has enough degrees of freedom (k - 6) for a stable residual and stays local; larger ones serve noise too thick for it."
    noise_radius_ratio: float = 0.25
    "A neighbourhood sees the surface, not the noise, when the noise is at most this share of its radius (median k-th neighbour distance); else the next size is tried."
    area_neighbors: int = 16
    "The k-th neighbour's distance gives the area per point (k points on a disc of that radius)."
    enclosure_gap_factor: float = 1.0
    "Enclosure cells are this many times as wide as the largest gap expected between N samples drawn at random on a surface (the largest empty disc of a Poisson sample has radius sqrt(ln N / pi) surface spacings), so that sampling gaps let no flood fill through, at any N."
    coarse_cell_factor: float = 4.0 / 3.0
    "The enclosure is measured again with cells this many times wider: a sealed surface's enclosed share shrinks (its shell thickens), a surface with holes just wider than the cells gains (they close)."
    enclosure_max_cells: int = 128
    "At most this many cells along the longest side (bounded memory and time; large clouds get coarser cells)."
    layer_cell_spacings: float = 2.0
    "Projection cells (one-sidedness) are this many surface spacings wide: about four points per cell on a single layer."
    layer_depth_cells: float = 2.0
    "Points in one projection cell are one layer while their depth range is at most this many cell widths (slopes up to about 63 degrees) plus six noise deviations."
    inner_depth_cells: int = 2
    "Points farther than this many enclosure cells from the outside lie inside the enclosed volume: a surface's shell, noise and all, is one or two cells deep."
    component_min_share: float = 0.01
    "A connected piece of occupied cells counts when it holds at least this share of the points (stray points are not pieces)."
    max_points: int = 200_000
    "Larger clouds are measured on this many points drawn with a fixed seed (the measures are shares and medians; the spacings are scaled back to the whole cloud)."


CONFIG = MeasureConfig()

# 13 directions, one of each opposite pair of a cube's 26 neighbours: axes, face and body diagonals.
_FIXED_DIRECTIONS = np.array(
    [d for d in np.array(np.meshgrid([-1, 0, 1], [-1, 0, 1], [-1, 0, 1], indexing="ij")).reshape(3, -1).T
     if tuple(d) > (0, 0, 0)], np.float64)


@dataclass(frozen=True)
class CloudMeasures:
    """What :func:`measure_cloud` found. Lengths in input units unless named in spacings."""

    points: int
    "How many points the cloud has (all of them, even when measured on a subset)."
    diagonal: float
    "Length of the bounding box's diagonal, input units."
    spacing: float
    "Median distance to the nearest neighbour, input units."
    surface_spacing: float
    "Side of the surface area per point (from the k-th neighbour's distance), input units."
    spacing_spread: float
    "90th over 10th percentile of the nearest-neighbour distance: 1.5 to 3 for even sampling, more where density varies."
    noise: float
    "Estimated standard deviation of the points about a smooth surface, input units."
    noise_spacings: float
    "noise over surface_spacing."
    noise_fraction: float
    "noise over the diagonal."
    samples_across: float
    "diagonal over surface_spacing: how many samples span the cloud (sparse clouds have few)."
    enclosed_share: float
    "Share of the occupied and enclosed cells that are enclosed empty cells (0: the points enclose no volume)."
    enclosed_share_coarse: float
    "The same with cells coarse_cell_factor times wider."
    enclosure_cell_spacings: float
    "Width of the (finer) enclosure cells, in surface spacings of the measured points (a subset of a large cloud is sparser)."
    single_layer_share: float
    "Share of projection cells holding one layer of points, along the best direction (1: a height field)."
    layer_direction: tuple
    "The best direction of projection (unit vector)."
    flatness: float
    "Smallest over largest principal standard deviation of the points (0: a plane)."
    components: int
    "Connected pieces of occupied enclosure cells holding at least component_min_share of the points."
    largest_component_share: float
    "Share of the points in the largest piece."
    inner_share: float
    "Share of the points lying deeper than inner_depth_cells enclosure cells from the outside: surfaces inside an enclosed volume (0 for a plain closed surface, noise included)."
    measured_points: int
    "How many points the measures were taken on."
    seconds: float
    "Time taken."

    def as_dict(self) -> dict:
        """JSON-serialisable, floats rounded to 4 significant digits."""
        out = {}
        for k, v in asdict(self).items():
            if isinstance(v, float):
                v = float(f"{v:.4g}")
            elif isinstance(v, tuple):
                v = [float(f"{x:.4g}") for x in v]
            out[k] = v
        return out


def measure_cloud(points, *, config: MeasureConfig = CONFIG, seed: int = 0) -> CloudMeasures:
    """Measure (N, 3) finite points (any float dtype, any units; N >= 10).

    ``seed`` draws the subset of clouds larger than ``config.max_points``.
    Raises InputError on a bad shape, too few points or non-finite values; TypeError on a
    non-numeric dtype."""
    import time

    t0 = time.perf_counter()
    pts = check_points(points, name="points")
    if len(pts) < 10:
        raise InputError(f"measuring a cloud needs at least 10 points, got {len(pts)}")
    if not np.isfinite(pts).all():
        raise InputError("points must be finite (found NaN or infinity)")
    return _measure(pts, config, seed, t0)


def _measure(p: np.ndarray, cfg: MeasureConfig, seed: int, t0: float) -> CloudMeasures:
    import time

    from scipy.spatial import cKDTree

    n_all = len(p)
    lo, hi = p.min(axis=0), p.max(axis=0)
    diagonal = float(np.linalg.norm(hi - lo))
    if n_all > cfg.max_points:
        from recon.seeding import rng

        p = p[np.sort(rng(seed).choice(n_all, cfg.max_points, replace=False))]
    # translated to the box's centre so that far-off coordinates keep their precision
    p = p - 0.5 * (lo + hi)
    tree = cKDTree(p)
    n = len(p)

    nearest, spacing, surface_spacing = sample_spacings(p, tree, probes=cfg.spacing_probe_points,
                                                        k=cfg.area_neighbors)
    positive = nearest[nearest > 0]
    p10, p90 = np.percentile(positive, [10, 90]) if len(positive) else (1.0, 1.0)
    surface_spacing = max(surface_spacing, spacing, 1e-12 * max(diagonal, 1e-300))

    noise = _noise(p, tree, cfg)
    cell = cfg.enclosure_gap_factor * 2.0 * np.sqrt(np.log(max(n, 2)) / np.pi) * surface_spacing
    enclosed, cells_spacings, components, largest, inner = _enclosure(p, cell, cfg)
    coarse = _enclosure(p, cell * cfg.coarse_cell_factor, cfg, pieces=False)[0]
    layer_share, direction, flatness = _layers(p, surface_spacing, noise, cfg)
    # a random subset of samples on a surface: the area per point grows as n_all / n
    thin = np.sqrt(n / n_all)
    full_spacing = surface_spacing * thin
    return CloudMeasures(
        points=int(n_all), diagonal=diagonal, spacing=spacing * thin, surface_spacing=full_spacing,
        spacing_spread=float(p90 / max(p10, 1e-300)),
        noise=noise, noise_spacings=noise / full_spacing, noise_fraction=noise / max(diagonal, 1e-300),
        samples_across=diagonal / full_spacing,
        enclosed_share=enclosed, enclosed_share_coarse=coarse, enclosure_cell_spacings=cells_spacings / surface_spacing,
        single_layer_share=layer_share, layer_direction=tuple(float(x) for x in direction), flatness=flatness,
        components=components, largest_component_share=largest, inner_share=inner,
        measured_points=int(n), seconds=time.perf_counter() - t0,
    )


def sample_spacings(p: np.ndarray, tree, *, probes: int = CONFIG.spacing_probe_points,
                    k: int = CONFIG.area_neighbors) -> tuple[np.ndarray, float, float]:
    """Spacings of (N, 3) points (N >= 2) with their cKDTree, measured at about ``probes``
    points taken at a fixed stride: (their nearest-neighbour distances (M,), the median of
    those, the surface spacing: the side of the area per point, from the k-th neighbour's
    distance), input units."""
    k = min(k, len(p) - 1)
    dist, _ = tree.query(p[:: max(1, len(p) // probes)], k=k + 1, workers=query_workers())
    # k points on a disc of radius r_k: area per point = pi r_k^2 / k (the point itself excluded)
    return dist[:, 1], float(np.median(dist[:, 1])), float(np.median(dist[:, k]) * np.sqrt(np.pi / k))


def _noise(p: np.ndarray, tree, cfg: MeasureConfig) -> float:
    """Standard deviation of the points about local quadric surfaces (input units): from
    the smallest neighbourhood whose radius is wide enough for the noise it finds."""
    probe = p[:: max(1, len(p) // cfg.probe_points)]
    noise = 0.0
    for k in cfg.noise_neighbors:
        k = min(k, len(p))
        if k - 6 < 2:
            break
        dist, nb = tree.query(probe, k=k, workers=query_workers())
        noise = _quadric_noise(p, probe, nb)
        if noise <= cfg.noise_radius_ratio * float(np.median(dist[:, -1])) or k == len(p):
            break
    return noise


def _quadric_noise(p: np.ndarray, probe: np.ndarray, nb: np.ndarray) -> float:
    """Noise deviation from quadric height fits of each probe's (n, k) neighbours ``nb``."""
    k = nb.shape[1]
    dof = k - 6
    rel = p[nb] - probe[:, None, :]
    cen = rel - rel.mean(axis=1, keepdims=True)
    _, axes = np.linalg.eigh(np.einsum("nki,nkj->nij", cen, cen))
    u, v, w = (np.einsum("nki,ni->nk", rel, axes[:, :, a]) for a in (2, 1, 0))
    scale = np.sqrt(np.mean(u * u + v * v, axis=1, keepdims=True)) + 1e-300  # conditioning
    u, v = u / scale, v / scale
    design = np.stack([u * u, u * v, v * v, u, v, np.ones_like(u)], axis=-1)  # (n, k, 6)
    coef = np.einsum("nij,nj->ni", np.linalg.pinv(design), w)
    rss = np.sum((np.einsum("nkj,nj->nk", design, coef) - w) ** 2, axis=1)
    # rss / sigma^2 ~ chi-square(dof); its median is about dof (1 - 2 / (9 dof))^3
    chi_median = dof * (1.0 - 2.0 / (9.0 * dof)) ** 3
    return float(np.sqrt(np.median(rss) / chi_median))


def _enclosure(p: np.ndarray, cell: float, cfg: MeasureConfig, *, pieces: bool = True):
    """(enclosed share, cell width used (input units), pieces, largest piece's share of the
    points, inner share) for cells at least ``cell`` wide (input units); with ``pieces``
    False only the first two are measured."""
    from scipy import ndimage

    lo, hi = p.min(axis=0), p.max(axis=0)
    h = max(cell, float((hi - lo).max()) / cfg.enclosure_max_cells)
    ijk = np.floor((p - lo) / h).astype(np.int64) + 1  # one empty layer all round
    shape = tuple(ijk.max(axis=0) + 2)
    occ = np.zeros(shape, bool)
    occ[ijk[:, 0], ijk[:, 1], ijk[:, 2]] = True
    # the outside: empty cells 6-connected to the box's border (a diagonal slit between
    # two occupied cells does not let it through)
    empty_labels, _ = ndimage.label(~occ, structure=ndimage.generate_binary_structure(3, 1))
    outside = np.unique(np.concatenate([
        empty_labels[0].ravel(), empty_labels[-1].ravel(), empty_labels[:, 0].ravel(),
        empty_labels[:, -1].ravel(), empty_labels[:, :, 0].ravel(), empty_labels[:, :, -1].ravel()]))
    free = ~occ & np.isin(empty_labels, outside)
    inside = ~occ & ~free
    n_inside, n_occ = int(inside.sum()), int(occ.sum())
    enclosed = n_inside / max(n_inside + n_occ, 1)
    if not pieces:
        return float(enclosed), float(h), 1, 1.0, 0.0
    near = ndimage.binary_dilation(free, structure=np.ones((3, 3, 3), bool), iterations=cfg.inner_depth_cells)
    inner = float(np.mean(~near[ijk[:, 0], ijk[:, 1], ijk[:, 2]]))

    piece_labels, count = ndimage.label(occ, structure=np.ones((3, 3, 3), bool))
    per_point = piece_labels[ijk[:, 0], ijk[:, 1], ijk[:, 2]]
    sizes = np.bincount(per_point, minlength=count + 1)[1:] / len(p)
    count_big = int(np.sum(sizes >= cfg.component_min_share))
    return float(enclosed), float(h), max(count_big, 1), float(sizes.max() if len(sizes) else 1.0), inner


def _layers(p: np.ndarray, surface_spacing: float, noise: float, cfg: MeasureConfig):
    """(best single-layer share, its direction, flatness) over the principal and fixed directions."""
    centred = p - p.mean(axis=0)
    vals, axes = np.linalg.eigh(centred.T @ centred / len(p))
    flatness = float(np.sqrt(max(vals[0], 0.0) / max(vals[2], 1e-300)))
    directions = np.concatenate([axes.T, _FIXED_DIRECTIONS / np.linalg.norm(_FIXED_DIRECTIONS, axis=1)[:, None]])
    cell = cfg.layer_cell_spacings * surface_spacing
    allowed = cfg.layer_depth_cells * cell + 6.0 * noise
    best, best_dir = -1.0, directions[0]
    for d in directions:
        # two axes across the direction
        a = np.cross(d, [1.0, 0.0, 0.0] if abs(d[0]) < 0.9 else [0.0, 1.0, 0.0])
        a /= np.linalg.norm(a)
        b = np.cross(d, a)
        ij = np.floor(np.stack([centred @ a, centred @ b], axis=1) / cell).astype(np.int64)
        ij -= ij.min(axis=0)
        key = ij[:, 0] * (ij[:, 1].max() + 1) + ij[:, 1]
        depth = centred @ d
        order = np.argsort(key)
        key_sorted = key[order]
        starts = np.flatnonzero(np.r_[True, key_sorted[1:] != key_sorted[:-1]])
        d_sorted = depth[order]
        span = np.maximum.reduceat(d_sorted, starts) - np.minimum.reduceat(d_sorted, starts)
        share = float(np.mean(span <= allowed))
        if share > best:
            best, best_dir = share, d
    return best, best_dir, flatness
