"""The triangle mesh passed between meshing, file writers, metrics, rendering and the viewer."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from recon.errors import InputError


@dataclass
class TriangleMesh:
    """An indexed triangle mesh in the user's own units.

    vertices       : (V, 3) float64, input units
    faces          : (F, 3) int64 indices into vertices, counter-clockwise seen from outside
    vertex_normals : (V, 3) float32 unit vectors, or None
    surface        : "open" or "closed" when the mesher decided which the surface is, else None
    vertex_colors  : (V, 3) uint8 RGB, or None
    vertex_attributes : {name: (V,) float32} per-vertex scalars, e.g. ``distance_to_data``
                     (input units); written into PLY files as vertex properties
    """

    vertices: np.ndarray
    faces: np.ndarray
    vertex_normals: np.ndarray | None = None
    surface: str | None = None
    vertex_colors: np.ndarray | None = None
    vertex_attributes: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self):
        v = np.asarray(self.vertices)
        f = np.asarray(self.faces)
        if v.ndim != 2 or v.shape[1] != 3:
            raise InputError(f"vertices must be (V, 3), got {v.shape}")
        if f.size == 0:
            f = f.reshape(0, 3)
        if f.ndim != 2 or f.shape[1] != 3:
            raise InputError(f"faces must be (F, 3) triangles, got {f.shape}")
        self.vertices = np.ascontiguousarray(v, dtype=np.float64)
        self.faces = np.ascontiguousarray(f, dtype=np.int64)
        if self.vertex_normals is not None:
            self.vertex_normals = np.ascontiguousarray(self.vertex_normals, dtype=np.float32)
        n = len(self.vertices)
        if self.vertex_colors is not None:
            col = np.asarray(self.vertex_colors)
            if col.shape != (n, 3):
                raise InputError(f"vertex_colors must be ({n}, 3) like the vertices, got {col.shape}")
            self.vertex_colors = np.ascontiguousarray(col, dtype=np.uint8)
        attributes = {}
        for name, values in self.vertex_attributes.items():
            if not str(name).isidentifier():
                raise InputError(f"vertex attribute names must be identifiers (letters, digits, _), got {name!r}")
            arr = np.asarray(values)
            if arr.shape != (n,):
                raise InputError(f"vertex attribute {name!r} must be ({n},) like the vertices, got {arr.shape}")
            attributes[str(name)] = np.ascontiguousarray(arr, dtype=np.float32)
        self.vertex_attributes = attributes

    @property
    def n_vertices(self) -> int:
        return len(self.vertices)

    @property
    def n_faces(self) -> int:
        return len(self.faces)

    def take_vertices(self, index: np.ndarray, faces: np.ndarray) -> "TriangleMesh":
        """A mesh of the vertices ``index`` ((K,) int64 into this mesh's vertices) and
        ``faces`` ((F, 3) int64 indices into that selection); normals, colours and
        attributes are selected along, so a cleanup that drops vertices keeps them."""
        return TriangleMesh(
            self.vertices[index], faces,
            None if self.vertex_normals is None else self.vertex_normals[index],
            surface=self.surface,
            vertex_colors=None if self.vertex_colors is None else self.vertex_colors[index],
            vertex_attributes={k: v[index] for k, v in self.vertex_attributes.items()},
        )

    def keep_vertices(self, keep: np.ndarray) -> "TriangleMesh":
        """The faces whose three vertices ``keep`` ((V,) bool) selects, and the vertices they
        use, with their normals, colours and attributes; e.g. ``mesh.keep_vertices(
        mesh.vertex_attributes["distance_to_data"] < 0.05)`` drops the surface far from data."""
        keep = np.asarray(keep)
        if keep.shape != (self.n_vertices,) or keep.dtype != bool:
            raise InputError(f"keep must be a ({self.n_vertices},) bool mask, got {keep.dtype} {keep.shape}")
        faces = self.faces[keep[self.faces].all(axis=1)]
        used = np.unique(faces)
        remap = np.full(self.n_vertices, -1, np.int64)
        remap[used] = np.arange(len(used))
        return self.take_vertices(used, remap[faces])

    def to_trimesh(self):
        """A ``trimesh.Trimesh`` view (imports trimesh); vertex colours go along."""
        import trimesh

        return trimesh.Trimesh(
            vertices=self.vertices,
            faces=self.faces,
            vertex_normals=self.vertex_normals,
            vertex_colors=self.vertex_colors,
            process=False,
        )

    @classmethod
    def from_trimesh(cls, tm) -> "TriangleMesh":
        return cls(np.asarray(tm.vertices), np.asarray(tm.faces))


def face_edges(faces) -> tuple[np.ndarray, np.ndarray]:
    """The directed edges of (F, 3) faces and an undirected key for each.

    Returns (edges (3F, 2) int64: face f's edges (v0, v1), (v1, v2), (v2, v0) are rows f,
    F + f and 2F + f; key (3F,) int64, the same for both directions of an edge, ordered as
    the (lower, higher) vertex pairs are)."""
    f = np.asarray(faces, np.int64).reshape(-1, 3)
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    n = np.int64(f.max()) + 1 if len(f) else np.int64(1)
    return e, np.minimum(e[:, 0], e[:, 1]) * n + np.maximum(e[:, 0], e[:, 1])


def face_components(faces: np.ndarray, n_vertices: int) -> np.ndarray:
    """(F,) int64 label of the connected piece each face belongs to (faces sharing a vertex connect)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    rows = np.concatenate([faces[:, 0], faces[:, 1]])
    cols = np.concatenate([faces[:, 1], faces[:, 2]])
    graph = coo_matrix((np.ones(len(rows), np.int8), (rows, cols)), shape=(n_vertices, n_vertices))
    _, labels = connected_components(graph, directed=False)
    return labels[faces[:, 0]].astype(np.int64)
