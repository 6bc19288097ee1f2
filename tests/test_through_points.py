"""recon.meshing.through_points: the restricted Delaunay mesh through the points, on shapes
with exact answers (a sphere, a torus), its refusals, and the pipeline's use of it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from recon import InputError
from recon.fields.analytic import Sphere, Torus
from recon.meshing.through_points import LIMITS, mesh_open_through_points, mesh_through_points
from recon.triangles import face_edges
from test_measure import fibonacci_sphere


def torus_points(n_major: int, n_minor: int, major: float = 0.5, minor: float = 0.2) -> np.ndarray:
    u, v = np.meshgrid(np.linspace(0, 2 * np.pi, n_major, endpoint=False) + 0.01,
                       np.linspace(0, 2 * np.pi, n_minor, endpoint=False) + 0.02, indexing="ij")
    u, v = u.ravel(), v.ravel()
    # every other ring shifted half a step: no four points on one circle
    v = v + (np.arange(u.size) // n_minor % 2) * np.pi / n_minor
    r = major + minor * np.cos(v)
    return np.stack([r * np.cos(u), r * np.sin(u), minor * np.sin(v)], axis=1)


def edge_counts(faces: np.ndarray) -> np.ndarray:
    _, key = face_edges(faces)
    _, counts = np.unique(key, return_counts=True)
    return counts


def signed_volume(v, f) -> float:
    return float(np.einsum("ij,ij->i", v[f[:, 0]], np.cross(v[f[:, 1]], v[f[:, 2]])).sum() / 6.0)


class Occupancy:
    """A signed field's occupancy (1 inside, 0 outside, 0.5 on it): the other kind of sided field."""

    kind, level = "occupancy", 0.5

    def __init__(self, sphere):
        self.sphere = sphere
        self.bounds = sphere.bounds

    def value(self, x):
        return (1.0 / (1.0 + np.exp(self.sphere.value(x) / 0.01))).astype(np.float32)

    def gradient(self, x):
        p = self.value(x).astype(np.float64)[:, None]
        return (-p * (1.0 - p) / 0.01 * self.sphere.gradient(x)).astype(np.float32)


def test_a_sphere_is_meshed_through_every_sample_watertight_and_outward():
    points = fibonacci_sphere(2000, radius=0.5)
    mesh = mesh_through_points(Sphere(radius=0.5), points)
    assert mesh.n_vertices == len(points)
    # the vertices are the samples themselves, not points near them
    assert np.array_equal(np.sort(mesh.vertices, axis=0), np.sort(points, axis=0))
    assert np.all(edge_counts(mesh.faces) == 2)
    assert mesh.n_vertices - len(edge_counts(mesh.faces)) + mesh.n_faces == 2  # a sphere's Euler characteristic
    volume = signed_volume(mesh.vertices, mesh.faces)
    assert 0.98 * (4 / 3) * np.pi * 0.5**3 < volume < (4 / 3) * np.pi * 0.5**3  # inscribed: just below
    centres = mesh.vertices[mesh.faces].mean(axis=1)
    assert np.abs(np.linalg.norm(centres, axis=1) - 0.5).max() < 0.01
    assert np.all(np.einsum("ij,ij->i", mesh.vertex_normals, mesh.vertices) > 0)
    assert mesh.surface == "closed"


def test_a_torus_keeps_its_hole():
    points = torus_points(160, 48)  # fine enough for the restricted triangulation to be a torus
    mesh = mesh_through_points(Torus(major=0.5, minor=0.2), points)
    counts = edge_counts(mesh.faces)
    assert mesh.n_vertices == len(points) and np.all(counts == 2)
    assert mesh.n_vertices - len(counts) + mesh.n_faces == 0  # genus 1
    truth = 2 * np.pi**2 * 0.5 * 0.2**2
    assert 0.95 * truth < signed_volume(mesh.vertices, mesh.faces) < truth


def test_an_occupancy_field_gives_the_same_mesh_as_the_signed_one():
    points = fibonacci_sphere(800, radius=0.5)
    signed = mesh_through_points(Sphere(radius=0.5), points)
    occupancy = mesh_through_points(Occupancy(Sphere(radius=0.5)), points)
    assert np.array_equal(signed.vertices, occupancy.vertices) and np.array_equal(signed.faces, occupancy.faces)


