"""recon.io: every reader and writer on files with known contents, and every bad input on its message."""

from __future__ import annotations

import json
import os
import struct
import time
import warnings

import numpy as np
import pytest

from recon.cloud import Cloud
from recon.errors import InputError, ReconWarning
from recon.io import (
    CLOUD_OUTPUT_EXTENSIONS,
    MESH_OUTPUT_EXTENSIONS,
    SUPPORTED_CLOUD_EXTENSIONS,
    SUPPORTED_MESH_EXTENSIONS,
    read_cloud,
    read_mesh,
    write_cloud,
    write_mesh,
)
from recon.describe import describe
from recon.triangles import TriangleMesh

from fuzz_inputs import lzf_literals


def exact_error(fn, *args, **kwargs) -> str:
    """Run ``fn`` expecting an InputError; return its message (checked to be one line)."""
    with pytest.raises(InputError) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def sample_cloud(n=500, *, normals=True, colors=True, seed=0, offset=(0.0, 0.0, 0.0)) -> Cloud:
    gen = np.random.default_rng(seed)
    pts = gen.normal(size=(n, 3)) * [30.0, 20.0, 10.0] + offset
    nrm = gen.normal(size=(n, 3))
    nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
    col = gen.integers(0, 256, size=(n, 3), dtype=np.uint8)
    return Cloud(pts, normals=nrm.astype(np.float32) if normals else None, colors=col if colors else None)


def assert_points_close(a, b, *, rel=1e-6):
    diag = np.linalg.norm(np.ptp(b, axis=0))
    np.testing.assert_allclose(a, b, rtol=0, atol=rel * diag)


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("ext", CLOUD_OUTPUT_EXTENSIONS)
def test_every_cloud_format_round_trips(tmp_path, ext):
    cloud = sample_cloud()
    path = tmp_path / f"c{ext}"
    if ext == ".npy":
        with pytest.warns(ReconWarning, match="colours are not written"):
            write_cloud(cloud, path)
    else:
        write_cloud(cloud, path)
    back = read_cloud(path)
    assert back.source == str(path)
    assert_points_close(back.points, cloud.points)
    np.testing.assert_allclose(back.normals, cloud.normals, atol=1e-6)
    if ext == ".npy":
        assert back.colors is None
    else:
        np.testing.assert_array_equal(back.colors, cloud.colors)


@pytest.mark.parametrize("ext", [".ply", ".npz", ".xyz", ".pcd"])
def test_round_trip_without_normals_or_colours(tmp_path, ext):
    cloud = sample_cloud(normals=False, colors=False)
    write_cloud(cloud, tmp_path / f"c{ext}")
    back = read_cloud(tmp_path / f"c{ext}")
    assert back.normals is None and back.colors is None
    assert_points_close(back.points, cloud.points)


def test_xyz_with_colours_only_reads_them_back_as_colours(tmp_path):
    cloud = sample_cloud(normals=False)
    write_cloud(cloud, tmp_path / "c.xyz")
    back = read_cloud(tmp_path / "c.xyz")
    assert back.normals is None
    np.testing.assert_array_equal(back.colors, cloud.colors)


def test_georeferenced_coordinates_stay_exact_in_ply_and_pcd(tmp_path):
    # UTM-like: float32 would lose centimetres at 4,000 km, so the writer picks float64.
    cloud = sample_cloud(offset=(500_000.0, 4_000_000.0, 100.0), normals=False, colors=False)
    for ext in (".ply", ".pcd", ".xyz"):
        write_cloud(cloud, tmp_path / f"utm{ext}")
        np.testing.assert_allclose(read_cloud(tmp_path / f"utm{ext}").points, cloud.points, rtol=0, atol=1e-9)
    head = (tmp_path / "utm.ply").read_bytes()[:200]
    assert b"property double x" in head


def test_extras_round_trip_through_ply_and_npz(tmp_path):
    cloud = sample_cloud(n=50)
    cloud.extra["intensity"] = np.linspace(0, 1, 50).astype(np.float32)
    cloud.extra["label"] = np.arange(50, dtype=np.int64)
    for ext in (".ply", ".npz"):
        write_cloud(cloud, tmp_path / f"x{ext}")
        back = read_cloud(tmp_path / f"x{ext}")
        np.testing.assert_array_equal(back.extra["intensity"], cloud.extra["intensity"])
        np.testing.assert_array_equal(back.extra["label"], cloud.extra["label"])


# --------------------------------------------------------------------------- PLY by hand

ASCII_PLY = """ply
format ascii 1.0
comment made by hand
obj_info nothing
element vertex 3
property float x
property float y
property float z
property float nx
property float ny
property float nz
property uchar red
property uchar green
property uchar blue
property float quality
end_header
0 0 0 0 0 2 255 0 0 0.5
1 0 0 0 1 0 0 255 0 1.5
0 1 0.5 1 0 0 0 0 255 2.5
"""


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_ascii_ply_by_hand(tmp_path, newline):
    path = tmp_path / "hand.ply"
    path.write_bytes(ASCII_PLY.replace("\n", newline).encode())
    c = read_cloud(path)
    np.testing.assert_array_equal(c.points, [[0, 0, 0], [1, 0, 0], [0, 1, 0.5]])
    np.testing.assert_array_equal(c.normals, [[0, 0, 1], [0, 1, 0], [1, 0, 0]])  # renormalised
    np.testing.assert_array_equal(c.colors, [[255, 0, 0], [0, 255, 0], [0, 0, 255]])
    np.testing.assert_array_equal(c.extra["quality"], np.array([0.5, 1.5, 2.5], np.float32))
    assert c.extra["quality"].dtype == np.float32


