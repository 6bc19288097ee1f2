"""Welding the tiles' meshes (each cut to its core) into one mesh."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from recon.errors import InputError
from recon.meshing.vertex_attributes import DISTANCE_TO_DATA as DISTANCE
from recon.triangles import TriangleMesh

WELD_SPACINGS = 1e-3
"Vertices of neighbouring tiles nearer than this many lattice spacings are one vertex."
SEAM_SPACINGS = 3.0
"A face cut at a tile border has its vertices within this many lattice spacings of it."


def stitch(meshes, *, h: float, grid=None, weld_spacings: float = WELD_SPACINGS,
           seam_reach: float | None = None) -> TriangleMesh:
    """One mesh from the tiles' meshes: vertices within ``weld_spacings`` x ``h`` (input
    units) of each other welded into one (at their mean), faces that collapse or repeat
    dropped, and each connected piece wound alike (the way most of its faces were).

    meshes : TriangleMesh per tile, input units (float64), each cut to its tile's core
    grid   : the TileGrid, when given only vertices within ``seam_reach`` (input units;
             default SEAM_SPACINGS x ``h``) of its tile borders are candidates for welding
             (the others are a tile's own)
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
    reach = SEAM_SPACINGS * h if seam_reach is None else float(seam_reach)
    candidates = np.arange(len(verts)) if grid is None else np.flatnonzero(_near_borders(verts, grid, reach))
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
    attributes = {}
    for name in set.intersection(*(set(m.vertex_attributes) for m in meshes)):
        # a welded vertex keeps the smallest value: for distance_to_data, its nearest point's
        values = np.full(len(count), np.inf, np.float32)
        np.minimum.at(values, label, np.concatenate([m.vertex_attributes[name] for m in meshes]))
        attributes[name] = values
    faces = label[faces]
    faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])]
    _, first = np.unique(np.sort(faces, axis=1), axis=0, return_index=True)
    faces = faces[np.sort(first)]
    used = np.unique(faces)
    remap = np.full(len(merged), -1, np.int64)
    remap[used] = np.arange(len(used))
    faces = consistent_winding(remap[faces], seed_votes=np.ones(len(faces)))
    return TriangleMesh(merged[used], faces, vertex_attributes={k: v[used] for k, v in attributes.items()})


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


