"""Clean-up of extracted triangle meshes: unused vertices, small pieces, boundary loops and
hole filling, outward winding, vertex normals. Vertices (V, 3) float64, faces (F, 3) int64."""

from __future__ import annotations

import numpy as np


def drop_unused(verts, faces):
    """The vertices that some face uses, and the faces re-indexed onto them."""
    used = np.zeros(len(verts), bool)
    used[faces.ravel()] = True
    remap = np.cumsum(used) - 1
    return verts[used], remap[faces]


def drop_small_pieces(verts, faces, fraction):
    """Drop connected pieces with fewer faces than ``fraction`` of the largest one's."""
    if fraction <= 0 or len(faces) == 0:
        return verts, faces
    from recon.triangles import face_components

    lab = face_components(faces, len(verts))
    counts = np.bincount(lab)
    return drop_unused(verts, faces[counts[lab] >= fraction * counts.max()])


def boundary_loops(faces: np.ndarray) -> list[np.ndarray]:
    """Closed loops of boundary edges (edges used by one face), as vertex index arrays."""
    from recon.triangles import face_edges

    e, key = face_edges(faces)
    _, inv, counts = np.unique(key, return_inverse=True, return_counts=True)
    bnd = e[counts[inv] == 1]
    # walk the boundary backwards relative to the faces, so a fan over it faces the same way
    nxt: dict[int, list[int]] = {}
    for a, b in bnd:
        nxt.setdefault(int(b), []).append(int(a))
    loops = []
    while nxt:
        start = next(iter(nxt))
        loop = [start]
        cur = start
        while True:
            outs = nxt.get(cur)
            if not outs:
                break
            nb = outs.pop()
            if not outs:
                del nxt[cur]
            if nb == start:
                loops.extend(_simple_loops(loop))
                break
            loop.append(nb)
            cur = nb
            if len(loop) > len(bnd):
                break
    return loops


def _simple_loops(loop: list[int]) -> list[np.ndarray]:
    """Split a closed walk that passes a vertex more than once into simple loops."""
    out, stack, pos = [], [], {}
    for v in loop:
        if v in pos:
            k = pos[v]
            cycle = stack[k:]
            for u in cycle[1:]:
                del pos[u]
            del stack[k + 1:]
            if len(cycle) >= 3:
                out.append(np.array(cycle, np.int64))
        else:
            pos[v] = len(stack)
            stack.append(v)
    if len(stack) >= 3:
        out.append(np.array(stack, np.int64))
    return out


def close_holes(verts, faces, *, max_edges: int | None, project):
    """Fan-fill boundary loops of at most ``max_edges`` edges (None: every loop) around a
    new vertex at the loop's centre, moved onto the surface by ``project`` ((K, 3) points
    -> (K, 3) float64 closest surface points)."""
    if len(faces) == 0:
        return verts, faces
    loops = [lp for lp in boundary_loops(faces) if len(lp) >= 3 and (max_edges is None or len(lp) <= max_edges)]
    if not loops:
        return verts, faces
    lengths = np.array([len(lp) for lp in loops])
    flat = np.concatenate(loops)
    owner = np.repeat(np.arange(len(loops)), lengths)
    start = np.cumsum(lengths) - lengths
    nxt = np.arange(len(flat)) + 1
    nxt[start + lengths - 1] = start  # each loop's last vertex connects to its first
    centres = np.zeros((len(loops), 3))
    np.add.at(centres, owner, verts[flat])
    centres = project(centres / lengths[:, None])
    fan = np.stack([flat, flat[nxt], len(verts) + owner], axis=1)
    return np.concatenate([verts, centres]), np.concatenate([faces, fan])


def wind_outward(verts, faces):
    """Flip each connected piece whose signed volume is negative (closed surfaces)."""
    from recon.triangles import face_components

    lab = face_components(faces, len(verts))
    v0, v1, v2 = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    vol = np.einsum("ij,ij->i", v0, np.cross(v1, v2))
    per = np.bincount(lab, weights=vol)
    flip = per[lab] < 0
    faces = faces.copy()
    faces[flip] = faces[flip][:, [0, 2, 1]]
    return faces


def vertex_normals(verts, faces) -> np.ndarray:
    """(V, 3) float32 area-weighted unit vertex normals."""
    fn = np.cross(verts[faces[:, 1]] - verts[faces[:, 0]], verts[faces[:, 2]] - verts[faces[:, 0]])
    vn = np.zeros_like(verts)
    for k in range(3):
        np.add.at(vn, faces[:, k], fn)
    norm = np.linalg.norm(vn, axis=1, keepdims=True)
    return (vn / np.where(norm > 0, norm, 1.0)).astype(np.float32)