def test_big_endian_binary_ply_with_doubles_and_float_colours(tmp_path):
    pts = np.array([[1.5, -2.25, 3.0], [4.0, 5.0, -6.125], [7.0, 8.5, 9.0]])
    rgb = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.0], [0.25, 0.25, 1.0]], np.float32)
    head = ("ply\nformat binary_big_endian 1.0\nelement vertex 3\nproperty double x\nproperty double y\n"
            "property double z\nproperty float r\nproperty float g\nproperty float b\n"
            "property ushort flags\nend_header\n")
    rec = np.zeros(3, dtype=[("x", ">f8"), ("y", ">f8"), ("z", ">f8"), ("r", ">f4"), ("g", ">f4"),
                             ("b", ">f4"), ("flags", ">u2")])
    rec["x"], rec["y"], rec["z"] = pts.T
    rec["r"], rec["g"], rec["b"] = rgb.T
    rec["flags"] = [1, 2, 65535]
    path = tmp_path / "be.ply"
    path.write_bytes(head.encode() + rec.tobytes())
    c = read_cloud(path)
    np.testing.assert_array_equal(c.points, pts)
    np.testing.assert_array_equal(c.colors, np.round(rgb * 255).astype(np.uint8))
    np.testing.assert_array_equal(c.extra["flags"], [1, 2, 65535])
    assert c.normals is None


def _square_pyramid_ply(binary: bool) -> bytes:
    # Base quad (z = 0) and four triangles to the apex: a closed mesh with mixed polygons.
    v = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0.5, 0.5, 1.0]], np.float32)
    polys = [[0, 3, 2, 1], [0, 1, 4], [1, 2, 4], [2, 3, 4], [3, 0, 4]]
    fmt = "binary_little_endian" if binary else "ascii"
    head = (f"ply\nformat {fmt} 1.0\nelement vertex 5\nproperty float x\nproperty float y\nproperty float z\n"
            "element face 5\nproperty list uchar int vertex_indices\nend_header\n").encode()
    if not binary:
        body = "".join(" ".join(map(str, r)) + "\n" for r in v.tolist())
        body += "".join(f"{len(p)} " + " ".join(map(str, p)) + "\n" for p in polys)
        return head + body.encode()
    body = v.astype("<f4").tobytes()
    for p in polys:
        body += struct.pack("<B", len(p)) + np.asarray(p, "<i4").tobytes()
    return head + body


@pytest.mark.parametrize("binary", [False, True])
def test_ply_mesh_with_mixed_polygons(tmp_path, binary):
    path = tmp_path / "pyramid.ply"
    path.write_bytes(_square_pyramid_ply(binary))
    mesh = read_mesh(path)
    assert mesh.n_vertices == 5 and mesh.n_faces == 6  # the quad is fanned into two triangles
    assert mesh.to_trimesh().is_watertight
    assert len(read_cloud(path)) == 5  # without sample: the vertices
    c = read_cloud(path, sample=2000, seed=1)
    assert len(c) == 2000 and c.normals is not None
    # Every sample lies on the pyramid: on the base (z = 0) or on a side plane.
    on_base = np.abs(c.points[:, 2]) < 1e-6
    np.testing.assert_allclose(c.normals[on_base], np.tile([0, 0, -1], (on_base.sum(), 1)), atol=1e-6)
    # Base area 1, four sides of area sqrt(1.25)/2 each: the base gets 1 / (1 + 2 sqrt(1.25)).
    expected = 1.0 / (1.0 + 2.0 * np.sqrt(1.25))
    assert abs(on_base.mean() - expected) < 4 * np.sqrt(expected * (1 - expected) / 2000)


def test_binary_ply_with_triangles_reads_fast_path(tmp_path):
    tris = np.array([[0, 1, 2], [0, 2, 3]])
    v = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], float)
    write_mesh(TriangleMesh(v, tris), tmp_path / "sq.ply")
    m = read_mesh(tmp_path / "sq.ply")
    np.testing.assert_array_equal(m.faces, tris)
    np.testing.assert_array_equal(m.vertices, v)


def test_million_point_binary_ply_loads_in_well_under_a_second(tmp_path):
    gen = np.random.default_rng(0)
    cloud = Cloud(gen.random((1_000_000, 3)) * 100.0, normals=None)
    write_cloud(cloud, tmp_path / "big.ply")
    t0 = time.perf_counter()
    back = read_cloud(tmp_path / "big.ply")
    elapsed = time.perf_counter() - t0
    assert len(back) == 1_000_000
    assert elapsed < 0.8, f"1M-point PLY took {elapsed:.2f} s"


# --------------------------------------------------------------------------- PCD


def _packed(rgb) -> np.ndarray:
    rgb = np.asarray(rgb, np.uint32)
    return ((rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]).astype(np.uint32)


def test_ascii_pcd_by_hand_with_packed_float_rgb(tmp_path):
    rgb = np.array([[255, 128, 64], [0, 0, 0], [1, 2, 3]])
    floats = _packed(rgb).view(np.float32)
    rows = [[1, 2, 3], [4, 5, 6], [7, 8, 9.5]]
    body = "".join(f"{r[0]} {r[1]} {r[2]} {f:.9g}\n" for r, f in zip(rows, floats))
    text = ("# .PCD v0.7 - Point Cloud Data file format\nVERSION 0.7\nFIELDS x y z rgb\nSIZE 4 4 4 4\n"
            "TYPE F F F F\nCOUNT 1 1 1 1\nWIDTH 3\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS 3\nDATA ascii\n") + body
    (tmp_path / "a.pcd").write_text(text)
    c = read_cloud(tmp_path / "a.pcd")
    np.testing.assert_array_equal(c.points, rows)
    np.testing.assert_array_equal(c.colors, rgb)


def _binary_pcd_parts():
    n = 4
    dt = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("normal_x", "<f4"), ("normal_y", "<f4"),
                   ("normal_z", "<f4"), ("_", "u1", (4,)), ("rgb", "<u4"), ("hist", "<f4", (2,))])
    rec = np.zeros(n, dt)
    pts = np.array([[0, 0, 0], [1, 0, 0], [0, 2, 0], [0, 0, 3]], np.float32)
    rec["x"], rec["y"], rec["z"] = pts.T
    rec["normal_z"] = 1.0
    rgb = np.array([[10, 20, 30], [40, 50, 60], [70, 80, 90], [255, 255, 255]])
    rec["rgb"] = _packed(rgb)
    rec["hist"] = np.arange(8, dtype=np.float32).reshape(4, 2)
    head = ("VERSION 0.7\nFIELDS x y z normal_x normal_y normal_z _ rgb hist\nSIZE 4 4 4 4 4 4 1 4 4\n"
            "TYPE F F F F F F U U F\nCOUNT 1 1 1 1 1 1 4 1 2\nWIDTH 4\nHEIGHT 1\nPOINTS 4\n")
    return head, rec, pts, rgb


