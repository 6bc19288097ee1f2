"""Surface-quality metrics: a reconstruction against ground truth, or against its input cloud.

The convention (the one every figure in this project uses; see the bench README):

- ``n_samples`` points are drawn uniformly by area on each mesh, with an explicit seed.
- Distances are **point-to-surface**: a sample on one mesh to the exact closest point on
  the *triangles* of the other mesh (never to the other mesh's samples), so a perfect
  reconstruction scores 0 with no sampling floor.
- Every distance is divided by the ground truth's bounding-box diagonal.
- accuracy = mean distance reconstruction -> truth; completeness = mean distance
  truth -> reconstruction; Chamfer-L1 = (accuracy + completeness) / 2; Chamfer-L2 = the
  mean squared distance each way, the two means halved (added and divided by 2).
- Normal consistency = mean |cos| between a sample's face normal and the normal of the
  closest triangle on the other mesh, averaged over both directions.
- Precision / recall at t = fraction of reconstruction / truth samples closer than
  t x diagonal; F-score = 2PR / (P + R).

Closest points come from Open3D's BVH (``RaycastingScene.compute_closest_points``, float32),
which also names the closest triangle; the distance to that triangle is then recomputed
in float64 (exact point-triangle projection), so a sample lying on the other surface
scores ~1e-16 instead of float32 round-off. Coordinates are centred on the reference
bounding box before the float32 step, so georeferenced inputs (UTM metres) keep their
precision.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recon.errors import InputError
from recon.seeding import rng
from recon.triangles import TriangleMesh

DEFAULT_THRESHOLDS = (0.002, 0.005, 0.01)
"F-score thresholds, as fractions of the ground truth's bounding-box diagonal."


@dataclass(frozen=True)
class MetricsConfig:
    """Tunables of the metric code, in one place."""

    degenerate_area: float = 0.0
    "Faces with area <= this (input units squared) are never sampled nor matched."
    query_batch: int = 1_000_000
    "Closest-point queries sent to Open3D at once (bounds peak memory)."


CONFIG = MetricsConfig()


def threshold_label(t: float) -> str:
    """0.002 -> '0.2%', 0.01 -> '1%': the key a threshold gets in the metric dicts."""
    return f"{float(t) * 100:g}%"


# --------------------------------------------------------------------------- validation


def _check_mesh(mesh, what: str) -> TriangleMesh:
    if not isinstance(mesh, TriangleMesh):
        raise TypeError(f"{what} must be a recon TriangleMesh, got {type(mesh).__name__}")
    if mesh.n_faces == 0 or mesh.n_vertices == 0:
        raise InputError(f"{what} is empty ({mesh.n_vertices} vertices, {mesh.n_faces} faces): nothing to measure")
    if mesh.faces.min() < 0 or mesh.faces.max() >= mesh.n_vertices:
        raise InputError(
            f"{what} has face indices outside 0..{mesh.n_vertices - 1} "
            f"(found {int(mesh.faces.min())}..{int(mesh.faces.max())})"
        )
    if not np.isfinite(mesh.vertices).all():
        raise InputError(f"{what} has non-finite vertex coordinates (NaN or inf)")
    return mesh


def _check_options(n_samples: int, seed: int, thresholds) -> tuple[float, ...]:
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
        raise InputError(f"n_samples must be a positive integer, got {n_samples!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    ts = tuple(float(t) for t in thresholds)
    if not ts or any(not np.isfinite(t) or t <= 0 for t in ts):
        raise InputError(f"thresholds must be positive fractions of the diagonal, got {thresholds!r}")
    return ts


def _diagonal(points: np.ndarray, what: str) -> float:
    diag = float(np.linalg.norm(points.max(axis=0) - points.min(axis=0)))
    if not np.isfinite(diag) or diag <= 0.0:
        raise InputError(f"{what} has a zero-size bounding box: distances cannot be normalised")
    return diag


# --------------------------------------------------------------------------- geometry


def _face_geometry(mesh: TriangleMesh) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Corners (3, F, 3) float64, areas (F,) float64, unit normals (F, 3) float64 (0 for degenerate)."""
    tri = mesh.vertices[mesh.faces]  # (F, 3, 3)
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    cross = np.cross(b - a, c - a)
    norm = np.linalg.norm(cross, axis=1)
    area = 0.5 * norm
    normals = np.zeros_like(cross)
    ok = norm > 0
    normals[ok] = cross[ok] / norm[ok, None]
    return np.stack([a, b, c]), area, normals


