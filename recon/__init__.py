"""recon: point clouds to surfaces and pictures.

The public API is small; kernels stay behind it::

    from recon import reconstruct                      # what `recon fit` does, in one call
    result = reconstruct("scan.ply", seed=0)          # -> Result: field, mesh, timings, decisions
    result.write_mesh("scan.mesh.ply")

    from recon import read_cloud, fit, extract_mesh, load_field   # or step by step
    cloud = read_cloud("scan.ply")
    field = fit(cloud, "gridpull")
    mesh = extract_mesh(field)

Heavy packages (open3d, trimesh, pyvista, torch) are imported inside the functions
that need them, so ``import recon`` stays fast and works where they are missing.
"""

from recon.errors import ReconError, InputError
from recon.cloud import Cloud, Normalization
from recon.fields import Field, SignedDistanceGrid, load_field

__version__ = "0.1.0"


def __getattr__(name):
    # Lazy re-exports keep `import recon` light: each pulls its module on first use.
    if name == "read_cloud":
        from recon.io import read_cloud

        return read_cloud
    if name == "fit":
        from recon.fitters import fit

        return fit
    if name in ("reconstruct", "Result"):
        import recon.pipeline

        return getattr(recon.pipeline, name)
    if name == "extract_mesh":
        from recon.meshing.marching_cubes import extract_mesh

        return extract_mesh
    raise AttributeError(f"module 'recon' has no attribute {name!r}")


__all__ = [
    "ReconError",
    "InputError",
    "Cloud",
    "Normalization",
    "Field",
    "SignedDistanceGrid",
    "load_field",
    "read_cloud",
    "fit",
    "extract_mesh",
    "reconstruct",
    "Result",
]
