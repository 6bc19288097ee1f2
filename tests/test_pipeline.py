"""recon.reconstruct: the library call behind `recon fit`, on shapes with exact answers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recon import Cloud, InputError
from recon.pipeline import Decision, Result, reconstruct

FAST = {"method": "gridpull", "resolution": 40, "iterations": 60}  # method auto is tested in test_choice.py


def sphere_cloud(n=3000, radius=1.5, center=(4.0, -2.0, 1.0), seed=0) -> Cloud:
    d = np.random.default_rng(seed).normal(size=(n, 3))
    return Cloud(np.asarray(center) + radius * d / np.linalg.norm(d, axis=1, keepdims=True), source="sphere")


def test_reconstruct_a_sphere_in_its_own_units():
    result = reconstruct(sphere_cloud(), seed=0, device="cpu", **FAST)
    assert isinstance(result, Result)
    r = np.linalg.norm(result.mesh.vertices - [4.0, -2.0, 1.0], axis=1)
    # the surface lies on the sphere to within a fraction of a voxel (3 / 40 of the extent)
    assert abs(np.median(r) - 1.5) < 0.02 and r.max() - r.min() < 0.1
    assert result.method == "gridpull" and result.device == "cpu" and result.points_in == 3000
    assert result.config.resolution == 40 and result.config.seed == 0
    for key in ("read_s", "preprocess_s", "fit_s", "fit_setup_s", "fit_optimise_s", "mesh_s", "total_s"):
        assert result.timings[key] >= 0.0, key
    assert result.timings["total_s"] >= result.timings["fit_s"] + result.timings["mesh_s"]


def test_a_path_and_a_cloud_give_the_same_mesh_and_the_same_seed_the_same_result(tmp_path):
    from recon.io import write_cloud

    cloud = sphere_cloud()
    path = write_cloud(cloud, tmp_path / "s.ply")
    a = reconstruct(cloud, seed=3, device="cpu", **FAST)
    again = reconstruct(cloud, seed=3, device="cpu", **FAST)
    assert np.array_equal(a.mesh.faces, again.mesh.faces) and np.array_equal(a.mesh.vertices, again.mesh.vertices)
    b = reconstruct(path, seed=3, device="cpu", **FAST)
    assert np.array_equal(a.mesh.faces, b.mesh.faces)
    # the file holds float32 coordinates, which move the fit by far less than a voxel
    assert np.abs(a.mesh.vertices - b.mesh.vertices).max() < 0.05 * a.field.voxel_size
    assert b.cloud.source == str(path)


def test_sampling_and_preprocessing_are_applied_and_counted():
    cloud = sphere_cloud(n=4000)
    result = reconstruct(cloud, sample=1000, voxel_size=0.05, seed=1, device="cpu", **FAST)
    assert result.points_in == 4000
    assert len(result.cloud) < 1000  # sampled to 1000, then voxel means


def test_the_summary_is_json_and_names_the_decisions():
    result = reconstruct(sphere_cloud(n=60_000), method="gridpull", device="cpu", resolution=32, iterations=3)
    summary = json.loads(json.dumps(result.summary()))
    assert summary["faces"] == result.mesh.n_faces > 0
    merged = [d for d in summary["decisions"] if d["name"] == "merged"]
    # 60,000 points on a sphere are far denser than a 32-cell grid: fitted to voxel means
    assert len(merged) == 1 and 0 < merged[0]["value"] < 60_000 and "voxel means" in merged[0]["reason"]
    assert all(isinstance(d, Decision) for d in result.decisions)


def test_write_mesh_refuses_the_input(tmp_path):
    from recon.io import write_cloud

    path = write_cloud(sphere_cloud(), tmp_path / "s.ply")
    result = reconstruct(path, device="cpu", **FAST)
    before = path.read_bytes()
    with pytest.raises(InputError):
        result.write_mesh(path)
    assert path.read_bytes() == before
    out = result.write_mesh(tmp_path / "s.mesh.ply")
    assert out.stat().st_size > 0


@pytest.mark.parametrize("kwargs,fragment", [
    ({"method": "nope"}, "unknown method 'nope'"),
    ({"no_such_option": 1}, "no_such_option"),
    ({"voxel_size": -1.0}, "voxel_size must be a positive length"),
    ({"sample": 0}, "sample must be a positive integer"),
    ({"min_component": 2.0}, "min_component must be a fraction"),
])
def test_bad_options_are_refused_before_the_input_is_read(tmp_path, kwargs, fragment):
    missing = tmp_path / "not_there.ply"  # never read: the option is refused first
    with pytest.raises(InputError, match=fragment):
        reconstruct(missing, **kwargs)


def test_a_source_of_the_wrong_type_is_refused():
    with pytest.raises(InputError, match="path or a Cloud"):
        reconstruct(np.zeros((10, 3)))
