"""The occupancy fitter: analytic shapes meshed near their true surface, files, seeds, refusals."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from mesh_checks import boundary_edge_count, check_mesh

from recon.cloud import Cloud
from recon.errors import InputError
from recon.fields.loading import load_field
from recon.fitters import fit
from recon.meshing.marching_cubes import extract_mesh

FAST = {"iterations": 60, "mesh_resolution": 96}


def sphere_points(n: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def torus_points(n: int, R: float = 1.0, r: float = 0.4, seed: int = 0) -> np.ndarray:
    a, b = np.random.default_rng(seed).uniform(0, 2 * np.pi, (2, n))
    return np.stack([(R + r * np.cos(b)) * np.cos(a), (R + r * np.cos(b)) * np.sin(a), r * np.sin(b)], axis=1)


@pytest.fixture(scope="module")
def sphere_field():
    return fit(Cloud(sphere_points(2000)), "occupancy", **FAST)


def test_a_sphere_is_meshed_watertight_within_two_percent_of_its_radius(sphere_field):
    mesh = extract_mesh(sphere_field, min_component_fraction=0.01)
    check_mesh(mesh, watertight=True)
    assert boundary_edge_count(mesh) == 0
    d = np.abs(np.linalg.norm(mesh.vertices, axis=1) - 1.0)
    assert d.mean() < 0.02
    assert sphere_field.value(np.zeros((1, 3)))[0] > 0.9  # the centre is inside
    assert sphere_field.value(np.full((1, 3), 1.5))[0] < 0.1


def test_a_torus_keeps_its_hole_and_is_meshed_near_its_surface():
    pts = torus_points(3000)
    field = fit(Cloud(pts), "occupancy", **FAST)
    assert field.value(np.zeros((1, 3)))[0] < 0.5  # the hole stays empty
    mesh = extract_mesh(field, min_component_fraction=0.01)
    check_mesh(mesh, watertight=True)
    v = mesh.vertices
    d = np.abs(np.hypot(np.hypot(v[:, 0], v[:, 1]) - 1.0, v[:, 2]) - 0.4)
    assert d.mean() < 0.1 * 0.4


def thick_tube_points(seed: int = 0) -> np.ndarray:
    """A thick-walled tube along z (bore radius 0.5, outer radius 1, length 2), scanned as
    abc_00016513 was: its outer wall and ends densely, its bore at a quarter of that
    density, all with noise of a spacing."""
    rng = np.random.default_rng(seed)
    density = 800.0  # points per unit area

    def wall(r, n):
        a, z = rng.uniform(0, 2 * np.pi, n), rng.uniform(-1, 1, n)
        return np.column_stack([r * np.cos(a), r * np.sin(a), z])

    n_ends = int(density * 2 * 0.75 * np.pi)
    a, r = rng.uniform(0, 2 * np.pi, n_ends), np.sqrt(rng.uniform(0.25, 1.0, n_ends))
    ends = np.column_stack([r * np.cos(a), r * np.sin(a), rng.choice([-1.0, 1.0], n_ends)])
    pts = np.concatenate([wall(1.0, int(density * 4 * np.pi)), ends, wall(0.5, int(density / 4 * 2 * np.pi))])
    return pts + rng.normal(scale=1.0 / np.sqrt(density), size=pts.shape)


def test_the_bore_of_a_noisy_thick_tube_stays_empty_and_its_wall_full():
    # the densely scanned noisy outer wall once outweighed the sparse bore in the winding
    # numbers (discs measured in 3D), and the prior's flips turned bore normals inwards
    field = fit(Cloud(thick_tube_points()), "occupancy", **FAST)
    z = np.linspace(-0.8, 0.8, 9)
    assert np.all(field.value(np.column_stack([0 * z, 0 * z, z])) < 0.5)
    assert np.all(field.value(np.column_stack([0 * z + 0.75, 0 * z, z])) > 0.5)


def test_save_load_round_trip_gives_identical_values(sphere_field, tmp_path):
    back = load_field(sphere_field.save(tmp_path / "f.npz"))
    assert type(back).__name__ == "OccupancyField" and back.kind == "occupancy" and back.level == 0.5
    x = np.random.default_rng(1).uniform(-1.2, 1.2, (500, 3))
    np.testing.assert_array_equal(back.value(x), sphere_field.value(x))
    baked = sphere_field.bake(32)
    again = load_field(baked.save(tmp_path / "g.npz"))
    np.testing.assert_array_equal(again.values, baked.values)


def test_the_same_seed_gives_the_same_bytes(tmp_path):
    pts = sphere_points(600, seed=3)
    kw = {"iterations": 10, "seed": 5}
    a = fit(Cloud(pts), "occupancy", **kw).save(tmp_path / "a.npz").read_bytes()
    b = fit(Cloud(pts), "occupancy", **kw).save(tmp_path / "b.npz").read_bytes()
    assert a == b


def test_bake_evaluates_near_the_level_and_agrees_with_the_network(sphere_field):
    sparse = sphere_field.bake(48)
    dense = sphere_field.bake(48, sparse=False)
    crossing = (np.abs(dense.values - 0.5) < 0.4)
    np.testing.assert_allclose(sparse.values[crossing], dense.values[crossing], atol=1e-6)
    assert ((sparse.values >= 0.5) == (dense.values >= 0.5)).all()


@pytest.mark.parametrize("points, words", [
    (sphere_points(20), "at least 50"),
    (np.c_[np.random.default_rng(0).uniform(-1, 1, (2000, 2)), np.zeros(2000)], "plane"),
])
def test_bad_inputs_are_refused_with_one_clear_message(points, words):
    with pytest.raises(InputError) as err:
        fit(Cloud(points), "occupancy", **FAST)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_the_shipped_prior_exists_is_small_and_loads():
    from recon.fitters.occupancy import PRIOR_PATH, load_prior

    assert PRIOR_PATH.exists() and PRIOR_PATH.stat().st_size < 20e6
    model, _, meta = load_prior()
    assert meta["seed"] == 0 and meta["steps"] > 0
    assert sum(p.numel() for p in model.parameters()) > 1000


def test_without_torch_the_method_is_listed_and_refused_with_one_clear_message():
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import numpy as np\n"
        "from recon.fitters import load_all_fitters, fit\n"
        "from recon.cloud import Cloud\n"
        "from recon.errors import InputError\n"
        "assert 'occupancy' in load_all_fitters()\n"
        "v = np.random.default_rng(0).normal(size=(200, 3))\n"
        "try:\n"
        "    fit(Cloud(v / np.linalg.norm(v, axis=1, keepdims=True)), 'occupancy')\n"
        "except InputError as e:\n"
        "    print('ERR', e)\n"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=120,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert "ERR" in out.stdout and "pip install" in out.stdout and "torch" in out.stdout


def test_recon_fit_meshes_a_sparse_cloud_through_its_points_with_the_short_refinement(monkeypatch):
    import recon.meshing.through_points as through_points
    from recon.pipeline import reconstruct

    seen = []
    original = through_points.mesh_through_points

    def spy(field, points, **kw):
        seen.append(kw["limits"].occupancy_seed_gradient)
        return original(field, points, **kw)

    monkeypatch.setattr(through_points, "mesh_through_points", spy)
    pts = sphere_points(400, seed=4)
    r = reconstruct(Cloud(pts), method="occupancy", seed=0, subdivide=False)
    assert seen == [0.0]  # the plan's limits reach the mesher: every sample seeds its orientation
    rule = next(d for d in r.decisions if d.name == "mesh rule")
    assert rule.value == "through the points" and rule.reason.startswith("sparse")
    assert r.field.params["upsample"] == 1 and r.field.params["iterations_used"] == 50
    check_mesh(r.mesh, watertight=True)
    # every vertex is a sample: the mesh passes through the points
    assert np.isin(r.mesh.vertices.view("f8,f8,f8"), pts.view("f8,f8,f8")).all()
    assert r.mesh.n_vertices > 0.95 * len(pts)
    mine = reconstruct(Cloud(pts), method="occupancy", seed=0, subdivide=False, iterations=7)
    assert mine.field.params["iterations_used"] == 7  # an option the caller gives wins over the plan's


def test_recon_fit_snaps_a_noisy_clouds_marched_vertices_onto_the_data():
    from recon.pipeline import reconstruct

    pts = sphere_points(6000, seed=6)
    noisy = pts + np.random.default_rng(1).normal(scale=0.04, size=pts.shape)  # about 1.5 spacings
    r = reconstruct(Cloud(noisy), method="occupancy", seed=0, iterations=40)
    rule = next(d for d in r.decisions if d.name == "mesh rule")
    assert rule.value == "grid" and "snapped onto the planes" in rule.reason
    check_mesh(r.mesh, watertight=True)
    snapped = np.abs(np.linalg.norm(r.mesh.vertices, axis=1) - 1.0).mean()
    marched = reconstruct(Cloud(noisy), method="occupancy", seed=0, iterations=40, interpolate=False)
    assert not any(d.name == "mesh rule" for d in marched.decisions)
    assert snapped < 0.01 < 0.04 and snapped < np.abs(np.linalg.norm(marched.mesh.vertices, axis=1) - 1.0).mean()


def test_device_cuda_without_a_gpu_is_refused_with_one_clear_message():
    import torch

    if torch.cuda.is_available():
        pytest.skip("torch sees a CUDA GPU here")
    with pytest.raises(InputError) as err:
        fit(Cloud(sphere_points(600)), "occupancy", device="cuda", iterations=2)
    assert "no CUDA GPU" in str(err.value)


def test_a_negative_label_noise_is_refused_with_one_clear_message():
    with pytest.raises(InputError) as err:
        fit(Cloud(sphere_points(600)), "occupancy", label_noise=-1.0)
    assert "label_noise" in str(err.value) and "\n" not in str(err.value)