def _check_binary_pcd(c, pts, rgb):
    np.testing.assert_array_equal(c.points, pts)
    np.testing.assert_array_equal(c.normals, np.tile([0, 0, 1], (4, 1)))
    np.testing.assert_array_equal(c.colors, rgb)
    np.testing.assert_array_equal(c.extra["hist"], np.arange(8).reshape(4, 2))
    assert "_" not in c.extra


def test_binary_pcd_by_hand(tmp_path):
    head, rec, pts, rgb = _binary_pcd_parts()
    (tmp_path / "b.pcd").write_bytes((head + "DATA binary\n").encode() + rec.tobytes())
    _check_binary_pcd(read_cloud(tmp_path / "b.pcd"), pts, rgb)




def test_binary_compressed_pcd_by_hand(tmp_path):
    head, rec, pts, rgb = _binary_pcd_parts()
    # binary_compressed stores each field for all points in turn, then LZF-compresses.
    columns = b"".join(np.ascontiguousarray(rec[name]).tobytes() for name in rec.dtype.names)
    packed = lzf_literals(columns)
    body = struct.pack("<II", len(packed), len(columns)) + packed
    (tmp_path / "c.pcd").write_bytes((head + "DATA binary_compressed\n").encode() + body)
    _check_binary_pcd(read_cloud(tmp_path / "c.pcd"), pts, rgb)
    # A corrupt stream is refused by name.
    bad = struct.pack("<II", 3, len(columns)) + bytes([40, 0, 0])
    (tmp_path / "bad.pcd").write_bytes((head + "DATA binary_compressed\n").encode() + bad)
    assert exact_error(read_cloud, tmp_path / "bad.pcd") == (
        f"{tmp_path / 'bad.pcd'}: corrupt PCD body: the LZF-compressed data does not decode")


def test_lzf_back_references_overlap():
    from recon.io.pcd import lzf_decompress

    # literal "abc", then copy 9 bytes starting 3 back (length 7 + 2, extended length byte 0)
    src = np.frombuffer(bytes([2, 97, 98, 99, 224, 0, 2]), np.uint8)
    assert lzf_decompress(src, 12).tobytes() == b"abcabcabcabc"
    assert lzf_decompress(src, 13) is None  # size mismatch is detected


def test_open3d_written_pcds_read_back(tmp_path):
    o3d = pytest.importorskip("open3d")
    cloud = sample_cloud(n=300)
    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(cloud.points))
    pc.normals = o3d.utility.Vector3dVector(cloud.normals.astype(np.float64))
    pc.colors = o3d.utility.Vector3dVector(cloud.colors / 255.0)
    for name, kw in {"ascii": dict(write_ascii=True), "binary": {}, "compressed": dict(compressed=True)}.items():
        path = tmp_path / f"{name}.pcd"
        o3d.io.write_point_cloud(str(path), pc, **kw)
        back = read_cloud(path)
        assert_points_close(back.points, cloud.points)
        np.testing.assert_allclose(back.normals, cloud.normals, atol=1e-6)
        np.testing.assert_array_equal(back.colors, cloud.colors)


# --------------------------------------------------------------------------- text formats


