"""The occupancy fitter's CPU kernels (kernels/occupancy_cpu.py) against exact answers and
plain NumPy references."""

from __future__ import annotations

import numpy as np
import pytest

from recon.kernels.occupancy_cpu import add_smoothness_grad, scatter_rows, winding_numbers


def fibonacci_sphere(n: int) -> np.ndarray:
    i = np.arange(n) + 0.5
    z = 1.0 - 2.0 * i / n
    a = np.pi * (1.0 + np.sqrt(5.0)) * i
    r = np.sqrt(1.0 - z * z)
    return np.column_stack([r * np.cos(a), r * np.sin(a), z])


def test_winding_numbers_are_one_inside_a_sampled_sphere_and_zero_outside():
    n = 4000
    p = fibonacci_sphere(n)
    areas = np.full(n, 4.0 * np.pi / n)  # an even share of the unit sphere's area
    q = np.array([[0.0, 0.0, 0.0], [0.3, -0.2, 0.1], [0.0, 0.0, 0.6], [2.0, 0.0, 0.0], [0.0, -1.5, 1.5]])
    w = np.empty(len(q))
    winding_numbers(q, p, p, areas, w)  # a unit sphere's outward normals are its points
    np.testing.assert_allclose(w, [1, 1, 1, 0, 0], atol=2e-3)
    inward = np.empty(len(q))
    winding_numbers(q, p, -p, areas, inward)
    np.testing.assert_allclose(inward, -w, atol=1e-12)


def test_winding_numbers_match_the_direct_sum_and_skip_a_point_at_the_query():
    rng = np.random.default_rng(4)
    p, n = rng.normal(size=(300, 3)), rng.normal(size=(300, 3))
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    areas = rng.uniform(0.01, 0.1, 300)
    q = np.concatenate([rng.normal(size=(50, 3)), p[:3]])  # the last three sit on points
    d = p[None] - q[:, None]
    r = np.linalg.norm(d, axis=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.where(r > 0, areas * np.einsum("mij,ij->mi", d, n) / r**3, 0.0)
    expected = term.sum(axis=1) / (4.0 * np.pi)
    w = np.empty(len(q))
    winding_numbers(q, p, n, areas, w)
    assert np.all(np.isfinite(w))
    np.testing.assert_allclose(w, expected, rtol=1e-9, atol=1e-12)


def test_scatter_rows_adds_like_numpy_add_at():
    rng = np.random.default_rng(5)
    rows = rng.integers(0, 20, (100, 8)).astype(np.int64)
    weights = rng.uniform(0, 1, (100, 8)).astype(np.float32)
    grad = rng.normal(size=(100, 4)).astype(np.float32)
    out = np.ones((20, 4), np.float32)
    scatter_rows(rows, weights, grad, out)
    expected = np.ones((20, 4))
    np.add.at(expected, rows.ravel(), (weights[:, :, None] * grad[:, None, :]).reshape(-1, 4))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_smoothness_gradient_matches_finite_differences_and_vanishes_for_a_constant_on_both_forms():
    rng = np.random.default_rng(6)
    dev = rng.normal(size=(4, 5, 3, 2)).astype(np.float32)
    scale = 0.7

    def energy(x):
        x = x.astype(np.float64)
        return scale * sum(float((np.diff(x, axis=a) ** 2).sum()) for a in range(3))

    grad = np.zeros_like(dev)
    add_smoothness_grad(dev, scale, grad)
    numeric = np.zeros(dev.shape)
    h = 1e-2
    for idx in np.ndindex(dev.shape):
        up, down = dev.copy(), dev.copy()
        up[idx] += h
        down[idx] -= h
        numeric[idx] = (energy(up) - energy(down)) / (2 * h)
    np.testing.assert_allclose(grad, numeric, rtol=1e-3, atol=1e-3)
    flat = np.zeros_like(dev)
    add_smoothness_grad(np.full_like(dev, 3.0), scale, flat)
    assert np.all(flat == 0)
    # the torch form (the refinement's on a GPU), here on CPU tensors, accumulating into a start
    torch = pytest.importorskip("torch")
    from recon.kernels import occupancy_torch

    start = rng.normal(size=dev.shape).astype(np.float32)
    on_cpu = start.copy()
    add_smoothness_grad(dev, scale, on_cpu)
    by_torch = torch.from_numpy(start.copy())
    occupancy_torch.add_smoothness_grad(torch.from_numpy(dev), scale, by_torch)
    np.testing.assert_allclose(by_torch.numpy(), on_cpu, rtol=1e-5, atol=1e-5)


def test_the_feature_gather_backward_is_the_same_by_numba_and_by_index_add():
    # float32 CPU tensors take the numba scatter, others (a GPU's, here float64) index_add_
    torch = pytest.importorskip("torch")
    from recon.fitters._occupancy_model import decode_table

    rng = np.random.default_rng(7)
    R, C = 5, 3
    layers = [(torch.from_numpy(rng.normal(size=(4, C + 3))), torch.from_numpy(rng.normal(size=4))),
              (torch.from_numpy(rng.normal(size=(1, 4))), torch.from_numpy(rng.normal(size=1)))]
    box = np.array([[-0.6] * 3, [0.6] * 3])
    table = rng.normal(size=(R**3, C))
    u = rng.uniform(-0.6, 0.6, (200, 3))
    grads = []
    for dtype in (torch.float32, torch.float64):
        t = torch.tensor(table, dtype=dtype, requires_grad=True)
        z = decode_table(t, R, [(w.to(dtype), b.to(dtype)) for w, b in layers], torch.tensor(u, dtype=dtype), box)
        z.sum().backward()
        grads.append(t.grad.double().numpy())
    assert np.abs(grads[1]).max() > 0
    assert not torch.are_deterministic_algorithms_enabled()  # the backward's mode did not leak
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-4, atol=1e-4)
