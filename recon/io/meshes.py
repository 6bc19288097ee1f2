"""Triangle meshes: read (PLY with our parser, the rest via trimesh), write, sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recon.errors import InputError
from recon.io._common import check_readable, extension, one_line, write_by_extension
from recon.triangles import TriangleMesh

SUPPORTED_MESH_EXTENSIONS = (".ply", ".obj", ".stl", ".off", ".glb", ".gltf")
"""Mesh files :func:`read_mesh` reads."""
MESH_OUTPUT_EXTENSIONS = (".ply", ".obj", ".stl", ".off", ".glb")
"""Mesh files :func:`write_mesh` writes."""
TRIMESH_EXTENSIONS = (".obj", ".stl", ".off", ".glb", ".gltf")


def read_mesh(path) -> TriangleMesh:
    """Read a triangle mesh (.ply, .obj, .stl, .off, .glb, .gltf).

    Polygons are fanned into triangles; a scene's meshes are concatenated with their
    transforms applied; STL triangle soup has coincident vertices merged. Vertex normals
    are kept when the file holds them. Raises InputError when the file has no faces.
    """
    path = check_readable(path)
    ext = extension(path)
    if ext not in SUPPORTED_MESH_EXTENSIONS:
        raise InputError(f"{path}: unknown mesh format {ext or '(no extension)'!r}; "
                         f"supported: {', '.join(SUPPORTED_MESH_EXTENSIONS)}")
    colors, attributes = None, {}
    if ext == ".ply":
        vertices, faces, normals, columns = read_ply_mesh(path)
        colors, attributes = _ply_colors_and_attributes(columns)
    else:
        vertices, faces, normals = load_with_trimesh(path)
    if len(faces) == 0:
        raise InputError(f"{path}: the file has no faces (it is a point cloud, not a mesh)")
    return TriangleMesh(vertices, faces, normals, vertex_colors=colors, vertex_attributes=attributes)


PLY_VERTEX_ATTRIBUTES = ("distance_to_data",)
"Scalar PLY vertex properties :func:`read_mesh` keeps as ``vertex_attributes`` (the ones recon writes)."


def _ply_colors_and_attributes(vertex: dict):
    """((V, 3) uint8 colours | None, {name: (V,) float32}) from a PLY vertex element's columns."""
    from recon.io.text import colors_to_u8

    colors = None
    for names in (("red", "green", "blue"), ("r", "g", "b"), ("diffuse_red", "diffuse_green", "diffuse_blue")):
        if all(n in vertex for n in names):
            colors = colors_to_u8(np.column_stack([vertex[n] for n in names]))
            break
    attributes = {name: np.asarray(vertex[name], np.float32) for name in PLY_VERTEX_ATTRIBUTES if name in vertex}
    return colors, attributes


def ply_vertex_positions(path, body: dict):
    """The PLY body's vertex element (dict of columns) and its (V, 3) float64 x, y, z;
    InputError naming the file when the element or a coordinate is missing."""
    vertex = body.get("vertex")
    if vertex is None:
        raise InputError(f"{path}: the PLY file has no 'vertex' element")
    for axis in "xyz":
        if axis not in vertex:
            raise InputError(f"{path}: the PLY vertex element has no {axis!r} property")
    return vertex, np.column_stack([vertex["x"], vertex["y"], vertex["z"]]).astype(np.float64)


