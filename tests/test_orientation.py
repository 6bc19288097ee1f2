"""recon.kernels.orientation_cpu: normals oriented over a neighbour graph."""

import numpy as np

from recon.kernels.orientation_cpu import propagate_orientation


def test_orientation_spreads_from_a_seed_and_leaves_unreached_points():
    gen = np.random.default_rng(0)
    n = 6
    up = np.tile([0.0, 0.0, 1.0], (n, 1)) + gen.normal(0, 0.05, (n, 3))
    signs = np.array([1, -1, -1, 1, -1, 1.0])
    normals = up * signs[:, None]
    # a chain 0-1-2-3 and a separate pair 4-5 (-1: no neighbour)
    nbr = np.array([[1, -1], [0, 2], [1, 3], [2, -1], [5, -1], [4, -1]], np.int64)
    orientation = np.zeros(n, np.int8)
    orientation[0] = -1  # seed: point 0's normal points the wrong way
    propagate_orientation(normals, nbr, orientation)
    assert (normals[:4, 2] < 0).all()  # the chain follows the flipped seed
    assert list(orientation) == [1, 1, 1, 1, 0, 0]
    assert normals[4, 2] < 0 < normals[5, 2]  # unreached: untouched


def test_orientation_along_a_tree_follows_each_parent_and_keeps_the_roots():
    from recon.kernels.orientation_cpu import orient_along_tree

    up = np.array([0.0, 0.0, 1.0])
    # a tree 3 -> 0 -> 1 -> 2 (3 is the root, kept as given) and a lone root 4
    normals = np.array([up, -up, up, -up, -up])
    parent = np.array([3, 0, 1, -9999, -9999], np.int64)
    order = np.array([3, 0, 1, 2, 4], np.int64)
    orient_along_tree(normals, order, parent)
    assert (normals[[0, 1, 2, 3], 2] == -1).all()  # all follow the root's (down) direction
    assert normals[4, 2] == -1  # a root is never flipped
    normals[3] = up
    orient_along_tree(normals, order, parent)
    assert (normals[:4, 2] == 1).all()
