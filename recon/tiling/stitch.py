"""Welding the tiles' meshes (each cut to its core) into one mesh."""

from __future__ import annotations

import numpy as np

from recon.errors import InputError
from recon.triangles import TriangleMesh

WELD_SPACINGS = 1e-3
"Vertices of neighbouring tiles nearer than this many lattice spacings are one vertex."
SEAM_SPACINGS = 3.0
"A face cut at a tile border has its vertices within this many lattice spacings of it."


def stitch(meshes, *, h: float, grid=None, weld_spacings: float = WELD_SPACINGS) -> TriangleMesh:
    """One mesh from the tiles' meshes: vertices within ``weld_spacings`` x ``h`` (input
    units) of each other welded into one (at their mean), faces that collapse or repeat
    dropped, and each connected piece wound alike (the way most of its faces were).

    meshes : TriangleMesh per tile, input units (float64), each cut to its tile's core
    grid   : the TileGrid, when given only vertices within SEAM_SPACINGS x ``h`` of its
             tile borders are candidates for welding (the others are a tile's own)
    Returns a TriangleMesh, float64, input units and frame.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    from recon.meshing.surface_nets import consistent_winding

    if not (np.isfinite(h) and h > 0):
        raise InputError(f"h must be a positive length, got {h!r}")
    meshes = [m for m in meshes if m.n_faces]
    if not meshes:
        return TriangleMesh(np.zeros((0, 3)), np.zeros((0, 3), np.int64))
    offsets = np.cumsum([0] + [m.n_vertices for m in meshes])
    verts = np.concatenate([m.vertices for m in meshes])
    faces = np.concatenate([m.faces + o for m, o in zip(meshes, offsets[:-1])])
    # the tree works relative to a corner: georeferenced coordinates keep their digits
    corner = verts.min(axis=0)
    candidates = np.arange(len(verts)) if grid is None else np.flatnonzero(_near_borders(verts, grid, SEAM_SPACINGS * h))
    pairs = cKDTree(verts[candidates] - corner).query_pairs(weld_spacings * h, output_type="ndarray")
    pairs = candidates[pairs] if len(pairs) else np.zeros((0, 2), np.int64)
    n = len(verts)
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n)) if len(pairs) else \
        coo_matrix((n, n))
    _, label = connected_components(graph, directed=False)
    count = np.bincount(label)
    merged = np.zeros((len(count), 3))
    np.add.at(merged, label, verts - corner)
    merged = merged / count[:, None] + corner
    faces = label[faces]
    faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])]
    _, first = np.unique(np.sort(faces, axis=1), axis=0, return_index=True)
    faces = faces[np.sort(first)]
    used = np.unique(faces)
    remap = np.full(len(merged), -1, np.int64)
    remap[used] = np.arange(len(used))
    faces = consistent_winding(remap[faces], seed_votes=np.ones(len(faces)))
    return TriangleMesh(merged[used], faces)


def _near_borders(verts: np.ndarray, grid, reach: float) -> np.ndarray:
    """(V,) bool: vertices within ``reach`` (x or y) of a border between two tiles."""
    near = np.zeros(len(verts), bool)
    for axis in (0, 1):
        if grid.shape[axis] < 2:
            continue
        rel = (verts[:, axis] - grid.origin[axis]) / grid.size
        line = np.clip(np.rint(rel), 1, grid.shape[axis] - 1)
        near |= np.abs(rel - line) * grid.size <= reach
    return near
