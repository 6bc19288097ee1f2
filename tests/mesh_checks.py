"""One shared mesh-validity checker and mesh measurements for tests.

Use from any test (``tests/`` is on sys.path through conftest)::

    from mesh_checks import check_mesh, euler_characteristic, signed_volume
    check_mesh(mesh, watertight=True)

Works on anything with ``vertices`` (V, 3) and ``faces`` (F, 3) (a TriangleMesh, a trimesh).
"""

from __future__ import annotations

import numpy as np


def _arrays(mesh):
    return np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces)


def check_mesh(mesh, *, watertight: bool = False, area_rtol: float = 1e-12) -> None:
    """Assert the mesh is valid; with ``watertight`` also closed and consistently wound.

    - vertices (V, 3) finite, faces (F, 3) integer indices in [0, V), F > 0;
    - no degenerate face: three distinct indices and area > area_rtol * (bbox diagonal)^2;
    - every vertex used by some face;
    - vertex normals, when present: (V, 3), finite;
    - watertight: every undirected edge in exactly two faces, once in each direction
      (so the winding is consistent across every edge).
    """
    v, f = _arrays(mesh)
    assert v.ndim == 2 and v.shape[1] == 3, f"vertices must be (V, 3), got {v.shape}"
    assert f.ndim == 2 and f.shape[1] == 3, f"faces must be (F, 3), got {f.shape}"
    assert len(f) > 0, "mesh has no faces"
    assert np.issubdtype(f.dtype, np.integer), f"faces must be integers, got {f.dtype}"
    assert np.isfinite(v).all(), "vertices hold NaN or inf"
    assert f.min() >= 0 and f.max() < len(v), f"face indices outside [0, {len(v)})"
    distinct = (f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])
    assert distinct.all(), f"{int((~distinct).sum())} faces repeat a vertex index"
    diag2 = float(np.sum((v.max(0) - v.min(0)) ** 2))
    area = face_areas(mesh)
    small = area <= area_rtol * diag2
    assert not small.any(), f"{int(small.sum())} faces have (near) zero area"
    used = np.zeros(len(v), bool)
    used[f.ravel()] = True
    assert used.all(), f"{int((~used).sum())} vertices are used by no face"
    normals = getattr(mesh, "vertex_normals", None)
    if normals is not None:
        n = np.asarray(normals)
        assert n.shape == v.shape, f"vertex normals {n.shape} do not match vertices {v.shape}"
        assert np.isfinite(n).all(), "vertex normals hold NaN or inf"
    if watertight:
        directed = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
        undirected = np.sort(directed, axis=1)
        _, counts = np.unique(undirected, axis=0, return_counts=True)
        assert (counts == 2).all(), (
            f"not closed: {int((counts == 1).sum())} boundary edges, {int((counts > 2).sum())} edges in > 2 faces"
        )
        _, dcounts = np.unique(directed, axis=0, return_counts=True)
        assert (dcounts == 1).all(), f"inconsistent winding: {int((dcounts > 1).sum())} directed edges repeat"


def face_areas(mesh) -> np.ndarray:
    v, f = _arrays(mesh)
    return 0.5 * np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1)


def surface_area(mesh) -> float:
    return float(face_areas(mesh).sum())


def signed_volume(mesh) -> float:
    """Enclosed volume; positive when faces are counter-clockwise seen from outside."""
    v, f = _arrays(mesh)
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


def euler_characteristic(mesh) -> int:
    """V - E + F (2 for a sphere, 0 for a torus)."""
    v, f = _arrays(mesh)
    edges = np.unique(np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1), axis=0)
    return int(len(v) - len(edges) + len(f))


def boundary_edge_count(mesh) -> int:
    _, f = _arrays(mesh)
    und = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
    _, counts = np.unique(und, axis=0, return_counts=True)
    return int((counts == 1).sum())


def canonical_vertices(mesh, *, decimals: int = 6) -> np.ndarray:
    """Vertices rounded and sorted lexicographically: compares meshes regardless of vertex order."""
    v = np.round(np.asarray(mesh.vertices, dtype=np.float64), decimals)
    return v[np.lexsort(v.T[::-1])]


def same_mesh(a, b, *, decimals: int = 6) -> bool:
    """Same vertex set (rounded, order ignored) and same set of triangles by vertex position."""
    if len(a.vertices) != len(b.vertices) or len(a.faces) != len(b.faces):
        return False
    if not np.array_equal(canonical_vertices(a, decimals=decimals), canonical_vertices(b, decimals=decimals)):
        return False

    def tri_keys(m):
        v = np.round(np.asarray(m.vertices, dtype=np.float64), decimals)
        corners = v[np.asarray(m.faces)]  # (F, 3, 3)
        corners = np.sort(corners.view([("", corners.dtype)] * 3).reshape(len(corners), 3), axis=1)
        rows = np.ascontiguousarray(corners).view(np.float64).reshape(len(m.faces), 9)
        return rows[np.lexsort(rows.T[::-1])]

    return bool(np.array_equal(tri_keys(a), tri_keys(b)))