def sample_surface(mesh: TriangleMesh, n: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points uniform by area on ``mesh``.

    Returns points (n, 3) float64 in the mesh's units and face ids (n,) int64.
    The same ``seed`` gives the same samples.
    """
    _check_mesh(mesh, "mesh")
    return _sample(mesh, n, rng(seed))


def _sample(mesh: TriangleMesh, n: int, gen: np.random.Generator, geometry=None) -> tuple[np.ndarray, np.ndarray]:
    corners, area, _ = geometry if geometry is not None else _face_geometry(mesh)
    cum = np.cumsum(area)
    total = cum[-1]
    if not total > CONFIG.degenerate_area:
        raise InputError(f"mesh has {mesh.n_faces} faces but zero surface area: nothing to sample")
    # inverse-CDF face choice; a face of zero area spans an empty interval and is never drawn
    face = np.searchsorted(cum, gen.random(n) * total, side="right")
    face = np.minimum(face, len(area) - 1).astype(np.int64)
    r1, r2 = gen.random(n), gen.random(n)
    s = np.sqrt(r1)
    u, v, w = 1.0 - s, s * (1.0 - r2), s * r2
    a, b, c = corners[0][face], corners[1][face], corners[2][face]
    pts = u[:, None] * a + v[:, None] * b + w[:, None] * c
    return pts, face


def closest_point_on_triangles(p, a, b, c) -> np.ndarray:
    """Exact closest point to each ``p[i]`` on triangle ``(a[i], b[i], c[i])``.

    All inputs (N, 3) float64; returns (N, 3) float64. Voronoi-region projection of
    Ericson, *Real-Time Collision Detection* 5.1.5, vectorised; a degenerate triangle
    (a segment or a point) falls into an edge or vertex region.
    """
    p, a, b, c = (np.asarray(x, dtype=np.float64) for x in (p, a, b, c))

    def dot(x, y):
        return np.einsum("ij,ij->i", x, y)

    ab, ac, bc = b - a, c - a, c - b
    ap, bp, cp = p - a, p - b, p - c
    d1, d2 = dot(ab, ap), dot(ac, ap)
    d3, d4 = dot(ab, bp), dot(ac, bp)
    d5, d6 = dot(ab, cp), dot(ac, cp)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2

    with np.errstate(divide="ignore", invalid="ignore"):
        denom = va + vb + vc
        v_in = np.where(denom != 0, vb / denom, 0.0)
        w_in = np.where(denom != 0, vc / denom, 0.0)
        t_ab = d1 / (d1 - d3)
        t_ac = d2 / (d2 - d6)
        t_bc = (d4 - d3) / ((d4 - d3) + (d5 - d6))

    out = a + ab * v_in[:, None] + ac * w_in[:, None]
    # regions in reverse priority: a later assignment wins, as the first `return` in Ericson's order
    m = (va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0)
    out[m] = b[m] + bc[m] * t_bc[m, None]
    m = (vb <= 0) & (d2 >= 0) & (d6 <= 0)
    out[m] = a[m] + ac[m] * t_ac[m, None]
    m = (d6 >= 0) & (d5 <= d6)
    out[m] = c[m]
    m = (vc <= 0) & (d1 >= 0) & (d3 <= 0)
    out[m] = a[m] + ab[m] * t_ab[m, None]
    m = (d3 >= 0) & (d4 <= d3)
    out[m] = b[m]
    m = (d1 <= 0) & (d2 <= 0)
    out[m] = a[m]
    bad = ~np.isfinite(out).all(axis=1)
    if bad.any():  # 0/0 on a point-like triangle: its only point is a
        out[bad] = a[bad]
    return out


def distance_to_faces(points: np.ndarray, mesh: TriangleMesh, *, candidates: int = 12) -> np.ndarray:
    """(N,) float64: each of the (N, 3) points' distance to the nearest of the ``candidates``
    faces whose centres lie nearest it, input units: exact where the nearest face is among
    them (meshes of even faces). Needs no Open3D, unlike :class:`SurfaceIndex`."""
    from scipy.spatial import cKDTree

    v, f = mesh.vertices, mesh.faces
    corner = v.min(axis=0)  # georeferenced coordinates keep their digits
    p = np.asarray(points, np.float64) - corner
    k = min(candidates, len(f))
    _, idx = cKDTree(v[f].mean(axis=1) - corner).query(p, k=k)
    idx = idx.reshape(len(p), k)
    best = np.full(len(p), np.inf)
    for j in range(k):
        tri = f[idx[:, j]]
        q = closest_point_on_triangles(p, v[tri[:, 0]] - corner, v[tri[:, 1]] - corner, v[tri[:, 2]] - corner)
        best = np.minimum(best, np.linalg.norm(q - p, axis=1))
    return best


class SurfaceIndex:
    """Exact closest-point queries against one mesh's triangles (Open3D BVH + float64 refinement)."""

    def __init__(self, mesh: TriangleMesh, origin: np.ndarray, geometry=None):
        import open3d as o3d

        corners, area, normals = geometry if geometry is not None else _face_geometry(mesh)
        keep = np.flatnonzero(area > CONFIG.degenerate_area)
        if keep.size == 0:
            raise InputError(f"mesh has {mesh.n_faces} faces but zero surface area: nothing to measure against")
        self._origin = origin
        self._corners = corners[:, keep]  # (3, K, 3) float64
        self.normals = normals[keep]  # (K, 3)
        faces = mesh.faces[keep]
        used, inverse = np.unique(faces, return_inverse=True)
        verts = (mesh.vertices[used] - origin).astype(np.float32)
        self._scene = o3d.t.geometry.RaycastingScene()
        self._scene.add_triangles(
            o3d.core.Tensor(np.ascontiguousarray(verts)),
            o3d.core.Tensor(np.ascontiguousarray(inverse.reshape(-1, 3).astype(np.uint32))),
        )

    def query(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """points (N, 3) float64 input units -> (distance (N,) float64 input units, triangle (N,) int64)."""
        import open3d as o3d

        n = len(points)
        dist = np.empty(n, dtype=np.float64)
        tri = np.empty(n, dtype=np.int64)
        step = CONFIG.query_batch
        for lo in range(0, n, step):
            p = points[lo : lo + step] - self._origin
            ans = self._scene.compute_closest_points(o3d.core.Tensor(p.astype(np.float32)))
            t = ans["primitive_ids"].numpy().astype(np.int64)
            a, b, c = self._corners[0][t], self._corners[1][t], self._corners[2][t]
            q = closest_point_on_triangles(p, a - self._origin, b - self._origin, c - self._origin)
            dist[lo : lo + step] = np.linalg.norm(p - q, axis=1)
            tri[lo : lo + step] = t
        return dist, tri


# --------------------------------------------------------------------------- public API


def compare_meshes(
    reconstruction: TriangleMesh,
    ground_truth: TriangleMesh,
    *,
    n_samples: int = 100_000,
    seed: int = 0,
    thresholds=DEFAULT_THRESHOLDS,
) -> dict:
    """Point-to-surface comparison of ``reconstruction`` with ``ground_truth``.

    Both meshes in the same input units and frame. ``n_samples`` points are drawn on each
    (seeded by ``seed``); ``thresholds`` are F-score thresholds as fractions of the
    ground truth's bounding-box diagonal.

    Returns a dict of plain Python numbers (JSON-ready):
    ``chamfer_l1``, ``chamfer_l2``, ``accuracy``, ``completeness`` (all relative to the
    diagonal; L2 relative to its square), ``normal_consistency`` (0..1),
    ``fscore`` / ``precision`` / ``recall`` (dicts keyed by threshold label, e.g. "0.2%"),
    ``thresholds`` (the fractions), ``diagonal`` (input units), ``n_samples``, ``seed``.
    """
    _check_mesh(reconstruction, "reconstruction")
    _check_mesh(ground_truth, "ground truth")
    ts = _check_options(n_samples, seed, thresholds)
    diag = _diagonal(ground_truth.vertices[np.unique(ground_truth.faces)], "ground truth")
    origin = 0.5 * (ground_truth.vertices.min(axis=0) + ground_truth.vertices.max(axis=0))

    rec_geo = _face_geometry(reconstruction)
    gt_geo = _face_geometry(ground_truth)
    rec_normals, gt_normals = rec_geo[2], gt_geo[2]
    gen = rng(seed)
    rec_pts, rec_face = _sample(reconstruction, n_samples, gen, rec_geo)
    gt_pts, gt_face = _sample(ground_truth, n_samples, gen, gt_geo)

    gt_index = SurfaceIndex(ground_truth, origin, gt_geo)
    rec_index = SurfaceIndex(reconstruction, origin, rec_geo)
    d_acc, t_acc = gt_index.query(rec_pts)  # reconstruction -> truth
    d_com, t_com = rec_index.query(gt_pts)  # truth -> reconstruction
    d_acc /= diag
    d_com /= diag

    nc_acc = np.abs(np.einsum("ij,ij->i", rec_normals[rec_face], gt_index.normals[t_acc]))
    nc_com = np.abs(np.einsum("ij,ij->i", gt_normals[gt_face], rec_index.normals[t_com]))

    accuracy = float(d_acc.mean())
    completeness = float(d_com.mean())
    out = {
        "chamfer_l1": 0.5 * (accuracy + completeness),
        "chamfer_l2": 0.5 * (float(np.mean(d_acc**2)) + float(np.mean(d_com**2))),
        "normal_consistency": 0.5 * (float(nc_acc.mean()) + float(nc_com.mean())),
        "accuracy": accuracy,
        "completeness": completeness,
        "fscore": {},
        "precision": {},
        "recall": {},
        "thresholds": list(ts),
        "diagonal": diag,
        "n_samples": int(n_samples),
        "seed": int(seed),
    }
    for t in ts:
        key = threshold_label(t)
        p = float(np.mean(d_acc < t))
        r = float(np.mean(d_com < t))
        out["precision"][key] = p
        out["recall"][key] = r
        out["fscore"][key] = 0.0 if p + r == 0 else 2.0 * p * r / (p + r)
    return out


def cloud_to_mesh(points, mesh: TriangleMesh, *, n_samples: int = 100_000, seed: int = 0) -> dict:
    """How well ``mesh`` explains the cloud ``points`` when no ground truth exists.

    points : (N, 3) float, input units. mesh in the same units and frame.

    Returns a dict of plain numbers, distances relative to the input's bounding-box
    diagonal: ``input_to_mesh_mean`` / ``input_to_mesh_p95`` (each input point to the
    closest point on the mesh's triangles), ``mesh_to_input_mean`` / ``mesh_to_input_p95``
    (``n_samples`` area-uniform mesh samples to the nearest input point; large values
    expose surface invented far from the data), ``diagonal`` (input units),
    ``n_points``, ``n_samples``, ``seed``.
    """
    from scipy.spatial import cKDTree

    pts = np.asarray(points)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise InputError(f"points must be (N, 3), got {pts.shape}")
    if len(pts) == 0:
        raise InputError("points is empty: nothing to measure")
    pts = pts.astype(np.float64)
    if not np.isfinite(pts).all():
        raise InputError("points has non-finite coordinates (NaN or inf)")
    _check_mesh(mesh, "mesh")
    _check_options(n_samples, seed, DEFAULT_THRESHOLDS)
    diag = _diagonal(pts, "the input cloud")
    origin = 0.5 * (pts.min(axis=0) + pts.max(axis=0))

    geo = _face_geometry(mesh)
    d_in, _ = SurfaceIndex(mesh, origin, geo).query(pts)
    samples, _ = _sample(mesh, n_samples, rng(seed), geo)
    d_out, _ = cKDTree(pts - origin).query(samples - origin, k=1, workers=-1)
    d_in /= diag
    d_out = np.asarray(d_out, dtype=np.float64) / diag
    return {
        "input_to_mesh_mean": float(d_in.mean()),
        "input_to_mesh_p95": float(np.percentile(d_in, 95)),
        "mesh_to_input_mean": float(d_out.mean()),
        "mesh_to_input_p95": float(np.percentile(d_out, 95)),
        "diagonal": diag,
        "n_points": int(len(pts)),
        "n_samples": int(n_samples),
        "seed": int(seed),
    }


def mesh_to_data_mean(mesh: TriangleMesh, points, *, n_samples: int = 20_000, seed: int = 0) -> float:
    """Mean distance (input units) from ``n_samples`` area-uniform samples of ``mesh`` to
    the nearest of ``points`` (N, 3): how far the surface strays from the data, the share of
    :func:`cloud_to_mesh` that needs no triangle index (no Open3D)."""
    from scipy.spatial import cKDTree

    pts = np.asarray(points, dtype=np.float64)
    _check_mesh(mesh, "mesh")
    origin = pts.mean(axis=0)
    samples, _ = _sample(mesh, n_samples, rng(seed), _face_geometry(mesh))
    dist, _ = cKDTree(pts - origin).query(samples - origin, k=1, workers=-1)
    return float(np.mean(dist))


def _diagonal_unit(metrics: dict, whose: str) -> str:
    diag = metrics.get("diagonal")
    return f"of {whose} bbox diagonal" + (f" ({diag:.6g})" if diag is not None else "")


def format_metrics_table(metrics: dict) -> str:
    """A plain-text table of a :func:`compare_meshes` or :func:`cloud_to_mesh` result."""
    rows: list[tuple[str, str]] = []
    if "chamfer_l1" in metrics:
        unit = _diagonal_unit(metrics, "the ground truth's")
        rows += [
            ("Chamfer-L1", f"{metrics['chamfer_l1']:.4e}  ({unit})"),
            ("Chamfer-L2", f"{metrics['chamfer_l2']:.4e}  (squared, same normalisation)"),
            ("accuracy (rec -> gt)", f"{metrics['accuracy']:.4e}"),
            ("completeness (gt -> rec)", f"{metrics['completeness']:.4e}"),
            ("normal consistency", f"{metrics['normal_consistency']:.4f}"),
        ]
        for key in metrics.get("fscore", {}):
            p = metrics["precision"][key]
            r = metrics["recall"][key]
            rows.append((f"F-score @ {key} of diagonal", f"{metrics['fscore'][key]:.4f}  (precision {p:.4f}, recall {r:.4f})"))
        title = "mesh vs ground truth, point-to-surface"
    elif "input_to_mesh_mean" in metrics:
        unit = _diagonal_unit(metrics, "the input's")
        rows += [
            ("input -> mesh, mean", f"{metrics['input_to_mesh_mean']:.4e}  ({unit})"),
            ("input -> mesh, 95th pct", f"{metrics['input_to_mesh_p95']:.4e}"),
            ("mesh -> input, mean", f"{metrics['mesh_to_input_mean']:.4e}"),
            ("mesh -> input, 95th pct", f"{metrics['mesh_to_input_p95']:.4e}"),
        ]
        title = "mesh vs input cloud (no ground truth)"
    else:
        raise InputError("metrics dict is neither a compare_meshes nor a cloud_to_mesh result")
    if "n_samples" in metrics:
        rows.append(("samples per mesh, seed", f"{metrics['n_samples']}, {metrics.get('seed', 0)}"))
    width = max(len(name) for name, _ in rows)
    lines = [title, "-" * len(title)]
    lines += [f"{name.ljust(width)}  {value}" for name, value in rows]
    return "\n".join(lines)
