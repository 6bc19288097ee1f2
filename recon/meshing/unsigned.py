"""Meshing unsigned fields that know their closest points (CSP fields, closest-point grids).

An unsigned distance never changes sign; what says where the surface passes is the
closest-point direction u(x) = (x - C(x)) / |x - C(x)|:

1. the field is evaluated on the nodes of a grid near the surface (a coarse pass finds
   the blocks within reach of it);
2. along every grid edge between two nodes near the surface, opposing directions
   (u_a . u_b < 0) say "the sheet passes between them", agreeing ones "same side";
3. side labels are chosen to satisfy the most confident relations first (a maximum
   spanning forest, with a parity union-find). A closed surface satisfies all of them; an
   open one cannot (going around its boundary flips the side), and sure conflicts say
   the surface is open.

Closed surfaces (forced; or few sure conflicts in step 3; or a sparse cloud's field that
the fitter found enclosing free space) take their signs from free space: the space off
the band that is connected to the box's boundary is outside, the rest inside, and each
band node takes the side its direction points to. Marching cubes runs on
(side ? -1 : +1) x distance, vertices are snapped onto the surface with C, holes are
closed and the surface is wound outward. One inside cannot tear, so the mesh comes out
watertight, and small closed pockets of the field's noise are dropped.

Open surfaces (and closed ones whose free space encloses nothing, such as scans with
holes) are a surface net of the crossed grid edges (``recon.meshing.surface_nets``): each edge is
tested on its own, so sheets that end, branch or meet are meshed where a labelling of
the nodes into two sides would tear. Crossings farther than a share of a voxel from the
surface (beyond an open boundary the tangent planes go on), and faces the field's
directions do not confirm, are dropped; the side labels of step 3 only choose which way
the faces wind. A noisy fit's closest points jitter by a few times its estimated noise, so
its crossing test allows that much (else rows of nodes where the surface passes a grid
plane test uncrossed, and the mesh has streaks of holes along them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from recon.errors import InputError
from recon.fields.base import HasSupport, ProjectsOntoData
from recon.meshing.cleanup import (
    close_holes,
    drop_small_pieces,
    drop_unused,
    vertex_normals,
    wind_outward,
)
from recon.meshing.enclosed_sides import enclosed_sides
from recon.triangles import TriangleMesh


@dataclass(frozen=True)
class UnsignedMeshTunables:
    """Every tolerance of the unsigned mesher, in one place (voxel units unless said)."""

    default_resolution: int = 256
    "Nodes along the longest side when neither the call nor the field's params give one."
    coarse_step: int = 4
    "Fine cells per coarse block (per axis) in the near-surface search."
    band: float = 2.0
    "Nodes within this many voxels of the surface take part in the signs and the cells."
    vertex_tolerance: float = 0.35
    "A marching-cubes vertex farther than this from the surface (before snapping) removes its faces."
    face_tolerance: float = 0.5
    "A face whose centre lies farther than this from the surface after snapping is removed."
    oppose_cos: float = 0.0
    "An edge crossing is real when the endpoints' directions have a cosine below this."
    feet_jitter_noise: float = 4.0
    "Open surfaces of noisy fits: the field's closest points jitter by this many times the fit's estimated noise."
    feet_jitter_max: float = 0.3
    "... but by no more than this (voxels): a crossing is taken when the nearer node lies that little short of the farther one's tangent plane."
    conflict_confidence: float = 0.7
    "Conflicting relations at least this sure count against a closed surface."
    closed_conflict_fraction: float = 2e-3
    "A surface is taken as closed when sure conflicts are at most this share of the edges."
    open_hole_edges: int = 12
    "On open surfaces, boundary loops of at most this many edges are closed."
    closed_hole_edges: int = 96
    "On closed surfaces, boundary loops of at most this many edges are closed (longer ones are real openings)."
    free_voxels: float = 1.0
    "Closed surfaces: band nodes nearer the surface than this take their side from where their direction points."
    free_spacings: float = 0.5
    "... or this many point spacings of the fitted cloud, if more (a sparse cloud's field has gaps of about a spacing)."
    min_inside_nodes: int = 8
    "Closed surfaces: enclosed free space of fewer nodes is no inside (a pocket of the field's noise)."
    closed_min_piece: float = 0.01
    "Closed surfaces: pieces with fewer faces than this share of the largest are dropped."
    snap_steps: int = 2
    "Closest-point projections applied to each vertex."
    normal_probe: float = 1.0
    "Open surfaces: a face's normal is checked against the field's directions this far off it."
    normal_agreement: float = 0.5
    "Open surfaces: ... whose cosine with it must be at least this."
    chunk_points: int = 1 << 18
    "Points per field evaluation."


TUNABLES = UnsignedMeshTunables()


def _supported(field, pts: np.ndarray) -> np.ndarray:
    """(N,) bool: where the field has data behind it (fields without a support: everywhere)."""
    return np.asarray(field.supported(pts), bool) if isinstance(field, HasSupport) else np.ones(len(pts), bool)


def _closest(field, pts: np.ndarray) -> np.ndarray:
    out = np.empty_like(pts)
    step = TUNABLES.chunk_points
    for s in range(0, len(pts), step):
        out[s: s + step] = np.asarray(field.closest_point(pts[s: s + step]), np.float64)
    return out


def extract_unsigned_mesh(field, *, resolution: int | None = None, bounds=None, surface: str | None = None,
                          min_component_fraction: float = 0.0) -> TriangleMesh:
    """Mesh the surface of an unsigned field that has ``closest_point``.

    field      : kind "unsigned", with ``bounds`` and ``closest_point`` (a ClosestPointField,
                 a ClosestPointGrid, an analytic unsigned shape)
    resolution : nodes along the longest side of the bounds; None: ``field.params["mesh_resolution"]``
                 or ``TUNABLES.default_resolution``, and for an open surface of a noisy fit
                 no finer than its point spacing (a finer grid resolves the field's noise,
                 and the open mesh falls apart into fragments)
    bounds     : (2, 3) box to mesh, input units; None: ``field.bounds``
    surface    : "open", "closed" or None (the field's decision in ``params["surface_decided"]``,
                 else decided here from the conflicts between the direction relations)
    min_component_fraction : drop pieces with fewer faces than this share of the largest

    Returns a TriangleMesh (input units). Closed surfaces come out watertight where the
    field allows and wound outward; open ones keep their boundaries. Where the field has
    no surface in the bounds (an untrained field), the mesh has no faces.
    """
    if getattr(field, "kind", None) != "unsigned":
        raise InputError("the closest-point mesher needs an unsigned field with closest_point()")
    if surface not in (None, "open", "closed"):
        raise InputError(f"surface must be 'open', 'closed' or None, got {surface!r}")
    auto_resolution = resolution is None
    if resolution is None:
        resolution = int(field.params.get("mesh_resolution", TUNABLES.default_resolution))
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) or resolution < 8:
        raise InputError(f"resolution must be an integer >= 8, got {resolution!r}")
    box = np.asarray(field.bounds if bounds is None else bounds, np.float64)
    if box.shape != (2, 3) or not np.all(np.isfinite(box)) or not np.all(box[1] > box[0]):
        raise InputError(f"bounds must be a finite (2, 3) box with max > min, got {box.tolist()}")
    forced = surface
    decided = str(field.params.get("surface_decided", ""))

    T = TUNABLES
    ext = box[1] - box[0]
    h = float(ext.max()) / (int(resolution) - 1)
    n = np.maximum(np.ceil(ext / h - 1e-9).astype(np.int64) + 1, 2)
    coarse = _noisy_open_resolution(field, ext, h) if auto_resolution else None
    if coarse is not None and (forced == "open" or (forced is None and decided == "open")):
        # an open surface stays open whatever this grid's relations say, so its noisy
        # fit's mesh is the coarse one, without a (slower) pass on this grid first
        return extract_unsigned_mesh(field, resolution=coarse, bounds=box, surface="open",
                                     min_component_fraction=min_component_fraction)
    # a closed surface is meshed where the field puts it: free space decides the sides, so
    # the data-support mask (which keeps open sheets from growing lids) would only punch
    # holes where samples are far apart (big flat faces sampled at their corners)
    closed_early = forced == "closed" or (forced is None and decided == "closed")
    nodes, offs = _near_nodes(field, box[0], h, n, use_support=not closed_early)
    dist = np.linalg.norm(offs, axis=1)
    band = dist < T.band * h
    nodes, offs, dist = nodes[band], offs[band], dist[band]
    if len(nodes) < 8:
        return _empty("open")
    dirs = offs / np.maximum(dist, 1e-30)[:, None]

    index = np.full(tuple(n), -1, np.int64)
    index[nodes[:, 0], nodes[:, 1], nodes[:, 2]] = np.arange(len(nodes))
    from recon.meshing.surface_nets import grid_edges

    ea, eb, _ = grid_edges(nodes, index)  # edges between band nodes
    del index  # n^3 int64: freed before the meshing passes below (and the coarse one) allocate theirs
    ecos = np.einsum("ij,ij->i", dirs[ea], dirs[eb])
    rel = (ecos < T.oppose_cos).astype(np.int8)
    # confidence: how clearly the directions agree or oppose, less where a node is so close
    # to the surface that its direction is round-off
    near = np.minimum(dist[ea], dist[eb]) + 0.25 * h
    conf = np.abs(ecos) * np.minimum(1.0, (dist[ea] + dist[eb]) / near / 2.0)
    order = np.argsort(-conf, kind="stable")
    from recon.kernels.parity_union_cpu import parity_union

    side, conflicts = parity_union(len(nodes), ea[order], eb[order], rel[order], conf[order], T.conflict_confidence)
    conflict_share = conflicts / max(len(ea), 1)
    spacing = float(field.params.get("spacing_median", 0.0))
    tau = max(T.free_voxels * h, T.free_spacings * spacing)
    if forced is not None:
        surface = forced
    elif decided == "closed" and tau > T.band * h:
        # a sparse cloud's field is far coarser than this grid: relations between
        # neighbouring nodes' directions say little, free space (at its scale) says closed
        surface = "closed"
    elif conflict_share > T.closed_conflict_fraction:
        surface = "open"  # sure contradictions: the sides cannot be told apart everywhere
    else:
        surface = decided if decided in ("open", "closed") else "closed"
    global_sides = None
    if surface == "closed":
        global_sides = enclosed_sides(field, box[0], n, nodes, dist, dirs, h, tau, band=T.band,
                                      min_inside_nodes=T.min_inside_nodes,
                                      relations=(ea, eb, rel, conf))
        if global_sides is not None:
            side, inside_far = global_sides
    del ea, eb, ecos, rel, near, conf, order  # held through a coarse pass's recursion, they doubled its peak
    if global_sides is None:
        # open (or closed without an inside to be found): a net of the crossed edges,
        # whose sides are not needed, and which no labelling conflict tears
        if coarse is not None:
            return extract_unsigned_mesh(field, resolution=coarse, bounds=box, surface="open",
                                         min_component_fraction=min_component_fraction)
        return _open_net(field, box[0], h, n, nodes, offs, side, min_component_fraction)

    values = np.full(tuple(n), np.float32(T.band * h * 2), np.float32)
    # away from the surface too, inside is negative: cells at the band's inner edge must
    # not see a sign change
    values[inside_far] = -np.float32(T.band * h * 2)
    del inside_far
    sval = np.where(side == 1, -dist, dist).astype(np.float32)
    # no node exactly on the level: marching cubes would put several vertices on one node
    tiny = np.float32(1e-4 * h)
    sval[np.abs(sval) < tiny] = np.where(side[np.abs(sval) < tiny] == 1, -tiny, tiny)
    values[nodes[:, 0], nodes[:, 1], nodes[:, 2]] = sval
    from skimage.measure import marching_cubes

    try:
        verts, faces, _, _ = marching_cubes(values, level=0.0, gradient_direction="descent")
    except (ValueError, RuntimeError):
        return _empty(surface)
    del values
    faces = faces.astype(np.int64)
    # every sign agrees with one inside, so no crossing needs checking: snap onto the surface
    world = box[0] + verts.astype(np.float64) * h
    for _ in range(T.snap_steps):
        world = _closest(field, world)
    faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])]
    if len(faces) == 0:
        return _empty(surface)
    world, faces = drop_unused(world, faces)
    world, faces = close_holes(world, faces, max_edges=T.closed_hole_edges, project=lambda x: _closest(field, x))
    # small closed pieces off a closed surface are pockets of the field's noise
    world, faces = drop_small_pieces(world, faces, max(min_component_fraction, T.closed_min_piece))
    world = _onto_data(field, world)
    faces = wind_outward(world, faces)
    return TriangleMesh(world, faces, vertex_normals(world, faces), surface=surface)


def _noisy_open_resolution(field, ext, h):
    """A coarser resolution for the open mesh of a noisy fit, whose voxel is one point
    spacing, or None (clean or unknown data, or a voxel already that wide). On noisy scans
    a voxel of half a spacing resolves the field's noise and the net falls apart into
    fragments; at one spacing it comes out a whole, bumpy surface."""
    params = field.params
    spacing = float(params.get("spacing_median", 0.0) or 0.0)
    if params.get("clean", True) or spacing <= h:
        return None
    return max(8, int(float(ext.max()) / spacing) + 1)


def _open_net(field, origin, h, n, nodes, offs, side, min_component_fraction):
    """Mesh of an open surface: a surface net (recon.meshing.surface_nets) of the grid edges the
    surface crosses near ``nodes`` (M, 3), whose offsets x - C(x) from the field are
    ``offs`` (M, 3), wound by the nodes' sides (M,) where they hold.

    A field that keeps clean data (a dense fit) is read on the data's local planes here
    (``onto_data``: the targets its network was trained to reproduce, and reproduces only
    to a share of a point spacing): one to two voxels off the surface the network's
    directions are off by about three times the planes'."""
    from recon.meshing.surface_nets import (
        consistent_winding,
        crossed_edges,
        net_quads,
        split_quads,
    )

    T = TUNABLES
    foot, on_data = _feet_function(field)
    pos = origin + nodes * h
    feet = foot(pos) if on_data else pos - offs  # the field's own feet are known already
    dist = np.linalg.norm(pos - feet, axis=1)
    band = dist < T.band * h
    nodes, pos, feet, dist, side = nodes[band], pos[band], feet[band], dist[band], side[band]
    dirs = (pos - feet) / np.maximum(dist, 1e-30)[:, None]
    index = np.full(tuple(n), -1, np.int64)
    index[tuple(nodes.T)] = np.arange(len(nodes))
    a, b, axis = crossed_edges(nodes, pos, feet, dist, dirs, index, oppose_cos=T.oppose_cos,
                               slack=0.0 if on_data else _feet_jitter(field, h))
    del index
    t = dist[a] / np.maximum(dist[a] + dist[b], 1e-30)
    cross = pos[a] + (t * h)[:, None] * np.eye(3)[axis]
    # crossings where the surface is not (beyond an open boundary the tangent planes go on)
    near = (np.linalg.norm(cross - foot(cross), axis=1) < T.vertex_tolerance * h) & _supported(field, cross)
    a, b, axis, cross = a[near], b[near], axis[near], cross[near]
    if len(a) == 0:
        return _empty("open")
    # a quad faces +axis; it should face from the inside node to the outside one
    flip = (side[a] == 0) & (side[b] == 1)
    votes = (side[a] != side[b]).astype(np.float64)  # per edge: seams of the sides do not vote
    verts, quads, edge_of = net_quads(nodes, a, axis, cross, n, flip=flip)
    for _ in range(T.snap_steps):
        verts = foot(verts)
    faces, owner = split_quads(verts, quads, edge_of)  # owner: the edge each face came from
    cen = verts[faces].mean(axis=1)
    keep = (np.linalg.norm(cen - foot(cen), axis=1) < T.face_tolerance * h) & _supported(field, cen)
    faces, owner = faces[keep], owner[keep]
    faces, owner = _facing_the_field(foot, verts, faces, owner, h)
    if len(faces) == 0:
        return _empty("open")
    verts, faces = drop_unused(verts, faces)
    faces = consistent_winding(faces, seed_votes=votes[owner])
    verts, faces = close_holes(verts, faces, max_edges=T.open_hole_edges, project=lambda x: _closest(field, x))
    verts, faces = drop_small_pieces(verts, faces, min_component_fraction)
    verts = _onto_data(field, verts)
    return TriangleMesh(verts, faces, vertex_normals(verts, faces), surface="open")


