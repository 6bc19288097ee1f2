"""The hrbf fitter (recon.fitters.hrbf), its field (recon.fields.hermite_rbf) and kernel
(recon.kernels.hermite_rbf_cpu), on shapes with exact answers."""

from __future__ import annotations

import numpy as np
import pytest

from recon import Cloud, InputError, load_field
from recon.fitters import fit
from recon.kernels.hermite_rbf_cpu import hermite_rbf_cpu
from recon.meshing.through_points import mesh_through_points
from test_measure import fibonacci_sphere
from test_through_points import edge_counts, torus_points

CENTRE = np.array([10.0, -4.0, 2.5])


@pytest.fixture(scope="module")
def sphere_field():
    points = fibonacci_sphere(300, radius=2.0) + CENTRE
    return fit(Cloud(points, source="sphere"), "hrbf"), points


def test_the_kernel_matches_the_formula_and_its_gradient_the_finite_differences():
    rng = np.random.default_rng(1)
    centers, alpha, beta, poly = rng.normal(size=(7, 3)), rng.normal(size=7), rng.normal(size=(7, 3)), rng.normal(size=4)
    x = rng.normal(size=(5, 3))

    def formula(q):
        d = q[:, None, :] - centers[None]
        r = np.linalg.norm(d, axis=2)
        return (r**3) @ alpha - np.einsum("qjk,jk->q", 3 * r[..., None] * d, beta) + poly[0] + q @ poly[1:]

    f, g = np.empty(5), np.empty((5, 3))
    hermite_rbf_cpu(centers, alpha, beta, poly, x, f, g)
    assert np.allclose(f, formula(x), rtol=1e-12, atol=1e-12)
    eps = 1e-6
    numeric = np.stack([(formula(x + eps * e) - formula(x - eps * e)) / (2 * eps) for e in np.eye(3)], axis=1)
    assert np.allclose(g, numeric, rtol=1e-5, atol=1e-6)


def test_a_sphere_passes_through_its_samples_with_outward_normals(sphere_field):
    field, points = sphere_field
    assert np.abs(field.value(points)).max() < 1e-5
    normals = field.gradient(points)
    assert np.all(np.einsum("ij,ij->i", normals, (points - CENTRE) / 2.0) > 0.99)
    probe = CENTRE + np.array([[0, 0, 0], [0.3, 0.2, -0.1], [0, 0, 2.03], [-1.98, 0, 0], [-2.5, 0, 0]])
    value = field.value(probe)
    assert value[0] < 0 and value[1] < 0 and value[2] > 0 and value[3] < 0 and value[4] > 0
    assert abs(value[2] - 0.03) < 0.005 and abs(value[3] + 0.02) < 0.005  # a distance near the surface
    assert np.abs(value).max() <= 0.005 * np.linalg.norm(np.diff(field.bounds, axis=0)) + 1e-6  # capped far off
    foot = field.closest_point(CENTRE + np.array([[0.0, 2.3, 0.0]]))
    assert abs(np.linalg.norm(foot - CENTRE) - 2.0) < 0.01


def test_a_sparse_torus_keeps_its_hole():
    points = torus_points(40, 15)  # 600 points
    field = fit(Cloud(points, source="torus"), "hrbf")
    assert field.value(np.array([[0.5, 0.0, 0.0], [0.0, -0.5, 0.0]])).max() < 0  # in the tube
    assert field.value(np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.35]])).min() > 0  # the hole, and above it
    mesh = mesh_through_points(field, points)
    assert mesh.n_vertices == len(points) and np.all(edge_counts(mesh.faces) == 2)


def test_saved_and_loaded_it_gives_the_same_values_and_the_same_bytes_twice(sphere_field, tmp_path):
    field, points = sphere_field
    field.save(tmp_path / "a.npz")
    again = fit(Cloud(points, source="sphere"), "hrbf")
    again.save(tmp_path / "b.npz")
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    loaded = load_field(tmp_path / "a.npz")
    probe = np.random.default_rng(2).uniform(-3, 3, size=(200, 3)) + CENTRE
    assert np.array_equal(loaded.value(probe), field.value(probe))


def test_baked_it_keeps_its_sides_and_the_surface_a_voxel_close(sphere_field):
    field, _ = sphere_field
    grid = field.bake(48)
    probe = CENTRE + np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 2.4], [1.3, 1.3, 0.0]])
    assert np.array_equal(np.sign(grid.value(probe)), np.sign(field.value(probe)))
    assert abs(float(grid.value(CENTRE[None] + [[0.0, 0.0, 2.0]])[0])) < grid.voxel_size


def test_bad_input_is_refused_with_one_message():
    with pytest.raises(InputError, match="fits at most 100"):
        fit(Cloud(fibonacci_sphere(300), source="big"), "hrbf", max_points=100)
    flat = np.random.default_rng(0).uniform(size=(200, 3)) * [1.0, 1.0, 0.0]
    with pytest.raises(InputError, match="plane"):
        fit(Cloud(flat, source="flat"), "hrbf")


def test_named_it_meshes_through_the_points():
    from recon import reconstruct

    points = fibonacci_sphere(300, radius=2.0) + CENTRE
    through = reconstruct(Cloud(points, source="sphere"), method="hrbf")
    # the samples, then a Hermite midpoint on each edge of the closed mesh (3F / 8 of the 4F faces)
    assert through.mesh.n_vertices == len(points) + 3 * through.mesh.n_faces // 8
    assert np.allclose(through.mesh.vertices[: len(points)], points)
    assert any(d.name == "mesh" and d.value == "through the points" for d in through.decisions)