def read_ply_mesh(path, data: bytes | None = None):
    """(vertices (V,3) f64, faces (F,3) i64, vertex normals (V,3) f32 | None, vertex columns dict)."""
    from recon.io.ply import faces_from_lists, read_ply

    header, body = read_ply(path, data, elements=("vertex", "face"))
    vertex, vertices = ply_vertex_positions(path, body)
    normals = None
    for names in (("nx", "ny", "nz"), ("normal_x", "normal_y", "normal_z")):
        if all(n in vertex for n in names):
            normals = np.column_stack([vertex[n] for n in names]).astype(np.float32)
            break
    faces = np.zeros((0, 3), np.int64)
    face_el = header.element("face")
    if face_el is not None and "face" in body:
        lists = [p for p in face_el.properties if p.is_list]
        chosen = next((p for p in lists if p.name in ("vertex_indices", "vertex_index")), lists[0] if lists else None)
        if chosen is None:
            raise InputError(f"{path}: the PLY face element has no list of vertex indices")
        faces = faces_from_lists(path, body["face"][chosen.name], len(vertices))
    return vertices, faces, normals, vertex


def load_with_trimesh(path):
    """(vertices (V,3) f64, faces (F,3) i64 (maybe empty), vertex normals | None) via trimesh."""
    import trimesh

    path = Path(path)
    ext = extension(path)
    try:
        loaded = trimesh.load(str(path), file_type=ext[1:], process=False)
    except Exception as exc:  # trimesh raises many types on malformed files
        raise InputError(f"{path}: cannot read this {ext} file ({one_line(exc)})") from None
    if isinstance(loaded, trimesh.Scene):
        try:
            vertices, faces, normals = _flatten_scene(loaded)
        except Exception as exc:
            raise InputError(f"{path}: cannot combine the scene's meshes ({one_line(exc)})") from None
        _check_face_indices(path, faces, len(vertices))
        return vertices, faces, normals
    try:
        return _trimesh_arrays(loaded, ext)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    except Exception as exc:  # trimesh builds some malformed files into objects it cannot then give
        raise InputError(f"{path}: cannot read this {ext} file ({one_line(exc)})") from None


def _trimesh_arrays(loaded, ext: str):
    import trimesh

    vertices = np.asarray(getattr(loaded, "vertices", np.zeros((0, 3))), dtype=np.float64).reshape(-1, 3)
    faces = np.asarray(getattr(loaded, "faces", np.zeros((0, 3))), dtype=np.int64).reshape(-1, 3)
    if not isinstance(loaded, trimesh.Trimesh):
        return vertices, np.zeros((0, 3), np.int64), None
    if ext == ".stl" and len(faces):
        loaded.merge_vertices()
        vertices = np.asarray(loaded.vertices, dtype=np.float64)
        faces = np.asarray(loaded.faces, dtype=np.int64)
    _check_face_indices(None, faces, len(vertices))
    normals = np.asarray(loaded.vertex_normals, dtype=np.float32) if _has_file_normals(loaded) else None
    return vertices, faces, normals


def _check_face_indices(path, faces: np.ndarray, n_vertices: int) -> None:
    if len(faces) and (faces.min() < 0 or faces.max() >= n_vertices):
        bad = int(faces.max() if faces.max() >= n_vertices else faces.min())
        where = f"{path}: " if path is not None else ""
        raise InputError(f"{where}a face refers to vertex {bad}, but the file has {n_vertices} vertices")


def _has_file_normals(geometry) -> bool:
    try:
        return "vertex_normals" in geometry._cache  # present only when the file held normals
    except Exception:
        return False


def _flatten_scene(scene):
    """Concatenate every mesh instance of a trimesh Scene, transforms applied.

    Vertex normals are kept when every instance has them; a mirroring transform flips
    the triangles' winding so they still face outwards.
    """
    verts, faces, normals, offset = [], [], [], 0
    for node in scene.graph.nodes_geometry:
        transform, name = scene.graph[node]
        geom = scene.geometry.get(name)
        if geom is None or not hasattr(geom, "vertices"):
            continue
        m = np.asarray(transform, dtype=np.float64)
        v = np.asarray(geom.vertices, dtype=np.float64).reshape(-1, 3)
        verts.append(v @ m[:3, :3].T + m[:3, 3])
        f = np.asarray(getattr(geom, "faces", np.zeros((0, 3))), dtype=np.int64).reshape(-1, 3)
        if np.linalg.det(m[:3, :3]) < 0:
            f = f[:, ::-1]
        faces.append(f + offset)
        offset += len(v)
        if normals is not None and len(f) and _has_file_normals(geom):
            n = np.asarray(geom.vertex_normals, dtype=np.float64) @ np.linalg.inv(m[:3, :3])
            length = np.linalg.norm(n, axis=1, keepdims=True)
            normals.append(np.divide(n, length, out=np.zeros_like(n), where=length > 0))
        else:
            normals = None
    if not verts:
        return np.zeros((0, 3)), np.zeros((0, 3), np.int64), None
    nrm = np.concatenate(normals).astype(np.float32) if normals else None
    return np.concatenate(verts), np.concatenate(faces), nrm