def stitch_to_ply(mesh_paths, output, *, h: float, grid, weld_spacings: float = WELD_SPACINGS,
                  inputs=(), seam_reach: float | None = None) -> tuple[int, int]:
    """Weld the tiles' meshes as :func:`stitch` does, straight into a binary PLY at
    ``output``, holding one tile's mesh at a time (and the vertices near tile borders).

    mesh_paths : .npz files with ``vertices`` (V, 3) float64 and ``faces`` (F, 3), one per
                 tile, each cut to its tile's core; with ``distance_to_data`` (V,) in every
                 file, it is written as a float vertex property (welded vertices keep the least)
    Each tile's faces keep their winding, or all turn, so that the tiles wind alike across
    their borders. Writes vertices as float64. Returns (vertices, faces) written.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    from recon.io.atomic import atomic_path

    if not (np.isfinite(h) and h > 0):
        raise InputError(f"h must be a positive length, got {h!r}")
    reach = SEAM_SPACINGS * h if seam_reach is None else float(seam_reach)
    # pass 1: the vertices near borders, by global index (tiles' vertices in order)
    sizes, seam_ids, seam_pos, seam_edges, seam_dist = [], [], [], [], []
    base = 0
    with_distance = True
    for k, path in enumerate(mesh_paths):
        with np.load(path) as data:
            v, f = data["vertices"], data["faces"]
            d = data[DISTANCE] if DISTANCE in data else None
        near = _near_borders(v, grid, reach)
        seam_ids.append(base + np.flatnonzero(near))
        seam_pos.append(v[near])
        with_distance = with_distance and d is not None
        seam_dist.append(d[near] if d is not None else np.zeros(int(near.sum()), np.float32))
        # directed edges between border vertices, to see which way each tile winds
        e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
        e = e[near[e[:, 0]] & near[e[:, 1]]]
        seam_edges.append(np.column_stack([e + base, np.full(len(e), k)]))
        sizes.append((len(v), len(f)))
        base += len(v)
    total = base
    ids = np.concatenate(seam_ids) if seam_ids else np.zeros(0, np.int64)
    pos = np.concatenate(seam_pos) if seam_pos else np.zeros((0, 3))
    dist = np.concatenate(seam_dist).astype(np.float32) if seam_dist else np.zeros(0, np.float32)
    rep = np.arange(len(ids))
    merged = pos.copy()
    merged_dist = dist
    if len(ids):
        corner = pos.min(axis=0)
        pairs = cKDTree(pos - corner).query_pairs(weld_spacings * h, output_type="ndarray")
        m = len(ids)
        graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(m, m))
        _, label = connected_components(graph, directed=False)
        first = np.full(label.max() + 1, m, np.int64)
        np.minimum.at(first, label, np.arange(m))
        rep = first[label]  # every welded vertex points at the first of its group (lowest global id)
        sums = np.zeros((label.max() + 1, 3))
        np.add.at(sums, label, pos - corner)
        merged = (sums / np.bincount(label)[:, None] + corner)[label]
        least = np.full(label.max() + 1, np.inf, np.float32)
        np.minimum.at(least, label, dist)
        merged_dist = least[label]
    dropped = np.sort(ids[rep != np.arange(len(ids))])
    to_rep = dict(zip(ids[rep != np.arange(len(ids))].tolist(), ids[rep[rep != np.arange(len(ids))]].tolist()))

    def final(global_ids: np.ndarray) -> np.ndarray:
        g = np.asarray(global_ids, np.int64)
        if to_rep:
            g = _map(g, to_rep)
        return g - np.searchsorted(dropped, g)

    flips = _tile_flips(seam_edges, final, len(mesh_paths))
    vertex_dtype = [("p", "<f8", (3,))] + ([(DISTANCE, "<f4")] if with_distance else [])
    n_faces = 0
    output = Path(output)
    with atomic_path(output, inputs=inputs) as tmp:
        vfile, ffile = Path(f"{tmp}.v"), Path(f"{tmp}.f")
        try:
            with open(vfile, "wb") as vf, open(ffile, "wb") as ff:
                base = 0
                for k, path in enumerate(mesh_paths):
                    with np.load(path) as data:
                        v, f = np.array(data["vertices"], np.float64), data["faces"].astype(np.int64)
                        d = np.array(data[DISTANCE], np.float32) if with_distance else None
                    glob_ids = base + np.arange(len(v))
                    at = np.searchsorted(ids, seam_ids[k])  # ids ascend
                    v[seam_ids[k] - base] = merged[at]
                    keep = np.ones(len(v), bool)
                    keep[np.searchsorted(glob_ids, dropped[(dropped >= base) & (dropped < base + len(v))])] = False
                    rows = np.empty(int(keep.sum()), dtype=vertex_dtype)
                    rows["p"] = v[keep]
                    if with_distance:
                        d[seam_ids[k] - base] = merged_dist[at]
                        rows[DISTANCE] = d[keep]
                    vf.write(rows.tobytes())
                    g = final(glob_ids[f].ravel()).reshape(-1, 3)
                    g = g[(g[:, 0] != g[:, 1]) & (g[:, 1] != g[:, 2]) & (g[:, 0] != g[:, 2])]
                    if flips[k]:
                        g = g[:, ::-1]
                    rows = np.empty(len(g), dtype=[("n", "u1"), ("i", "<i4", (3,))])
                    rows["n"], rows["i"] = 3, g
                    ff.write(rows.tobytes())
                    n_faces += len(g)
                    base += len(v)
            n_vertices = total - len(dropped)
            header = (f"ply\nformat binary_little_endian 1.0\nelement vertex {n_vertices}\n"
                      "property double x\nproperty double y\nproperty double z\n"
                      + (f"property float {DISTANCE}\n" if with_distance else "") +
                      f"element face {n_faces}\nproperty list uchar int vertex_indices\nend_header\n").encode()
            with open(tmp, "wb") as out:
                out.write(header)
                for part in (vfile, ffile):
                    with open(part, "rb") as src:
                        shutil.copyfileobj(src, out, 1 << 24)
        finally:
            for part in (vfile, ffile):
                part.unlink(missing_ok=True)
    return n_vertices, n_faces


def _map(g: np.ndarray, to_rep: dict) -> np.ndarray:
    keys = np.fromiter(to_rep.keys(), np.int64, len(to_rep))
    vals = np.fromiter(to_rep.values(), np.int64, len(to_rep))
    order = np.argsort(keys)
    keys, vals = keys[order], vals[order]
    at = np.clip(np.searchsorted(keys, g), 0, len(keys) - 1)
    hit = keys[at] == g
    out = g.copy()
    out[hit] = vals[at[hit]]
    return out


def _tile_flips(seam_edges, final, n_tiles: int) -> np.ndarray:
    """(T,) bool: which tiles turn all their faces so that neighbours wind alike (an edge
    two tiles share runs one way in one and the other way in the other)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import breadth_first_order

    flips = np.zeros(n_tiles, bool)
    if not seam_edges or n_tiles < 2:
        return flips
    e = np.concatenate(seam_edges)
    if len(e) == 0:
        return flips
    a, b, tile = final(e[:, 0]), final(e[:, 1]), e[:, 2]
    key = np.minimum(a, b) * (1 << 31) + np.maximum(a, b)
    forward = a < b
    order = np.argsort(key, kind="stable")
    key, forward, tile = key[order], forward[order], tile[order]
    pair = np.flatnonzero((key[1:] == key[:-1]) & (tile[1:] != tile[:-1]))
    t1, t2 = tile[pair], tile[pair + 1]
    agree = np.where(forward[pair] != forward[pair + 1], 1.0, -1.0)  # opposite directions: alike
    votes = coo_matrix((agree, (t1, t2)), shape=(n_tiles, n_tiles)).tocsr()
    votes = (votes + votes.T).tocsr()
    seen = np.zeros(n_tiles, bool)
    for start in range(n_tiles):
        if seen[start]:
            continue
        order_, pred = breadth_first_order(abs(votes), start, directed=False, return_predecessors=True)
        seen[order_] = True
        for t in order_[1:]:
            p = pred[t]
            flips[t] = flips[p] ^ (votes[p, t] < 0)
    return flips
