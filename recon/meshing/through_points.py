"""A closed mesh whose vertices are the input points: the restricted Delaunay triangulation.

The points' Delaunay tetrahedra are labelled inside or outside by a signed (or occupancy)
field at their circumcentres, which are the vertices of the points' Voronoi diagram. The
mesh is every face between an inside and an outside tetrahedron: the Voronoi edge dual to
such a face runs from one side of the field's level to the other, so the faces are those of
the points' Delaunay triangulation restricted to the field's surface. On clean samples this
passes through the data (no smoothing, interpolation-grade accuracy, as ball pivoting), and
unlike ball pivoting it is watertight: the boundary of a union of tetrahedra has no holes.
The field only decides which side is which; where samples are sparse its errors show as
faces bridging the wrong samples, not as a surface off the data.

``mesh_through_points(field, points) -> TriangleMesh``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recon.errors import InputError
from recon.triangles import TriangleMesh


@dataclass(frozen=True)
class ThroughPointsLimits:
    max_points: int = 600_000
    "Above this many points the tetrahedra (about 6.5 a point, each with its neighbours and circumcentre) outgrow a grid mesher's memory; callers use marching cubes instead."
    flat_volume: float = 1e-12
    "A tetrahedron whose volume is below this fraction of its longest edge cubed is flat: its circumcentre is not defined, and its centroid labels it."


LIMITS = ThroughPointsLimits()

# The face opposite vertex i of tetrahedron (0, 1, 2, 3), wound outward for a positively
# oriented tetrahedron; windings are fixed per face below, so the tetrahedra's own
# orientation does not matter.
_OPPOSITE_FACES = np.array([[1, 2, 3], [0, 3, 2], [0, 1, 3], [0, 2, 1]])


def mesh_through_points(field, points, *, min_component_fraction: float = 0.0,
                        limits: ThroughPointsLimits = LIMITS) -> TriangleMesh:
    """The restricted Delaunay triangulation of ``points`` to ``field``'s level set.

    field  : a signed field (inside below ``field.level``) or an occupancy field (inside
             above it), input units; evaluated once at every tetrahedron's circumcentre
    points : (N, 3) float, input units; the mesh's vertices are a subset of them (points
             no face uses, duplicates and points the field puts off the surface, are left out)
    min_component_fraction : drop connected pieces with fewer faces than this fraction of
             the largest one (0 keeps all)

    Returns a TriangleMesh (vertices (V, 3) float64 input units, faces counter-clockwise seen
    from outside, area-weighted vertex normals, surface "closed"); no faces when the field
    puts no tetrahedron inside. Raises InputError for a field that is not signed or
    occupancy, fewer than 4 points, points that span no volume, or more than
    ``limits.max_points`` points.
    """
    from scipy.spatial import Delaunay, QhullError

    from recon.meshing.cleanup import drop_small_pieces, drop_unused, vertex_normals

    if field.kind not in ("signed", "occupancy"):
        raise InputError(f"a mesh through the points needs a signed or occupancy field (sides), got {field.kind!r}")
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3 or not np.isfinite(p).all():
        raise InputError(f"points must be a finite (N, 3) array, got shape {p.shape}")
    if len(p) < 4:
        raise InputError(f"a mesh through the points needs at least 4 points, got {len(p)}")
    if len(p) > limits.max_points:
        raise InputError(f"{len(p):,} points: a mesh through the points is made for at most "
                         f"{limits.max_points:,}; mesh the field with marching cubes instead")
    origin = p.mean(axis=0)  # circumcentres in float64 about the centre keep their precision
    spread = np.linalg.eigvalsh((p - origin).T @ (p - origin))
    if spread[0] <= 1e-18 * max(spread[2], 1e-300):  # thinner than round-off (joggling would hide it)
        raise InputError("the points span no volume (all on a plane or a line): no tetrahedra to label")
    try:
        # QJ joggles the input by round-off amounts (deterministically): points in degenerate
        # position, all on one sphere or a lattice, otherwise cost Qhull minutes
        tri = Delaunay(p - origin, qhull_options="QJ Qbb Qc Q12")
    except QhullError:
        raise InputError("the points span no volume (all on a plane or a line): no tetrahedra to label") from None
    tets = tri.simplices.astype(np.int64)
    inside = _inside(field, p[tets], limits)
    neighbour = tri.neighbors
    outside_next = ~np.where(neighbour >= 0, inside[np.maximum(neighbour, 0)], False)
    tet_i, face_i = np.nonzero(inside[:, None] & outside_next)
    faces = tets[tet_i[:, None], _OPPOSITE_FACES[face_i]]
    a, b, c = p[faces[:, 0]], p[faces[:, 1]], p[faces[:, 2]]
    towards_opposite = np.einsum("ij,ij->i", np.cross(b - a, c - a), p[tets[tet_i, face_i]] - a) > 0
    faces[towards_opposite] = faces[towards_opposite][:, [0, 2, 1]]
    if len(faces) == 0:
        return TriangleMesh(np.zeros((0, 3)), np.zeros((0, 3), np.int64), np.zeros((0, 3), np.float32), surface="closed")
    verts, faces = drop_unused(p, faces)
    verts, faces = drop_small_pieces(verts, faces, min_component_fraction)
    return TriangleMesh(verts, faces, vertex_normals(verts, faces), surface="closed")


def _inside(field, corners: np.ndarray, limits: ThroughPointsLimits) -> np.ndarray:
    """(T, 4, 3) tetrahedron corners -> (T,) bool: the field's inside holds the circumcentre
    (the centroid for flat tetrahedra); a circumcentre outside the field's bounds is outside."""
    a = corners[:, 0]
    edges = corners[:, 1:] - a[:, None]  # (T, 3, 3)
    det = np.linalg.det(edges)
    longest = np.linalg.norm(edges, axis=2).max(axis=1)
    solid = np.abs(det) > limits.flat_volume * longest ** 3
    probe = corners.mean(axis=1)
    rhs = 0.5 * np.einsum("tij,tij->ti", edges[solid], edges[solid])
    probe[solid] = a[solid] + np.linalg.solve(edges[solid], rhs[..., None])[..., 0]
    lo, hi = np.asarray(field.bounds, dtype=np.float64)
    held = np.all((probe >= lo) & (probe <= hi), axis=1)
    inside = np.zeros(len(corners), dtype=bool)
    if held.any():
        value = np.asarray(field.value(probe[held]), dtype=np.float64)
        inside[held] = value > field.level if field.kind == "occupancy" else value < field.level
    return inside