def sample_surface(vertices: np.ndarray, faces: np.ndarray, count: int, *, seed: int = 0, path="<mesh>"):
    """``count`` points drawn uniformly by area on the triangles, and their face normals.

    vertices : (V, 3) float64; faces : (F, 3) int64.
    Returns (points (count, 3) float64, normals (count, 3) float32 unit face normals).
    Deterministic for a given seed.
    """
    from recon.seeding import rng

    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    cross = np.cross(b - a, c - a)
    double_area = np.linalg.norm(cross, axis=1)
    double_area[~np.isfinite(double_area)] = 0.0
    total = double_area.sum()
    if not total > 0:
        raise InputError(f"{path}: the mesh has zero surface area; there is nothing to sample")
    gen = rng(seed)
    cdf = np.cumsum(double_area)
    pick = np.searchsorted(cdf, gen.random(count) * cdf[-1], side="right")
    pick = np.minimum(pick, len(f) - 1)
    r1 = np.sqrt(gen.random(count))
    r2 = gen.random(count)
    # Uniform point in a triangle: (1 - sqrt(r1)) a + sqrt(r1)(1 - r2) b + sqrt(r1) r2 c.
    w_a = (1.0 - r1)[:, None]
    w_b = (r1 * (1.0 - r2))[:, None]
    w_c = (r1 * r2)[:, None]
    points = w_a * a[pick] + w_b * b[pick] + w_c * c[pick]
    normals = (cross[pick] / double_area[pick][:, None]).astype(np.float32)
    return points, normals


def write_mesh(mesh: TriangleMesh, path, *, inputs=()) -> Path:
    """Write ``mesh`` to ``path`` atomically; the format comes from the extension.

    .ply (binary, vertex normals, colours (red green blue, uchar) and attributes (float32
    properties, e.g. ``distance_to_data``) when present), .obj (with ``vn`` normals and
    ``v x y z r g b`` colours in [0, 1] when present), .stl (binary; face normals only),
    .off (no normals), .glb (normals and COLOR_0 vertex colours when present).
    Vertices are written as float32 when that keeps them within 1e-6 of the bounding-box
    diagonal, else as float64 (.ply, .obj, .off; STL and glTF hold float32 only).
    ``inputs``: paths read to make the mesh; writing over one of them is refused.
    """
    if not isinstance(mesh, TriangleMesh):
        raise TypeError(f"mesh must be a TriangleMesh, got {type(mesh).__name__}")
    writers = {".ply": _ply_mesh_bytes, ".obj": _obj_bytes, ".stl": _stl_bytes, ".off": _off_bytes,
               ".glb": _glb_bytes}
    return write_by_extension(mesh, path, writers, what="mesh", extensions=MESH_OUTPUT_EXTENSIONS,
                              inputs=inputs)


def float_code(points: np.ndarray) -> str:
    """'f4' when float32 keeps ``points`` within 1e-6 of their bbox diagonal, else 'f8'."""
    p = np.asarray(points, dtype=np.float64)
    finite = p[np.isfinite(p).all(axis=1)] if len(p) else p
    if len(finite) == 0:
        return "f4"
    diag = float(np.linalg.norm(finite.max(axis=0) - finite.min(axis=0)))
    err = float(np.abs(finite.astype(np.float32).astype(np.float64) - finite).max())
    return "f4" if err <= 1e-6 * max(diag, 1e-300) else "f8"