def test_the_field_decides_which_samples_the_mesh_joins():
    # samples of two spheres; a field holding only the first meshes only its samples
    a = fibonacci_sphere(500, radius=0.3)
    b = fibonacci_sphere(500, radius=0.3) + [1.0, 0.0, 0.0]
    mesh = mesh_through_points(Sphere(radius=0.3), np.concatenate([a, b]))
    assert mesh.n_vertices == 500 and np.all(np.linalg.norm(mesh.vertices, axis=1) < 0.31)


class ShiftedLevel:
    """A signed field whose level sits ``offset`` outside the true surface (a fitted grid's
    level is off by a part of a spacing), its gradient exact."""

    kind, level = "signed", 0.0

    def __init__(self, field, offset):
        self.field, self.offset, self.bounds = field, offset, field.bounds

    def value(self, x):
        return self.field.value(x) - self.offset

    def gradient(self, x):
        return self.field.gradient(x)


def face_set(mesh) -> set:
    corners = np.sort(np.round(mesh.vertices[mesh.faces], 6).reshape(-1, 3, 3), axis=1)
    return set(map(tuple, corners.reshape(-1, 9)))


def test_near_the_samples_their_tangent_planes_decide_so_a_field_level_off_by_a_fifth_of_a_spacing_does_little_harm():
    points = torus_points(160, 48)
    exact = mesh_through_points(Torus(major=0.5, minor=0.2), points)
    spacing = np.median(np.sort(np.linalg.norm(points[:200, None] - points[None], axis=2), axis=1)[:, 1])
    off = ShiftedLevel(Torus(major=0.5, minor=0.2), 0.2 * spacing)
    field_only = mesh_through_points(off, points, limits=dataclasses.replace(LIMITS, tangent_reach=0.0))
    planes = mesh_through_points(off, points)
    wrong_field_only = len(face_set(field_only) ^ face_set(exact)) / exact.n_faces
    wrong_planes = len(face_set(planes) ^ face_set(exact)) / exact.n_faces
    assert wrong_field_only > 0.04  # the field alone joins the wrong samples in places
    assert wrong_planes < 0.01
    assert np.all(edge_counts(planes.faces) == 2) and planes.n_vertices == len(points)


def test_an_occupancy_fields_level_off_by_a_fifth_of_a_spacing_does_little_harm_either():
    # a probability has no distance to its level: the samples' planes still decide near
    # them, oriented by the direction the probability falls
    points = torus_points(160, 48)
    exact = mesh_through_points(Torus(major=0.5, minor=0.2), points)
    spacing = np.median(np.sort(np.linalg.norm(points[:200, None] - points[None], axis=2), axis=1)[:, 1])
    off = Occupancy(ShiftedLevel(Torus(major=0.5, minor=0.2), 0.2 * spacing))
    field_only = mesh_through_points(off, points, limits=dataclasses.replace(LIMITS, tangent_reach=0.0))
    planes = mesh_through_points(off, points)
    assert len(face_set(field_only) ^ face_set(exact)) / exact.n_faces > 0.04
    assert len(face_set(planes) ^ face_set(exact)) / exact.n_faces < 0.01
    assert np.all(edge_counts(planes.faces) == 2)


def test_noisy_samples_denoised_first_give_vertices_nearer_the_surface_and_stay_watertight():
    points = fibonacci_sphere(3000, radius=0.5)
    spacing = np.sqrt(4 * np.pi * 0.25 / 3000)
    noisy = points + np.random.default_rng(2).normal(scale=0.3 * spacing, size=points.shape)
    raw = mesh_through_points(Sphere(radius=0.5), noisy)
    moved = mesh_through_points(Sphere(radius=0.5), noisy, denoise=True)
    error_raw = np.abs(np.linalg.norm(raw.vertices, axis=1) - 0.5).mean()
    error_moved = np.abs(np.linalg.norm(moved.vertices, axis=1) - 0.5).mean()
    assert error_moved < 0.5 * error_raw
    assert np.all(edge_counts(moved.faces) == 2) and moved.n_vertices > 0.95 * len(points)
    assert signed_volume(moved.vertices, moved.faces) > 0  # outward


