"""Normals of noisy points (recon.points.normals, and point_normals of a noisy field):
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
    from recon.points.normals import estimate_normals

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
    from recon.points.normals import estimate_normals

    p, truth = noisy_sphere(hole_below=-0.4)
    n = estimate_normals(p, surface="closed")
    _, cos = angles_deg(n, truth)
    assert (cos > 0).all(), f"{(cos <= 0).sum()} normals point inward"


def test_open_wavy_sheet_is_oriented_consistently():
    from recon.points.normals import estimate_normals

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
        self.normalization = None
        self.bounds = np.array([[-1.0, -1, -1], [1, 1, 1]])

    def closest_point(self, x):
        return np.asarray(x, np.float64)


def test_point_normals_of_a_noisy_field_come_from_the_points():
    from recon.fields.closest_point_geometry import point_normals

    p, truth = noisy_sphere(seed=3)
    n, k = point_normals(NoisyIdentityField("closed"), p)
    assert n.dtype == np.float32 and n.shape == p.shape and k is None
    ang, cos = angles_deg(n.astype(np.float64), truth)
    assert (cos > 0).all() and np.median(ang) < 4.0


def test_same_input_same_normals_and_bad_inputs():
    from recon.points.normals import estimate_normals

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
    from recon.points.normals import estimate_normals

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


def test_band_depth_of_a_slab_is_its_thickness_on_the_material_side():
    """A slab of occupied cells 4 cells thick; a point just inside its lower face, normal
    -z (outward): the band runs 4 cells deep behind it (+z) and a quarter cell in front."""
    from recon.kernels.visibility_cpu import band_depths

    occ = np.zeros((40, 40, 40), bool)
    occ[:, :, 10:14] = True
    pts = np.array([[20.0, 20.0, 10.1], [15.5, 24.25, 10.1]])
    nrm = np.array([[0.0, 0.0, -1.0], [0.0, 0.0, -1.0]])
    straight = np.array([[0.0, 0.0, 1.0]])
    out = np.zeros((2, 2))
    band_depths(occ, np.zeros(3), 1.0, pts, nrm, straight, 80, out)
    np.testing.assert_allclose(out[:, 0], 0.25)  # first quarter step is free
    np.testing.assert_allclose(out[:, 1], 4.0)  # 13.9 -> 14.1: the step after 3.9 cells
    tilted = np.array([[np.sin(0.5), 0.0, np.cos(0.5)]])
    band_depths(occ, np.zeros(3), 1.0, pts, nrm, tilted, 80, out)
    # along a ray 0.5 rad off the normal the band is still 3.9 cells deep, to a quarter step
    assert np.all(out[:, 1] >= 3.9) and np.all(out[:, 1] <= 3.9 + 0.25 * np.cos(0.5) + 1e-9)
    capped = np.zeros((2, 2))
    band_depths(occ, np.zeros(3), 1.0, pts, nrm, straight, 8, capped)
    np.testing.assert_allclose(capped[:, 1], 2.25)  # 8 quarter steps past the first


def thin_plate(thickness, seed, n=30000, noise=0.003):
    """Points on a 1 x 1 x thickness box (all six faces) with Gaussian noise, and each
    point's outward face normal."""
    import trimesh

    box = trimesh.creation.box(extents=[1.0, 1.0, thickness])
    p, face = trimesh.sample.sample_surface(box, n, seed=seed)
    return p + np.random.default_rng(seed).normal(0, noise, p.shape), box.face_normals[face]


def test_a_plate_whose_faces_merge_in_the_occupancy_is_oriented_by_band_depth():
    """A plate 0.02 thick (2.5 point spacings, noise 0.003): rays go straight through it,
    so visibility cannot tell its faces apart, but the occupied band runs deeper on the
    material side. That agrees with visibility where visibility is sure, so it orients
    the points visibility leaves undecided, better than spreading from their neighbours."""
    import dataclasses

    import recon.points.normals as normals_module
    from recon.points.normals import estimate_normals

    p, truth = thin_plate(0.02, seed=1)
    n, info = estimate_normals(p, surface="closed", details=True)
    assert info["depth_agreement"] >= normals_module.TUNABLES.depth_trust
    by_depth = info["by_depth"]
    assert by_depth.sum() > 0.1 * len(p)
    _, cos = angles_deg(n, truth)
    default = normals_module.TUNABLES
    try:
        normals_module.TUNABLES = dataclasses.replace(default, depth_trust=1.01)  # rule off
        n_off = estimate_normals(p, surface="closed")
    finally:
        normals_module.TUNABLES = default
    _, cos_off = angles_deg(n_off, truth)
    assert (cos[by_depth] > 0).mean() > 0.95
    assert (cos[by_depth] > 0).mean() > (cos_off[by_depth] > 0).mean() + 0.02
    assert (cos > 0).mean() > (cos_off > 0).mean()


def test_band_depth_is_not_trusted_on_a_thick_solid():
    """A sphere's band is shallow on both sides of every point: band depth says nothing, so
    it must not agree with visibility often enough to orient anything."""
    from recon.points.normals import TUNABLES, estimate_normals

    p, _ = noisy_sphere(seed=5)
    _, info = estimate_normals(p, surface="closed", details=True)
    assert info["depth_agreement"] < TUNABLES.depth_trust
    assert not info["by_depth"].any()