def _ply_mesh_bytes(mesh: TriangleMesh) -> bytes:
    from recon.io.ply import ply_bytes

    code = float_code(mesh.vertices)
    cols = [(a, mesh.vertices[:, i].astype(code)) for i, a in enumerate("xyz")]
    if mesh.vertex_normals is not None:
        cols += [(a, mesh.vertex_normals[:, i].astype(np.float32)) for i, a in enumerate(("nx", "ny", "nz"))]
    if mesh.vertex_colors is not None:
        cols += [(a, mesh.vertex_colors[:, i]) for i, a in enumerate(("red", "green", "blue"))]
    cols += [(name, values.astype(np.float32)) for name, values in mesh.vertex_attributes.items()]
    return ply_bytes(cols, faces=mesh.faces, comments=("written by recon",))


def _text(table: np.ndarray, fmt: str, prefix: str = "") -> str:
    import io

    buf = io.StringIO()
    if len(table):
        np.savetxt(buf, table, fmt=fmt, delimiter=" ", newline="\n", header="", comments="")
    text = buf.getvalue()
    if prefix:
        text = "".join(prefix + line + "\n" for line in text.splitlines())
    return text


def _vertex_fmt(vertices: np.ndarray) -> str:
    return "%.9g" if float_code(vertices) == "f4" else "%.17g"


def _obj_bytes(mesh: TriangleMesh) -> bytes:
    vf = _vertex_fmt(mesh.vertices)
    if mesh.vertex_colors is None:
        parts = ["# written by recon\n", _text(mesh.vertices, f"{vf} {vf} {vf}", "v ")]
    else:  # the common extension: colour in [0, 1] after the position
        table = np.column_stack([mesh.vertices, mesh.vertex_colors / 255.0])
        parts = ["# written by recon\n", _text(table, f"{vf} {vf} {vf} %.6g %.6g %.6g", "v ")]
    f1 = mesh.faces + 1
    if mesh.vertex_normals is not None:
        parts.append(_text(mesh.vertex_normals.astype(np.float64), "%.7g %.7g %.7g", "vn "))
        parts.append(_text(np.repeat(f1, 2, axis=1), "%d//%d %d//%d %d//%d", "f "))
    else:
        parts.append(_text(f1, "%d %d %d", "f "))
    return "".join(parts).encode("ascii")


def _off_bytes(mesh: TriangleMesh) -> bytes:
    vf = _vertex_fmt(mesh.vertices)
    head = f"OFF\n{mesh.n_vertices} {mesh.n_faces} 0\n"
    body = _text(mesh.vertices, f"{vf} {vf} {vf}") + _text(mesh.faces, "3 %d %d %d")
    return (head + body).encode("ascii")


def _stl_bytes(mesh: TriangleMesh) -> bytes:
    v = mesh.vertices
    f = mesh.faces
    tri = v[f]  # (F, 3, 3)
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    length = np.linalg.norm(n, axis=1, keepdims=True)
    n = np.divide(n, length, out=np.zeros_like(n), where=length > 0)
    rec = np.zeros(len(f), dtype=[("normal", "<f4", (3,)), ("v", "<f4", (3, 3)), ("attr", "<u2")])
    rec["normal"] = n
    rec["v"] = tri
    head = b"binary STL written by recon".ljust(80, b" ")
    return head + np.uint32(len(f)).astype("<u4").tobytes() + rec.tobytes()


def _glb_bytes(mesh: TriangleMesh) -> bytes:
    import trimesh

    tm = mesh.to_trimesh()
    return trimesh.exchange.gltf.export_glb(trimesh.Scene(tm), include_normals=mesh.vertex_normals is not None)
