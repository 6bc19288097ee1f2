"""Normals of noisy points: plane fits over an adaptive neighbourhood, oriented by visibility.

Why not the field's own normal: a fitted closest-point field is only as smooth as its data,
and on noisy scans it follows the noise (its Jacobian's null direction is rough at the scale
of a point spacing). A normal is a statement about a neighbourhood, not a point, so:

- Direction: plane fits (PCA) over nested k-nearest neighbourhoods (``scales``). Noise
  tilts a small plane; curvature, edges and nearby sheets spoil a large one. A plane's
  residual (its smallest covariance eigenvalue) is the noise variance where the plane
  model holds and grows where it does not, so each point takes the largest scale whose
  residual stays within ``residual_ratio`` times the noise variance (the median residual
  at ``noise_scale``, over all points): flat CAD faces get hundreds of neighbours, bends,
  edges and thin features keep few.
- Orientation (closed shapes): range scans of closed parts have holes (unseen faces), so
  a flood fill of the free space leaks into the inside and cannot tell in from out (on
  scans of CAD parts the enclosed free space is nearly nil at 48 to 128 cells, dilated or
  not). What survives holes is visibility: from a point, rays into the outside half-space
  mostly escape the shape, rays into the inside mostly meet its far side. Rays are cast on
  a coarse occupancy grid of the points, a fan on each side of the plane, and each point
  pools the difference of the two sides' escaping shares with its neighbours' (a single
  ray slipping through a hole or a stray point is outvoted); the normal turns towards the
  side that the pooled vote favours. Where the vote is too weak to tell and the rays
  straight ahead and behind both escape (a part thinner than the noise: from inside its
  noisy slab both sides are open), the point lies on the side of the part that its offset
  from the wide neighbourhood's centre (the part's mid-surface) points to, and the normal
  turns that way. Where the walls are thicker than the noise but their two faces merge
  into one occupied band (a thin bracket), rays pass through the wall and visibility is
  often undecided on its concave side; there the band runs deeper on the material side
  than on the open side, so a point whose (pooled) band depth differs by at least
  ``depth_margin`` cells turns away from the deeper side. That cue is trusted only on
  shapes where it agrees with visibility on at least ``depth_trust`` of the points
  visibility decides: on a thick solid the band is shallow on both sides and on a sheet it
  is symmetric, and there it would decide by noise (on thick solids the two cues agree on
  little more than half the points, on a thin bracket on nine in ten). The rest (concave
  pockets where every ray is blocked) take the orientation of their decided neighbours.
- Open surfaces have no inside, but where one side is walled in by the rest of the shape
  (a car body's panels, a box without a lid, a closed part scanned with holes that the
  field took for open) the same pooled visibility vote says which side is open, and the
  normal turns there. Where both sides are open (a sheet in the open) nothing is decided
  (the thin-part rule would follow the noise there) and orientation spreads over the
  neighbour graph from the decided points, or from one seed (a seed alone orients a
  walled-in open surface little better than chance).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recon.errors import InputError
from recon.geometry import check_points


@dataclass(frozen=True)
class NormalTunables:
    """Neighbourhood sizes, thresholds and grid sizes of point normals, in one place."""

    scales: tuple = (20, 40, 80, 160, 320)
    "Nested neighbourhood sizes (points) of the plane fits, smallest first."
    noise_scale: int = 40
    "Neighbourhood size whose median plane residual is the noise variance."
    residual_ratio: float = 6.0
    "A scale is kept while its plane residual is at most this many times the noise variance."
    chunk: int = 4096
    "Points per batch of plane fits (memory: chunk x largest scale x 3 floats)."
    grid_cells: int = 128
    "Occupancy-grid cells along the longest side of the points' box (visibility rays)."
    cell_spacings: float = 2.0
    "Occupancy cells are at least this many point spacings (median nearest-neighbour distance) wide."
    band_cells: float = 6.0
    "A ray leaves its own point's occupied band within this many cells, or the band counts as the far side."
    ray_rings: tuple = (0.0, 30.0, 55.0)
    "Ray fan on each side: polar angles (degrees from the normal) of its rings."
    ray_ring_size: int = 6
    "Rays per ring (the ring at 0 degrees has one)."
    visibility_margin: float = 0.2
    "Difference of the escaping shares of the two sides below which visibility decides nothing."
    offset_sigmas: float = 1.0
    "Thin parts: an offset from the mid-surface of at least this many noise deviations decides a side."
    vote_neighbors: int = 16
    "Neighbours whose visibility votes are pooled with a point's own."
    orient_neighbors: int = 10
    "Neighbours over which orientation spreads to undecided points."
    depth_cell_spacings: float = 1.0
    "Band-depth cells are at least this many point spacings wide (finer than the visibility grid's)."
    depth_ring: float = 20.0
    "Band depth: polar angle (degrees) of the ring of rays around the straight one."
    depth_max_cells: float = 20.0
    "Band depth: rays are followed at most this many cells."
    depth_trust: float = 0.85
    "Band depth orients undecided points only where it agrees with visibility on this share of the points visibility decides."
    depth_margin: float = 0.5
    "Band depth: a pooled difference of the two sides' depths of at least this many cells decides a side."


TUNABLES = NormalTunables()


def plane_fits(points, *, scales=None, noise_scale=None, residual_ratio=None, tree=None):
    """Adaptive-scale plane fits at (N, 3) points (any units).

    Returns (normals (N, 3) float64 unit, unoriented; centres (N, 3) float64: centroid of
    each point's chosen neighbourhood; scale (N,) int64: neighbours used; residual (N,)
    float64: the chosen plane's residual variance; noise: the noise standard deviation,
    points' units). ``tree``: a cKDTree of the points already built.
    """
    from scipy.spatial import cKDTree

    from recon.kernels.neighbourhood_moments_cpu import prefix_moments

    T = TUNABLES
    p = check_points(points, name="points")
    scales = tuple(int(k) for k in (scales or T.scales))
    noise_scale = int(noise_scale or T.noise_scale)
    ratio = float(residual_ratio if residual_ratio is not None else T.residual_ratio)
    if len(p) < 3:
        raise InputError(f"normals need at least 3 points, got {len(p)}")
    ks = sorted({min(k, len(p)) for k in scales + (noise_scale,) if k >= 3})
    if not ks:
        raise InputError(f"scales must be at least 3 points, got {scales}")
    kmax = ks[-1]
    tree = cKDTree(p) if tree is None else tree
    n, m = len(p), len(ks)
    normals = np.empty((n, m, 3))
    centres = np.empty((n, m, 3))
    resid = np.empty((n, m))
    k_sizes = np.array(ks, np.int64)
    for s in range(0, n, T.chunk):
        q = p[s: s + T.chunk]
        _, idx = tree.query(q, k=kmax, workers=-1)
        idx = np.ascontiguousarray(idx.reshape(len(q), kmax), dtype=np.int64)
        # sums of offsets from the point itself: no cancellation in the covariance
        s1, s2 = np.empty((len(q), m, 3)), np.empty((len(q), m, 3, 3))
        prefix_moments(p, np.ascontiguousarray(q), idx, k_sizes, s1, s2)
        for j, k in enumerate(ks):
            mu = s1[:, j] / k
            cov = s2[:, j] / k - mu[:, :, None] * mu[:, None, :]
            lam, vec = np.linalg.eigh(cov)
            normals[s: s + len(q), j] = vec[:, :, 0]
            centres[s: s + len(q), j] = q + mu
            resid[s: s + len(q), j] = np.maximum(lam[:, 0], 0.0)
    noise_var = float(np.median(resid[:, ks.index(min(noise_scale, len(p)))]))
    fit_ks = [k for k in ks if k in {min(x, len(p)) for x in scales}]
    cols = np.array([ks.index(k) for k in fit_ks])
    ok = resid[:, cols] <= ratio * noise_var
    first = np.zeros(len(cols), bool)
    first[0] = True
    ok |= first  # the smallest scale is always allowed
    pick = cols[np.where(ok, np.arange(len(cols)), -1).max(axis=1)]
    rows = np.arange(n)
    return normals[rows, pick], centres[rows, pick], np.array(ks)[pick], resid[rows, pick], float(np.sqrt(noise_var))


def occupancy(points, *, spacing: float, cell_spacings: float | None = None):
    """Boolean occupancy grid of (N, 3) points: cells holding a point, grown by one cell.
    Cells are at least ``cell_spacings`` (default: the tunable) times ``spacing`` wide.
    Returns (occ (X, Y, Z) bool, origin (3,) float64, cell size h)."""
    from scipy import ndimage

    T = TUNABLES
    cells = T.cell_spacings if cell_spacings is None else float(cell_spacings)
    lo, hi = points.min(axis=0), points.max(axis=0)
    h = max(float((hi - lo).max()) / T.grid_cells, cells * spacing, 1e-12)
    origin = lo - 2.0 * h
    shape = np.ceil((hi - lo) / h).astype(np.int64) + 5
    occ = np.zeros(tuple(shape), bool)
    ijk = np.floor((points - origin) / h).astype(np.int64)
    occ[ijk[:, 0], ijk[:, 1], ijk[:, 2]] = True
    occ = ndimage.binary_dilation(occ, structure=ndimage.generate_binary_structure(3, 1))
    return occ, origin, h


def _ray_fan(rings):
    """(D, 3) ray directions in a frame whose third axis is the normal: rings at the polar
    angles ``rings`` (degrees), ``ray_ring_size`` rays each (one at 0 degrees)."""
    T = TUNABLES
    dirs = []
    for ang in rings:
        a = np.radians(ang)
        count = 1 if ang == 0 else T.ray_ring_size
        for j in range(count):
            phi = 2 * np.pi * j / count
            dirs.append([np.sin(a) * np.cos(phi), np.sin(a) * np.sin(phi), np.cos(a)])
    return np.array(dirs, np.float64)


def visibility(points, normals, *, spacing: float) -> np.ndarray:
    """(N, 4) float64: the share of rays escaping the points' occupancy on the +normal and
    on the -normal side of each point, then 1 or 0: whether the ray along +normal / along
    -normal escapes."""
    from recon.kernels.visibility_cpu import escape_shares

    occ, origin, h = occupancy(points, spacing=spacing)
    out = np.zeros((len(points), 4))
    band = int(np.ceil(2.0 * TUNABLES.band_cells))  # half-cell steps
    escape_shares(occ, origin, h, np.ascontiguousarray(points, np.float64),
                  np.ascontiguousarray(normals, np.float64), _ray_fan(TUNABLES.ray_rings), band, out)
    return out


def band_depth(points, normals, *, spacing: float) -> np.ndarray:
    """(N, 2) float64: how deep (cells of a grid at ``depth_cell_spacings`` spacings) the
    occupied band each point sits in runs on its +normal and on its -normal side (mean of a
    straight ray and a ring around it)."""
    from recon.kernels.visibility_cpu import band_depths

    T = TUNABLES
    occ, origin, h = occupancy(points, spacing=spacing, cell_spacings=T.depth_cell_spacings)
    out = np.zeros((len(points), 2))
    band_depths(occ, origin, h, np.ascontiguousarray(points, np.float64), np.ascontiguousarray(normals, np.float64),
                _ray_fan((0.0, T.depth_ring)), int(4 * T.depth_max_cells), out)
    return out


def _pool(normals, nbr, values):
    """Mean of the neighbours' per-point side values, each counted with the sign of its
    normal's agreement with the point's (a neighbour turned the other way votes the other
    way). normals (N, 3), nbr (N, k) int, values (N,) -> (N,)."""
    return np.einsum("nk,nk->n", np.einsum("nj,nkj->nk", normals, normals[nbr]), values[nbr]) / nbr.shape[1]


def _spread(points, normals, orientation, tree):
    from recon.kernels.orientation_cpu import propagate_orientation

    k = min(TUNABLES.orient_neighbors + 1, len(points))
    _, nbr = tree.query(points, k=k, workers=-1)
    nbr = np.ascontiguousarray(np.asarray(nbr).reshape(len(points), k)[:, 1:], np.int64)
    if not (orientation != 0).any():
        centre = points.mean(axis=0)
        i = int(np.argmax(np.linalg.norm(points - centre, axis=1)))
        orientation[i] = 1 if np.dot(normals[i], points[i] - centre) >= 0 else -1
    propagate_orientation(normals, nbr, orientation)
    # points the walk never reached (separate pieces): seed each piece again
    while (orientation == 0).any():
        rest = np.flatnonzero(orientation == 0)
        centre = points.mean(axis=0)
        i = int(rest[np.argmax(np.linalg.norm(points[rest] - centre, axis=1))])
        orientation[i] = 1 if np.dot(normals[i], points[i] - centre) >= 0 else -1
        propagate_orientation(normals, nbr, orientation)
    return normals


def estimate_normals(points, *, surface: str = "closed", spacing: float | None = None, normals=None,
                     details: bool = False):
    """Oriented unit normals of (N, 3) points (any units), float64 (N, 3).

    ``surface``: "closed" turns normals outward (visibility, thin-part offsets, then
    spreading); "open" turns them towards the open side where visibility tells, and
    spreads from there (or from one seed) where it does not. ``spacing``: the points'
    typical spacing (default: median nearest-neighbour distance). ``normals``: (N, 3) unit
    directions to orient instead of the plane fits' (e.g. exact ones of a clean surface).
    With ``details``, also returns a dict of intermediate per-point arrays (scale, residual,
    centres, visibility, vote, by_visibility, by_offset, depth, depth_vote, by_depth), the
    noise deviation and depth_agreement.
    """
    from scipy.spatial import cKDTree

    p = check_points(points, name="points")
    if surface not in ("closed", "open"):
        raise InputError(f"surface must be closed or open, got {surface!r}")
    tree = cKDTree(p)  # one tree for the plane fits, the spacing, the votes and the spreading
    n, centres, scale, resid, noise = plane_fits(p, tree=tree)
    if normals is not None:
        given = np.asarray(normals, np.float64)
        if given.shape != p.shape:
            raise InputError(f"normals must be {p.shape}, got {given.shape}")
        n = given.copy()
    if spacing is None:
        d, _ = tree.query(p, k=2, workers=-1)
        spacing = float(np.median(d[:, 1]))
    orientation = np.zeros(len(p), np.int8)
    info = {"scale": scale, "noise": noise, "residual": resid, "centres": centres}
    if surface in ("closed", "open"):
        T = TUNABLES
        vis = visibility(p, n, spacing=spacing)
        diff = vis[:, 0] - vis[:, 1]
        # neighbours vote (a normal turned against the point's counts with its sign flipped):
        # single rays that slip through a scan's hole or hit a stray point are outvoted
        k = min(T.vote_neighbors, len(p))
        _, nbr = tree.query(p, k=k, workers=-1)
        nbr = np.asarray(nbr).reshape(len(p), k)
        vote = _pool(n, nbr, diff)
        decided = np.abs(vote) >= T.visibility_margin
        orientation[decided] = np.where(vote[decided] > 0, 1, -1)
        open_both = (vis[:, 2] > 0) & (vis[:, 3] > 0)  # straight through: a thin part
        off = np.einsum("ij,ij->i", p - centres, n)
        thin = ~decided & open_both & (np.abs(off) >= T.offset_sigmas * noise)
        if surface == "open":
            thin[:] = False  # an open sheet is open on both sides everywhere, not thin
        orientation[thin] = np.where(off[thin] > 0, 1, -1)
        # walls thicker than the noise but thinner than the band-depth rays' reach: the
        # occupied band runs deeper on the material side. Trusted only where it agrees
        # with visibility where visibility is sure (a thick solid's band is shallow on both
        # sides, a sheet's is symmetric: there it would decide by noise)
        depth = band_depth(p, n, spacing=spacing)
        depth_vote = _pool(n, nbr, depth[:, 1] - depth[:, 0])
        agree = float(np.mean(depth_vote[decided] * vote[decided] > 0)) if decided.any() else 0.0
        by_depth = np.zeros(len(p), bool)
        if agree >= T.depth_trust:
            by_depth = (orientation == 0) & (np.abs(depth_vote) >= T.depth_margin)
            orientation[by_depth] = np.where(depth_vote[by_depth] > 0, 1, -1)
        info.update(visibility=vis, vote=vote, by_visibility=decided, by_offset=thin, depth=depth,
                    depth_vote=depth_vote, depth_agreement=agree, by_depth=by_depth)
    n = _spread(p, n, orientation, tree)
    return (n, info) if details else n
