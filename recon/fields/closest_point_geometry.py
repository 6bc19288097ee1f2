"""Geometry from a closest-point field: normals, principal curvatures, inside/outside, surface points.

Everything here needs only ``field.closest_point`` (input units), so it works on a fitted
:class:`~recon.fields.closest_point_network.ClosestPointField`, a baked
:class:`~recon.fields.closest_point_grid.ClosestPointGrid` or an analytic shape alike.

- Normal at a surface point c: the tangent plane is where the Jacobian of C is (close to)
  the identity and the normal where it is (close to) zero, so the eigenvector of the
  smallest eigenvalue of sym(J_C(c)) is a first normal n0; it is then refined from the
  closest-point directions a small distance t off the surface on both sides,
  n = normalise(u(c + t n0) - u(c - t n0)), u(x) = (x - C(x)) / |x - C(x)|, which stays well
  defined on open surfaces where an unsigned distance's gradient does not.
- Principal curvatures: at x = c + t n, the tangential eigenvalues of J_C are
  1 / (1 + t k_i); at c - t n they are 1 / (1 - t k_i). Both sides are solved for k_i and
  averaged (first-order errors of the field cancel). Sign: positive where the surface
  bends away from the normal (a sphere with outward normals has k = 1 / r).
- Normals of a cloud's own points (:func:`point_normals`) are not taken from the Jacobian:
  the points are projected with C and :mod:`recon.points.normals` fits planes over adaptive
  neighbourhoods and orients them by visibility (see there for why).
- Orientation of single surface points (:func:`orient_normals`): closed surfaces have an
  inside that the free space outside cannot reach; a normal points out when a probe ahead
  of the point lands outside and one behind it inside. Points where the probes say nothing
  take the orientation of their neighbours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recon.errors import InputError
from recon.fields.base import HasSupport
from recon.geometry import check_points


@dataclass(frozen=True)
class GeometryTunables:
    """Step sizes (multiples of ``step``, a length in input units) and grid sizes, in one place."""

    jacobian_step: float = 0.5
    "Central-difference step of the Jacobian, in steps."
    normal_offset: float = 2.0
    "Distance off the surface of the two direction probes that refine a normal, in steps."
    curvature_offset: float = 4.0
    "Distance off the surface where the Jacobian's eigenvalues give curvatures, in steps."
    curvature_jacobian_step: float = 2.0
    "Central-difference step of the Jacobian for curvatures, in steps (wider: a fitted field is rough at the finest grid's scale)."
    inside_resolution: int = 64
    "Grid nodes along the longest side for the inside/outside labelling."
    free_voxels: float = 1.0
    "A grid node is free space when its distance exceeds this many voxels."
    inside_share: float = 1e-3
    "A surface is closed when its enclosed free nodes are at least this share of all nodes."
    probe_voxels: float = 2.5
    "Orientation probes reach this many voxels of the inside/outside grid ahead and behind."
    orient_neighbors: int = 10
    "Neighbours over which orientation spreads to points the probes left undecided."


TUNABLES = GeometryTunables()


def default_step(field) -> float:
    """A length (input units) for finite differences: the fitted point spacing when known,
    else a 1/512 of the bounds' longest side."""
    s = field.params.get("spacing_median")
    b = np.asarray(field.bounds, np.float64)
    if s is not None and float(s) > 0:
        return float(s)
    return float((b[1] - b[0]).max()) / 512.0


def _cp(field, x):
    return np.asarray(field.closest_point(x), np.float64)


def jacobian(field, x, *, step: float) -> np.ndarray:
    """(N, 3, 3) central-difference Jacobians dC/dx at (N, 3) points x; J[:, :, a] = dC/dx_a."""
    x = check_points(x)
    n = len(x)
    pts = np.empty((6, n, 3))
    for a in range(3):
        e = np.zeros(3)
        e[a] = step
        pts[2 * a] = x + e
        pts[2 * a + 1] = x - e
    c = _cp(field, pts.reshape(-1, 3)).reshape(6, n, 3)
    J = np.empty((n, 3, 3))
    for a in range(3):
        J[:, :, a] = (c[2 * a] - c[2 * a + 1]) / (2.0 * step)
    return J


def _unit(v):
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(n > 0, n, 1.0), n[..., 0]


