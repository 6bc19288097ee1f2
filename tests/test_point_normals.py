"""Normals of noisy points (recon.point_normals, and point_normals of a noisy field):
analytic shapes with known outward normals."""

from __future__ import annotations

import numpy as np
import pytest

from recon.errors import InputError


def angles_deg(n, truth):
    cos = np.einsum("ij,ij->i", n, truth)
    return np.degrees(np.arccos(np.clip(np.abs(cos), 0, 1))), cos


def noisy_sphere(n=4000, radius=0.5, noise=0.004, seed=0, hole_below=None):
    gen = np.random.default_rng(seed)
    d = gen.normal(size=(n * 2, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    if hole_below is not None:  # a scan that never saw the bottom
        d = d[d[:, 2] > hole_below]
    d = d[:n]
    return d * radius + gen.normal(0, noise, d.shape), d


def noisy_torus(n=6000, R=0.35, r=0.12, noise=0.003, seed=1):
    gen = np.random.default_rng(seed)
    # area-uniform: accept v with probability (R + r cos v) / (R + r)
    u = gen.uniform(0, 2 * np.pi, 4 * n)
    v = gen.uniform(0, 2 * np.pi, 4 * n)
    keep = gen.uniform(0, 1, 4 * n) < (R + r * np.cos(v)) / (R + r)
    u, v = u[keep][:n], v[keep][:n]
    nrm = np.stack([np.cos(v) * np.cos(u), np.cos(v) * np.sin(u), np.sin(v)], 1)
    ring = np.stack([R * np.cos(u), R * np.sin(u), 0 * u], 1)
    return ring + r * nrm + gen.normal(0, noise, nrm.shape), nrm


def pca30(p):
    """Plain 30-neighbour plane fits of the raw points (what Open3D's default does)."""
    from scipy.spatial import cKDTree

    _, idx = cKDTree(p).query(p, k=30)
    nb = p[idx] - p[idx].mean(1, keepdims=True)
    return np.linalg.eigh(np.einsum("nki,nkj->nij", nb, nb))[1][:, :, 0]


@pytest.mark.parametrize("shape", ["sphere", "torus"])
def test_noisy_closed_shapes_point_outward_and_beat_a_fixed_30_neighbour_fit(shape):
    from recon.point_normals import estimate_normals

    p, truth = noisy_sphere() if shape == "sphere" else noisy_torus()
    n, info = estimate_normals(p, surface="closed", details=True)
    ang, cos = angles_deg(n, truth)
    assert (cos > 0).all(), f"{(cos <= 0).sum()} normals point inward"
    base, _ = angles_deg(pca30(p), truth)
    assert np.median(ang) < 4.0
    assert np.median(ang) < np.median(base)
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0, atol=1e-9)
    assert info["scale"].max() > 30  # smooth shapes use wide neighbourhoods


def test_a_scan_with_a_hole_still_points_outward():
    """The bottom third unseen: a flood fill of free space leaks inside, visibility does not."""
    from recon.point_normals import estimate_normals

    p, truth = noisy_sphere(hole_below=-0.4)
    n = estimate_normals(p, surface="closed")
    _, cos = angles_deg(n, truth)
    assert (cos > 0).all(), f"{(cos <= 0).sum()} normals point inward"


def test_open_wavy_sheet_is_oriented_consistently():
    from recon.point_normals import estimate_normals

    gen = np.random.default_rng(2)
    xy = gen.uniform(-0.5, 0.5, (4000, 2))
    z = 0.08 * np.sin(2 * np.pi * xy[:, 0])
    p = np.column_stack([xy, z + gen.normal(0, 0.003, len(z))])
    truth = np.column_stack([-0.08 * 2 * np.pi * np.cos(2 * np.pi * xy[:, 0]), 0 * z, 1 + 0 * z])
    truth /= np.linalg.norm(truth, axis=1, keepdims=True)
    n = estimate_normals(p, surface="open")
    ang, cos = angles_deg(n, truth)
    assert np.median(ang) < 4.0
    assert (cos > 0).all() or (cos < 0).all()  # one side, whichever the seed chose


class NoisyIdentityField:
    """A 'field' whose closest point is the query itself, marked as fitted to noisy data:
    point_normals must then take its normals from the points, not the (useless) Jacobian."""

    def __init__(self, surface):
        self.params = {"noise_ratio": 0.05, "clean_threshold": 0.02, "surface_decided": surface}
        self.bounds = np.array([[-1.0, -1, -1], [1, 1, 1]])

    def closest_point(self, x):
        return np.asarray(x, np.float64)


def test_point_normals_of_a_noisy_field_come_from_the_points():
    from recon.csp_geometry import point_normals

    p, truth = noisy_sphere(seed=3)
    n, k = point_normals(NoisyIdentityField("closed"), p)
    assert n.dtype == np.float32 and n.shape == p.shape and k is None
    ang, cos = angles_deg(n.astype(np.float64), truth)
    assert (cos > 0).all() and np.median(ang) < 4.0


def test_same_input_same_normals_and_bad_inputs():
    from recon.point_normals import estimate_normals

    p, _ = noisy_sphere(n=800, seed=4)
    np.testing.assert_array_equal(estimate_normals(p), estimate_normals(p))
    with pytest.raises(InputError, match="surface must be closed or open"):
        estimate_normals(p, surface="auto")
    with pytest.raises(InputError, match="at least 3 points"):
        estimate_normals(p[:2])
    with pytest.raises(InputError, match=r"normals must be \(800, 3\)"):
        estimate_normals(p, normals=np.zeros((10, 3)))
    with pytest.raises((InputError, ValueError, TypeError)):
        estimate_normals(p[:, :2])


def test_open_box_points_out_of_its_walls_where_its_own_walls_block_the_inside():
    """An open surface has no inside, but where one side of it is walled in (here: the inside
    of a box without a lid) the side rays escape from is the one its normal takes."""
    from recon.point_normals import estimate_normals

    gen = np.random.default_rng(3)
    pts, truth = [], []
    for axis in range(3):
        for side in (-1.0, 1.0):
            if axis == 2 and side > 0:
                continue  # no lid
            q = gen.uniform(-0.5, 0.5, (1500, 3))
            q[:, axis] = 0.5 * side
            nrm = np.zeros((1500, 3))
            nrm[:, axis] = side
            pts.append(q)
            truth.append(nrm)
    p = np.concatenate(pts) + gen.normal(0, 0.003, (7500, 3))
    truth = np.concatenate(truth)
    n = estimate_normals(p, surface="open")
    _, cos = angles_deg(n, truth)
    assert (cos > 0).mean() > 0.99
