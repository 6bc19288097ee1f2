"""The interpolating Hermite subdivision of meshes through the points."""

from __future__ import annotations

import numpy as np
import pytest

from recon.meshing.subdivide import subdivide_hermite
from recon.triangles import TriangleMesh


def sphere_points(n=2000, seed=None):
    """Unit-sphere samples: a Fibonacci lattice (even), or at random with a seed."""
    if seed is not None:
        p = np.random.default_rng(seed).normal(size=(n, 3))
        return p / np.linalg.norm(p, axis=1, keepdims=True)
    z = 1.0 - (2.0 * np.arange(n) + 1.0) / n
    phi = np.arange(n) * np.pi * (3.0 - np.sqrt(5.0))
    r = np.sqrt(1.0 - z * z)
    return np.column_stack([r * np.cos(phi), r * np.sin(phi), z])


def hull_mesh(p):
    from scipy.spatial import ConvexHull

    hull = ConvexHull(p)
    faces = hull.simplices.copy()
    centre = p[faces].mean(axis=1) - p.mean(axis=0)
    normal = np.cross(p[faces[:, 1]] - p[faces[:, 0]], p[faces[:, 2]] - p[faces[:, 0]])
    inward = (normal * centre).sum(axis=1) < 0
    faces[inward] = faces[inward][:, [0, 2, 1]]
    return TriangleMesh(p, faces, surface="closed")


@pytest.mark.parametrize("seed, gain", [(None, 100.0), (0, 100.0)])
def test_midpoints_land_on_the_sphere_and_samples_stay(seed, gain):
    # a mesh through samples of a sphere, even or random: its chords sag inside; the Hermite
    # midpoints, from normals exact on a sphere, lie on it to the curve's third-order error
    mesh = hull_mesh(3.0 * sphere_points(seed=seed) + [5.0, -2.0, 1.0])
    out = subdivide_hermite(mesh)
    assert out.n_faces == 4 * mesh.n_faces and out.surface == "closed"
    assert np.array_equal(out.vertices[: mesh.n_vertices], mesh.vertices)
    r = np.linalg.norm(out.vertices[mesh.n_vertices:] - [5.0, -2.0, 1.0], axis=1)
    e = np.unique(np.sort(np.concatenate([mesh.faces[:, [0, 1]], mesh.faces[:, [1, 2]], mesh.faces[:, [2, 0]]]),
                          axis=1), axis=0)
    plain = np.linalg.norm(mesh.vertices[e].mean(axis=1) - [5.0, -2.0, 1.0], axis=1)
    assert len(r) == len(e)
    assert np.abs(plain - 3.0).mean() > gain * np.abs(r - 3.0).mean()
    # closed stays closed: every edge in exactly two faces; faces keep facing out
    edges = np.sort(np.concatenate([out.faces[:, [0, 1]], out.faces[:, [1, 2]], out.faces[:, [2, 0]]]), axis=1)
    assert (np.unique(edges, axis=0, return_counts=True)[1] == 2).all()
    v = out.vertices[out.faces]
    outward = (np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]) * (v.mean(axis=1) - [5.0, -2.0, 1.0])).sum(axis=1)
    assert (outward > 0).all()


def test_a_plane_stays_flat_and_either_winding_gives_the_same_points():
    g = np.random.default_rng(1).uniform(0, 1, (500, 2))
    from scipy.spatial import Delaunay

    faces = Delaunay(g).simplices
    p = np.column_stack([g, 0.3 * g[:, 0] - 0.2 * g[:, 1] + 1.0])
    a = subdivide_hermite(TriangleMesh(p, faces))
    b = subdivide_hermite(TriangleMesh(p, faces[:, ::-1]))
    assert np.abs(a.vertices[:, 2] - (0.3 * a.vertices[:, 0] - 0.2 * a.vertices[:, 1] + 1.0)).max() < 1e-12
    assert np.allclose(a.vertices, b.vertices)