def surface_normals(field, points, *, step: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Closest surface points and unit normals (unoriented) for (N, 3) points, input units.

    Returns (c (N, 3) float64, normals (N, 3) float64).
    """
    x = check_points(points, name="points")
    step = default_step(field) if step is None else float(step)
    if not step > 0:
        raise InputError(f"step must be > 0, got {step}")
    T = TUNABLES
    c = _cp(field, x)
    J = jacobian(field, c, step=T.jacobian_step * step)
    S = 0.5 * (J + np.transpose(J, (0, 2, 1)))
    _, vecs = np.linalg.eigh(S)
    n0 = vecs[:, :, 0]
    t = T.normal_offset * step
    up, _ = _unit(c + t * n0 - _cp(field, c + t * n0))
    dn, _ = _unit(c - t * n0 - _cp(field, c - t * n0))
    n1, length = _unit(up - dn)
    ok = length > 1.0  # the two directions roughly oppose
    n1 = np.where(ok[:, None], n1, n0)
    n1 = np.where((np.einsum("ij,ij->i", n1, n0) < 0)[:, None], -n1, n1)
    return c, n1


def principal_curvatures(field, points, normals, *, step: float | None = None) -> np.ndarray:
    """(N, 2) float64 principal curvatures (k1 >= k2, 1 / input units) at surface points with
    the given unit normals (the sign follows the normals: convex towards them is positive)."""
    c = check_points(points, name="points")
    nrm = np.asarray(normals, np.float64)
    if nrm.shape != c.shape:
        raise InputError(f"normals must be {c.shape}, got {nrm.shape}")
    step = default_step(field) if step is None else float(step)
    T = TUNABLES
    t = T.curvature_offset * step
    # tangent basis
    helper = np.where((np.abs(nrm[:, 0]) < 0.9)[:, None], np.array([1.0, 0, 0]), np.array([0, 1.0, 0]))
    e1, _ = _unit(np.cross(nrm, helper))
    e2 = np.cross(nrm, e1)
    E = np.stack([e1, e2], axis=2)  # (N, 3, 2)
    ks = []
    for sgn in (1.0, -1.0):
        J = jacobian(field, c + sgn * t * nrm, step=T.curvature_jacobian_step * step)
        M = np.einsum("nia,nij,njb->nab", E, J, E)
        M = 0.5 * (M + np.transpose(M, (0, 2, 1)))
        lam = np.linalg.eigvalsh(M)  # ascending
        lam = np.clip(lam, 1e-3, None)
        k = sgn * (1.0 / lam - 1.0) / t
        ks.append(np.sort(k, axis=1)[:, ::-1])
    return 0.5 * (ks[0] + ks[1])


def touches_box(comp: np.ndarray, count: int) -> np.ndarray:
    """(count + 1,) bool: which labels of a (X, Y, Z) component grid (0: no component)
    reach the grid's boundary; label 0 never counts."""
    faces_of_box = [comp[0], comp[-1], comp[:, 0], comp[:, -1], comp[:, :, 0], comp[:, :, -1]]
    out = np.zeros(count + 1, bool)
    out[np.unique(np.concatenate([f.ravel() for f in faces_of_box]))] = True
    out[0] = False
    return out


def inside_outside(field, *, resolution: int | None = None):
    """Label a grid over the field's bounds: 1 outside (free space reachable from the box
    boundary), -1 inside (free space enclosed by the surface), 0 near the surface.

    Returns (labels (X, Y, Z) int8, origin (3,) float64, voxel size).
    """
    from scipy import ndimage

    res = resolution or TUNABLES.inside_resolution
    box = np.asarray(field.bounds, np.float64)
    ext = box[1] - box[0]
    h = float(ext.max()) / (res - 1)
    n = np.maximum(np.ceil(ext / h - 1e-9).astype(np.int64) + 1, 2)
    labels = np.zeros(tuple(n), np.int8)
    free = np.zeros(tuple(n), bool)
    iy, iz = np.meshgrid(np.arange(n[1]), np.arange(n[2]), indexing="ij")
    slab = max(1, (1 << 18) // int(n[1] * n[2]))
    for x0 in range(0, int(n[0]), slab):
        xs = np.arange(x0, min(x0 + slab, int(n[0])))
        pts = np.stack(np.broadcast_arrays(box[0][0] + xs[:, None, None] * h, box[0][1] + iy[None] * h,
                                           box[0][2] + iz[None] * h), axis=-1).reshape(-1, 3)
        sup = np.asarray(field.supported(pts), bool) if isinstance(field, HasSupport) else np.ones(len(pts), bool)
        d = np.full(len(pts), np.inf)
        d[sup] = np.linalg.norm(pts[sup] - _cp(field, pts[sup]), axis=1)
        free[xs[0]: xs[-1] + 1] = (d > TUNABLES.free_voxels * h).reshape(len(xs), n[1], n[2])
    comp, count = ndimage.label(free)
    outside = touches_box(comp, count)[comp]
    labels[outside] = 1
    labels[free & ~outside] = -1
    return labels, box[0].copy(), h


def decide_surface(field) -> str:
    """"closed" when the surface encloses free space, else "open"."""
    labels, _, _ = inside_outside(field)
    inside = int(np.count_nonzero(labels == -1))
    return "closed" if inside >= max(8, TUNABLES.inside_share * labels.size) else "open"


def orient_normals(field, points, normals, *, surface: str | None = None) -> np.ndarray:
    """Flip (N, 3) unit normals at surface points to point outward (closed surfaces) or
    consistently over the points' neighbour graph (open ones)."""
    from scipy.spatial import cKDTree

    from recon.kernels.orientation_cpu import propagate_orientation

    pts = check_points(points, name="points")
    nrm = np.array(normals, np.float64, copy=True)
    orientation = np.zeros(len(pts), np.int8)
    if surface is None:
        surface = str(field.params.get("surface_decided", "")) or decide_surface(field)
    if surface == "closed":
        labels, origin, h = inside_outside(field)

        def label_at(p):
            ijk = np.clip(np.rint((p - origin) / h).astype(np.int64), 0, np.array(labels.shape) - 1)
            return labels[ijk[:, 0], ijk[:, 1], ijk[:, 2]]

        r = TUNABLES.probe_voxels * h
        ahead, behind = label_at(pts + r * nrm), label_at(pts - r * nrm)
        orientation[(ahead == 1) & (behind == -1)] = 1
        orientation[(ahead == -1) & (behind == 1)] = -1
    if not (orientation != 0).any():
        # seed: the point farthest from the centre, its normal turned away from the centre
        centre = pts.mean(axis=0)
        i = int(np.argmax(np.linalg.norm(pts - centre, axis=1)))
        orientation[i] = 1 if np.dot(nrm[i], pts[i] - centre) >= 0 else -1
    k = min(TUNABLES.orient_neighbors + 1, len(pts))
    _, nbr = cKDTree(pts).query(pts, k=k, workers=-1)
    propagate_orientation(nrm, np.ascontiguousarray(nbr[:, 1:], np.int64), orientation)
    return nrm


def point_normals(field, points, *, curvature: bool = False, surface: str | None = None, step: float | None = None):
    """Oriented unit normals (N, 3) float32 of (N, 3) points (input units); with
    ``curvature``, also (N, 2) float32 principal curvatures at their closest surface points.
    Returns (normals, curvatures or None).

    The points are first moved onto the field's surface (C(p)); their normals then come
    from :func:`recon.points.normals.estimate_normals` (adaptive-scale plane fits, turned
    outward by visibility on closed surfaces, towards the open side or consistently on
    open ones), not from the field's Jacobian: a field fitted to noisy points follows the
    noise at the scale of a spacing, and a plane through many projected neighbours
    averages it out. Fields fitted to clean points (the fitter's ``noise_ratio`` at most
    its ``clean_threshold``) and analytic ones keep the Jacobian's direction, which is
    then exact where a plane fit has chord errors; only the orientation comes from the
    points. ``step``: finite differences of the Jacobian and the curvatures."""
    from recon.points.normals import estimate_normals

    x = check_points(points, name="points")
    if surface is None:
        surface = str(field.params.get("surface_decided", "")) or decide_surface(field)
    if surface not in ("open", "closed"):
        raise InputError(f"surface must be open or closed, got {surface!r}")
    params = field.params
    if "clean" in params:  # as the fitter decided (sparse clean clouds included)
        noisy = not bool(params["clean"])
    else:  # fields saved before the fitter recorded it
        noisy = float(params.get("noise_ratio", 0.0)) > float(params.get("clean_threshold", 0.02))
    if noisy:
        c = _cp(field, x)
        n = estimate_normals(c, surface=surface)
    else:  # clean data: the field is as smooth as the surface, its own normal is exact
        c, n = surface_normals(field, x, step=step)
        n = estimate_normals(c, surface=surface, normals=n)
    k = principal_curvatures(field, c, n, step=step).astype(np.float32) if curvature else None
    return n.astype(np.float32), k
