"""Turn the viewer's file arguments into a scene: which file is a cloud, a mesh or a field."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from recon.errors import InputError

MESH_ONLY_EXTENSIONS = (".obj", ".stl", ".off", ".glb", ".gltf")


@dataclass
class ViewInputs:
    """What to show: each part optional (at least one of cloud, mesh, field)."""

    cloud: object = None
    mesh: object = None
    field: object = None
    gt: object = None
    names: dict | None = None


def file_kind(path) -> str:
    """'field', 'mesh' or 'cloud' for a file, from its contents where the extension is ambiguous."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext == ".npz":
        from recon.describe import is_field_file

        return "field" if is_field_file(path) else "cloud"
    if ext in MESH_ONLY_EXTENSIONS:
        return "mesh"
    if ext == ".ply":
        return "mesh" if _ply_face_count(path) > 0 else "cloud"
    return "cloud"


def _ply_face_count(path: Path) -> int:
    """Faces declared in a PLY header (0 when none or unreadable: the reader says why later)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 16)
    except OSError:
        return 0
    end = head.find(b"end_header")
    for line in head[: end if end >= 0 else len(head)].splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == b"element" and parts[1] == b"face":
            try:
                return int(parts[2])
            except ValueError:
                return 0
    return 0


def load_inputs(paths, *, cloud=None, gt=None) -> ViewInputs:
    """Read the viewer's files: positional ``paths`` (any of a cloud, a mesh, a field, one each),
    ``cloud`` (the input points, when the positionals hold no cloud), ``gt`` (a ground-truth mesh)."""
    from recon.fields import load_field
    from recon.io import read_cloud, read_mesh

    out = ViewInputs(names={})
    items = [(Path(p), None) for p in paths] + ([(Path(cloud), "cloud")] if cloud is not None else [])
    for p, kind in items:
        kind = kind or file_kind(p)
        if out.names.get(kind):
            raise InputError(f"{p}: a second {kind} (already showing {out.names[kind]}); give at most one of each")
        if kind == "field":
            out.field = load_field(p)
        elif kind == "mesh":
            out.mesh = read_mesh(p)
        else:
            out.cloud = read_cloud(p)
        out.names[kind] = str(p)
    if gt is not None:
        if file_kind(gt) != "mesh":
            raise InputError(f"--gt {gt}: the ground truth must be a mesh file (with faces)")
        out.gt = read_mesh(gt)
        out.names["gt"] = str(gt)
    if out.cloud is None and out.mesh is None and out.field is None:
        raise InputError("nothing to show: give a cloud, a mesh or a field file")
    return out


def build_scene(inputs: ViewInputs, *, off_screen: bool, window_size=None, config=None,
                level: float | None = None, slices=("z",), cloud_coloring: str | None = None,
                mesh_coloring: str | None = None, up=None):
    """A ViewerScene with every part of ``inputs`` and the first view set: the mesh, the cloud
    (else the field's surface), the field's slices cut to the object, then the ground truth;
    ``up`` (3,) the up axis, None: guessed from the data."""
    from recon.viewer.scene import ViewerScene

    scene = ViewerScene(off_screen=off_screen, window_size=window_size, config=config, up=up)
    # the mesh first: a cloud drawn under it is drawn decimated once, not in full and then again
    if inputs.mesh is not None:
        scene.add_mesh(inputs.mesh)
    if inputs.cloud is not None:
        scene.add_cloud(inputs.cloud, coloring=None)
    if inputs.field is not None:
        scene.add_field(inputs.field, slices=slices, level=level, mesh=inputs.mesh is None)
    if inputs.gt is not None:
        scene.add_ground_truth(inputs.gt)
    if mesh_coloring is not None:
        if scene.mesh is None:
            raise InputError("--mesh-color: there is no mesh to colour")
        scene.set_mesh_coloring(mesh_coloring)
    if cloud_coloring is not None:
        scene.set_cloud_coloring(cloud_coloring)
    scene.reset_camera()
    return scene