def test_a_crease_bends_no_more_than_the_cap():
    # two faces folded at a right angle along the edge 0-1
    p = np.array([[0.0, 0, 0], [1, 0, 0], [0.5, 1, 0], [0.5, 0, 1]])
    out = subdivide_hermite(TriangleMesh(p, np.array([[0, 1, 2], [1, 0, 3]])))
    edges = np.array([[0, 1], [0, 2], [0, 3], [1, 2], [1, 3]])  # the new vertices' edges, in order
    assert out.n_faces == 8 and out.n_vertices == 4 + len(edges)
    plain = 0.5 * (p[edges[:, 0]] + p[edges[:, 1]])
    share = np.linalg.norm(out.vertices[4:] - plain, axis=1) / np.linalg.norm(p[edges[:, 0]] - p[edges[:, 1]], axis=1)
    assert share[0] < 1e-12  # both ends of the crease have the same normal: it stays straight
    assert share.max() > 0.05 and share.max() <= 0.25 + 1e-12


def test_sphere_exact_normals_are_exact_on_an_uneven_sphere_where_area_weights_are_not():
    from recon.meshing.cleanup import vertex_normals
    from recon.meshing.subdivide import sphere_exact_normals

    mesh = hull_mesh(sphere_points(seed=1))
    exact = sphere_exact_normals(mesh.vertices, mesh.faces)
    assert np.abs(exact - mesh.vertices).max() < 1e-9
    area = vertex_normals(mesh.vertices, mesh.faces)
    assert np.abs(area - mesh.vertices).max() > 1e-3


def test_the_pipeline_subdivides_where_held_out_points_say_it_helps():
    from scipy.spatial import Delaunay

    from recon.metrics import distance_to_faces
    from recon.pipeline import _subdivided_if_it_helps

    # distance_to_faces is exact on a flat square
    square = TriangleMesh(np.array([[0.0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]]), np.array([[0, 1, 2], [0, 2, 3]]))
    assert np.allclose(distance_to_faces(np.array([[0.5, 0.5, 2.0], [2.0, 0.5, 0.0]]), square), [2.0, 1.0])

    # clean samples of a sphere: the chords sag, the subdivision predicts the held-out samples
    sphere = sphere_points(3000, seed=2)
    decisions = []
    out = _subdivided_if_it_helps(hull_mesh(sphere), lambda p: hull_mesh(p), sphere, seed=0, decisions=decisions)
    assert out.n_faces == 4 * hull_mesh(sphere).n_faces and decisions[-1].value is True

    # noisy samples of a plane: nothing to gain but the noise; left as it is
    gen = np.random.default_rng(3)
    xy = gen.uniform(0, 1, (3000, 2))
    plane = np.column_stack([xy, gen.normal(0, 0.005, len(xy))])

    def sheet(p):
        return TriangleMesh(p, Delaunay(p[:, :2]).simplices)

    decisions = []
    out = _subdivided_if_it_helps(sheet(plane), sheet, plane, seed=0, decisions=decisions)
    assert out.n_faces == sheet(plane).n_faces and decisions[-1].value is False
    assert "held-out points" in decisions[-1].reason


def test_a_large_cloud_is_judged_on_one_patch(monkeypatch):
    from recon import pipeline

    sphere = sphere_points(3000, seed=4)
    seen = []

    def remesh(p):
        seen.append(len(p))
        return hull_mesh(p)

    monkeypatch.setattr(pipeline, "HELD_OUT_PATCH", 1000)
    decisions = []
    out = pipeline._subdivided_if_it_helps(hull_mesh(sphere), remesh, sphere, seed=0, decisions=decisions)
    assert seen == [900] and decisions[-1].value is True and out.n_faces == 4 * hull_mesh(sphere).n_faces
    # judged on the held-out points (100 of the patch's 1000) in the patch's inner half
    assert 25 <= int(decisions[-1].reason.split(" held-out")[0]) <= 75
