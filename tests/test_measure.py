"""recon.points.measure: cloud measures on shapes whose answers are known."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from recon.errors import InputError
from recon.points.measure import CONFIG, CloudMeasures, measure_cloud


def fibonacci_sphere(n: int, radius: float = 1.0) -> np.ndarray:
    """(n, 3) evenly spread points on a sphere (a spiral lattice: no clumps, no gaps)."""
    i = np.arange(n) + 0.5
    z = 1.0 - 2.0 * i / n
    phi = np.pi * (1.0 + 5.0**0.5) * i
    r = np.sqrt(1.0 - z * z)
    return radius * np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def random_sphere(n: int, seed: int = 0) -> np.ndarray:
    d = np.random.default_rng(seed).normal(size=(n, 3))
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def grid_plane(side: int, step: float) -> np.ndarray:
    """(side^2, 3) square lattice in the z = 0 plane, ``step`` apart."""
    u, v = np.meshgrid(np.arange(side) * step, np.arange(side) * step, indexing="ij")
    return np.stack([u.ravel(), v.ravel(), np.zeros(u.size)], axis=1)


def hemisphere(n: int, seed: int = 0) -> np.ndarray:
    p = random_sphere(2 * n, seed)
    return p[p[:, 2] > 0][:n]


def height_field(n: int, seed: int = 0) -> np.ndarray:
    """Rolling terrain z = f(x, y) over a square, sampled at random."""
    xy = np.random.default_rng(seed).uniform(-1.0, 1.0, size=(n, 2))
    z = 0.15 * np.sin(3.0 * xy[:, 0]) * np.cos(2.0 * xy[:, 1]) + 0.1 * xy[:, 0] ** 2
    return np.column_stack([xy, z])


def test_a_lattice_has_its_known_spacing_and_no_noise():
    m = measure_cloud(grid_plane(60, 0.25))
    assert isinstance(m, CloudMeasures)
    assert m.points == 3600
    assert m.spacing == pytest.approx(0.25, rel=1e-6)
    # a square lattice's area per point is step^2: surface spacing = step within the k-disc's error
    assert m.surface_spacing == pytest.approx(0.25, rel=0.15)
    assert m.noise < 1e-6 * m.diagonal and m.flatness < 1e-6
    assert m.samples_across == pytest.approx(m.diagonal / m.surface_spacing)


def test_a_sparse_lattice_has_few_samples_across_and_a_dense_one_many():
    sparse = measure_cloud(fibonacci_sphere(500))
    dense = measure_cloud(fibonacci_sphere(50_000))
    # samples across grow as sqrt(N): 100 times the points, 10 times the samples
    assert dense.samples_across / sparse.samples_across == pytest.approx(10.0, rel=0.1)
    # 4 pi r^2 / N per point on the unit sphere
    assert sparse.surface_spacing == pytest.approx(np.sqrt(4 * np.pi / 500), rel=0.15)


@pytest.mark.parametrize("sigma_spacings", [0.1, 0.3, 1.0])
def test_the_noise_estimate_finds_the_known_sigma(sigma_spacings):
    clean = fibonacci_sphere(40_000)
    spacing = np.sqrt(4 * np.pi / len(clean))
    sigma = sigma_spacings * spacing
    noisy = clean * (1.0 + np.random.default_rng(1).normal(scale=sigma, size=(len(clean), 1)))  # along the normal
    m = measure_cloud(noisy)
    assert m.noise == pytest.approx(sigma, rel=0.15)
    assert m.noise_spacings == pytest.approx(sigma_spacings, rel=0.25)
    assert measure_cloud(clean).noise < 0.05 * m.noise
    assert m.noise_fraction == pytest.approx(m.noise / m.diagonal)


def test_a_sphere_encloses_a_volume_and_a_plane_and_a_hemisphere_do_not():
    sphere = measure_cloud(random_sphere(20_000))
    assert sphere.enclosed_share > 0.5 and sphere.enclosed_share >= sphere.enclosed_share_coarse
    assert sphere.single_layer_share < 0.6  # two layers of points along any direction
    plane, cap = measure_cloud(grid_plane(120, 0.01)), measure_cloud(hemisphere(10_000))
    for m in (plane, cap):
        assert m.enclosed_share < 0.01 and m.enclosed_share_coarse < 0.01
    assert plane.single_layer_share == 1.0
    # seen from above, the cap is one layer except where it is steeper than the allowed depth
    # of 2 cells per cell (63 degrees): r > sin(63.4 deg) = 0.894, a fifth of the disc
    assert 0.75 < cap.single_layer_share < 0.9 and abs(cap.layer_direction[2]) > 0.9


def test_a_surface_inside_a_closed_one_is_found():
    shell = random_sphere(20_000)
    assert measure_cloud(shell).inner_share < 0.002
    disc = np.random.default_rng(3).uniform(-0.5, 0.5, size=(4000, 3)) * [1.0, 1.0, 0.0]  # a plate at the centre
    m = measure_cloud(np.concatenate([shell, disc]))
    assert m.enclosed_share > 0.3
    # the plate's points (1 in 6) lie deep inside; those near the shell do not count
    assert 0.1 < m.inner_share <= 4000 / 24_000 + 1e-9


def test_a_height_field_is_one_sided_along_its_up_axis():
    m = measure_cloud(height_field(30_000))
    assert m.single_layer_share > 0.95
    assert abs(m.layer_direction[2]) > 0.9
    assert m.enclosed_share < 0.01
    assert m.components == 1


def test_separate_pieces_are_counted():
    a = random_sphere(5000)
    m = measure_cloud(np.concatenate([a, a + [5.0, 0, 0], a + [0, 5.0, 0]]))
    assert m.components == 3 and m.largest_component_share == pytest.approx(1 / 3, abs=0.01)


def test_scaled_and_moved_the_measures_in_spacings_are_the_same():
    p = height_field(20_000, seed=4) + np.random.default_rng(5).normal(scale=0.002, size=(20_000, 3))
    a = measure_cloud(p)
    b = measure_cloud(p * 1000.0 + [1.0e5, -3.0e4, 2.0e6])
    for name in ("points", "spacing_spread", "noise_spacings", "noise_fraction", "samples_across",
                 "enclosed_share", "enclosed_share_coarse", "enclosure_cell_spacings", "inner_share", "single_layer_share",
                 "flatness", "components", "largest_component_share"):
        assert getattr(b, name) == pytest.approx(getattr(a, name), rel=1e-6, abs=1e-9), name
    assert b.spacing == pytest.approx(1000.0 * a.spacing, rel=1e-6)


def test_large_clouds_are_measured_quickly_on_a_subset():
    p = random_sphere(300_000, seed=2)
    measure_cloud(p[:1000])  # imports out of the timing
    t = time.perf_counter()
    m = measure_cloud(p[:100_000])
    assert time.perf_counter() - t < 5.0  # about 1 s on a busy 2-core machine
    assert m.measured_points == 100_000
    big = measure_cloud(p, config=dataclasses.replace(CONFIG, max_points=50_000))
    assert big.points == 300_000 and big.measured_points == 50_000
    assert big.enclosed_share > 0.5
    # the spacings are the whole cloud's: 4 pi / N per point on the unit sphere
    assert big.surface_spacing == pytest.approx(np.sqrt(4 * np.pi / 300_000), rel=0.15)
    assert big.samples_across == pytest.approx(big.diagonal / big.surface_spacing)
    assert big.diagonal == pytest.approx(float(np.linalg.norm(p.max(axis=0) - p.min(axis=0))))


@pytest.mark.parametrize("bad,fragment", [
    (np.zeros((5, 3)), "at least 10 points"),
    (np.zeros((20, 2)), "must be (N, 3)"),
    (np.full((20, 3), np.nan), "finite"),
])
def test_bad_points_are_refused(bad, fragment):
    with pytest.raises(InputError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        measure_cloud(bad)


def test_the_measures_are_json_ready():
    import json

    d = measure_cloud(fibonacci_sphere(2000)).as_dict()
    assert json.loads(json.dumps(d))["points"] == 2000
