"""read_cloud / write_cloud: every point cloud format recon takes, to and from a Cloud."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from recon.cloud import Cloud
from recon.errors import InputError, ReconWarning
from recon.io._common import check_readable, extension, load_numpy, numpy_error, one_line, read_bytes, write_by_extension

SUPPORTED_CLOUD_EXTENSIONS = (
    ".ply", ".pcd", ".xyz", ".xyzn", ".pts", ".txt", ".npy", ".npz", ".las", ".laz",
    ".obj", ".stl", ".off", ".glb", ".gltf",
)
"""Files :func:`read_cloud` reads (mesh files give their vertices or surface samples)."""
CLOUD_OUTPUT_EXTENSIONS = (".ply", ".pcd", ".xyz", ".xyzn", ".txt", ".npy", ".npz")
"""Files :func:`write_cloud` writes."""


def read_cloud(path, *, sample: int | None = None, seed: int = 0) -> Cloud:
    """Read a point cloud (or a mesh's points) from ``path``; the format comes from the extension.

    Formats: .ply (ascii / binary, clouds or meshes), .pcd (ascii / binary /
    binary_compressed), .xyz .xyzn .txt .pts (text, see ``recon.io.text``), .npy ((N, 3)
    or (N, 6): x y z [nx ny nz]), .npz (keys ``points`` [``normals``, ``colors``, other
    per-point arrays] or one (N, 3|6) array), .las .laz, and meshes .obj .stl .off .glb
    .gltf.

    sample : for a mesh (a file with faces), draw ``sample`` points uniformly by area on
             its surface, with the face normals as normals; without it a mesh gives its
             vertices. For a point cloud, keep ``sample`` points drawn without replacement
             (all of them when there are fewer).
    seed   : seed of those draws.

    Returns a Cloud: points (N, 3) float64 in the file's units; normals (N, 3) float32
    unit vectors and colours (N, 3) uint8 when the file has them; other per-point
    properties as arrays in ``cloud.extra``. Rows with NaN or Inf values are dropped with
    a :class:`ReconWarning` giving the count. Raises InputError (one line, naming the file)
    on a missing, unreadable, unknown, corrupt, truncated or empty file, or when every
    point is the same.
    """
    if sample is not None:
        if isinstance(sample, bool) or not isinstance(sample, (int, np.integer)) or sample < 1:
            raise InputError(f"sample must be a positive integer, got {sample!r}")
        sample = int(sample)
    path = check_readable(path)
    cloud, dropped, total = _read(path, sample=sample, seed=seed)
    if dropped:
        warnings.warn(f"{path}: dropped {dropped} of {total} points with NaN or Inf values",
                      ReconWarning, stacklevel=2)
    return cloud


def _read(path: Path, *, sample: int | None, seed: int):
    """(Cloud, rows dropped as non-finite, rows read)."""
    ext = extension(path)
    reader = _READERS.get(ext)
    if reader is None:
        raise InputError(f"{path}: unknown point cloud format {ext or '(no extension)'!r}; "
                         f"supported: {', '.join(SUPPORTED_CLOUD_EXTENSIONS)}")
    raw = reader(path, sample=sample, seed=seed)
    return _finish(path, raw, sample=sample, seed=seed)


def _finish(path, raw: dict, *, sample, seed):
    points = np.asarray(raw["points"], dtype=np.float64)
    normals = raw.get("normals")
    colors = raw.get("colors")
    extra = {k: np.asarray(v) for k, v in (raw.get("extra") or {}).items()}
    n = len(points)
    keep = np.isfinite(points).all(axis=1)
    if normals is not None:
        normals = np.asarray(normals, dtype=np.float32)
        keep &= np.isfinite(normals).all(axis=1)
    dropped = int(n - keep.sum())
    if dropped:
        points = points[keep]
        normals = None if normals is None else normals[keep]
        colors = None if colors is None else colors[keep]
        extra = {k: (v[keep] if v.ndim >= 1 and len(v) == n else v) for k, v in extra.items()}
    if len(points) == 0:
        why = f" after dropping {dropped} with NaN or Inf values" if dropped else ""
        raise InputError(f"{path}: no points{why}")
    if np.all(points == points[0]):
        raise InputError(f"{path}: all {len(points)} points are identical: there is no surface to fit")
    if sample is not None and not raw.get("sampled") and sample < len(points):
        from recon.seeding import rng

        idx = np.sort(rng(seed).choice(len(points), size=sample, replace=False))
        m = len(points)
        points = points[idx]
        normals = None if normals is None else normals[idx]
        colors = None if colors is None else colors[idx]
        extra = {k: (v[idx] if v.ndim >= 1 and len(v) == m else v) for k, v in extra.items()}
    if normals is not None:
        normals = _unit_rows(normals)
    cloud = Cloud(points=points, normals=normals, colors=colors, source=str(path), extra=extra)
    return cloud, dropped, n


def _unit_rows(normals: np.ndarray) -> np.ndarray:
    """Rescale the rows that are not unit length (zero rows stay zero); float32."""
    sq = np.einsum("ij,ij->i", normals, normals)
    off = np.flatnonzero((np.abs(sq - 1.0) > 1e-6) & (sq > 0))
    if len(off):
        normals = np.array(normals, dtype=np.float32, copy=True)
        normals[off] /= np.sqrt(sq[off])[:, None]
    return normals


# ---------------------------------------------------------------------------- readers
# Each returns a dict: points, normals | None, colors | None, extra {name: (N, ...) array},
# and sampled=True when ``sample`` was applied as surface sampling.

_NORMAL_NAMES = (("nx", "ny", "nz"), ("normal_x", "normal_y", "normal_z"))
_COLOR_NAMES = (("red", "green", "blue"), ("r", "g", "b"), ("diffuse_red", "diffuse_green", "diffuse_blue"))


def _read_ply(path, *, sample, seed):
    from recon.io.meshes import ply_vertex_positions, read_ply_mesh, sample_surface
    from recon.io.ply import parse_header, read_ply
    from recon.io.text import colors_to_u8

    data = read_bytes(path)
    header = parse_header(data, path)
    face = header.element("face")
    if sample is not None and face is not None and face.count > 0:
        vertices, faces, _, _ = read_ply_mesh(path, data)
        if len(faces):
            pts, nrm = sample_surface(vertices, faces, sample, seed=seed, path=path)
            return {"points": pts, "normals": nrm, "sampled": True}
    _, body = read_ply(path, data, elements=("vertex",))
    vertex, points = ply_vertex_positions(path, body)
    used = {"x", "y", "z"}
    out = {"points": points, "normals": None, "colors": None}
    for names in _NORMAL_NAMES:
        if all(k in vertex for k in names):
            out["normals"] = np.column_stack([vertex[k] for k in names])
            used.update(names)
            break
    for names in _COLOR_NAMES:
        if all(k in vertex for k in names):
            out["colors"] = colors_to_u8(np.column_stack([vertex[k] for k in names]))
            used.update(names)
            break
    out["extra"] = {k: v for k, v in vertex.items() if k not in used and isinstance(v, np.ndarray)}
    return out


def _read_pcd(path, *, sample, seed):
    from recon.io.pcd import packed_rgb, read_pcd

    _, fields = read_pcd(path, read_bytes(path))
    for axis in "xyz":
        if axis not in fields:
            raise InputError(f"{path}: the PCD file has no {axis!r} field")
    used = {"x", "y", "z"}
    out = {"points": np.column_stack([fields["x"], fields["y"], fields["z"]]).astype(np.float64),
           "normals": None, "colors": None}
    if all(k in fields for k in ("normal_x", "normal_y", "normal_z")):
        out["normals"] = np.column_stack([fields[k] for k in ("normal_x", "normal_y", "normal_z")])
        used.update(("normal_x", "normal_y", "normal_z"))
    for key in ("rgb", "rgba"):
        if key in fields and fields[key].ndim == 1:
            out["colors"] = packed_rgb(fields[key])
            used.add(key)
            break
    out["extra"] = {k: v for k, v in fields.items() if k not in used}
    return out


def _read_text(path, *, sample, seed):
    from recon.io.text import read_text_points

    return read_text_points(path, read_bytes(path), extension(path))


def _array_columns(path, arr, what: str):
    arr = np.asarray(arr)
    if arr.dtype.kind not in "fiu" or arr.ndim != 2 or arr.shape[1] not in (3, 6):
        raise InputError(f"{path}: {what} must be a numeric (N, 3) or (N, 6) array "
                         f"(x y z [nx ny nz]), got {arr.dtype} {arr.shape}")
    return {"points": arr[:, :3], "normals": arr[:, 3:6] if arr.shape[1] == 6 else None, "colors": None}


def _read_npy(path, *, sample, seed):
    return _array_columns(path, load_numpy(path), "the array")


def _read_npz(path, *, sample, seed):
    from recon.io.text import colors_to_u8

    archive = load_numpy(path)
    if not hasattr(archive, "files"):
        return _array_columns(path, archive, "the array")
    with archive:
        keys = list(archive.files)
        try:
            if "format" in keys and "field_class" in keys:
                raise InputError(f"{path}: this is a recon field file, not a point cloud "
                                 "(mesh it with `recon mesh`)")
            if "points" not in keys:
                if len(keys) == 1:
                    return _array_columns(path, archive[keys[0]], f"array {keys[0]!r}")
                raise InputError(f"{path}: an .npz cloud needs a 'points' array "
                                 f"(optional 'normals', 'colors'); found {', '.join(keys) or 'no arrays'}")
            pts = np.asarray(archive["points"])
            if pts.dtype.kind not in "fiu" or pts.ndim != 2 or pts.shape[1] != 3:
                raise InputError(f"{path}: 'points' must be a numeric (N, 3) array, got {pts.dtype} {pts.shape}")
            n = len(pts)
            out = {"points": pts, "normals": None, "colors": None, "extra": {}}
            for key in keys:
                if key == "points":
                    continue
                arr = np.asarray(archive[key])
                if key in ("normals", "colors"):
                    if arr.shape != (n, 3) or arr.dtype.kind not in "fiu":
                        raise InputError(f"{path}: {key!r} must be a numeric ({n}, 3) array like "
                                         f"'points', got {arr.dtype} {arr.shape}")
                    out[key] = colors_to_u8(arr) if key == "colors" else arr
                elif arr.ndim >= 1 and len(arr) == n:
                    out["extra"][key] = arr
            return out
        except Exception as exc:  # lazy reads: pickled members, a damaged archive
            raise numpy_error(path, exc) from None


def _read_las(path, *, sample, seed):
    try:
        import laspy
    except ImportError:
        raise InputError(f"{path}: reading LAS/LAZ needs the laspy package (pip install 'laspy[lazrs]')") from None
    _check_las_header(path, laspy)
    try:
        las = laspy.read(str(path))
        pts = np.column_stack([np.asarray(las.x, np.float64), np.asarray(las.y, np.float64),
                               np.asarray(las.z, np.float64)])
    except Exception as exc:  # laspy raises its own and lazrs' errors
        raise InputError(f"{path}: not a readable LAS/LAZ file ({one_line(exc)})") from None
    names = set(las.point_format.dimension_names)
    out = {"points": pts, "normals": None, "colors": None, "extra": {}}
    if {"red", "green", "blue"} <= names:
        rgb = np.column_stack([np.asarray(las.red), np.asarray(las.green), np.asarray(las.blue)]).astype(np.uint32)
        if len(rgb) and rgb.max() > 255:
            rgb = np.round(rgb / 257.0)
        out["colors"] = np.clip(rgb, 0, 255).astype(np.uint8)
    for key in ("intensity", "classification"):
        if key in names:
            out["extra"][key] = np.asarray(las[key]).copy()
    return out


LAZ_MAX_RATIO = 1000
"A LAZ file declaring more than this many times its size in points is taken for a corrupt header."


def _check_las_header(path, laspy) -> None:
    """Refuse a LAS/LAZ header whose point count the file cannot hold before any point is
    read: the readers allocate for the declared count, and a lie of billions kills the process."""
    import os
    import struct

    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        head = fh.read(375)
    if len(head) < 227 or head[:4] != b"LASF":
        raise InputError(f"{path}: not a readable LAS/LAZ file (no LASF header of 227 bytes)")
    # the fixed header block, read here because laspy trusts it: a VLR count of billions
    # makes it loop for minutes before it fails
    header_size, offset, n_vlrs = struct.unpack_from("<HII", head, 94)
    if not (227 <= header_size <= offset <= size) or n_vlrs * 54 > offset - header_size:
        raise InputError(f"{path}: corrupt LAS/LAZ header: header size {header_size}, {n_vlrs} VLRs and "
                         f"point data at byte {offset} do not fit a file of {size} bytes")
    if head[25] >= 4 and len(head) >= 247 and struct.unpack_from("<I", head, 243)[0] * 60 > size:
        raise InputError(f"{path}: corrupt LAS/LAZ header: more extended VLRs declared than the file can hold")
    try:
        with laspy.open(str(path)) as reader:
            header = reader.header
            count = int(header.point_count)
            record = int(header.point_format.size)
            offset = int(header.offset_to_point_data)
            compressed = bool(header.are_points_compressed)
            laszip = [v.record_data_bytes() for v in header.vlrs if getattr(v, "record_id", None) == 22204]
    except Exception as exc:  # laspy raises its own and lazrs' errors
        raise InputError(f"{path}: not a readable LAS/LAZ file ({one_line(exc)})") from None
    need = count * record
    room = (size - offset) * (LAZ_MAX_RATIO if compressed else 1)
    if count < 0 or need > room:
        raise InputError(f"{path}: corrupt LAS/LAZ header: {count} points of {record} bytes declared, "
                         f"the file has {max(size - offset, 0)} bytes of point data")
    if compressed:
        _check_laz_chunks(path, size, offset, record, laszip[0] if laszip else b"")


def _check_laz_chunks(path, size: int, offset: int, record: int, laszip_vlr: bytes) -> None:
    """The LAZ chunk size (in the laszip VLR) and the chunk table's count (found through the
    offset stored before the points) are what the decompressor allocates for; both must
    fit the file."""
    import struct

    if len(laszip_vlr) >= 16:
        chunk_size = struct.unpack_from("<I", laszip_vlr, 12)[0]
        if chunk_size != 0xFFFFFFFF and chunk_size * record > 1 << 31:
            raise InputError(f"{path}: corrupt LAZ header: chunks of {chunk_size} points declared")
    with open(path, "rb") as fh:
        fh.seek(offset)
        head = fh.read(8)
        if len(head) < 8:
            raise InputError(f"{path}: truncated LAZ file: no chunk table offset")
        table = struct.unpack("<q", head)[0]
        if table == -1:
            return  # written as a stream: no chunk table
        if not offset + 8 <= table <= size - 8:
            raise InputError(f"{path}: corrupt LAZ file: its chunk table offset {table} lies outside the file")
        fh.seek(table)
        _, chunks = struct.unpack("<II", fh.read(8))
    if chunks > size:
        raise InputError(f"{path}: corrupt LAZ file: {chunks} chunks declared in {size} bytes")


def _read_trimesh(path, *, sample, seed):
    from recon.io.meshes import load_with_trimesh, sample_surface

    vertices, faces, normals = load_with_trimesh(path)
    if sample is not None and len(faces):
        pts, nrm = sample_surface(vertices, faces, sample, seed=seed, path=path)
        return {"points": pts, "normals": nrm, "sampled": True}
    return {"points": vertices, "normals": normals, "colors": None}


_READERS = {
    ".ply": _read_ply,
    ".pcd": _read_pcd,
    ".xyz": _read_text, ".xyzn": _read_text, ".pts": _read_text, ".txt": _read_text,
    ".npy": _read_npy,
    ".npz": _read_npz,
    ".las": _read_las, ".laz": _read_las,
    ".obj": _read_trimesh, ".stl": _read_trimesh, ".off": _read_trimesh,
    ".glb": _read_trimesh, ".gltf": _read_trimesh,
}


# ---------------------------------------------------------------------------- writer


def write_cloud(cloud: Cloud, path, *, inputs=()) -> Path:
    """Write ``cloud`` to ``path`` atomically; the format comes from the extension.

    .ply  binary little-endian: x y z (float32 when that keeps the points within 1e-6
          of the bbox diagonal, else float64), nx ny nz, red green blue (uchar) and
          every 1-D per-point array in ``cloud.extra``.
    .pcd  binary: x y z, normal_x.., packed rgb.
    .xyz .xyzn .txt  text: x y z [nx ny nz] [r g b].
    .npy  (N, 3) or (N, 6) float64 with normals (colours cannot be stored: a warning says so).
    .npz  points, normals, colors and the per-point extras, by name.
    ``inputs``: paths read to make the cloud; writing over one of them is refused.
    """
    if not isinstance(cloud, Cloud):
        raise TypeError(f"cloud must be a Cloud, got {type(cloud).__name__}")
    writers = {".ply": _ply_cloud_bytes, ".pcd": _pcd_bytes, ".xyz": _text_bytes, ".xyzn": _text_bytes,
               ".txt": _text_bytes, ".npy": _npy_bytes, ".npz": _npz_bytes}
    return write_by_extension(cloud, path, writers, what="point cloud output",
                              extensions=CLOUD_OUTPUT_EXTENSIONS, inputs=inputs)


def _per_point_extras(cloud: Cloud) -> dict:
    n = len(cloud)
    out = {}
    for key, val in cloud.extra.items():
        arr = np.asarray(val)
        if arr.ndim == 1 and len(arr) == n and arr.dtype.kind in "biuf":
            out[key] = arr
    return out


def _ply_cloud_bytes(cloud: Cloud) -> bytes:
    from recon.io.meshes import float_code
    from recon.io.ply import ply_bytes

    code = float_code(cloud.points)
    cols = [(a, cloud.points[:, i].astype(code)) for i, a in enumerate("xyz")]
    if cloud.normals is not None:
        cols += [(a, cloud.normals[:, i].astype(np.float32)) for i, a in enumerate(("nx", "ny", "nz"))]
    if cloud.colors is not None:
        cols += [(a, cloud.colors[:, i]) for i, a in enumerate(("red", "green", "blue"))]
    taken = {c[0] for c in cols}
    for key, arr in _per_point_extras(cloud).items():
        if key in taken or not key.isidentifier():
            continue
        if arr.dtype.kind == "b":
            arr = arr.astype(np.uint8)
        elif arr.dtype.itemsize == 8 and arr.dtype.kind in "iu":
            info = np.iinfo(np.int32 if arr.dtype.kind == "i" else np.uint32)
            fits = len(arr) == 0 or (arr.min() >= info.min and arr.max() <= info.max)
            arr = arr.astype(info.dtype) if fits else arr.astype(np.float64)
        elif arr.dtype.kind == "f" and arr.dtype.itemsize not in (4, 8):
            arr = arr.astype(np.float32)
        cols.append((key, arr))
    return ply_bytes(cols, comments=("written by recon",))


def _pcd_bytes(cloud: Cloud) -> bytes:
    from recon.io.meshes import float_code

    code = float_code(cloud.points)
    size = 4 if code == "f4" else 8
    names, sizes, types, dt = ["x", "y", "z"], [size] * 3, ["F"] * 3, [(a, "<" + code) for a in "xyz"]
    if cloud.normals is not None:
        names += ["normal_x", "normal_y", "normal_z"]
        sizes += [4] * 3
        types += ["F"] * 3
        dt += [(a, "<f4") for a in ("normal_x", "normal_y", "normal_z")]
    if cloud.colors is not None:
        names.append("rgb")
        sizes.append(4)
        types.append("F")
        dt.append(("rgb", "<u4"))
    n = len(cloud)
    rec = np.empty(n, dtype=dt)
    for i, a in enumerate("xyz"):
        rec[a] = cloud.points[:, i]
    if cloud.normals is not None:
        for i, a in enumerate(("normal_x", "normal_y", "normal_z")):
            rec[a] = cloud.normals[:, i]
    if cloud.colors is not None:
        c = cloud.colors.astype(np.uint32)
        rec["rgb"] = (c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]
    head = "\n".join([
        "# .PCD v0.7 - Point Cloud Data file format (written by recon)",
        "VERSION 0.7",
        "FIELDS " + " ".join(names),
        "SIZE " + " ".join(map(str, sizes)),
        "TYPE " + " ".join(types),
        "COUNT " + " ".join(["1"] * len(names)),
        f"WIDTH {n}",
        "HEIGHT 1",
        "VIEWPOINT 0 0 0 1 0 0 0",
        f"POINTS {n}",
        "DATA binary",
    ]) + "\n"
    return head.encode("ascii") + rec.tobytes()


def _text_bytes(cloud: Cloud) -> bytes:
    import io

    from recon.io.text import text_table

    table, fmt = text_table(cloud.points, cloud.normals, cloud.colors)
    buf = io.StringIO()
    np.savetxt(buf, table, fmt=fmt, delimiter=" ")
    return buf.getvalue().encode("ascii")


def _npy_bytes(cloud: Cloud) -> bytes:
    import io

    arr = cloud.points if cloud.normals is None else np.hstack([cloud.points, cloud.normals.astype(np.float64)])
    if cloud.colors is not None:
        warnings.warn("an .npy file holds points and normals only: the colours are not written "
                      "(use .npz or .ply to keep them)", ReconWarning, stacklevel=3)
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr, dtype=np.float64), allow_pickle=False)
    return buf.getvalue()


def _npz_bytes(cloud: Cloud) -> bytes:
    import io

    arrays = {"points": cloud.points}
    if cloud.normals is not None:
        arrays["normals"] = cloud.normals
    if cloud.colors is not None:
        arrays["colors"] = cloud.colors
    for key, arr in _per_point_extras(cloud).items():
        if key not in arrays and key.isidentifier():
            arrays[key] = arr
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()