def _feet_jitter(field, h):
    """How far (input units) a noisy fit's closest points scatter about the surface from one
    grid node to the next: a few times its estimated noise (``noise_ratio`` point spacings),
    at most ``TUNABLES.feet_jitter_max`` voxels; 0 for fields without that estimate. A node
    that close to the surface can lie on either side of a neighbour's tangent plane, and
    without this allowance the edges of whole rows of such nodes (where the surface passes
    a grid plane) test uncrossed and leave streaks of holes."""
    noise = float(field.params.get("noise_ratio", 0.0) or 0.0) * float(field.params.get("spacing_median", 0.0) or 0.0)
    return min(TUNABLES.feet_jitter_noise * noise, TUNABLES.feet_jitter_max * h)


def _facing_the_field(foot, verts, faces, owner, h):
    """Keep the faces whose normal the field's directions confirm: a voxel off the face on
    either side, the direction to the surface is within 60 degrees of the face's normal
    (or its opposite). Faces that join vertices moved onto two different sheets, or onto
    the two sides of a crease, stand across the surface and fail."""
    T = TUNABLES
    if len(faces) == 0:
        return faces, owner
    fn = np.cross(verts[faces[:, 1]] - verts[faces[:, 0]], verts[faces[:, 2]] - verts[faces[:, 0]])
    fn /= np.maximum(np.linalg.norm(fn, axis=1, keepdims=True), 1e-30)
    cen = verts[faces].mean(axis=1)
    agree = np.ones(len(faces))
    for sign in (1.0, -1.0):
        probe = cen + sign * T.normal_probe * h * fn
        u = probe - foot(probe)
        u /= np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1e-30)
        agree = np.minimum(agree, np.abs(np.einsum("ij,ij->i", u, fn)))
    keep = agree >= T.normal_agreement
    return faces[keep], owner[keep]


