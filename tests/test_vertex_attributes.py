"""Mesh vertex colours and ``distance_to_data``: computed from the cloud, kept through
vertex selection, written into (and read back from) mesh files."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from recon import Cloud, InputError
from recon.io import read_mesh, write_mesh
from recon.meshing.vertex_attributes import DISTANCE_TO_DATA, attach_vertex_attributes
from recon.pipeline import reconstruct
from recon.triangles import TriangleMesh

FAST = {"method": "gridpull", "resolution": 40, "iterations": 60, "device": "cpu", "seed": 0}
CENTER = np.array([4.0, -2.0, 1.0])
RED, BLUE = (255, 0, 0), (0, 0, 255)


def two_colour_sphere(n=3000, radius=1.5, colours=True) -> Cloud:
    """Points on a sphere around CENTER; red where x > CENTER x, blue elsewhere."""
    d = np.random.default_rng(0).normal(size=(n, 3))
    pts = CENTER + radius * d / np.linalg.norm(d, axis=1, keepdims=True)
    col = np.where((pts[:, 0] > CENTER[0])[:, None], RED, BLUE).astype(np.uint8) if colours else None
    return Cloud(pts, colors=col, source="two-colour sphere")


@pytest.fixture(scope="module")
def coloured_result():
    return reconstruct(two_colour_sphere(), **FAST)


def read_ply_vertices(path) -> np.ndarray:
    """The vertex element of a binary little-endian PLY as a NumPy record array, parsed
    here from the header (independent of recon's reader)."""
    data = path.read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    header = data[:end].decode("ascii").splitlines()
    assert header[1] == "format binary_little_endian 1.0"
    types = {"float": "<f4", "double": "<f8", "uchar": "u1", "int": "<i4"}
    count, fields, in_vertex = 0, [], False
    for line in header:
        words = line.split()
        if words[0] == "element":
            in_vertex = words[1] == "vertex"
            count = int(words[2]) if in_vertex else count
        elif words[0] == "property" and in_vertex:
            fields.append((words[2], types[words[1]]))
    return np.frombuffer(data, dtype=np.dtype(fields), count=count, offset=end)


def test_the_red_half_of_a_sphere_gives_red_vertices(coloured_result):
    mesh = coloured_result.mesh
    assert mesh.vertex_colors is not None and mesh.vertex_colors.dtype == np.uint8
    x = mesh.vertices[:, 0] - CENTER[0]
    # away from the seam every neighbour has one colour; at it the weighted mean mixes the two
    assert (mesh.vertex_colors[x > 0.2] == RED).all() and (x > 0.2).sum() > 100
    assert (mesh.vertex_colors[x < -0.2] == BLUE).all() and (x < -0.2).sum() > 100
    seam = np.abs(x) < 0.05
    assert seam.any() and (mesh.vertex_colors[seam, 1] == 0).all()  # a mix of red and blue, no green


def test_distance_to_data_is_the_distance_to_the_nearest_fitted_point(coloured_result):
    mesh, cloud = coloured_result.mesh, coloured_result.cloud
    got = mesh.vertex_attributes[DISTANCE_TO_DATA]
    assert got.dtype == np.float32 and got.shape == (mesh.n_vertices,)
    want, _ = cKDTree(cloud.points).query(mesh.vertices)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert got.max() > 0.0  # a mesh between the points is some way from them
    assert coloured_result.timings["attributes_s"] >= 0.0


def test_colours_and_distance_survive_a_ply_round_trip(coloured_result, tmp_path):
    mesh = coloured_result.mesh
    path = write_mesh(mesh, tmp_path / "sphere.mesh.ply")
    raw = read_ply_vertices(path)
    assert raw.dtype["red"] == np.uint8 and raw.dtype[DISTANCE_TO_DATA] == np.dtype("<f4")
    np.testing.assert_array_equal(np.column_stack([raw["red"], raw["green"], raw["blue"]]), mesh.vertex_colors)
    np.testing.assert_array_equal(raw[DISTANCE_TO_DATA], mesh.vertex_attributes[DISTANCE_TO_DATA])
    back = read_mesh(path)
    np.testing.assert_array_equal(back.vertex_colors, mesh.vertex_colors)
    np.testing.assert_array_equal(back.vertex_attributes[DISTANCE_TO_DATA], mesh.vertex_attributes[DISTANCE_TO_DATA])
    # what a user does with it: keep the faces whose vertices all lie near the data
    near = raw[DISTANCE_TO_DATA] < 0.01
    kept = back.faces[near[back.faces].all(axis=1)]
    assert 0 < len(kept) < back.n_faces


def test_obj_and_glb_carry_the_colours(coloured_result, tmp_path):
    import trimesh

    mesh = coloured_result.mesh
    for ext in ("obj", "glb"):
        path = write_mesh(mesh, tmp_path / f"sphere.{ext}")
        loaded = trimesh.load(str(path), process=False, force="mesh")
        assert loaded.visual.kind == "vertex", ext
        np.testing.assert_array_equal(np.asarray(loaded.visual.vertex_colors)[:, :3], mesh.vertex_colors)


def test_a_cloud_without_colours_gives_no_colour_property(tmp_path):
    result = reconstruct(two_colour_sphere(colours=False), **FAST)
    assert result.mesh.vertex_colors is None
    raw = read_ply_vertices(write_mesh(result.mesh, tmp_path / "plain.ply"))
    assert "red" not in raw.dtype.names and DISTANCE_TO_DATA in raw.dtype.names
    assert read_mesh(tmp_path / "plain.ply").vertex_colors is None


def test_a_vertex_on_a_point_takes_its_colour_and_far_georeferenced_distances_are_exact():
    # three points 2 m apart in UTM-sized coordinates; vertices on a point and 0.25 m off one
    base = np.array([500_000.0, 4_200_000.0, 120.0])
    pts = base + [[0.0, 0, 0], [2.0, 0, 0], [0, 2.0, 0]]
    cloud = Cloud(pts, colors=[[10, 20, 30], [200, 100, 0], [0, 0, 0]])
    verts = np.array([pts[1], pts[0] + [0.0, 0.0, 0.25], pts[2] + [0.0, 0.0, -1.0]])
    mesh = attach_vertex_attributes(TriangleMesh(verts, [[0, 1, 2]]), cloud, k=2)
    np.testing.assert_allclose(mesh.vertex_attributes[DISTANCE_TO_DATA], [0.0, 0.25, 1.0], atol=1e-6)
    assert tuple(mesh.vertex_colors[0]) == (200, 100, 0)
    # 1 / 0.25 and 1 / sqrt(4 + 0.0625) weigh the two nearest points' colours
    w = np.array([1 / 0.25, 1 / np.hypot(2.0, 0.25)])
    want = np.rint((w[0] * np.array([10, 20, 30]) + w[1] * np.array([200, 100, 0])) / w.sum())
    np.testing.assert_array_equal(mesh.vertex_colors[1], want)


def test_selecting_vertices_keeps_colours_and_attributes_aligned():
    mesh = TriangleMesh(np.arange(12.0).reshape(4, 3), [[0, 1, 2], [1, 2, 3]],
                        vertex_colors=[[0, 0, 0], [1, 1, 1], [2, 2, 2], [3, 3, 3]],
                        vertex_attributes={DISTANCE_TO_DATA: [0.0, 0.1, 0.2, 0.3]})
    part = mesh.take_vertices(np.array([1, 2, 3]), np.array([[0, 1, 2]]))
    np.testing.assert_array_equal(part.vertex_colors[:, 0], [1, 2, 3])
    np.testing.assert_allclose(part.vertex_attributes[DISTANCE_TO_DATA], [0.1, 0.2, 0.3])
    np.testing.assert_array_equal(part.vertices, mesh.vertices[1:])


@pytest.mark.parametrize("kwargs, message", [
    ({"vertex_colors": np.zeros((2, 3))}, "vertex_colors must be (3, 3) like the vertices, got (2, 3)"),
    ({"vertex_attributes": {"d": np.zeros(4)}}, "vertex attribute 'd' must be (3,) like the vertices, got (4,)"),
    ({"vertex_attributes": {"a b": np.zeros(3)}}, "vertex attribute names must be identifiers"),
])
def test_per_vertex_arrays_of_the_wrong_length_are_refused(kwargs, message):
    with pytest.raises(InputError) as err:
        TriangleMesh(np.eye(3), [[0, 1, 2]], **kwargs)
    assert message in str(err.value)


def test_writing_a_coloured_mesh_is_atomic(coloured_result, tmp_path, monkeypatch):
    import recon.io.ply as ply

    out = tmp_path / "out.ply"
    out.write_bytes(b"old contents")
    write_mesh(coloured_result.mesh, out)
    assert read_mesh(out).vertex_colors is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.ply"]  # no temporary left behind

    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    before = out.read_bytes()
    monkeypatch.setattr(ply, "ply_bytes", boom)
    with pytest.raises(RuntimeError):
        write_mesh(coloured_result.mesh, out)
    assert out.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["out.ply"]


def test_keep_vertices_drops_faces_far_from_data_as_the_readme_shows(coloured_result, tmp_path, monkeypatch):
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "keep_vertices" in b)
    mesh = coloured_result.mesh
    write_mesh(mesh, tmp_path / "scan.mesh.ply")
    monkeypatch.chdir(tmp_path)
    exec(block.replace("0.05", "0.01"), {})
    near = read_mesh(tmp_path / "scan.near.ply")
    assert 0 < near.n_faces < mesh.n_faces
    assert near.vertex_attributes[DISTANCE_TO_DATA].max() < 0.01
    assert near.vertex_colors is not None and len(np.unique(near.faces)) == near.n_vertices
    with pytest.raises(InputError, match="bool mask"):
        mesh.keep_vertices(np.ones(3, bool))


def test_fit_help_names_the_attribute(capsys):
    from recon.cli import main as cli_main

    assert cli_main.run(["fit", "--help"]) == 0
    assert "distance_to_data" in capsys.readouterr().out


def test_stitching_tiles_keeps_the_least_distance_of_a_welded_vertex():
    from recon.tiling.stitch import stitch

    a = TriangleMesh([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 1, 2]],
                     vertex_attributes={DISTANCE_TO_DATA: [0.5, 0.1, 0.2]})
    b = TriangleMesh([[1.0, 0, 0], [2, 0, 0], [1, 1, 0]], [[0, 1, 2]],
                     vertex_attributes={DISTANCE_TO_DATA: [0.05, 0.3, 0.4]})
    welded = stitch([a, b], h=0.1)
    assert welded.n_vertices == 5
    d = dict(zip(map(tuple, welded.vertices), welded.vertex_attributes[DISTANCE_TO_DATA]))
    assert d[(1.0, 0.0, 0.0)] == np.float32(0.05) and d[(0.0, 0.0, 0.0)] == np.float32(0.5)
    assert d[(2.0, 0.0, 0.0)] == np.float32(0.3)
