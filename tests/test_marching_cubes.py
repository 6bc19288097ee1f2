"""Marching cubes (recon.meshing.marching_cubes.extract_mesh) against analytic fields with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from mesh_checks import (
    boundary_edge_count,
    check_mesh,
    euler_characteristic,
    same_mesh,
    signed_volume,
    surface_area,
)
from recon import InputError, SignedDistanceGrid
from recon.meshing.marching_cubes import _marching_cubes, crossing_mask, extract_mesh
from recon.triangles import face_components
from recon.triangles import TriangleMesh


def grid_nodes(lo, hi, n):
    """Origin, voxel size and (X, Y, Z, 3) node positions of a cube grid with n nodes a side."""
    h = (hi - lo) / (n - 1)
    ax = lo + np.arange(n) * h
    return np.array([lo, lo, lo], float), h, np.stack(np.meshgrid(ax, ax, ax, indexing="ij"), axis=-1)


def sphere_grid(r=0.6, center=(0.03, -0.02, 0.01), n=64, lo=-1.0, hi=1.0, kind="signed"):
    origin, h, p = grid_nodes(lo, hi, n)
    d = np.linalg.norm(p - np.asarray(center), axis=-1) - r
    if kind == "unsigned":
        d = np.abs(d)
    return SignedDistanceGrid(d.astype(np.float32), origin, h, kind=kind)


class AnalyticSphere:
    """A Field computed exactly (no grid): signed distance to a sphere; counts evaluations."""

    def __init__(self, center=(0.05, -0.03, 0.02), r=0.55, kind="signed", level=0.0, box=1.0):
        self.center = np.asarray(center, float)
        self.r = float(r)
        self.kind = kind
        self.level = level
        self.params, self.normalization = {}, None
        self._box = box
        self.evaluated = 0

    @property
    def bounds(self):
        return np.array([[-self._box] * 3, [self._box] * 3], float)

    def _d(self, x):
        return np.linalg.norm(np.asarray(x, float) - self.center, axis=1) - self.r

    def value(self, x):
        self.evaluated += len(x)
        d = self._d(x)
        if self.kind == "occupancy":
            return (1.0 / (1.0 + np.exp(d / 0.02))).astype(np.float32)  # 1 inside, 0 outside
        return d.astype(np.float32)

    def gradient(self, x):
        g = np.asarray(x, float) - self.center
        g /= np.linalg.norm(g, axis=1, keepdims=True)
        return (-g if self.kind == "occupancy" else g).astype(np.float32)

    def closest_point(self, x):
        g = np.asarray(x, float) - self.center
        return self.center + self.r * g / np.linalg.norm(g, axis=1, keepdims=True)

    def save(self, path):
        raise NotImplementedError


def radii(mesh, center):
    return np.linalg.norm(mesh.vertices - np.asarray(center), axis=1)


def test_sphere_grid_vertices_on_sphere_closed_outward():
    c, r = (0.03, -0.02, 0.01), 0.6
    field = sphere_grid(r=r, center=c)
    mesh = extract_mesh(field)
    assert isinstance(mesh, TriangleMesh)
    check_mesh(mesh, watertight=True)
    assert np.abs(radii(mesh, c) - r).max() < 1e-3 * r
    assert euler_characteristic(mesh) == 2
    # Outward: positive enclosed volume close to the ball's, normals along the radius.
    vol = signed_volume(mesh)
    assert vol > 0
    assert abs(vol - 4 / 3 * np.pi * r**3) < 0.01 * 4 / 3 * np.pi * r**3
    radial = (mesh.vertices - c) / radii(mesh, c)[:, None]
    assert mesh.vertex_normals.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(mesh.vertex_normals, axis=1), 1.0, atol=1e-5)
    assert np.einsum("ij,ij->i", mesh.vertex_normals, radial).min() > 0.98
    # Face winding agrees with the normals face by face, not only on the whole.
    v, f = mesh.vertices, mesh.faces
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    centroid_dir = v[f].mean(axis=1) - c
    assert (np.einsum("ij,ij->i", fn, centroid_dir) > 0).all()


def test_vertices_in_input_units_follow_origin():
    # The same sphere on a grid shifted far away: the mesh moves with it (origin honoured).
    shift = np.array([1000.0, -250.0, 40.0])
    field = sphere_grid()
    moved = SignedDistanceGrid(field.values, field.origin + shift, field.voxel_size)
    a, b = extract_mesh(field), extract_mesh(moved)
    np.testing.assert_allclose(b.vertices - shift, a.vertices, atol=1e-9)
    np.testing.assert_array_equal(a.faces, b.faces)


def test_nodes_exactly_on_the_level_give_no_degenerate_faces():
    # Integer radius on a unit grid centred on a node: six nodes are exactly on the surface.
    n, r = 25, 10.0
    ax = np.arange(n, dtype=float)
    p = np.stack(np.meshgrid(ax, ax, ax, indexing="ij"), -1)
    d = np.linalg.norm(p - 12.0, axis=-1) - r
    assert (d == 0).sum() >= 6
    grid = SignedDistanceGrid(d.astype(np.float32), (0, 0, 0), 1.0)
    before = grid.values.copy()
    mesh = extract_mesh(grid)
    check_mesh(mesh, watertight=True)
    assert euler_characteristic(mesh) == 2
    np.testing.assert_array_equal(grid.values, before)  # the field's own array is never written


def test_torus_has_genus_one():
    R, r = 0.55, 0.2
    origin, h, p = grid_nodes(-1.0, 1.0, 72)
    q = np.sqrt(p[..., 0] ** 2 + p[..., 1] ** 2) - R
    d = np.sqrt(q**2 + p[..., 2] ** 2) - r
    mesh = extract_mesh(SignedDistanceGrid(d.astype(np.float32), origin, h))
    check_mesh(mesh, watertight=True)
    assert euler_characteristic(mesh) == 0
    assert len(np.unique(face_components(mesh.faces, mesh.n_vertices))) == 1
    vol = 2 * np.pi**2 * R * r**2
    assert signed_volume(mesh) == pytest.approx(vol, rel=0.02)


def test_plane_gives_open_sheet_with_box_cross_section_area():
    # f = z - 0.3 on the box [-1, 1] x [-0.5, 0.5] x [-1, 1] (grid 41 x 21 x 41).
    h = 0.05
    x = -1 + np.arange(41) * h
    y = -0.5 + np.arange(21) * h
    X, Y, Z = np.meshgrid(x, y, x, indexing="ij")
    d = (Z - 0.3).astype(np.float32)
    mesh = extract_mesh(SignedDistanceGrid(d, (-1, -0.5, -1), h))
    check_mesh(mesh)
    assert boundary_edge_count(mesh) > 0
    assert surface_area(mesh) == pytest.approx(2.0 * 1.0, rel=0.01)
    # z = 0.3 is a node plane: the level nudge moves it by at most 1e-3 voxel.
    np.testing.assert_allclose(mesh.vertices[:, 2], 0.3, atol=1e-3 * h + 1e-7)
    np.testing.assert_allclose(mesh.vertex_normals, np.tile([0, 0, 1], (mesh.n_vertices, 1)), atol=1e-6)
    v, f = mesh.vertices, mesh.faces
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    assert (fn[:, 2] > 0).all()  # every face faces +z, where the field grows


def test_mask_on_and_off_give_the_same_mesh():
    field = sphere_grid(n=48)
    kw = dict(outward_up=True, nudge=1e-3 * field.voxel_size)
    a = TriangleMesh(*_marching_cubes(field.values, field.origin, field.voxel_size, 0.0, use_mask=True, **kw)[:2])
    b = TriangleMesh(*_marching_cubes(field.values, field.origin, field.voxel_size, 0.0, use_mask=False, **kw)[:2])
    assert a.n_faces > 1000
    assert same_mesh(a, b)
    # The mask is small: the point of it.
    assert crossing_mask(field.values, 0.0).mean() < 0.2


def test_crossing_mask_marks_bracketing_cells_and_their_neighbours():
    v = np.ones((6, 6, 6), np.float32)
    v[3, 3, 3] = -1.0  # the level 0 is crossed in the 8 cells around node (3, 3, 3)
    m = crossing_mask(v, 0.0)
    cells = np.zeros_like(m)
    cells[2:4, 2:4, 2:4] = True
    assert m[cells].all()
    assert m[1:5, 1:5, 1:5].all()  # dilated by one cell
    assert m.sum() == 4**3


def test_resampled_analytic_field_is_within_half_a_voxel_and_evaluates_near_surface_only(monkeypatch):
    field = AnalyticSphere()
    R = 128
    mesh = extract_mesh(field, resolution=R)
    check_mesh(mesh, watertight=True)
    h = 2.0 / (R - 1)
    assert np.abs(radii(mesh, field.center) - field.r).max() < 0.5 * h
    assert signed_volume(mesh) > 0
    # The coarse pass skips blocks far from the surface.
    assert field.evaluated < 0.6 * R**3
    # ... and skipping them changes nothing: evaluating every block gives the same mesh.
    from recon.meshing import marching_cubes as mesh_module

    monkeypatch.setattr(mesh_module, "TUNABLES", mesh_module.MeshTunables(surface_band=1e9))
    dense_field = AnalyticSphere()
    dense = extract_mesh(dense_field, resolution=R)
    assert dense_field.evaluated >= R**3
    assert same_mesh(mesh, dense)
    # Normals come from the analytic gradient: exactly radial.
    radial = (mesh.vertices - field.center) / radii(mesh, field.center)[:, None]
    np.testing.assert_allclose(mesh.vertex_normals, radial, atol=1e-5)


def test_resampling_a_grid_field_and_meshing_it_directly_agree():
    field = sphere_grid(n=40)
    direct = extract_mesh(field)
    resampled = extract_mesh(field, resolution=40)  # same nodes, so the same mesh
    assert same_mesh(direct, resampled, decimals=5)


def test_occupancy_field_is_oriented_outward():
    field = AnalyticSphere(kind="occupancy", level=0.5)
    mesh = extract_mesh(field, resolution=40)
    check_mesh(mesh, watertight=True)
    assert signed_volume(mesh) > 0
    radial = (mesh.vertices - field.center) / radii(mesh, field.center)[:, None]
    assert np.einsum("ij,ij->i", mesh.vertex_normals, radial).min() > 0.99
    assert np.abs(radii(mesh, field.center) - field.r).max() < 0.5 * 2.0 / 39


def test_min_component_fraction_drops_a_small_second_sphere():
    origin, h, p = grid_nodes(-1.0, 1.0, 64)
    big = np.linalg.norm(p - [-0.3, 0, 0], axis=-1) - 0.45
    small = np.linalg.norm(p - [0.65, 0, 0], axis=-1) - 0.15
    field = SignedDistanceGrid(np.minimum(big, small).astype(np.float32), origin, h)
    both = extract_mesh(field)
    assert len(np.unique(face_components(both.faces, both.n_vertices))) == 2
    kept = extract_mesh(field, min_component_fraction=0.5)
    check_mesh(kept, watertight=True)
    assert len(np.unique(face_components(kept.faces, kept.n_vertices))) == 1
    np.testing.assert_allclose(radii(kept, [-0.3, 0, 0]), 0.45, atol=1e-3)
    assert kept.n_faces < both.n_faces


def test_fit_drops_small_pieces_of_signed_fields_only():
    from types import SimpleNamespace

    from recon.meshing.marching_cubes import FIT_MIN_COMPONENT_FRACTION, fit_min_component_fraction

    origin, h, p = grid_nodes(-1.0, 1.0, 16)
    signed = SignedDistanceGrid((np.linalg.norm(p, axis=-1) - 0.5).astype(np.float32), origin, h)
    assert fit_min_component_fraction(signed) == FIT_MIN_COMPONENT_FRACTION > 0
    # a closest-point field's pieces are parts of an open sheet: all kept
    assert fit_min_component_fraction(SimpleNamespace(kind="unsigned")) == 0.0


def test_level_override_meshes_the_offset_surface():
    c, r = (0.03, -0.02, 0.01), 0.5
    field = sphere_grid(r=r, center=c)
    mesh = extract_mesh(field, level=0.1)
    check_mesh(mesh, watertight=True)
    np.testing.assert_allclose(radii(mesh, c), r + 0.1, atol=1e-3)


def test_bounds_crop_the_grid():
    field = sphere_grid(r=0.6, center=(0, 0, 0))
    box = np.array([[-1, -1, 0.0], [1, 1, 1]])
    mesh = extract_mesh(field, bounds=box)
    check_mesh(mesh)
    assert mesh.vertices[:, 2].min() >= -1e-9
    assert boundary_edge_count(mesh) > 0  # a hemisphere, open at z = 0


def test_empty_field_raises():
    field = sphere_grid()
    with pytest.raises(InputError, match=r"no surface at level 5"):
        extract_mesh(field, level=5.0)
    far = SignedDistanceGrid(np.ones((8, 8, 8), np.float32), (0, 0, 0), 1.0)
    with pytest.raises(InputError, match=r"the field has no surface at level 0"):
        extract_mesh(far)
    with pytest.raises(InputError, match=r"no surface at level 0"):
        extract_mesh(AnalyticSphere(center=(5, 5, 5)), resolution=16)


def test_unsigned_field_needs_a_positive_level():
    field = sphere_grid(kind="unsigned")
    with pytest.raises(InputError, match="closest-surface-point mesher"):
        extract_mesh(field)
    with pytest.raises(InputError, match="closest-surface-point mesher"):
        extract_mesh(field, level=0.0)
    shell = extract_mesh(field, level=0.05)  # the two offset sheets around the sphere
    check_mesh(shell, watertight=True)
    assert len(np.unique(face_components(shell.faces, shell.n_vertices))) == 2


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(resolution=2), "resolution must be at least 4"),
        (dict(resolution=32.5), "resolution must be an integer"),
        (dict(min_component_fraction=1.5), r"min_component_fraction must be in \[0, 1\]"),
        (dict(level=float("nan")), "level must be finite"),
        (dict(bounds=[[0, 0, 0]]), r"bounds must be \(2, 3\)"),
        (dict(bounds=[[0, 0, 0], [1, 0, 1]]), "max > min"),
        (dict(bounds=[[5, 5, 5], [6, 6, 6]]), "fewer than 2 grid nodes"),
    ],
)
def test_bad_options_are_named(kwargs, message):
    with pytest.raises(InputError, match=message):
        extract_mesh(sphere_grid(n=16), **kwargs)


def test_non_finite_grid_is_refused():
    field = sphere_grid(n=16)
    field.values[3, 3, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        extract_mesh(field)


def test_lazy_export():
    import recon

    assert recon.extract_mesh is extract_mesh


def test_compiled_crossing_mask_matches_numpy():
    from recon.kernels.crossing_cpu import crossing_mask_cpu

    rng = np.random.default_rng(0)
    field = sphere_grid(n=23)
    v = field.values.copy()
    v[5, 6, 7] = 0.0  # one node exactly on the level
    v[0, 0, 0] = -1.0  # a crossing at the grid's corner (dilation at the border)
    for values in (v, rng.normal(size=(9, 11, 13)).astype(np.float32)):
        mask = np.empty(values.shape, bool)
        n_near = crossing_mask_cpu(values, 0.0, 1e-3, mask, np.empty(values.shape, bool))
        np.testing.assert_array_equal(mask, crossing_mask(values, 0.0))
        assert n_near == int(np.count_nonzero(np.abs(values) < 1e-3))
    assert crossing_mask_cpu(v, 0.0, 1e-3, mask := np.empty(v.shape, bool), np.empty(v.shape, bool)) >= 1


def test_large_grid_uses_the_compiled_mask_and_gives_the_same_mesh(monkeypatch):
    from recon.meshing import marching_cubes as mesh_module

    field = sphere_grid(n=40)
    numpy_mesh = extract_mesh(field)
    monkeypatch.setattr(mesh_module, "TUNABLES", mesh_module.MeshTunables(compiled_mask_min_nodes=1))
    compiled_mesh = extract_mesh(field)
    np.testing.assert_array_equal(numpy_mesh.vertices, compiled_mesh.vertices)
    np.testing.assert_array_equal(numpy_mesh.faces, compiled_mesh.faces)
