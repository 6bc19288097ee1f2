"""Benchmark cases: folders holding ``input.*``, an optional ``gt.*`` mesh and an optional ``meta.json``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from recon.errors import InputError

MESH_SUFFIXES = (".ply", ".obj", ".off", ".stl", ".glb", ".gltf")


def default_cases_dir() -> Path:
    """``<repository>/../shared/data/bench``: where the project's shared cases live."""
    import recon

    return Path(recon.__file__).resolve().parents[1].parent / "shared" / "data" / "bench"


@dataclass
class Case:
    name: str
    folder: Path
    input: Path
    gt: Path | None = None
    meta: dict = field(default_factory=dict)


def _one(folder: Path, stem: str, required: bool) -> Path | None:
    found = sorted(p for p in folder.glob(f"{stem}.*") if p.is_file() and not p.name.startswith("."))
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise InputError(f"case {folder}: several {stem}.* files ({names}); keep exactly one")
    if not found:
        if required:
            raise InputError(f"case {folder}: no {stem}.* file")
        return None
    return found[0]


def load_case(folder: Path) -> Case:
    folder = Path(folder)
    inp = _one(folder, "input", True)
    gt = _one(folder, "gt", False)
    meta: dict = {}
    meta_path = folder / "meta.json"
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"case {folder}: meta.json is not valid JSON ({exc})") from None
        if not isinstance(meta, dict):
            raise InputError(f"case {folder}: meta.json must hold a JSON object")
    return Case(name=folder.name, folder=folder, input=inp, gt=gt, meta=meta)


def discover_cases(root: Path | None = None, *, only: list[str] | None = None) -> list[Case]:
    """The cases under ``root`` (default: :func:`default_cases_dir`), sorted by name.

    ``root`` may itself be a case (it holds an ``input.*``). ``only`` keeps the named
    cases, in the order given; an unknown name is refused with the list of known ones.
    """
    if root is None:
        root = default_cases_dir()
        if not root.is_dir():
            raise InputError(f"no --cases given and the shared benchmark folder {root} does not exist: pass --cases DIR")
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"--cases: {root} is not a folder")
    if any(root.glob("input.*")):
        cases = [load_case(root)]
    else:
        cases = [load_case(p) for p in sorted(root.iterdir()) if p.is_dir() and any(p.glob("input.*"))]
    if not cases:
        raise InputError(f"--cases: {root} holds no case (a folder with an input.* file)")
    if only:
        by_name = {c.name: c for c in cases}
        unknown = [n for n in only if n not in by_name]
        if unknown:
            raise InputError(f"--only: unknown case(s) {', '.join(unknown)}; known: {', '.join(by_name)}")
        cases = [by_name[n] for n in dict.fromkeys(only)]
    return cases


def read_input_cloud(path: Path):
    """The case's input as a recon Cloud, through the project's ingestion (:func:`recon.io.read_cloud`).

    Until that reader exists in this checkout, PLY/PCD/XYZ files are read with Open3D.
    """
    try:
        from recon.io import read_cloud
    except ImportError:
        read_cloud = None
    if read_cloud is not None:
        return read_cloud(path)
    import open3d as o3d

    from recon.cloud import Cloud

    pcd = o3d.io.read_point_cloud(str(path))
    if not pcd.has_points():
        raise InputError(f"{path}: no points read")
    normals = np.asarray(pcd.normals) if pcd.has_normals() else None
    colors = (np.asarray(pcd.colors) * 255).round().astype(np.uint8) if pcd.has_colors() else None
    return Cloud(np.asarray(pcd.points), normals=normals, colors=colors, source=str(path))


def read_gt_mesh(path: Path):
    """The case's ground truth as a recon TriangleMesh (input units), read with trimesh."""
    import trimesh

    from recon.triangles import TriangleMesh

    if path.suffix.lower() not in MESH_SUFFIXES:
        raise InputError(f"{path}: ground truth must be a mesh ({', '.join(MESH_SUFFIXES)})")
    loaded = trimesh.load(str(path), process=False, force="mesh")
    if not hasattr(loaded, "faces") or len(loaded.faces) == 0:
        raise InputError(f"{path}: ground truth holds no triangles")
    return TriangleMesh(np.asarray(loaded.vertices), np.asarray(loaded.faces))
