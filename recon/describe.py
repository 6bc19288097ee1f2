"""describe(path): what a cloud, mesh or field file holds, as a plain JSON-able dict (for `recon info`)."""

from __future__ import annotations

import numpy as np

from recon.errors import InputError
from recon.io._common import check_readable, extension, read_bytes


def describe(path) -> dict:
    """Summarise a point cloud, mesh or field file.

    Always: ``path``, ``kind`` ("cloud" | "mesh" | "field"), ``format``, ``bounds``
    ([[xmin, ymin, zmin], [xmax, ymax, zmax]], input units) and ``bbox_diagonal``.
    cloud: ``points``, ``has_normals``, ``has_colors``, ``extra_properties`` (names),
           ``dropped_nonfinite``.
    mesh:  ``vertices``, ``faces``, ``has_vertex_normals``, ``surface_area``, ``watertight``.
    field: ``field_class``, ``field_kind``, ``level``, ``shape``, ``voxel_size`` (grids),
           ``normalization`` ({center, scale} or None), ``parameters``.
    Every value is a str, bool, int, float, None, or a list / dict of them.
    """
    from recon.io.clouds import SUPPORTED_CLOUD_EXTENSIONS, _read
    from recon.io.meshes import TRIMESH_EXTENSIONS, read_mesh

    path = check_readable(path)
    ext = extension(path)
    if ext == ".npz" and is_field_file(path):
        return _describe_field(path)
    kind = "cloud"
    fmt = ext.lstrip(".")
    if ext in TRIMESH_EXTENSIONS:
        kind = "mesh"
    elif ext == ".ply":
        from recon.io.ply import parse_header

        header = parse_header(read_bytes(path), path)
        fmt = f"ply {header.format}"
        face = header.element("face")
        if face is not None and face.count > 0:
            kind = "mesh"
    if kind == "mesh":
        mesh = read_mesh(path)
        tm = mesh.to_trimesh()
        return {
            "path": str(path),
            "kind": "mesh",
            "format": fmt,
            "vertices": int(mesh.n_vertices),
            "faces": int(mesh.n_faces),
            "has_vertex_normals": mesh.vertex_normals is not None,
            **_bounds(mesh.vertices),
            "surface_area": float(tm.area),
            "watertight": bool(tm.is_watertight),
        }
    if ext not in SUPPORTED_CLOUD_EXTENSIONS:
        raise InputError(f"{path}: unknown file format {ext or '(no extension)'!r}; supported: "
                         f"{', '.join(SUPPORTED_CLOUD_EXTENSIONS)} and .npz fields")
    cloud, dropped, _ = _read(path, sample=None, seed=0)
    return {
        "path": str(path),
        "kind": "cloud",
        "format": fmt,
        "points": len(cloud),
        **_bounds(cloud.points),
        "has_normals": cloud.normals is not None,
        "has_colors": cloud.colors is not None,
        "extra_properties": sorted(cloud.extra),
        "dropped_nonfinite": int(dropped),
    }


def _bounds(points: np.ndarray) -> dict:
    finite = points[np.isfinite(points).all(axis=1)]
    if len(finite) == 0:
        return {"bounds": None, "bbox_diagonal": None}
    lo, hi = finite.min(axis=0), finite.max(axis=0)
    return {"bounds": [lo.tolist(), hi.tolist()], "bbox_diagonal": float(np.linalg.norm(hi - lo))}


def is_field_file(path) -> bool:
    """Whether ``path`` (an .npz archive) is a recon field file; False for anything unreadable."""
    from recon.io._common import load_numpy

    try:
        data = load_numpy(path)
    except InputError:
        return False  # read_cloud gives the precise error
    if not hasattr(data, "files"):
        return False
    with data:
        return "format" in data.files and "field_class" in data.files


def _describe_field(path) -> dict:
    from recon.fields.base import RegularGrid
    from recon.fields.loading import load_field

    field = load_field(path)
    bounds = np.asarray(field.bounds, dtype=np.float64)
    norm = field.normalization
    grid = isinstance(field, RegularGrid)
    return {
        "path": str(path),
        "kind": "field",
        "format": "npz (recon.fields)",
        "field_class": type(field).__name__,
        "field_kind": str(field.kind),
        "level": float(field.level),
        "shape": [int(s) for s in field.shape] if grid else None,
        "voxel_size": float(field.voxel_size) if grid else None,
        "bounds": bounds.tolist(),
        "bbox_diagonal": float(np.linalg.norm(bounds[1] - bounds[0])),
        "normalization": None if norm is None else {"center": np.asarray(norm.center, float).tolist(),
                                                    "scale": float(norm.scale)},
        "parameters": _jsonable(field.params),
    }


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    return str(value)