def test_pts_with_count_line_intensity_and_rgb(tmp_path):
    (tmp_path / "s.pts").write_text("3\n1 2 3 -100 255 0 0\n4 5 6 0 0 255 0\n7 8 9 100 0 0 255\n")
    c = read_cloud(tmp_path / "s.pts")
    np.testing.assert_array_equal(c.points, [[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    np.testing.assert_array_equal(c.colors, [[255, 0, 0], [0, 255, 0], [0, 0, 255]])
    np.testing.assert_array_equal(c.extra["intensity"], [-100, 0, 100])


def test_csv_with_header_and_comments(tmp_path):
    (tmp_path / "p.txt").write_text("# exported\nx,y,z,nx,ny,nz\n0,0,0,0,0,1\n# middle\n1,0,0,0,0,1\n0,1,0,0,1,0\n")
    c = read_cloud(tmp_path / "p.txt")
    np.testing.assert_array_equal(c.points, [[0, 0, 0], [1, 0, 0], [0, 1, 0]])
    np.testing.assert_array_equal(c.normals, [[0, 0, 1], [0, 0, 1], [0, 1, 0]])


def test_xyzn_six_columns_are_always_normals(tmp_path):
    (tmp_path / "p.xyzn").write_text("0 0 0 0 0 2\n1 0 0 2 0 0\n")
    np.testing.assert_array_equal(read_cloud(tmp_path / "p.xyzn").normals, [[0, 0, 1], [1, 0, 0]])


def test_text_ragged_rows_and_bad_column_counts(tmp_path):
    (tmp_path / "r.xyz").write_text("0 0 0\n1 1 1\n2 2\n")
    msg = exact_error(read_cloud, tmp_path / "r.xyz")
    assert msg.startswith(f"{tmp_path / 'r.xyz'}: malformed text point list: ")
    assert "3 to 2" in msg
    (tmp_path / "five.xyz").write_text("0 0 0 1 1\n1 1 1 1 1\n")
    assert exact_error(read_cloud, tmp_path / "five.xyz") == (
        f"{tmp_path / 'five.xyz'}: 5 columns per line; .xyz accepts 3 (x y z), 4 (+ intensity), "
        "6 (+ nx ny nz, or r g b as whole numbers 0-255) or 9 (+ nx ny nz r g b)")


# --------------------------------------------------------------------------- NumPy


def test_npy_and_npz_layouts(tmp_path):
    pts = np.array([[0, 0, 0], [1, 2, 3.0]])
    nrm = np.array([[0, 0, 1], [0, 1, 0.0]])
    np.save(tmp_path / "a.npy", np.hstack([pts, nrm]))
    c = read_cloud(tmp_path / "a.npy")
    np.testing.assert_array_equal(c.points, pts)
    np.testing.assert_array_equal(c.normals, nrm)
    np.savez(tmp_path / "one.npz", whatever=pts)
    np.testing.assert_array_equal(read_cloud(tmp_path / "one.npz").points, pts)
    np.savez(tmp_path / "keys.npz", points=pts, colors=np.array([[0.0, 0.5, 1.0], [1, 1, 1]]))
    np.testing.assert_array_equal(read_cloud(tmp_path / "keys.npz").colors, [[0, 128, 255], [255, 255, 255]])
    np.save(tmp_path / "bad.npy", np.zeros((4, 2)))
    assert exact_error(read_cloud, tmp_path / "bad.npy") == (
        f"{tmp_path / 'bad.npy'}: the array must be a numeric (N, 3) or (N, 6) array (x y z [nx ny nz]), "
        "got float64 (4, 2)")
    np.savez(tmp_path / "nokey.npz", a=pts, b=pts)
    assert exact_error(read_cloud, tmp_path / "nokey.npz") == (
        f"{tmp_path / 'nokey.npz'}: an .npz cloud needs a 'points' array (optional 'normals', 'colors'); "
        "found a, b")


def test_pickled_numpy_files_are_refused(tmp_path):
    obj = np.empty(2, dtype=object)
    obj[0], obj[1] = {"evil": 1}, [1, 2]
    np.savez(tmp_path / "p.npz", points=obj)
    np.save(tmp_path / "p.npy", obj, allow_pickle=True)
    for name in ("p.npz", "p.npy"):
        assert exact_error(read_cloud, tmp_path / name) == (
            f"{tmp_path / name}: holds pickled Python objects; recon loads plain numeric arrays only "
            "(allow_pickle=False)")


def test_a_field_file_is_not_taken_for_a_cloud(tmp_path):
    from recon.fields import SignedDistanceGrid

    SignedDistanceGrid(np.zeros((2, 2, 2), np.float32), np.zeros(3), 1.0).save(tmp_path / "f.npz")
    assert exact_error(read_cloud, tmp_path / "f.npz") == (
        f"{tmp_path / 'f.npz'}: this is a recon field file, not a point cloud (mesh it with `recon mesh`)")


# --------------------------------------------------------------------------- LAS / LAZ


@pytest.mark.parametrize("ext", [".las", ".laz"])
def test_las_and_laz_via_laspy(tmp_path, ext):
    laspy = pytest.importorskip("laspy")
    header = laspy.LasHeader(point_format=3, version="1.2")
    header.scales = np.array([0.001, 0.001, 0.001])
    header.offsets = np.array([500_000.0, 4_000_000.0, 0.0])
    las = laspy.LasData(header)
    gen = np.random.default_rng(2)
    xyz = np.round(gen.random((200, 3)) * [100, 100, 10] * 1000) / 1000 + [500_000, 4_000_000, 0]
    rgb = gen.integers(0, 256, (200, 3))
    las.x, las.y, las.z = xyz.T
    las.red, las.green, las.blue = (rgb * 257).T  # 16-bit colour, as LAS stores it
    las.intensity = np.arange(200)
    path = tmp_path / f"scan{ext}"
    try:
        las.write(str(path))
    except Exception as exc:  # no LAZ backend installed
        pytest.skip(f"laspy cannot write {ext} here: {exc}")
    c = read_cloud(path)
    np.testing.assert_allclose(c.points, xyz, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(c.colors, rgb)
    np.testing.assert_array_equal(c.extra["intensity"], np.arange(200))


def test_corrupt_las_is_an_input_error(tmp_path):
    (tmp_path / "x.las").write_bytes(b"LASF" + b"\0" * 50)
    assert exact_error(read_cloud, tmp_path / "x.las").startswith(f"{tmp_path / 'x.las'}: not a readable LAS/LAZ file (")


# --------------------------------------------------------------------------- meshes via trimesh


def _box_files(tmp_path):
    trimesh = pytest.importorskip("trimesh")
    box = trimesh.creation.box(extents=(2.0, 1.0, 1.0))
    paths = {}
    for ext in (".obj", ".stl", ".off", ".glb", ".ply"):
        paths[ext] = tmp_path / f"box{ext}"
        box.export(str(paths[ext]))
    gltf_dir = tmp_path / "gltf"
    gltf_dir.mkdir()
    for name, data in trimesh.Scene(box).export(file_type="gltf").items():
        (gltf_dir / name).write_bytes(data)
    paths[".gltf"] = gltf_dir / "model.gltf"
    return paths


def test_mesh_files_sampled_on_the_box_surface(tmp_path):
    for ext, path in _box_files(tmp_path).items():
        c = read_cloud(path, sample=4000, seed=5)
        assert len(c) == 4000, ext
        half = np.array([1.0, 0.5, 0.5])
        # every sample lies on the surface: on some face |coordinate| == half extent
        ratio = np.abs(c.points) / half
        np.testing.assert_allclose(ratio.max(axis=1), 1.0, atol=1e-9, err_msg=ext)
        assert np.all(ratio <= 1 + 1e-9)
        # the normal is the outward axis of the face the point lies on
        axis = ratio.argmax(axis=1)
        expected = np.zeros((4000, 3))
        expected[np.arange(4000), axis] = np.sign(c.points[np.arange(4000), axis])
        np.testing.assert_allclose(c.normals, expected, atol=1e-6, err_msg=ext)
        # area weighting: the two 1 x 1 end faces hold 2 of the 10 square units
        share = np.mean(axis == 0)
        assert abs(share - 0.2) < 4 * np.sqrt(0.2 * 0.8 / 4000), ext
        # seeded: same seed, same points; another seed, other points
        np.testing.assert_array_equal(read_cloud(path, sample=4000, seed=5).points, c.points)
        assert not np.array_equal(read_cloud(path, sample=4000, seed=6).points, c.points)


def test_mesh_files_give_their_vertices_and_read_as_meshes(tmp_path):
    import trimesh

    for ext, path in _box_files(tmp_path).items():
        c = read_cloud(path)
        assert len(c) == 8, ext  # STL's triangle soup is merged
        mesh = read_mesh(path)
        assert mesh.n_faces == 12, ext
        assert trimesh.Trimesh(mesh.vertices, mesh.faces).volume == pytest.approx(2.0), ext


def test_scene_meshes_are_concatenated_with_their_transforms(tmp_path):
    import trimesh

    a = trimesh.creation.box()
    b = trimesh.creation.box()
    scene = trimesh.Scene()
    scene.add_geometry(a)
    scene.add_geometry(b, transform=trimesh.transformations.translation_matrix([5.0, 0, 0]))
    (tmp_path / "s.glb").write_bytes(scene.export(file_type="glb"))
    mesh = read_mesh(tmp_path / "s.glb")
    assert mesh.n_faces == 24
    assert mesh.vertices[:, 0].max() == pytest.approx(5.5)
    # a mirrored instance keeps its triangles facing outwards (positive volume)
    mirror = trimesh.Scene()
    mirror.add_geometry(a, transform=np.diag([-1.0, 2.0, 1.0, 1.0]))
    (tmp_path / "m.glb").write_bytes(mirror.export(file_type="glb"))
    m = read_mesh(tmp_path / "m.glb")
    assert trimesh.Trimesh(m.vertices, m.faces, process=False).volume == pytest.approx(2.0)


def test_mesh_without_faces(tmp_path):
    (tmp_path / "pts.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    assert exact_error(read_mesh, tmp_path / "pts.obj") == (
        f"{tmp_path / 'pts.obj'}: the file has no faces (it is a point cloud, not a mesh)")
    assert len(read_cloud(tmp_path / "pts.obj")) == 3


@pytest.mark.parametrize("ext", MESH_OUTPUT_EXTENSIONS)
def test_write_mesh_round_trips(tmp_path, ext):
    import trimesh

    tm = trimesh.creation.icosphere(subdivisions=2, radius=3.0)
    normals = np.asarray(tm.vertex_normals, np.float32)
    mesh = TriangleMesh(np.asarray(tm.vertices) + [10.0, 0, 0], np.asarray(tm.faces), normals)
    path = tmp_path / f"m{ext}"
    write_mesh(mesh, path)
    back = read_mesh(path)
    assert back.n_faces == mesh.n_faces
    assert back.n_vertices == mesh.n_vertices
    # Same triangles up to vertex order: map each vertex read back to the one written.
    from scipy.spatial import cKDTree

    dist, idx = cKDTree(mesh.vertices).query(back.vertices)
    assert dist.max() < 1e-5
    def canonical(faces):  # rotate each triangle to start at its smallest index (keeps orientation)
        r = np.argmin(faces, axis=1)
        rolled = np.stack([faces[np.arange(len(faces)), (r + k) % 3] for k in range(3)], axis=1)
        return sorted(map(tuple, rolled))
    assert canonical(idx[back.faces]) == canonical(mesh.faces)
    if ext in (".ply", ".obj", ".glb"):
        assert back.vertex_normals is not None
        np.testing.assert_allclose(back.vertex_normals, normals[idx], atol=1e-5)


def test_write_mesh_refuses_unknown_format(tmp_path):
    mesh = TriangleMesh(np.eye(3), np.array([[0, 1, 2]]))
    assert exact_error(write_mesh, mesh, tmp_path / "m.vtk") == (
        f"{tmp_path / 'm.vtk'}: unknown mesh format '.vtk'; write one of {', '.join(MESH_OUTPUT_EXTENSIONS)}")


# --------------------------------------------------------------------------- non-finite rows


def test_nan_and_inf_rows_are_dropped_with_a_count(tmp_path):
    pts = np.array([[0, 0, 0], [np.nan, 1, 1], [1, 1, 1], [2, np.inf, 0], [3, 3, 3]], float)
    np.save(tmp_path / "n.npy", pts)
    with pytest.warns(ReconWarning) as record:
        c = read_cloud(tmp_path / "n.npy")
    assert str(record[0].message) == f"{tmp_path / 'n.npy'}: dropped 2 of 5 points with NaN or Inf values"
    np.testing.assert_array_equal(c.points, [[0, 0, 0], [1, 1, 1], [3, 3, 3]])
    bad = np.full((3, 3), np.nan)
    np.save(tmp_path / "all.npy", bad)
    msg = exact_error(read_cloud, tmp_path / "all.npy")
    assert msg == f"{tmp_path / 'all.npy'}: no points after dropping 3 with NaN or Inf values"


def test_nan_rows_drop_their_extras_too(tmp_path):
    cloud = Cloud(np.array([[0, 0, 0], [1, 1, 1], [2, 2, 2.0]]), extra={"i": np.array([1.0, 2.0, 3.0], np.float32)})
    write_cloud(cloud, tmp_path / "e.ply")
    data = (tmp_path / "e.ply").read_bytes()
    nan_bytes = np.float32(np.nan).tobytes()
    head_end = data.index(b"end_header\n") + len(b"end_header\n")
    row = 16  # x y z i as float32
    data = data[:head_end + row] + nan_bytes + data[head_end + row + 4:]
    (tmp_path / "e.ply").write_bytes(data)
    with pytest.warns(ReconWarning, match="dropped 1 of 3"):
        c = read_cloud(tmp_path / "e.ply")
    np.testing.assert_array_equal(c.extra["i"], [1.0, 3.0])


# --------------------------------------------------------------------------- bad inputs


def test_missing_directory_unknown_extension(tmp_path):
    assert exact_error(read_cloud, tmp_path / "nope.ply") == f"no such file: {tmp_path / 'nope.ply'}"
    assert exact_error(read_cloud, tmp_path) == f"{tmp_path} is a directory, not a file"
    (tmp_path / "x.foo").write_text("1 2 3\n")
    supported = ", ".join(SUPPORTED_CLOUD_EXTENSIONS)
    assert exact_error(read_cloud, tmp_path / "x.foo") == (
        f"{tmp_path / 'x.foo'}: unknown point cloud format '.foo'; supported: {supported}")
    (tmp_path / "noext").write_text("1 2 3\n")
    assert exact_error(read_cloud, tmp_path / "noext") == (
        f"{tmp_path / 'noext'}: unknown point cloud format '(no extension)'; supported: {supported}")
    # a name that merely contains a known extension is not read as one
    (tmp_path / "scan.ply.bak").write_bytes(b"ply\n")
    assert "unknown point cloud format '.bak'" in exact_error(read_cloud, tmp_path / "scan.ply.bak")
    assert exact_error(read_mesh, tmp_path / "x.foo") == (
        f"{tmp_path / 'x.foo'}: unknown mesh format '.foo'; supported: {', '.join(SUPPORTED_MESH_EXTENSIONS)}")


def test_upper_case_extension_is_accepted(tmp_path):
    write_cloud(sample_cloud(n=10), tmp_path / "c.ply")
    os.replace(tmp_path / "c.ply", tmp_path / "C.PLY")
    assert len(read_cloud(tmp_path / "C.PLY")) == 10


def test_permission_denied_is_an_input_error(tmp_path, monkeypatch):
    import recon.io._common as common

    path = tmp_path / "locked.ply"
    write_cloud(sample_cloud(n=10), path)
    monkeypatch.setattr(common.os, "access", lambda p, mode: False)
    assert exact_error(read_cloud, path) == f"{path}: permission denied"


def test_header_comments_may_hold_any_bytes_and_end_header_trailing_space(tmp_path):
    cloud = sample_cloud(n=10, normals=False, colors=False)
    write_cloud(cloud, tmp_path / "c.ply")
    data = (tmp_path / "c.ply").read_bytes()
    data = data.replace(b"comment written by recon", "comment auteur: Jérôme".encode("utf-8"))
    data = data.replace(b"end_header\n", b"end_header \r\n")
    (tmp_path / "c.ply").write_bytes(data)
    assert_points_close(read_cloud(tmp_path / "c.ply").points, cloud.points)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads any file")
def test_permission_denied(tmp_path):
    path = tmp_path / "locked.ply"
    write_cloud(sample_cloud(n=10), path)
    path.chmod(0)
    try:
        assert exact_error(read_cloud, path) == f"{path}: permission denied"
    finally:
        path.chmod(0o644)


@pytest.mark.parametrize(
    "header, detail",
    [
        ("plx\nformat ascii 1.0\nend_header\n", "the file does not start with 'ply'"),
        ("ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\n", "no 'end_header' line"),
        ("ply\nformat ascii 2 1.0\nend_header\n", "line 2: unknown format 'ascii 2 1.0' (expected one of ascii, "
         "binary_little_endian, binary_big_endian and a version)"),
        ("ply\nformat ascii 1.0\nelement vertex 3\nproperty flaot x\nend_header\n",
         "line 4: unknown property type 'flaot'"),
        ("ply\nformat ascii 1.0\nproperty float x\nend_header\n", "line 3: a property comes before any element"),
        ("ply\nformat ascii 1.0\nelement vertex -3\nend_header\n", "line 3: element 'vertex' has a bad count '-3'"),
        ("ply\nelement vertex 1\nproperty float x\nend_header\n", "no 'format' line"),
        ("ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float x\nend_header\n",
         "line 5: property 'x' appears twice in element 'vertex'"),
        ("ply\nformat ascii 1.0\nbanana\nend_header\n", "line 3: unexpected 'banana'"),
    ],
)
def test_corrupt_ply_header(tmp_path, header, detail):
    path = tmp_path / "bad.ply"
    path.write_text(header)
    assert exact_error(read_cloud, path) == f"{path}: corrupt PLY header: {detail}"


def test_truncated_binary_ply_body(tmp_path):
    write_cloud(Cloud(np.random.default_rng(0).random((10, 3)), normals=None), tmp_path / "t.ply")
    data = (tmp_path / "t.ply").read_bytes()
    (tmp_path / "t.ply").write_bytes(data[:-20])
    assert exact_error(read_cloud, tmp_path / "t.ply") == (
        f"{tmp_path / 't.ply'}: truncated PLY body: element 'vertex' (10 rows) needs 120 bytes, the file has 100 left")


def test_truncated_ascii_ply_body(tmp_path):
    path = tmp_path / "t.ply"
    path.write_text("ply\nformat ascii 1.0\nelement vertex 4\nproperty float x\nproperty float y\nproperty float z\n"
                    "end_header\n0 0 0\n1 1 1\n2 2 2\n")
    assert exact_error(read_cloud, path) == (
        f"{path}: truncated PLY body: element 'vertex' (4 rows) needs 4 x 3 values, the body has 9 left")
    path.write_text("ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\nproperty float z\n"
                    "end_header\n0 0 0\n1 one 1\n")
    assert exact_error(read_cloud, path) == f"{path}: corrupt ascii PLY body: 'one' is not a number"


def test_truncated_mesh_faces(tmp_path):
    data = _square_pyramid_ply(True)
    (tmp_path / "p.ply").write_bytes(data[:-6])
    assert len(read_cloud(tmp_path / "p.ply")) == 5  # the vertices are whole
    assert exact_error(read_mesh, tmp_path / "p.ply") == (
        f"{tmp_path / 'p.ply'}: truncated PLY body: element 'face' (5 rows) ends at row 4")


def test_face_index_out_of_range(tmp_path):
    path = tmp_path / "f.ply"
    path.write_text("ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
                    "element face 1\nproperty list uchar int vertex_indices\nend_header\n0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n")
    assert exact_error(read_mesh, path) == f"{path}: a face refers to vertex 7, but the file has 3 vertices"


def test_empty_and_identical_clouds(tmp_path):
    path = tmp_path / "e.ply"
    path.write_text("ply\nformat binary_little_endian 1.0\nelement vertex 0\nproperty float x\nproperty float y\n"
                    "property float z\nend_header\n")
    assert exact_error(read_cloud, path) == f"{path}: no points"
    np.save(tmp_path / "same.npy", np.tile([1.0, 2.0, 3.0], (5, 1)))
    assert exact_error(read_cloud, tmp_path / "same.npy") == (
        f"{tmp_path / 'same.npy'}: all 5 points are identical: there is no surface to fit")
    (tmp_path / "empty.xyz").write_text("# nothing here\n")
    assert exact_error(read_cloud, tmp_path / "empty.xyz") == f"{tmp_path / 'empty.xyz'}: no points (the file holds no data lines)"


def test_corrupt_and_truncated_pcd(tmp_path):
    head, rec, _, _ = _binary_pcd_parts()
    (tmp_path / "t.pcd").write_bytes((head + "DATA binary\n").encode() + rec.tobytes()[:-5])
    assert exact_error(read_cloud, tmp_path / "t.pcd") == (
        f"{tmp_path / 't.pcd'}: truncated PCD body: 4 points x 40 bytes = 160 bytes needed, the file has 155")
    (tmp_path / "h.pcd").write_text("VERSION 0.7\nFIELDS x y z\nSIZE 4 4\nTYPE F F F\nPOINTS 1\nDATA ascii\n0 0 0\n")
    assert exact_error(read_cloud, tmp_path / "h.pcd") == (
        f"{tmp_path / 'h.pcd'}: corrupt PCD header: FIELDS, SIZE, TYPE and COUNT list different numbers of "
        "entries (3, 2, 3, 3)")


def test_sample_must_be_positive(tmp_path):
    np.save(tmp_path / "a.npy", np.eye(3))
    for bad in (0, -3, 2.5, True):
        assert exact_error(read_cloud, tmp_path / "a.npy", sample=bad) == f"sample must be a positive integer, got {bad!r}"


def test_sample_on_a_point_cloud_keeps_a_seeded_subset(tmp_path):
    cloud = sample_cloud(n=1000)
    write_cloud(cloud, tmp_path / "c.npz")
    a = read_cloud(tmp_path / "c.npz", sample=100, seed=3)
    b = read_cloud(tmp_path / "c.npz", sample=100, seed=3)
    assert len(a) == 100
    np.testing.assert_array_equal(a.points, b.points)
    rows = {tuple(p) for p in cloud.points}
    assert all(tuple(p) in rows for p in a.points)
    assert len(read_cloud(tmp_path / "c.npz", sample=5000)) == 1000


# --------------------------------------------------------------------------- atomic output


def test_writing_over_an_existing_output_replaces_it_atomically(tmp_path):
    out = tmp_path / "out.ply"
    out.write_bytes(b"old contents")
    write_cloud(sample_cloud(n=20), out)
    assert len(read_cloud(out)) == 20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.ply"]  # no temporary left behind


def test_writing_onto_the_input_is_refused(tmp_path):
    src = tmp_path / "in.ply"
    write_cloud(sample_cloud(n=20), src)
    before = src.read_bytes()
    cloud = read_cloud(src)
    assert exact_error(write_cloud, cloud, src, inputs=[src]) == (
        f"refusing to overwrite the input {src}: choose another output path")
    mesh = TriangleMesh(np.eye(3), np.array([[0, 1, 2]]))
    assert "refusing to overwrite the input" in exact_error(write_mesh, mesh, src, inputs=[src])
    assert src.read_bytes() == before


def test_a_failed_write_leaves_nothing(tmp_path, monkeypatch):
    import recon.io.clouds as clouds

    def boom(cloud):
        raise RuntimeError("disk on fire")

    out = tmp_path / "x.ply"
    out.write_bytes(b"previous")
    monkeypatch.setattr(clouds, "_ply_cloud_bytes", boom)
    with pytest.raises(RuntimeError):
        write_cloud(sample_cloud(n=5), out)
    assert out.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.ply"]


# --------------------------------------------------------------------------- describe


def test_describe_cloud_mesh_and_field(tmp_path):
    from recon.cloud import Normalization
    from recon.fields import SignedDistanceGrid

    cloud = sample_cloud(n=100)
    cloud.extra["quality"] = np.ones(100, np.float32)
    write_cloud(cloud, tmp_path / "c.ply")
    d = describe(tmp_path / "c.ply")
    assert d["kind"] == "cloud" and d["points"] == 100 and d["format"] == "ply binary_little_endian"
    assert d["has_normals"] and d["has_colors"] and d["extra_properties"] == ["quality"]
    np.testing.assert_allclose(d["bounds"], cloud.bounds(), rtol=1e-6)
    assert d["bbox_diagonal"] == pytest.approx(np.linalg.norm(np.ptp(cloud.points, axis=0)), rel=1e-6)

    (tmp_path / "p.ply").write_bytes(_square_pyramid_ply(True))
    m = describe(tmp_path / "p.ply")
    assert (m["kind"], m["vertices"], m["faces"], m["watertight"]) == ("mesh", 5, 6, True)
    assert m["surface_area"] == pytest.approx(1.0 + 2.0 * np.sqrt(1.25))

    g = np.stack(np.meshgrid(*[np.linspace(-1, 1, 9)] * 3, indexing="ij"), -1)
    sdf = np.linalg.norm(g, axis=-1) - 0.5
    SignedDistanceGrid(sdf, [-1, -1, -1], 0.25, normalization=Normalization(np.zeros(3), 0.5),
                       params={"resolution": 8}).save(tmp_path / "f.npz")
    f = describe(tmp_path / "f.npz")
    assert f["kind"] == "field" and f["field_class"] == "SignedDistanceGrid" and f["field_kind"] == "signed"
    assert f["shape"] == [9, 9, 9] and f["voxel_size"] == 0.25 and f["parameters"] == {"resolution": 8}
    assert f["bounds"] == [[-1, -1, -1], [1, 1, 1]]
    assert f["normalization"] == {"center": [0.0, 0.0, 0.0], "scale": 0.5}
    for item in (d, m, f):
        json.dumps(item)  # plain JSON-able values


def test_describe_bad_path(tmp_path):
    assert exact_error(describe, tmp_path / "none.ply") == f"no such file: {tmp_path / 'none.ply'}"


# --------------------------------------------------------------------------- shipped data


def test_every_bench_input_reads(bench_data):
    for case in sorted(p for p in bench_data.iterdir() if p.is_dir()):
        with warnings.catch_warnings():
            warnings.simplefilter("error", ReconWarning)
            c = read_cloud(case / "input.ply")
        assert len(c) > 0


def test_demo_cloud_asset():
    import importlib.util
    from pathlib import Path

    assets = Path(__file__).resolve().parents[1] / "assets"
    path = assets / "demo_cloud.ply"
    if not path.exists():
        pytest.skip(f"{path} not built (run assets/make_demo_cloud.py)")
    assert path.stat().st_size < 1_000_000
    c = read_cloud(path)
    assert len(c) == 20_000 and c.normals is None and c.colors is None
    spec = importlib.util.spec_from_file_location("make_demo_cloud", assets / "make_demo_cloud.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # every point is on the analytic surface, up to the 0.08 mm noise (5 sigma = 0.4 mm)
    assert np.abs(module.demo_sdf(c.points - module.OFFSET)).max() < 0.5
    # closed with a clear inside: inside the tube and the bulb negative, the ring's hole outside
    probe = np.array([[-30.0, 0, 0], [0, 30.0, 0], [30.0, 0, 0], [0, 0, 0], [0, 0, 30.0]])
    assert np.all(np.sign(module.demo_sdf(probe)) == [-1, -1, -1, 1, 1])
    # millimetres, in the file's own frame (not re-centred)
    centre = (c.points.min(axis=0) + c.points.max(axis=0)) / 2
    assert np.linalg.norm(centre - module.OFFSET) < 15.0
    assert 100.0 < np.linalg.norm(np.ptp(c.points, axis=0)) < 150.0


def test_atomic_output_gets_ordinary_permissions(tmp_path):
    import os
    import stat

    from recon.io.atomic import atomic_path

    target = tmp_path / "out.txt"
    old = os.umask(0o022)
    try:
        with atomic_path(target) as tmp:
            tmp.write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    os.chmod(target, 0o640)
    with atomic_path(target) as tmp:
        tmp.write_text("y")
    assert stat.S_IMODE(target.stat().st_mode) == 0o640 and target.read_text() == "y"


def test_an_output_folder_that_refuses_files_names_the_output(tmp_path, monkeypatch):
    from recon.io.atomic import atomic_path

    real_open = os.open

    def refuse(name, *args, **kwargs):
        if ".part" in str(name):
            raise PermissionError(13, "Permission denied", str(name))
        return real_open(name, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)
    target = tmp_path / "out.ply"
    with pytest.raises(InputError) as info:
        with atomic_path(target):
            pass
    assert str(info.value) == f"cannot write {target}: Permission denied"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("n, rows, detail", [
    (3, "0 0 0 7\n1 0 0 7\n0 1 0 7\n", "element 'vertex' row 0 holds 4 values, the header declares 3 (on 3 row(s) in all)"),
    (4, "0 0\n1 0 0 7\n0 1 0 7\n1 1\n", "element 'vertex' row 0 holds 2 values, the header declares 3 (on 4 row(s) in all)"),
    (2, "0 0 0\n1 0 0 0 1 0\n", "element 'vertex' row 1 holds 6 values, the header declares 3 (on 1 row(s) in all)"),
    (3, "0 0 0\n1 0 0\n0 1 0\n5 5 5\n", "1 more row(s) than the header's element counts declare"),
])
def test_ascii_ply_rows_must_hold_what_the_header_declares(tmp_path, n, rows, detail):
    path = tmp_path / "rows.ply"
    path.write_text("ply\nformat ascii 1.0\nelement vertex " + str(n) + "\nproperty float x\nproperty float y\n"
                    "property float z\nend_header\n" + rows)
    assert exact_error(read_cloud, path) == f"{path}: corrupt ascii PLY body: {detail}"


def test_ascii_ply_face_rows_are_checked_and_integers_must_fit(tmp_path):
    head = ("ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
            "element face 1\nproperty list uchar int vertex_indices\nend_header\n0 0 0\n1 0 0\n0 1 0\n")
    path = tmp_path / "f.ply"
    path.write_text(head + "3 0 1 2 9\n")
    assert exact_error(read_mesh, path) == (
        f"{path}: corrupt ascii PLY body: element 'face' row 0 holds 5 values, the header declares 4 (on 1 row(s) in all)")
    path.write_text(head + "-3 0 1 2\n")
    assert exact_error(read_mesh, path) == f"{path}: corrupt ascii PLY body: element 'face' has a list length -3.0"
    path.write_text(head.replace("property float z\n", "property float z\nproperty uchar red\n")
                    .replace("0 0 0\n1 0 0\n0 1 0\n", "0 0 0 300\n1 0 0 1\n0 1 0 2\n") + "3 0 1 2\n")
    assert exact_error(read_mesh, path) == (
        f"{path}: corrupt ascii PLY body: a value does not fit its integer property type (uchar)")


@pytest.mark.parametrize("when", ["created", "writing", "renaming"])
@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, RuntimeError])
def test_an_interrupted_atomic_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch, when, interrupt):
    import recon.io.atomic as atomic

    target = tmp_path / "out.ply"
    target.write_bytes(b"old")
    real_open, real_replace = os.open, os.replace

    def open_then_interrupt(name, *args, **kwargs):  # the file exists, its name is not yet returned
        real_open(name, *args, **kwargs)
        raise interrupt()

    def replace_interrupted(*args):
        raise interrupt()

    if when == "created":
        monkeypatch.setattr(os, "open", open_then_interrupt)
    elif when == "renaming":
        monkeypatch.setattr(os, "replace", replace_interrupted)
    with pytest.raises(interrupt):
        with atomic.atomic_path(target) as tmp:
            tmp.write_bytes(b"new, half written")
            if when == "writing":
                raise interrupt()
    monkeypatch.setattr(os, "open", real_open)
    monkeypatch.setattr(os, "replace", real_replace)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.ply"]
    assert target.read_bytes() == b"old"


def test_sigterm_inside_an_atomic_write_raises_and_cleans_up(tmp_path):
    import signal

    from recon.errors import Terminated
    from recon.io.atomic import atomic_path

    target = tmp_path / "out.ply"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    with pytest.raises(Terminated):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1.0)  # the handler raises before this ends
    assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored
