"""Meshes whose vertices are the input points: the restricted Delaunay triangulation, closed
(sides from a field) or open (sides from the denoised points' own planes).

The points' Delaunay tetrahedra are labelled inside or outside by a signed (or occupancy)
field at their circumcentres, which are the vertices of the points' Voronoi diagram. The
mesh is every face between an inside and an outside tetrahedron: the Voronoi edge dual to
such a face runs from one side of the field's level to the other, so the faces are those of
the points' Delaunay triangulation restricted to the field's surface. On clean samples this
passes through the data (no smoothing, interpolation-grade accuracy, as ball pivoting), and
unlike ball pivoting it is watertight: the boundary of a union of tetrahedra has no holes.
The field only decides which side is which; where samples are sparse its errors show as
faces bridging the wrong samples, not as a surface off the data.

Near the data a fitted grid field decides badly: the tetrahedra that matter there are thin
slivers whose circumcentres lie within a few spacings of the surface, and a grid that cannot
resolve a leg, a horn or a tail has no gradient there (a ridge) and puts its level off by a
good part of a spacing. So a signed field labels only circumcentres far from every sample
(their circumradius, which is their distance to the nearest sample, above
``tangent_reach`` spacings). Nearer ones take the side of the samples' own tangent planes
(a Gaussian-weighted mean of the signed distances to the planes of the nearest samples, as
Hoppe et al. 1992). The planes' normals come from plane fits of each sample's neighbours;
they are turned outward by the field's gradient where that gradient is trustworthy (a unit
distance gradient, well aligned with the plane's normal) and spread from there along a
minimum spanning tree of the neighbour graph whose edges cost the turn between normals and
how far a neighbour lies off the plane, so orientation does not jump across a thin part to
its other face. On cow_clean (60,000 clean samples) this took Chamfer-L1 from 1.29e-4 to
9.6e-5; the ground truth's own signs give 9.3e-5.

Open surfaces have no inside, but a noisy open scan is still best meshed through its points
once they are denoised: ``mesh_open_through_points(points)`` moves each point onto its
neighbours' plane, orients the planes over the neighbour graph (one seed per piece: an
open surface's two sides are both outside, so either orientation serves), labels every
tetrahedron of the moved points by the side of its four corners' planes its circumcentre
lies on, and keeps the faces between the two sides no longer than ``open_max_edge``
spacings (longer ones bridge a gap or run past where the data ends).

``mesh_through_points(field, points) -> TriangleMesh``,
``mesh_open_through_points(points) -> TriangleMesh``.
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
    tangent_reach: float = 8.0
    "Circumcentres within this many point spacings of the nearest sample take their side from the samples' tangent planes, farther ones from the field (signed fields only)."
    plane_neighbors: int = 12
    "Samples (the point included) in each tangent-plane fit."
    tree_neighbors: int = 10
    "Neighbours per sample in the graph that orientation spreads over."
    label_neighbors: int = 10
    "Tangent planes averaged per circumcentre."
    seed_gradient: float = 0.9
    "A sample seeds the orientation where the field's gradient is at least this long (a distance field's is 1)..."
    seed_alignment: float = 0.8
    "... and its direction within this cosine of the plane's normal."
    occupancy_seed_gradient: float = 0.8
    "Occupancy fields: a sample seeds the orientation where the field's gradient is at least this share of its median over the samples (a steep transition; on dense clouds a coarse field's gentle slopes by thin parts pointed the wrong way: fish's nose, 465 of 50,000 samples turned inward at 0.5, none at 0.8)."
    winding_spacing: float = 4.0
    "Occupancy fields: the winding numbers that check the field far from the samples come from a fixed-seed subsample this many spacings apart (half ``tangent_reach``: at the nearest circumcentres checked the sum is still a fair quadrature)..."
    winding_points: int = 20_000
    "... of at most this many samples..."
    winding_sure: float = 0.2
    "... and decide where they are this far from a half (near a hole in the scan they are about a half, and the field's guess stays)."
    sliver_width: float = 0.02
    "Where the field is trusted, circumcentres within this many spacings of the tangent planes take the field's side (the planes' curvature error is larger than the field's there)."
    open_plane_neighbors: int = 16
    "Open surfaces: points (the point included) in each denoising plane fit, Gaussian-weighted by the distance to the 8th (recon.points.preprocess.onto_local_planes)."
    open_max_edge: float = 8.0
    "Open surfaces: faces with a side longer than this many point spacings bridge a gap or run past where the data ends, and are cut (3, 5 and 8 tried)."


LIMITS = ThroughPointsLimits()

# The face opposite vertex i of tetrahedron (0, 1, 2, 3), wound outward for a positively
# oriented tetrahedron; windings are fixed per face below, so the tetrahedra's own
# orientation does not matter.
_OPPOSITE_FACES = np.array([[1, 2, 3], [0, 3, 2], [0, 1, 3], [0, 2, 1]])
_CHUNK = 1 << 18  # tetrahedra per pass of the per-tetrahedron arithmetic: bounded scratch memory


def mesh_through_points(field, points, *, min_component_fraction: float = 0.0, denoise: bool = False,
                        limits: ThroughPointsLimits = LIMITS) -> TriangleMesh:
    """The restricted Delaunay triangulation of ``points`` to ``field``'s level set.

    field  : a signed field (inside below ``field.level``) or an occupancy field (inside
             above it), input units; evaluated once at every tetrahedron's circumcentre
    points : (N, 3) float, input units; the mesh's vertices are a subset of them (points
             no face uses, duplicates and points the field puts off the surface, are left out)
    min_component_fraction : drop connected pieces with fewer faces than this fraction of
             the largest one (0 keeps all)
    denoise : first move the points onto the Gaussian-weighted planes of their
             ``open_plane_neighbors`` nearest (noisy samples: the vertices are then the
             moved points)

    Returns a TriangleMesh (vertices (V, 3) float64 input units, faces counter-clockwise seen
    from outside, area-weighted vertex normals, surface "closed"); no faces when the field
    puts no tetrahedron inside. Raises InputError for a field that is not signed or
    occupancy, fewer than 4 points, points that span no volume, or more than
    ``limits.max_points`` points.
    """
    from recon.meshing.cleanup import drop_small_pieces, drop_unused, vertex_normals

    if field.kind not in ("signed", "occupancy"):
        raise InputError(f"a mesh through the points needs a signed or occupancy field (sides), got {field.kind!r}")
    p, tri = _delaunay(points, limits, denoise=limits.open_plane_neighbors if denoise else 0)
    tets = tri.simplices.astype(np.int64)
    inside = _without_pinched_edges(p, tets, _inside(field, p, tets, limits, tri.neighbors), tri.neighbors)
    faces = _faces_between(p, tets, inside, tri.neighbors, hull_outside=True)
    if len(faces) == 0:
        return TriangleMesh(np.zeros((0, 3)), np.zeros((0, 3), np.int64), np.zeros((0, 3), np.float32), surface="closed")
    verts, faces = drop_unused(p, faces)
    verts, faces = drop_small_pieces(verts, faces, min_component_fraction)
    return TriangleMesh(verts, faces, vertex_normals(verts, faces), surface="closed")


def mesh_open_through_points(points, *, limits: ThroughPointsLimits = LIMITS) -> TriangleMesh:
    """An open mesh through ``points`` denoised onto their neighbours' planes (no field).

    points : (N, 3) float, input units

    Returns a TriangleMesh (vertices (V, 3) float64 input units: the points moved onto the
    Gaussian-weighted least-squares planes of their ``open_plane_neighbors`` nearest, those
    no face uses left out; faces wound to agree with the planes' orientation, which is consistent over each
    piece but not outward or inward in any sense an open surface lacks; area-weighted vertex
    normals; surface "open"). Raises InputError for fewer than 4 points, non-finite input,
    points that span no volume, or more than ``limits.max_points`` points.
    """
    from recon.meshing.cleanup import drop_unused, vertex_normals

    p, tri = _delaunay(points, limits, denoise=limits.open_plane_neighbors)
    tets = tri.simplices.astype(np.int64)
    _, nbr, spacing, normals = _plane_normals(p, limits)
    _orient_over_tree(p, nbr, normals, None, limits)
    probe, _ = _circumcentres(p, tets, limits)
    above = _corner_side(p, normals, tets, probe) >= 0.0
    faces = _faces_between(p, tets, ~above, tri.neighbors, hull_outside=False)  # wound along the planes' normals
    if len(faces):
        side = np.stack([np.linalg.norm(p[faces[:, i]] - p[faces[:, (i + 1) % 3]], axis=1) for i in range(3)])
        faces = faces[side.max(axis=0) <= limits.open_max_edge * spacing]
    if len(faces) == 0:
        return TriangleMesh(np.zeros((0, 3)), np.zeros((0, 3), np.int64), np.zeros((0, 3), np.float32), surface="open")
    verts, faces = drop_unused(p, faces)
    return TriangleMesh(verts, faces, vertex_normals(verts, faces), surface="open")


def _delaunay(points, limits: ThroughPointsLimits, *, denoise: int = 0):
    """The checked points, (N, 3) float64 input units (moved onto their ``denoise`` nearest
    neighbours' planes when that is 3 or more), and their Delaunay tetrahedra (scipy)."""
    from scipy.spatial import Delaunay, QhullError

    from recon.points.preprocess import onto_local_planes

    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3 or not np.isfinite(p).all():
        raise InputError(f"points must be a finite (N, 3) array, got shape {p.shape}")
    if len(p) < 4:
        raise InputError(f"a mesh through the points needs at least 4 points, got {len(p)}")
    if len(p) > limits.max_points:
        raise InputError(f"{len(p):,} points: a mesh through the points is made for at most "
                         f"{limits.max_points:,}; mesh the field with marching cubes instead")
    origin = p.mean(axis=0)  # the triangulation in float64 about the centre keeps its precision
    spread = np.linalg.eigvalsh((p - origin).T @ (p - origin))
    if spread[0] <= 1e-18 * max(spread[2], 1e-300):  # thinner than round-off (joggling would hide it)
        raise InputError("the points span no volume (all on a plane or a line): no tetrahedra to label")
    if denoise >= 3:
        p = onto_local_planes(p, neighbors=denoise)
    try:
        # QJ joggles the input by round-off amounts (deterministically): points in degenerate
        # position, all on one sphere or a lattice, otherwise cost Qhull minutes
        tri = Delaunay(p - origin, qhull_options="QJ Qbb Qc Q12")
    except QhullError:
        raise InputError("the points span no volume (all on a plane or a line): no tetrahedra to label") from None
    return p, tri


def _faces_between(p: np.ndarray, tets: np.ndarray, inside: np.ndarray, neighbours: np.ndarray, *,
                   hull_outside: bool) -> np.ndarray:
    """(F, 3) int64 faces between an ``inside`` tetrahedron and one that is not, wound
    facing away from the inside one; ``hull_outside``: faces on the convex hull of an inside
    tetrahedron count too."""
    beyond = inside[np.maximum(neighbours, 0)]
    outside_next = np.where(neighbours >= 0, ~beyond, hull_outside)
    tet_i, face_i = np.nonzero(inside[:, None] & outside_next)
    faces = tets[tet_i[:, None], _OPPOSITE_FACES[face_i]]
    a, b, c = p[faces[:, 0]], p[faces[:, 1]], p[faces[:, 2]]
    towards_opposite = np.einsum("ij,ij->i", np.cross(b - a, c - a), p[tets[tet_i, face_i]] - a) > 0
    faces[towards_opposite] = faces[towards_opposite][:, [0, 2, 1]]
    return faces


def _without_pinched_edges(p: np.ndarray, tets: np.ndarray, inside: np.ndarray, neighbours: np.ndarray, *,
                           rounds: int = 16) -> np.ndarray:
    """``inside`` (T,) bool with the labels changed where the surface between inside and
    outside tetrahedra would pinch: where inside tetrahedra meet along an edge only, four
    (or more) faces share that edge, and the mesh is not a manifold there. All the
    tetrahedra around such an edge are put on one side, the side that costs the smaller
    volume of changed tetrahedra (filling the gaps between the meeting parts, or cutting
    them apart there), so the edge leaves the surface; repeated while such edges remain
    (a few on the bench's clouds), the second half of the ``rounds`` passes only filling
    (filling one edge and cutting another can undo each other)."""
    from recon.triangles import face_edges

    def volume(t):
        a, b, c, d = (p[tets[t, i]] for i in range(4))
        return np.abs(np.einsum("ij,ij->i", np.cross(b - a, c - a), d - a))

    inside = inside.copy()
    by_vertex = starts = None  # the tetrahedra listed by vertex, built once an edge pinches
    for round_ in range(rounds):
        beyond = inside[np.maximum(neighbours, 0)]
        tet_i, face_i = np.nonzero(inside[:, None] & np.where(neighbours >= 0, ~beyond, True))
        if len(tet_i) == 0:
            break
        edges, key = face_edges(tets[tet_i[:, None], _OPPOSITE_FACES[face_i]])
        _, first, counts = np.unique(key, return_index=True, return_counts=True)
        pinched = edges[first[counts > 2]]
        if len(pinched) == 0:
            break
        if by_vertex is None:
            by_vertex = np.argsort(tets, axis=None, kind="stable") // 4
            starts = np.concatenate([[0], np.cumsum(np.bincount(tets.ravel(), minlength=len(p)))])
        for u, v in pinched:
            around = np.intersect1d(by_vertex[starts[u]:starts[u + 1]], by_vertex[starts[v]:starts[v + 1]])
            ins = inside[around]
            # the later passes only fill: filling and cutting can undo each other
            inside[around] = round_ >= rounds // 2 or volume(around[~ins]).sum() < volume(around[ins]).sum()
    return inside


def _inside(field, p: np.ndarray, tets: np.ndarray, limits: ThroughPointsLimits,
            neighbours: np.ndarray | None = None) -> np.ndarray:
    """(T,) bool: the tetrahedra ``tets`` (indices into the points ``p``) whose circumcentre
    (the centroid for flat ones) is inside. The field (signed or occupancy) decides far from
    the samples and the samples' oriented tangent planes near them (see the module's notes).
    A circumcentre the field decides outside its bounds is outside. With an occupancy field
    and the tetrahedra's ``neighbours`` (T, 4), the field's surface far from the samples is
    checked by their winding number (:func:`_far_by_winding`)."""
    probe, radius = _circumcentres(p, tets, limits)
    inside = np.zeros(len(tets), dtype=bool)
    by_field = np.ones(len(tets), dtype=bool)
    planes = None
    if len(p) > limits.plane_neighbors:
        tree, spacing, on_level, planes = _oriented_tangent_planes(field, p, limits)
        near = np.flatnonzero(radius <= limits.tangent_reach * spacing)
        _, nearest = tree.query(probe[near], k=1, workers=-1)
        near = near[on_level[np.asarray(nearest).reshape(-1)]]  # by a sample off the field's surface: the field
        if planes is not None and len(near):
            side, trusted = _tangent_side(planes, probe[near], limits.label_neighbors)
            # where the field is trusted, within a sliver's width of the planes their curvature
            # error is the larger one: the field decides those
            decided = ~(trusted & (np.abs(side) < limits.sliver_width * spacing))
            inside[near[decided]] = side[decided] < 0.0
            by_field[near[decided]] = False
    lo, hi = np.asarray(field.bounds, dtype=np.float64)
    held = by_field & np.all((probe >= lo) & (probe <= hi), axis=1)
    if held.any():
        value = np.asarray(field.value(probe[held]), dtype=np.float64)
        inside[held] = value > field.level if field.kind == "occupancy" else value < field.level
    if field.kind == "occupancy" and planes is not None and neighbours is not None:
        far = by_field & (radius > limits.tangent_reach * spacing)
        inside = _far_by_winding(planes, probe, inside, far, neighbours, limits)
    return inside


def _far_by_winding(planes, probe: np.ndarray, inside: np.ndarray, far: np.ndarray, neighbours: np.ndarray,
                    limits: ThroughPointsLimits) -> np.ndarray:
    """``inside`` (T,) bool with the labels of ``far`` tetrahedra (T,) bool changed where the
    generalized winding number of the samples' oriented planes (Barill et al. 2018) is sure
    of the other side.

    An occupancy field's 0.5 level is smoother than clean samples (its features sit on a
    coarse grid): by thin parts and in concavities it bulges away from the data, and
    tetrahedra many spacings from every sample are labelled on the wrong side (on fish and
    cow_clean these, not the labels near the samples, were nearly all of the error: Chamfer-L1
    1.5e-4 and 4.9e-4, against 4.5e-5 and 9.7e-5 with the truth's labels there). A wrongly
    labelled region meets a rightly labelled one at a change of label, so the winding number
    is checked at every far tetrahedron next to one (about a third of them on fish), and
    spread from each that it turns to its far neighbours until no turn is left. Near holes
    in the scan the winding number is near a half, unsure, and the field's label (the
    prior's guess) stays."""
    from recon.kernels.occupancy_cpu import winding_numbers
    from recon.points.preprocess import sample_areas

    tree, points, normals, _ = planes
    if not far.any():
        return inside
    n = int(min(len(points), max(min(1000, len(points)), len(points) / limits.winding_spacing ** 2),
                limits.winding_points))
    sub = np.sort(np.random.default_rng(0).choice(len(points), n, replace=False))
    src, src_n = points[sub], np.ascontiguousarray(normals[sub], dtype=np.float64)
    src_a = sample_areas(points, normals, tree=tree, only=sub) * (len(points) / len(sub))
    inside = inside.copy()
    beyond = inside[np.maximum(neighbours, 0)]
    changes = np.where(neighbours >= 0, beyond != inside[:, None], inside[:, None]).any(axis=1)
    checked = np.zeros(len(inside), dtype=bool)
    todo = np.flatnonzero(far & changes)
    while len(todo):
        checked[todo] = True
        w = np.empty(len(todo))
        winding_numbers(probe[todo], src, src_n, src_a, w)
        turn = (np.abs(w - 0.5) > limits.winding_sure) & ((w > 0.5) != inside[todo])
        inside[todo[turn]] = ~inside[todo[turn]]
        nxt = neighbours[todo[turn]].ravel()
        nxt = np.unique(nxt[nxt >= 0])
        todo = nxt[far[nxt] & ~checked[nxt]]
    return inside


def _circumcentres(p: np.ndarray, tets: np.ndarray, limits: ThroughPointsLimits) -> tuple[np.ndarray, np.ndarray]:
    """(T, 3) circumcentres of the tetrahedra ``tets`` (T, 4) of the points ``p`` (centroids
    for flat tetrahedra) and (T,) their distance to the first corner (the circumradius);
    in chunks, so the scratch arrays stay a fixed size."""
    probe = np.empty((len(tets), 3))
    radius = np.empty(len(tets))
    for start in range(0, len(tets), _CHUNK):
        corners = p[tets[start:start + _CHUNK]]
        a = corners[:, 0]
        edges = corners[:, 1:] - a[:, None]  # (t, 3, 3)
        det = np.linalg.det(edges)
        longest = np.linalg.norm(edges, axis=2).max(axis=1)
        solid = np.abs(det) > limits.flat_volume * longest ** 3
        centre = corners.mean(axis=1)
        rhs = 0.5 * np.einsum("tij,tij->ti", edges[solid], edges[solid])
        centre[solid] = a[solid] + np.linalg.solve(edges[solid], rhs[..., None])[..., 0]
        probe[start:start + _CHUNK] = centre
        radius[start:start + _CHUNK] = np.linalg.norm(centre - a, axis=1)
    return probe, radius


def _oriented_tangent_planes(field, p: np.ndarray, limits: ThroughPointsLimits):
    """The samples' k-d tree, their median nearest-neighbour spacing, (N,) bool where the
    field puts a sample within ``tangent_reach`` spacings of its level, and the planes of
    those samples: (k-d tree, (M, 3) points, (M, 3) unit normals turned outward, (M,) bool
    where the field's gradient seeded the orientation), or None when there are none.
    Samples off the field's level are not on its surface: their planes decide nothing."""
    from scipy.spatial import cKDTree

    tree, nbr, spacing, normals = _plane_normals(p, limits)
    gradient = np.asarray(field.gradient(p), dtype=np.float64)
    length = np.linalg.norm(gradient, axis=1)
    if field.kind == "occupancy":
        # a probability has no distance to compare with the spacing: its fit passes the 0.5
        # level through the samples, so all are on it; it rises inward, and only its
        # direction is compared with the planes
        on_level = np.ones(len(p), dtype=bool)
        gradient = -gradient
        strong = length >= limits.occupancy_seed_gradient * np.median(length)
    else:
        on_level = np.abs(np.asarray(field.value(p), dtype=np.float64) - field.level) <= limits.tangent_reach * spacing
        strong = length >= limits.seed_gradient
    if not on_level.any():
        return tree, spacing, on_level, None
    along = np.einsum("ij,ij->i", normals, gradient)
    normals[along < 0] *= -1.0
    trusted = strong & (np.abs(along) >= limits.seed_alignment * np.maximum(length, 1e-300))
    if 0 < trusted.sum() < len(p):
        _orient_over_tree(p, nbr, normals, np.flatnonzero(trusted), limits)
    on = np.flatnonzero(on_level)
    if len(on) == len(p):  # every sample on the level (the usual case): the tree serves as it is
        return tree, spacing, on_level, (tree, p, normals, trusted)
    return tree, spacing, on_level, (cKDTree(p[on]), p[on], normals[on], trusted[on])


def _plane_normals(p: np.ndarray, limits: ThroughPointsLimits):
    """The points' k-d tree, (N, k) neighbour indices (the point first), the median
    nearest-neighbour spacing and (N, 3) unit normals of the neighbourhoods' planes
    (unoriented)."""
    from scipy.spatial import cKDTree

    from recon.points.preprocess import local_planes

    tree = cKDTree(p)
    k = min(limits.plane_neighbors, len(p))
    dist, nbr = tree.query(p, k=k, workers=-1)
    return tree, nbr, float(np.median(dist[:, 1])), local_planes(p, nbr)[0]


def _orient_over_tree(p: np.ndarray, nbr: np.ndarray, normals: np.ndarray, seeds, limits: ThroughPointsLimits):
    """Turn ``normals`` (N, 3) in place to agree along a minimum spanning tree of the
    neighbour graph ``nbr`` (N, k), grown out of ``seeds`` (indices whose normals are kept)
    or, with None, out of one point of each connected piece. An edge costs the turn between
    its normals plus how far either end lies off the other's plane, so the tree does not
    jump across a thin part to its other face."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import (
        breadth_first_order,
        connected_components,
        minimum_spanning_tree,
    )

    from recon.kernels.orientation_cpu import orient_along_tree

    n = len(p)
    m = min(limits.tree_neighbors, nbr.shape[1] - 1)
    rows, cols = np.repeat(np.arange(n), m), nbr[:, 1:m + 1].ravel()
    step = p[cols] - p[rows]
    off_plane = np.maximum(np.abs(np.einsum("ij,ij->i", step, normals[rows])),
                           np.abs(np.einsum("ij,ij->i", step, normals[cols])))
    off_plane /= np.maximum(np.linalg.norm(step, axis=1), 1e-300)
    cost = 1.0 - np.abs(np.einsum("ij,ij->i", normals[rows], normals[cols])) + off_plane + 1e-3
    if seeds is None:  # one root per piece
        _, label = connected_components(coo_matrix((cost, (rows, cols)), shape=(n, n)), directed=False)
        seeds = np.unique(label, return_index=True)[1]
    # node n is a root joined to every seed at no cost: the tree grows out of all seeds at once
    graph = coo_matrix((np.concatenate([cost, np.full(len(seeds), 1e-9)]),
                        (np.concatenate([rows, np.full(len(seeds), n)]), np.concatenate([cols, seeds]))),
                       shape=(n + 1, n + 1)).tocsr()
    spanning = minimum_spanning_tree(graph.maximum(graph.T))
    order, parent = breadth_first_order(spanning + spanning.T, n, directed=False)
    orient_along_tree(normals, order.astype(np.int64), parent.astype(np.int64))


def _tangent_side(planes, probe: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(M,) signed distance of each probe to the tangent planes of its k nearest samples,
    weighted by exp(-(d / d_nearest)^2), negative inside; and (M,) bool whether the nearest
    sample seeded the orientation (its field gradient is trusted)."""
    tree, points, normals, trusted = planes
    k = min(k, len(points))
    dist, nbr = tree.query(probe, k=k, workers=-1)
    dist, nbr = dist.reshape(len(probe), k), nbr.reshape(len(probe), k)
    offset = np.einsum("mkj,mkj->mk", probe[:, None, :] - points[nbr], normals[nbr])
    weight = np.exp(-(dist / np.maximum(dist[:, :1], 1e-300)) ** 2)
    return np.einsum("mk,mk->m", weight, offset) / weight.sum(axis=1), trusted[nbr[:, 0]]


def _corner_side(p: np.ndarray, normals: np.ndarray, tets: np.ndarray, probe: np.ndarray) -> np.ndarray:
    """(T,) the mean signed distance of each probe (T, 3) to the tangent planes of its
    tetrahedron's four corners (T, 4): negative below. A circumcentre's nearest samples are
    its tetrahedron's corners (a Delaunay circumsphere holds no sample), all four equally
    near; on the open bench scans this labels as the 10 nearest samples' planes do, 40 times
    faster (no k-d tree query). Closed clouds keep the 10 nearest: there the circumcentres
    that matter lie up to ``tangent_reach`` spacings out, and on sparse noisy clouds the
    corners alone labelled worse (kitten_sparse_noisy 1.1e-2 against 8.1e-3)."""
    out = np.empty(len(tets))
    for start in range(0, len(tets), _CHUNK):
        t = tets[start:start + _CHUNK]
        out[start:start + _CHUNK] = np.einsum("tkj,tkj->t", probe[start:start + _CHUNK, None, :] - p[t], normals[t])
    return out / 4.0