def _feet_function(field):
    """The closest-point function the open mesher reads, and whether it is the data's: the
    data's planes where the field keeps clean data, else the field itself. Planes through
    noisy data, even denoised, keep some of its jitter, and edges between them cross it
    (twice the faces, and a worse surface than the network's)."""
    if isinstance(field, ProjectsOntoData) and field.keeps_data and bool(field.params.get("clean", False)):
        return (lambda x: np.asarray(field.onto_data(x), np.float64)), True
    return (lambda x: _closest(field, x)), False


def _onto_data(field, verts):
    """A fitted field's vertices end on its data's planes (where it keeps its data)."""
    return np.asarray(field.onto_data(verts), np.float64) if isinstance(field, ProjectsOntoData) else verts


def _empty(surface: str) -> TriangleMesh:
    """No surface found (an untrained field, or bounds away from it): a mesh with no faces;
    callers decide whether that is an error (``recon fit`` says so and writes nothing)."""
    return TriangleMesh(np.zeros((0, 3)), np.zeros((0, 3), np.int64), np.zeros((0, 3), np.float32), surface=surface)


def _near_nodes(field, origin, h, n, *, use_support: bool = True):
    """Grid nodes (M, 3) int64 of the blocks near the surface, and their offsets x - C(x) (M, 3)."""
    s = TUNABLES.coarse_step
    nb = np.maximum(-(-(n - 1) // s), 1)
    kc = [np.arange(m + 1) * s for m in nb]
    g = np.stack(np.meshgrid(*kc, indexing="ij"), axis=-1).reshape(-1, 3)
    pts = origin + g * h
    sup = _supported(field, pts) if use_support else np.ones(len(pts), bool)
    d = np.full(len(pts), np.inf)
    d[sup] = np.linalg.norm(pts[sup] - _closest(field, pts[sup]), axis=1)
    d = d.reshape(tuple(nb + 1))
    min_d = np.full(tuple(nb), np.inf)
    for c in range(8):
        dx, dy, dz = (c >> 2) & 1, (c >> 1) & 1, c & 1
        np.minimum(min_d, d[dx: dx + nb[0], dy: dy + nb[1], dz: dz + nb[2]], out=min_d)
    # a surface point in a block lies within a block diagonal of one of its corners
    active = np.argwhere(min_d <= 1.25 * s * h * math.sqrt(3.0) + TUNABLES.band * h)
    if len(active) == 0:
        return np.zeros((0, 3), np.int64), np.zeros((0, 3))
    local = np.stack(np.meshgrid(*(np.arange(s + 1),) * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    # the distance is 1-Lipschitz: a node is no nearer the surface than d(corner) - |node - corner|
    # for each corner of its block; nodes whose bound exceeds the band are not evaluated
    dc = np.stack([d[active[:, 0] + cx, active[:, 1] + cy, active[:, 2] + cz]
                   for cx in (0, 1) for cy in (0, 1) for cz in (0, 1)], axis=1).astype(np.float32)  # (B, 8)
    corner = np.array([[cx, cy, cz] for cx in (0, 1) for cy in (0, 1) for cz in (0, 1)]) * s
    gap = (np.linalg.norm(local[:, None, :] - corner[None], axis=2) * h).astype(np.float32)  # (L, 8)
    marked = np.zeros(int(np.prod(n)), bool)  # nodes shared by neighbouring blocks count once
    step = max(1, (1 << 22) // (len(local) * 8))  # blocks per chunk: bounded scratch memory
    for b0 in range(0, len(active), step):
        bound = (dc[b0: b0 + step, None, :] - gap[None]).max(axis=2)  # (b, L)
        bi, li = np.nonzero(bound <= 1.1 * TUNABLES.band * h)
        nodes = active[b0: b0 + step][bi] * s + local[li]
        nodes = nodes[(nodes < n).all(axis=1)]
        marked[np.ravel_multi_index(nodes.T, tuple(n))] = True
    flat = np.flatnonzero(marked)
    del marked
    nodes = np.stack(np.unravel_index(flat, tuple(n)), axis=1).astype(np.int64)
    pts = origin + nodes * h
    if use_support:
        sup = _supported(field, pts)
        nodes, pts = nodes[sup], pts[sup]
    return nodes, pts - _closest(field, pts)


def surface_points(field, count: int, *, seed: int = 0, resolution: int | None = None):
    """``count`` points spread evenly over the surface (sampled on the closest-point mesh by
    area, then projected with C), and their oriented normals. Returns (points (M, 3) float64,
    normals (M, 3) float32)."""
    from recon.fields.closest_point_geometry import point_normals
    from recon.seeding import rng

    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise InputError(f"count must be a positive integer, got {count!r}")
    mesh = extract_unsigned_mesh(field, resolution=resolution)
    v, f = mesh.vertices, mesh.faces
    if len(f) == 0:
        raise InputError("the field has no surface inside its bounds to sample points on")
    area = 0.5 * np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1)
    gen = rng(seed)
    tri = gen.choice(len(f), size=int(count), p=area / area.sum())
    r1, r2 = gen.random(int(count)), gen.random(int(count))
    s = np.sqrt(r1)
    bary = np.stack([1 - s, s * (1 - r2), s * r2], axis=1)
    pts = np.einsum("nk,nkj->nj", bary, v[f[tri]])
    normals, _ = point_normals(field, pts, surface=mesh.surface)
    return np.asarray(field.closest_point(pts), np.float64), normals
