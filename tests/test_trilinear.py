"""Trilinear kernel (shared by the Field, GridPull and the tracer): exact on linear fields,
the plain-NumPy reference elsewhere, continued outside the grid, same on every device."""

import numpy as np
import pytest

from recon.kernels.trilinear import trilinear_value_grad


def reference_trilinear(values, origin, h, p):
    """Slow plain-NumPy trilinear value and gradient, for points inside the grid."""
    g = (p - origin) / h
    n = np.array(values.shape)
    i = np.clip(np.floor(g).astype(int), 0, n - 2)
    t = g - i
    f = np.zeros(len(p))
    grad = np.zeros((len(p), 3))
    for c in range(8):
        o = np.array([(c >> a) & 1 for a in range(3)])
        w = np.where(o, t, 1 - t)
        dw = np.where(o, 1.0, -1.0) / h
        v = values[i[:, 0] + o[0], i[:, 1] + o[1], i[:, 2] + o[2]]
        f += v * w.prod(axis=1)
        grad[:, 0] += v * dw[0] * w[:, 1] * w[:, 2]
        grad[:, 1] += v * w[:, 0] * dw[1] * w[:, 2]
        grad[:, 2] += v * w[:, 0] * w[:, 1] * dw[2]
    return f, grad


def test_linear_field_is_exact():
    # a plane's signed distance is linear, so trilinear interpolation reproduces it exactly
    n = np.array([1.0, -2.0, 0.5]) / np.linalg.norm([1.0, -2.0, 0.5])
    origin = np.array([-1.0, 2.0, 0.5])
    h = 0.1
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in (7, 9, 11)], indexing="ij"), axis=-1)
    values = ((origin + ijk * h) @ n - 0.3).astype(np.float32)
    p = origin + np.random.default_rng(0).uniform(0, 1, (500, 3)) * (np.array([6, 8, 10]) * h)
    f, g = trilinear_value_grad(values, origin, h, p)
    np.testing.assert_allclose(f, p @ n - 0.3, atol=2e-6)
    np.testing.assert_allclose(g, np.broadcast_to(n, g.shape), atol=2e-5)


def test_matches_reference_and_continues_outside():
    rng = np.random.default_rng(1)
    values = rng.standard_normal((5, 6, 4)).astype(np.float32)
    origin = np.array([0.5, -1.0, 2.0])
    h = 0.25
    p = origin + rng.uniform(0, 1, (300, 3)) * (np.array([4, 5, 3]) * h)
    f, g = trilinear_value_grad(values, origin, h, p)
    rf, rg = reference_trilinear(values.astype(np.float64), origin, h, p)
    np.testing.assert_allclose(f, rf, atol=1e-5)
    np.testing.assert_allclose(g, rg, atol=1e-4)
    # outside the box: value at the nearest box point plus the distance to the box
    box_hi = origin + np.array([4, 5, 3]) * h
    q = np.array([[box_hi[0] + 0.7, origin[1] + 0.3, origin[2] + 0.2]])
    fq, gq = trilinear_value_grad(values, origin, h, q)
    fb, _ = trilinear_value_grad(values, origin, h, np.array([[box_hi[0], q[0, 1], q[0, 2]]]))
    assert fq[0] == pytest.approx(fb[0] + 0.7, abs=1e-5)
    np.testing.assert_allclose(gq[0], [1.0, 0.0, 0.0], atol=1e-6)


def test_cuda_kernel_matches_cpu(cuda_sim):
    out = cuda_sim(
        """
        import numpy as np
        from recon.kernels.trilinear import trilinear_value_grad
        rng = np.random.default_rng(2)
        values = rng.standard_normal((4, 5, 6)).astype(np.float32)
        p = rng.uniform(-0.5, 5.5, (37, 3))   # inside and outside, not a multiple of the block
        a = trilinear_value_grad(values, [0, 0, 0], 1.0, p, device="cpu")
        b = trilinear_value_grad(values, [0, 0, 0], 1.0, p, device="cuda")
        assert np.abs(a[0] - b[0]).max() < 1e-6 and np.abs(a[1] - b[1]).max() < 1e-6
        print("ok")
        """
    )
    assert out.strip().endswith("ok")
