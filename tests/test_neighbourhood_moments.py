"""kernels/neighbourhood_moments_cpu.prefix_moments: the plane fits' neighbourhood sums."""

import numpy as np

from recon.kernels.neighbourhood_moments_cpu import prefix_moments


def _moments(points, query, nbr, ks):
    s1 = np.empty((len(query), len(ks), 3))
    s2 = np.empty((len(query), len(ks), 3, 3))
    prefix_moments(points, query, nbr, np.asarray(ks, np.int64), s1, s2)
    return s1, s2


def test_sums_along_a_line_are_the_closed_forms():
    points = np.zeros((40, 3))
    points[:, 0] = np.arange(40.0)  # x = 0, 1, ..., 39; the query at x = 0, neighbours in order
    nbr = np.arange(40, dtype=np.int64)[None, :]
    s1, s2 = _moments(points, points[:1], nbr, [3, 10, 40])
    for j, k in enumerate([3, 10, 40]):
        assert s1[0, j, 0] == k * (k - 1) / 2 and s2[0, j, 0, 0] == (k - 1) * k * (2 * k - 1) / 6
        assert not s1[0, j, 1:].any() and np.count_nonzero(s2[0, j]) == 1


def test_points_on_a_plane_have_no_moment_across_it():
    gen = np.random.default_rng(1)
    points = np.column_stack([gen.uniform(-1, 1, (200, 2)), np.full(200, 0.25)])
    nbr = np.argsort(np.linalg.norm(points[:, None] - points[None, :5], axis=2), axis=0).T.astype(np.int64)
    s1, s2 = _moments(points, points[:5], nbr, [4, 50, 200])
    assert not s1[..., 2].any() and not s2[..., 2, :].any() and not s2[..., :, 2].any()
    np.testing.assert_allclose(s2, np.swapaxes(s2, 2, 3), rtol=0, atol=0)  # symmetric


def test_same_as_the_cumulative_sums_bit_for_bit():
    gen = np.random.default_rng(0)
    points = gen.normal(size=(500, 3)) * [3.0, 1.0, 0.01] + 1e3  # far from the origin
    query = points[:64]
    nbr = gen.integers(0, 500, (64, 30)).astype(np.int64)
    ks = [3, 7, 30]
    s1, s2 = _moments(points, query, nbr, ks)
    d = points[nbr] - query[:, None, :]
    c1 = np.cumsum(d, axis=1)
    c2 = np.cumsum(d[:, :, :, None] * d[:, :, None, :], axis=1)
    for j, k in enumerate(ks):
        np.testing.assert_array_equal(s1[:, j], c1[:, k - 1])
        np.testing.assert_array_equal(s2[:, j], c2[:, k - 1])
