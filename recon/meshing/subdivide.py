"""One interpolating subdivision step for meshes through the points: every triangle into
four, the new vertices on cubic Hermite curves between their edge's ends.

A mesh through the samples is made of chords: between two samples on a surface of radius
of curvature R, a chord of length c lies up to its sagitta, c^2 / 8R, inside the surface,
and its face's normal is off the surface's by up to c / 2R. A cubic Hermite curve between
the two samples, tangent to the surface at both (normals n_a, n_b), has its midpoint at

    m = (a + b) / 2 + ((b - a) . (n_b - n_a) / 8) n,    n = (n_a + n_b) / |n_a + n_b|,

which is on the surface to third order (on a circle, ``(b - a) . (n_b - n_a) = c^2 / R``).
The samples stay where they are, so the mesh still passes through them, and a closed mesh
stays closed. The normals are the mesh's own (the faces around each sample weighted as
Max (1999) does, which is exact on a sphere however unevenly it is sampled), so any
orientation will do: a neighbour's normal is turned to agree first.

``subdivide_hermite(mesh) -> TriangleMesh``.
"""

from __future__ import annotations

import numpy as np

from recon.triangles import TriangleMesh

MAX_BEND = 0.25
"An edge's midpoint moves at most this share of the edge's length (across a crease the two normals disagree and the curve would overshoot)."


def subdivide_hermite(mesh: TriangleMesh, *, max_bend: float = MAX_BEND) -> TriangleMesh:
    """``mesh`` with each face split into four, the edges' new vertices on the surface's
    Hermite curves (see the module's notes).

    mesh : TriangleMesh, input units; its vertices are kept, in order, as the first V vertices
    Returns a TriangleMesh (V + E vertices float64, 4F faces wound as the face they split;
    area-weighted vertex normals; the same ``surface``; colours and attributes are not
    carried: attach them again).
    """
    from recon.meshing.cleanup import vertex_normals

    v, f = mesh.vertices, mesh.faces
    if len(f) == 0:
        return mesh
    n = sphere_exact_normals(v, f)
    edges = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
    unique, which = np.unique(edges, axis=0, return_inverse=True)
    a, b = unique[:, 0], unique[:, 1]
    na, nb = n[a], n[b]
    nb = np.where(((na * nb).sum(axis=1) < 0)[:, None], -nb, nb)
    mean = na + nb
    mean /= np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-300)
    chord = v[b] - v[a]
    bend = (chord * (nb - na)).sum(axis=1) / 8.0
    length = np.linalg.norm(chord, axis=1)
    limit = max_bend * length
    mid = 0.5 * (v[a] + v[b]) + np.clip(bend, -limit, limit)[:, None] * mean
    m = which.reshape(3, -1).T + len(v)  # each face's edges 01, 12, 20
    c0, c1, c2 = f[:, 0], f[:, 1], f[:, 2]
    m01, m12, m20 = m[:, 0], m[:, 1], m[:, 2]
    faces = np.concatenate([np.column_stack([c0, m01, m20]), np.column_stack([m01, c1, m12]),
                            np.column_stack([m20, m12, c2]), np.column_stack([m01, m12, m20])])
    verts = np.concatenate([v, mid])
    return TriangleMesh(verts, faces, vertex_normals(verts, faces), surface=mesh.surface)


def sphere_exact_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) float64 unit vertex normals, each corner's face normal weighted by
    1 / (|a|^2 |b|^2) for its two edges a, b (Max 1999): exact for vertices on a sphere,
    however unevenly they are spaced, where area or angle weights are off by the
    unevenness. Zero for a vertex no face uses."""
    v = np.asarray(vertices, np.float64)
    out = np.zeros_like(v)
    for k in range(3):
        c, a, b = faces[:, k], faces[:, (k + 1) % 3], faces[:, (k + 2) % 3]
        ea, eb = v[a] - v[c], v[b] - v[c]
        w = (ea * ea).sum(axis=1) * (eb * eb).sum(axis=1)
        np.add.at(out, c, np.cross(ea, eb) / np.maximum(w, 1e-300)[:, None])
    norm = np.linalg.norm(out, axis=1, keepdims=True)
    return np.divide(out, norm, out=np.zeros_like(out), where=norm > 0)