def test_bad_input_is_refused_with_one_message():
    points = fibonacci_sphere(100)

    class Unsigned:
        kind, level, bounds = "unsigned", 0.0, np.array([[-1.0] * 3, [1.0] * 3])

    with pytest.raises(InputError, match="signed or occupancy field"):
        mesh_through_points(Unsigned(), points)
    with pytest.raises(InputError, match="at least 4 points"):
        mesh_through_points(Sphere(), points[:3])
    with pytest.raises(InputError, match="finite"):
        mesh_through_points(Sphere(), np.where(np.arange(100)[:, None] == 5, np.nan, points))
    flat = np.random.default_rng(0).uniform(size=(50, 3)) * [1.0, 1.0, 0.0]
    with pytest.raises(InputError, match="span no volume"):
        mesh_through_points(Sphere(), flat)
    with pytest.raises(InputError, match="at most 50"):
        mesh_through_points(Sphere(), points, limits=dataclasses.replace(LIMITS, max_points=50))


def test_reconstruct_interpolates_when_asked_and_auto_does_on_a_sparse_cloud(monkeypatch):
    from recon import Cloud, reconstruct

    points = fibonacci_sphere(600, radius=2.0) + [10.0, -3.0, 1.0]
    cloud = Cloud(points.astype(np.float32), source="sparse sphere")
    result = reconstruct(cloud, method="auto", seed=0)
    assert result.choice["method"] == "gridpull" and result.choice["interpolate"]
    assert result.choice["alternatives"] == ["hrbf"] and result.method in ("gridpull", "hrbf")
    assert any(d.name == "mesh" and d.value == "through the points" for d in result.decisions)
    kept = [d for d in result.decisions if d.name == "method" and d.reason.startswith("the candidates' meshes stray")]
    assert len(kept) == 1 and kept[0].value == result.method and "gridpull" in kept[0].reason
    fitted = {tuple(p) for p in np.asarray(result.cloud.points, np.float64)}
    # the samples come first, then one Hermite midpoint per edge (closed: E = 3F / 2 of the faces before)
    assert any(d.name == "subdivide" for d in result.decisions)
    samples = result.mesh.n_vertices - 3 * result.mesh.n_faces // 8
    assert all(tuple(v) in fitted for v in result.mesh.vertices[:samples])
    assert not any(tuple(v) in fitted for v in result.mesh.vertices[samples:])
    assert np.all(edge_counts(result.mesh.faces) == 2)
    plain = reconstruct(cloud, method=result.method, interpolate=True, subdivide=False, seed=0).mesh
    assert all(tuple(v) in fitted for v in plain.vertices) and 4 * plain.n_faces == result.mesh.n_faces
    radius = np.linalg.norm(result.mesh.vertices[result.mesh.faces].mean(axis=1) - [10.0, -3.0, 1.0], axis=1)
    assert np.abs(radius - 2.0).max() < 0.1

    from recon.meshing import through_points

    monkeypatch.setattr(through_points, "LIMITS", dataclasses.replace(LIMITS, max_points=500))
    with pytest.raises(InputError, match="cannot interpolate: a mesh through the points takes at most 500 points"):
        reconstruct(cloud, method="gridpull", interpolate=True)


