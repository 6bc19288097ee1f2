"""Reading and writing point clouds, meshes and fields; every output is written atomically.

    from recon.io import read_cloud, write_mesh
    cloud = read_cloud("scan.ply")                       # or .pcd .xyz .las .npz .obj ...
    cloud = read_cloud("part.stl", sample=100_000)       # area-weighted surface samples
    write_mesh(mesh, "out.ply", inputs=["scan.ply"])    # refuses to overwrite the input
"""

from recon.io.atomic import atomic_path
from recon.io.clouds import CLOUD_OUTPUT_EXTENSIONS, SUPPORTED_CLOUD_EXTENSIONS, read_cloud, write_cloud
from recon.io.meshes import (
    MESH_OUTPUT_EXTENSIONS,
    SUPPORTED_MESH_EXTENSIONS,
    read_mesh,
    sample_surface,
    write_mesh,
)

__all__ = [
    "atomic_path",
    "read_cloud",
    "write_cloud",
    "read_mesh",
    "write_mesh",
    "sample_surface",
    "SUPPORTED_CLOUD_EXTENSIONS",
    "SUPPORTED_MESH_EXTENSIONS",
    "CLOUD_OUTPUT_EXTENSIONS",
    "MESH_OUTPUT_EXTENSIONS",
]
