"""Per-vertex colours and distance to the data, carried from the input cloud onto a mesh."""

from __future__ import annotations

import numpy as np

from recon.cloud import Cloud
from recon.device import query_workers
from recon.triangles import TriangleMesh

DISTANCE_TO_DATA = "distance_to_data"
"The vertex attribute (and PLY vertex property) holding each vertex's distance to the nearest input point."
COLOR_NEIGHBOURS = 4
"How many nearest input points a vertex's colour is averaged from."


def attach_vertex_attributes(mesh: TriangleMesh, cloud: Cloud, *, k: int = COLOR_NEIGHBOURS) -> TriangleMesh:
    """``mesh`` with ``distance_to_data`` and, when the cloud has colours, vertex colours.

    mesh  : TriangleMesh, input units
    cloud : the points the mesh was fitted to, same units and frame
    k     : colour neighbours: each vertex takes the inverse-distance-weighted mean colour
            of its ``k`` nearest points, (V, 3) uint8 like the cloud's
    Sets ``vertex_attributes["distance_to_data"]``: (V,) float32, input units, the distance
    from each vertex to its nearest point (a user can drop vertices far from any data).
    Returns a new TriangleMesh; the input mesh is not changed.
    """
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    attributes = dict(mesh.vertex_attributes)
    colors = None
    if mesh.n_vertices == 0 or len(cloud) == 0:
        attributes[DISTANCE_TO_DATA] = np.full(mesh.n_vertices, np.inf, np.float32)
    else:
        kk = min(int(k), len(cloud)) if cloud.colors is not None else 1
        dist, idx = _nearest(mesh.vertices, cloud.points, kk)
        attributes[DISTANCE_TO_DATA] = dist[:, 0].astype(np.float32)
        if cloud.colors is not None:
            colors = _weighted_colors(cloud.colors, dist, idx, cloud.bounds())
    return TriangleMesh(mesh.vertices, mesh.faces, mesh.vertex_normals, surface=mesh.surface,
                        vertex_colors=colors if colors is not None else mesh.vertex_colors,
                        vertex_attributes=attributes)


def distance_to_points(vertices: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(V,) float32: the distance from each of ``vertices`` (V, 3) to the nearest of
    ``points`` (N, 3), input units; inf when there are no points."""
    vertices = np.asarray(vertices, np.float64).reshape(-1, 3)
    points = np.asarray(points, np.float64).reshape(-1, 3)
    if len(points) == 0:
        return np.full(len(vertices), np.inf, np.float32)
    return _nearest(vertices, points, 1)[0][:, 0].astype(np.float32)


def _nearest(vertices: np.ndarray, points: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(V, k) float64 distances and (V, k) int64 indices of each vertex's ``k`` nearest points."""
    from scipy.spatial import cKDTree

    # the tree works relative to a corner, so georeferenced coordinates keep their digits
    corner = points.min(axis=0)
    dist, idx = cKDTree(points - corner).query(vertices - corner, k=k, workers=query_workers())
    return dist.reshape(len(vertices), k), idx.reshape(len(vertices), k)


def _weighted_colors(colors: np.ndarray, dist: np.ndarray, idx: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """(V, 3) uint8: per row, the colours of points ``idx`` (V, k) weighted by 1 / ``dist``."""
    # a floor far below any spacing: a vertex on a point takes that point's colour, without dividing by 0
    floor = max(1e-9 * float(np.linalg.norm(bounds[1] - bounds[0])), np.finfo(np.float64).tiny)
    w = 1.0 / np.maximum(dist, floor)
    mean = np.einsum("vk,vkc->vc", w, colors[idx].astype(np.float64)) / w.sum(axis=1, keepdims=True)
    return np.clip(np.rint(mean), 0, 255).astype(np.uint8)
