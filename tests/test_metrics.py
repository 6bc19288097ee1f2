"""recon.metrics on cases with exact answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recon.errors import InputError
from recon.metrics import (
    closest_point_on_triangles,
    cloud_to_mesh,
    compare_meshes,
    format_metrics_table,
    sample_surface,
    threshold_label,
)
from recon.triangles import TriangleMesh


def icosphere(radius: float, subdivisions: int = 5) -> TriangleMesh:
    import trimesh

    return TriangleMesh.from_trimesh(trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius))


def cube(offset=(0.0, 0.0, 0.0)) -> TriangleMesh:
    """The unit cube [0, 1]^3 + offset as 12 triangles."""
    import trimesh

    tm = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    return TriangleMesh(np.asarray(tm.vertices) + 0.5 + np.asarray(offset), np.asarray(tm.faces))


# ----------------------------------------------------------------- closest point kernel


def _brute_closest(p, a, b, c, n=400):
    """Closest point by dense barycentric search (slow, trusted)."""
    s = np.linspace(0, 1, n)
    u, v = np.meshgrid(s, s)
    keep = u + v <= 1
    u, v = u[keep], v[keep]
    pts = a + np.outer(u, b - a) + np.outer(v, c - a)
    return pts[np.argmin(np.linalg.norm(pts - p, axis=1))]


def test_closest_point_matches_brute_force_in_every_region():
    gen = np.random.default_rng(3)
    a = np.array([0.0, 0.0, 0.0])
    b = np.array([1.0, 0.0, 0.0])
    c = np.array([0.2, 0.9, 0.0])
    p = gen.uniform(-1.0, 2.0, size=(200, 3))  # covers vertex, edge and face regions
    q = closest_point_on_triangles(p, np.tile(a, (200, 1)), np.tile(b, (200, 1)), np.tile(c, (200, 1)))
    for i in range(0, 200, 10):
        ref = _brute_closest(p[i], a, b, c)
        d_ref = np.linalg.norm(ref - p[i])
        d = np.linalg.norm(q[i] - p[i])
        assert d <= d_ref + 1e-12  # never worse than the dense search
        assert d >= d_ref - 5e-3  # and the dense search is within its grid step of it


def test_closest_point_degenerate_triangle_is_a_segment():
    p = np.array([[0.5, 1.0, 0.0]])
    a = np.array([[0.0, 0.0, 0.0]])
    b = np.array([[1.0, 0.0, 0.0]])
    q = closest_point_on_triangles(p, a, b, b.copy())
    np.testing.assert_allclose(q, [[0.5, 0.0, 0.0]], atol=1e-12)


# ----------------------------------------------------------------- compare_meshes


def test_mesh_against_itself_scores_zero_and_one():
    mesh = icosphere(1.0, 4)
    m = compare_meshes(mesh, mesh, n_samples=20_000)
    assert m["chamfer_l1"] < 1e-12
    assert m["chamfer_l2"] < 1e-20
    assert m["normal_consistency"] == pytest.approx(1.0, abs=1e-6)
    assert set(m["fscore"]) == {"0.2%", "0.5%", "1%"}
    assert all(v == 1.0 for v in m["fscore"].values())
    assert all(v == 1.0 for v in m["precision"].values())
    assert all(v == 1.0 for v in m["recall"].values())


def test_mesh_against_itself_far_from_origin_keeps_precision():
    # georeferenced-like coordinates: float32 alone would give errors ~1e-2 here
    mesh = icosphere(5.0, 3)
    far = TriangleMesh(mesh.vertices + np.array([4.5e5, 5.4e6, 300.0]), mesh.faces)
    m = compare_meshes(far, far, n_samples=5_000)
    assert m["chamfer_l1"] < 1e-9


@pytest.mark.parametrize("delta", [0.01, 0.05])
def test_concentric_spheres_chamfer_is_delta_over_diagonal(delta):
    r = 1.0
    inner, outer = icosphere(r), icosphere(r + delta)
    m = compare_meshes(inner, outer, n_samples=50_000)
    diag = float(np.linalg.norm(np.ptp(outer.vertices, axis=0)))
    assert m["diagonal"] == pytest.approx(diag)
    expected = delta / diag
    assert m["chamfer_l1"] == pytest.approx(expected, rel=0.01)
    assert m["accuracy"] == pytest.approx(expected, rel=0.01)
    assert m["completeness"] == pytest.approx(expected, rel=0.01)
    assert m["chamfer_l2"] == pytest.approx(expected**2, rel=0.02)
    assert m["normal_consistency"] > 0.999
    # every distance is ~delta: a threshold above it accepts all, one below it none
    above, below = 1.5 * expected, 0.5 * expected
    m2 = compare_meshes(inner, outer, n_samples=5_000, thresholds=(below, above))
    assert m2["fscore"][threshold_label(below)] == 0.0
    assert m2["fscore"][threshold_label(above)] == 1.0


def test_translated_cube_matches_the_analytic_answer():
    t = 0.05
    a, b = cube(), cube((t, 0.0, 0.0))
    tau = 0.02  # below t: the F-score is analytic too
    diag = math.sqrt(3.0)
    m = compare_meshes(a, b, n_samples=200_000, thresholds=(tau / diag,))
    # A -> B per face of A (area 1 each, 6 in all):
    #   x=0: distance t;  x=1: min(t, distance to the square's border);  4 sides: max(t - x, 0)
    mean_d = (t + (t - 2 * t**2 + 4 / 3 * t**3) + 4 * t**2 / 2) / 6
    mean_d2 = (t**2 + (t**2 - 8 / 3 * t**3 + 2 * t**4) + 4 * t**3 / 3) / 6
    frac_below = (0.0 + (1 - (1 - 2 * tau) ** 2) + 4 * (1 - t + tau)) / 6
    # B -> A is the mirror image, so both directions agree
    assert m["diagonal"] == pytest.approx(diag)
    assert m["accuracy"] == pytest.approx(mean_d / diag, rel=0.01)
    assert m["completeness"] == pytest.approx(mean_d / diag, rel=0.01)
    assert m["chamfer_l1"] == pytest.approx(mean_d / diag, rel=0.01)
    assert m["chamfer_l2"] == pytest.approx(mean_d2 / diag**2, rel=0.02)
    key = threshold_label(tau / diag)
    assert m["precision"][key] == pytest.approx(frac_below, abs=0.005)
    assert m["recall"][key] == pytest.approx(frac_below, abs=0.005)
    assert m["fscore"][key] == pytest.approx(frac_below, abs=0.005)


def test_seed_reproducible_and_seed_matters():
    a, b = icosphere(1.0, 3), icosphere(1.1, 2)
    m1 = compare_meshes(a, b, n_samples=3_000, seed=7)
    m2 = compare_meshes(a, b, n_samples=3_000, seed=7)
    m3 = compare_meshes(a, b, n_samples=3_000, seed=8)
    assert m1 == m2
    assert m1["chamfer_l1"] != m3["chamfer_l1"]
    assert m1["seed"] == 7 and m1["n_samples"] == 3_000
    p1, f1 = sample_surface(a, 100, seed=1)
    p2, f2 = sample_surface(a, 100, seed=1)
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(f1, f2)


def test_samples_are_uniform_by_area():
    # two triangles, one with 3x the area of the other: the sample split follows the areas
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [10, 0, 0], [13, 0, 0], [10, 1, 0]], dtype=float)
    mesh = TriangleMesh(v, np.array([[0, 1, 2], [3, 4, 5]]))
    _, face = sample_surface(mesh, 40_000, seed=0)
    assert np.mean(face == 1) == pytest.approx(0.75, abs=0.01)


def test_degenerate_faces_are_ignored():
    mesh = icosphere(1.0, 2)
    # add a zero-area face (three copies of one vertex)
    faces = np.vstack([mesh.faces, [[0, 0, 0]]])
    m = compare_meshes(TriangleMesh(mesh.vertices, faces), mesh, n_samples=2_000)
    assert m["chamfer_l1"] < 1e-12
    assert np.isfinite(m["normal_consistency"])


@pytest.mark.parametrize(
    "rec, gt, message",
    [
        (TriangleMesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=int)), "sphere", "reconstruction is empty"),
        ("sphere", TriangleMesh(np.zeros((3, 3)), np.zeros((0, 3), dtype=int)), "ground truth is empty"),
        ("sphere", TriangleMesh(np.eye(3), np.array([[0, 1, 5]])), "face indices outside"),
        (TriangleMesh(np.full((3, 3), np.nan), np.array([[0, 1, 2]])), "sphere", "non-finite"),
        ("sphere", TriangleMesh(np.ones((3, 3)), np.array([[0, 1, 2]])), "zero"),
    ],
)
def test_bad_meshes_raise_input_errors(rec, gt, message):
    sphere = icosphere(1.0, 1)
    rec = sphere if rec == "sphere" else rec
    gt = sphere if gt == "sphere" else gt
    with pytest.raises(InputError, match=message):
        compare_meshes(rec, gt, n_samples=100)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_samples": 0}, "n_samples must be a positive integer"),
        ({"seed": -1}, "seed must be a non-negative integer"),
        ({"thresholds": (0.01, -1.0)}, "thresholds must be positive"),
        ({"thresholds": ()}, "thresholds must be positive"),
    ],
)
def test_bad_options_raise_input_errors(kwargs, message):
    sphere = icosphere(1.0, 1)
    with pytest.raises(InputError, match=message):
        compare_meshes(sphere, sphere, **kwargs)


def test_not_a_mesh_is_a_type_error():
    with pytest.raises(TypeError, match="TriangleMesh"):
        compare_meshes(np.zeros((3, 3)), icosphere(1.0, 1))


# ----------------------------------------------------------------- cloud_to_mesh


def test_cloud_on_the_surface_scores_near_zero_and_offset_cloud_its_offset():
    mesh = icosphere(1.0, 5)
    pts, _ = sample_surface(mesh, 20_000, seed=3)
    m = cloud_to_mesh(pts, mesh, n_samples=20_000)
    assert m["input_to_mesh_mean"] < 1e-12
    assert m["mesh_to_input_mean"] < 0.01  # bounded by the point spacing
    # points pushed out radially by 0.03: input -> mesh is ~0.03 / input diagonal
    shell = pts * (1.03 / np.linalg.norm(pts, axis=1, keepdims=True))
    m2 = cloud_to_mesh(shell, mesh, n_samples=5_000)
    diag = float(np.linalg.norm(np.ptp(shell, axis=0)))
    assert m2["diagonal"] == pytest.approx(diag)
    assert m2["input_to_mesh_mean"] == pytest.approx(0.03 / diag, rel=0.01)
    assert m2["input_to_mesh_p95"] == pytest.approx(0.03 / diag, rel=0.01)
    assert m2["mesh_to_input_mean"] >= 0.03 / diag * 0.99


def test_cloud_to_mesh_exposes_invented_surface():
    # data on a unit sphere only; the mesh adds a second sphere far away
    import trimesh

    s = trimesh.creation.icosphere(subdivisions=4, radius=1.0)
    far = s.copy()
    far.apply_translation([10.0, 0.0, 0.0])
    both = TriangleMesh.from_trimesh(trimesh.util.concatenate([s, far]))
    pts, _ = sample_surface(TriangleMesh.from_trimesh(s), 5_000, seed=0)
    good = cloud_to_mesh(pts, TriangleMesh.from_trimesh(s), n_samples=5_000)
    bad = cloud_to_mesh(pts, both, n_samples=5_000)
    assert bad["input_to_mesh_mean"] == pytest.approx(good["input_to_mesh_mean"], abs=1e-9)
    assert bad["mesh_to_input_mean"] > 50 * good["mesh_to_input_mean"]
    assert bad["mesh_to_input_p95"] > 2.0  # > 8 units away over a diagonal of ~3.5


def test_cloud_to_mesh_bad_inputs():
    mesh = icosphere(1.0, 1)
    with pytest.raises(InputError, match=r"points must be \(N, 3\)"):
        cloud_to_mesh(np.zeros((5, 2)), mesh)
    with pytest.raises(InputError, match="points is empty"):
        cloud_to_mesh(np.zeros((0, 3)), mesh)
    with pytest.raises(InputError, match="zero-size bounding box"):
        cloud_to_mesh(np.ones((5, 3)), mesh)
    with pytest.raises(InputError, match="mesh is empty"):
        cloud_to_mesh(np.eye(3), TriangleMesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=int)))


# ----------------------------------------------------------------- table


def test_format_table_states_thresholds_and_values():
    mesh = icosphere(1.0, 2)
    text = format_metrics_table(compare_meshes(mesh, icosphere(1.01, 2), n_samples=1_000))
    for word in ("Chamfer-L1", "Chamfer-L2", "normal consistency", "0.2% of diagonal", "1% of diagonal"):
        assert word in text
    text2 = format_metrics_table(cloud_to_mesh(mesh.vertices, mesh, n_samples=1_000))
    assert "input -> mesh" in text2 and "95th" in text2
    with pytest.raises(InputError, match="neither"):
        format_metrics_table({"foo": 1})
