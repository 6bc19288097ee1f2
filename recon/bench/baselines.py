"""Baselines run through their real libraries: Open3D screened Poisson and ball pivoting.

Each is a function ``cloud -> TriangleMesh`` (input units). Everything a user of the
library would have to do is inside the function, and so inside the bench's timing:
normal estimation and orientation when the cloud carries none, the reconstruction,
and Poisson's density trimming.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recon.cloud import Cloud
from recon.triangles import TriangleMesh


@dataclass(frozen=True)
class BaselineSettings:
    """The baselines' settings, in one place (recorded in the bench's results.json)."""

    normal_knn: int = 30
    "Neighbours used by Open3D to estimate a normal (PCA of the k nearest points)."
    orient_knn: int = 30
    "Neighbours in Open3D's consistent-tangent-plane graph that orients the normals."
    poisson_depth: int = 9
    "Screened Poisson octree depth (grid of at most 2^depth per side)."
    poisson_trim_quantile: float = 0.02
    "Poisson vertices with density below this quantile are removed (with their faces)."
    bpa_radii: tuple[float, ...] = (1.0, 2.0, 4.0)
    "Ball-pivoting radii, as multiples of the mean nearest-neighbour spacing."


SETTINGS = BaselineSettings()


def _point_cloud_with_normals(cloud: Cloud, settings: BaselineSettings):
    """An Open3D PointCloud with unit normals: the cloud's own, or estimated and oriented by Open3D."""
    import open3d as o3d

    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(cloud.points))
    if cloud.normals is not None:
        pcd.normals = o3d.utility.Vector3dVector(cloud.normals.astype(np.float64))
        pcd.normalize_normals()
    else:
        pcd.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(knn=settings.normal_knn))
        pcd.orient_normals_consistent_tangent_plane(settings.orient_knn)
    return pcd


def _to_mesh(o3d_mesh) -> TriangleMesh:
    return TriangleMesh(np.asarray(o3d_mesh.vertices), np.asarray(o3d_mesh.triangles).astype(np.int64))


def o3d_poisson(cloud: Cloud, *, settings: BaselineSettings = SETTINGS) -> TriangleMesh:
    """Open3D screened Poisson, depth 9, vertices below the 2 % density quantile trimmed.

    cloud : points (N, 3) float64 input units, normals optional (estimated when absent).
    Returns a TriangleMesh in input units.
    """
    import open3d as o3d

    pcd = _point_cloud_with_normals(cloud, settings)
    mesh, densities = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(pcd, depth=settings.poisson_depth)
    densities = np.asarray(densities)
    if settings.poisson_trim_quantile > 0 and len(densities):
        mesh.remove_vertices_by_mask(densities < np.quantile(densities, settings.poisson_trim_quantile))
    return _to_mesh(mesh)


def o3d_bpa(cloud: Cloud, *, settings: BaselineSettings = SETTINGS) -> TriangleMesh:
    """Open3D ball pivoting with radii 1, 2 and 4 x the mean nearest-neighbour spacing.

    cloud : points (N, 3) float64 input units, normals optional (estimated when absent).
    Returns a TriangleMesh in input units (may be open or have holes: BPA interpolates).
    """
    import open3d as o3d

    pcd = _point_cloud_with_normals(cloud, settings)
    spacing = float(np.mean(np.asarray(pcd.compute_nearest_neighbor_distance())))
    radii = o3d.utility.DoubleVector([r * spacing for r in settings.bpa_radii])
    mesh = o3d.geometry.TriangleMesh.create_from_point_cloud_ball_pivoting(pcd, radii)
    return _to_mesh(mesh)
