"""What the normals benchmark measures around the truth: a slab's wall thickness is its height,
whichever face a point is near, and its sharp edges are the box's."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "perf" / "bench_normals.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_normals", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_truth_surroundings_of_a_slab(tmp_path):
    pytest.importorskip("open3d")
    trimesh = pytest.importorskip("trimesh")
    slab = trimesh.creation.box(extents=(2.0, 2.0, 0.1))
    path = tmp_path / "slab.ply"
    slab.export(path)
    rng = np.random.default_rng(0)
    xy = rng.uniform(-0.5, 0.5, (200, 2))
    offset = rng.normal(0.0, 0.01, 200)
    z = np.where(np.arange(200) % 2 == 0, 0.05, -0.05) + offset  # both faces, off by noise
    points = np.column_stack([xy, z])
    thickness, edge_distance, noise = _bench().truth_surroundings(path, points)
    np.testing.assert_allclose(thickness, 0.1, atol=1e-5)
    np.testing.assert_allclose(noise, np.sqrt(np.mean(offset ** 2)), rtol=1e-4)
    # the nearest sharp edge is the rim of the face the point lies on (the triangles'
    # diagonals are flat, not sharp); edges are sampled every tenth of the noise
    np.testing.assert_allclose(edge_distance, 1.0 - np.abs(xy).max(axis=1), atol=0.05 * noise + 1e-6)