def test_an_open_noisy_sheet_is_meshed_through_its_denoised_points_with_its_border_and_hole():
    gen = np.random.default_rng(3)
    xy = gen.uniform(-1.0, 1.0, size=(12_000, 2))
    xy = xy[np.linalg.norm(xy, axis=1) > 0.3]  # a hole of radius 0.3 (about 30 spacings)
    z = 0.2 * np.sin(2.0 * xy[:, 0])  # a wave: curved, and not a plane
    spacing = 2.0 / np.sqrt(len(xy))
    noisy = np.column_stack([xy, z + gen.normal(0.0, 0.25 * spacing, len(xy))])
    mesh = mesh_open_through_points(noisy + [1e5, 2e5, -3e5])
    v = mesh.vertices - [1e5, 2e5, -3e5]
    assert mesh.surface == "open" and mesh.n_vertices > 0.95 * len(noisy)
    error = v[:, 2] - 0.2 * np.sin(2.0 * v[:, 0])
    raw = noisy[:, 2] - 0.2 * np.sin(2.0 * noisy[:, 0])
    assert np.sqrt(np.mean(error**2)) < 0.5 * np.sqrt(np.mean(raw**2))  # denoised: at least halved
    counts = edge_counts(mesh.faces)
    assert counts.max() == 2  # a 2-manifold with boundary
    centres = v[mesh.faces].mean(axis=1)
    assert not np.any(np.linalg.norm(centres[:, :2], axis=1) < 0.25)  # the hole stays open
    # one consistent orientation: normals all up or all down
    up = mesh.vertex_normals[:, 2]
    assert np.all(up > 0) or np.all(up < 0)


def test_labels_that_would_pinch_the_surface_at_an_edge_are_evened_out_to_a_manifold():
    from scipy.spatial import Delaunay

    from recon.meshing.through_points import _faces_between, _without_pinched_edges

    rng = np.random.default_rng(3)
    p = rng.uniform(-1.0, 1.0, (3000, 3))
    tri = Delaunay(p)
    tets = tri.simplices.astype(np.int64)
    centre = p[tets].mean(axis=1)
    # a ball whose boundary is ragged by a tetrahedron or so: inside parts meet along edges
    inside = np.linalg.norm(centre, axis=1) + rng.normal(scale=0.05, size=len(tets)) < 0.6
    before = edge_counts(_faces_between(p, tets, inside, tri.neighbors, hull_outside=True))
    assert np.any(before > 2)
    fixed = _without_pinched_edges(p, tets, inside, tri.neighbors)
    faces = _faces_between(p, tets, fixed, tri.neighbors, hull_outside=True)
    assert np.all(edge_counts(faces) == 2)
    assert np.mean(fixed != inside) < 0.05  # a few tetrahedra change side, not the ball
    assert np.array_equal(_without_pinched_edges(p, tets, fixed, tri.neighbors), fixed)  # nothing left to do


class HoleFilled:
    """A torus's signed field with a disc filling its hole: the level runs across the hole,
    far from every sample of the torus (as a coarse occupancy field bulges by thin parts)."""

    kind, level = "signed", 0.0

    def __init__(self, torus):
        self.torus, self.bounds = torus, torus.bounds

    def _disc(self, x):
        x = np.asarray(x, dtype=np.float64)
        return np.maximum(np.hypot(x[:, 0], x[:, 1]) - 0.35, np.abs(x[:, 2]) - 0.1)

    def value(self, x):
        return np.minimum(self.torus.value(x), self._disc(x))

    def gradient(self, x, h=1e-4):
        return np.stack([(self.value(x + h * e) - self.value(x - h * e)) / (2 * h) for e in np.eye(3)], axis=1)


def test_far_from_the_samples_their_winding_number_overrules_an_occupancy_field_that_bulges_across_a_hole():
    points = torus_points(160, 48)
    exact = mesh_through_points(Torus(major=0.5, minor=0.2), points)
    filled = Occupancy(HoleFilled(Torus(major=0.5, minor=0.2)))
    unchecked = mesh_through_points(filled, points, limits=dataclasses.replace(LIMITS, winding_sure=0.5))
    checked = mesh_through_points(filled, points)

    def axis_distance(mesh):
        centres = mesh.vertices[mesh.faces].mean(axis=1)
        return np.hypot(centres[:, 0], centres[:, 1])

    # unchecked, the field's membrane across the hole (the torus's inner side at 0.3) is meshed
    assert (axis_distance(unchecked) < 0.25).sum() > 10
    assert len(face_set(unchecked) ^ face_set(exact)) / exact.n_faces > 0.05
    # checked, the winding number (about 0 in the hole) takes those tetrahedra back out
    assert axis_distance(checked).min() > 0.25
    assert np.all(edge_counts(checked.faces) == 2)
    assert len(face_set(checked) ^ face_set(exact)) / exact.n_faces < 0.01
