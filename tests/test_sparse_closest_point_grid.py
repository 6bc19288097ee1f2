"""Block-sparse closest-point grids (recon.fields.sparse_closest_point_grid): the same offsets as
the dense grid where bricks are stored, true lower bounds elsewhere, smaller than dense,
files, and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from recon.errors import InputError


def sphere_grids(resolution=64, brick=8, margin=4.0):
    from recon.fields.analytic import Sphere, sample_closest_point_grid
    from recon.fields.sparse_closest_point_grid import bake_sparse

    shape = Sphere(radius=0.5)
    return shape, sample_closest_point_grid(shape, resolution=resolution), bake_sparse(
        shape, resolution, brick=brick, margin_voxels=margin)


def test_stored_bricks_hold_the_dense_grids_offsets_and_cover_the_margin():
    shape, dense, sparse = sphere_grids()
    x = np.random.default_rng(0).uniform(-0.75, 0.75, (20000, 3))
    _, _, stored, _ = sparse._lookup(x)
    np.testing.assert_array_equal(sparse.closest_point(x[stored]), dense.closest_point(x[stored]))
    true = np.abs(np.linalg.norm(x, axis=1) - 0.5)
    near = true <= 4.0 * sparse.voxel_size
    assert near.any() and stored[near].all()  # every point within the margin has its brick
    assert (~stored).any()


def test_empty_blocks_bound_the_distance_from_below():
    shape, dense, sparse = sphere_grids()
    x = np.random.default_rng(1).uniform(-0.75, 0.75, (20000, 3))
    _, _, stored, _ = sparse._lookup(x)
    far = x[~stored]
    true = np.abs(np.linalg.norm(far, axis=1) - 0.5)
    bound = sparse.value(far)
    assert np.all(bound <= true + 1e-6)
    assert np.all(bound > 4.0 * sparse.voxel_size - 1e-6)  # empty only beyond the margin
    np.testing.assert_allclose(np.linalg.norm(far - sparse.closest_point(far), axis=1), bound, rtol=1e-5)


def test_sparse_is_smaller_than_dense_at_the_default_brick():
    _, dense, sparse = sphere_grids(resolution=192)
    assert sparse.nbytes < 0.6 * dense.offsets.nbytes


def test_save_load_round_trip_renders_on_the_kernels(tmp_path):
    from recon.fields import load_field
    from recon.render.camera import orbit_camera
    from recon.render.trace import sphere_trace
    from recon.fields.sparse_closest_point_grid import SparseClosestPointGrid

    shape, dense, sparse = sphere_grids(resolution=32, brick=4)
    back = load_field(sparse.save(tmp_path / "s.npz"))
    assert isinstance(back, SparseClosestPointGrid)
    np.testing.assert_array_equal(back.table, sparse.table)
    np.testing.assert_array_equal(back.bricks, sparse.bricks)
    cam = orbit_camera(back.bounds, azimuth=20, elevation=30, width=24, height=20)
    r = sphere_trace(back, cam)
    assert r.stats["path"] in ("grid-cpu", "grid-cuda")  # the kernel, on whichever device auto picks
    hit = r.hit
    assert hit.sum() > 50
    p = r.points()[hit]
    np.testing.assert_allclose(np.linalg.norm(p, axis=1), 0.5, atol=0.5 * back.voxel_size)


def test_bad_input_is_refused():
    from recon.fields.analytic import Sphere
    from recon.fields.sparse_closest_point_grid import SparseClosestPointGrid, bake_sparse

    with pytest.raises(InputError, match="bake resolution must be an integer >= 2"):
        bake_sparse(Sphere(), 1)
    with pytest.raises(InputError, match="brick must be a positive integer"):
        bake_sparse(Sphere(), 16, brick=0)
    with pytest.raises(InputError, match="margin_voxels must be a finite number >= 0"):
        bake_sparse(Sphere(), 16, margin_voxels=float("nan"))
    table = np.zeros((2, 2, 2), np.float32)
    table[0, 0, 0] = 3.0  # names a fourth brick; only one is stored
    with pytest.raises(InputError, match="table names bricks that are not there"):
        SparseClosestPointGrid(table, np.zeros((3, 3, 3, 3), np.float32), np.zeros(3), 0.1, [[0, 0, 0], [1, 1, 1]])
    with pytest.raises(InputError, match=r"bricks must be \(3, K \* \(B \+ 1\)"):
        SparseClosestPointGrid(table, np.zeros((3, 4, 3, 3), np.float32), np.zeros(3), 0.1, [[0, 0, 0], [1, 1, 1]])


class HalfSupportedDisc:
    """An open disc whose data (``supported``) covers only its half x < 0, declaring a
    surface tolerance as a fitted field does."""

    def __init__(self):
        from recon.fields.analytic import OpenDisc

        self.shape = OpenDisc()
        self.kind, self.level, self.bounds = "unsigned", 0.0, self.shape.bounds
        self.params, self.normalization = {}, None
        self.surface_tolerance = 0.004

    def closest_point(self, x):
        return self.shape.closest_point(x)

    def supported(self, x):
        return np.asarray(x)[:, 0] < 0.0


def test_bake_marks_bricks_off_the_support_and_keeps_the_tolerance():
    """The renderer passes a fitted field's surfaces off its data; the bake marks the bricks
    there, so the kernels pass them too, and the field's tolerance becomes their hit floor."""
    from recon.render.camera import orbit_camera
    from recon.render.trace import _kernel_params, prepare, resolve_settings, sphere_trace
    from recon.fields.sparse_closest_point_grid import bake_sparse

    field = HalfSupportedDisc()
    grid = bake_sparse(field, 48, brick=4)
    assert grid.surface_tolerance == pytest.approx(0.004)
    cam = orbit_camera(grid.bounds, azimuth=0, elevation=60, width=80, height=80)
    r = sphere_trace(grid, cam)
    assert r.stats["path"] in ("grid-cpu", "grid-cuda")  # the kernel, on whichever device auto picks
    p = r.points()[r.hit]
    block = grid.brick * grid.voxel_size
    assert len(p) > 100 and (p[:, 0] < block).all()  # nothing beyond the supported half's blocks
    full = sphere_trace(bake_sparse(field.shape, 48, brick=4), cam)
    fp = full.points()
    kept = full.hit & (fp[..., 0] < -block)
    assert kept.sum() > 100 and r.hit[kept].all()  # the supported half is whole
    # the marked bricks keep the field's offsets (meshing reads them), and say so
    from recon.fields.analytic import sample_closest_point_grid

    dense = sample_closest_point_grid(field.shape, resolution=48)
    off_data = np.column_stack([np.linspace(0.2, 0.45, 50), np.zeros(50), np.full(50, 0.01)])
    np.testing.assert_allclose(grid.closest_point(off_data), dense.closest_point(off_data), atol=1e-6)
    assert not grid.supported(off_data).any() and grid.supported(off_data * [-1, 1, 1]).all()
    prep = prepare(grid, device="cpu")
    from recon.kernels.sphere_trace import PARAM_INDEX

    assert _kernel_params(resolve_settings(None), prep, cam)[PARAM_INDEX["hit_floor"]] == pytest.approx(0.004)
