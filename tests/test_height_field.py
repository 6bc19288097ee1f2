"""recon.meshing.height_field: one-sided clouds meshed through their denoised points, on
surfaces with exact answers (a plane, a paraboloid cap), its refusals, and auto's use of it."""

from __future__ import annotations

import numpy as np
import pytest

from recon import InputError
from recon.meshing.cleanup import boundary_loops
from recon.meshing.height_field import mesh_height_field
from recon.triangles import face_edges
from test_measure import grid_plane, height_field


def edge_counts(faces):
    _, key = face_edges(faces)
    return np.unique(key, return_counts=True)[1]


def test_a_noisy_plane_comes_out_flat_with_one_border_and_no_holes():
    gen = np.random.default_rng(0)
    clean = grid_plane(60, 0.1) + [0.013, 0.021, 0.0]
    clean[:, :2] += gen.uniform(-0.02, 0.02, size=(len(clean), 2))  # no four points on one circle
    noisy = clean + [0.0, 0.0, 1.0] * gen.normal(0.0, 0.02, size=(len(clean), 1))  # noise 0.2 spacings
    mesh = mesh_height_field(noisy + [5e5, -3e5, 100.0], [0.0, 0.0, -2.0])
    z = mesh.vertices[:, 2] - 100.0
    assert np.sqrt(np.mean(z**2)) < 0.4 * 0.02  # plane fits of 12 neighbours average the noise down
    counts = edge_counts(mesh.faces)
    assert counts.max() == 2
    assert len(boundary_loops(mesh.faces)) == 1  # one border, no holes
    assert mesh.surface == "open" and mesh.n_vertices == len(noisy)
    # the area is the square's (5.9 wide, up to 0.04 more with the jitter), less a border strip of at most one spacing
    v = mesh.vertices[mesh.faces]
    area = 0.5 * np.linalg.norm(np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]), axis=1).sum()
    assert 5.7**2 < area < 1.01 * 5.94**2  # the residual noise tilts the faces by a few degrees


def test_faces_face_the_side_a_cap_bulges_towards_whatever_the_direction_sign():
    gen = np.random.default_rng(1)
    xy = gen.uniform(-1.0, 1.0, size=(6000, 2))
    cap = np.column_stack([xy, 1.0 - 0.5 * (xy**2).sum(axis=1)])  # bulges towards +z
    for sign in (1.0, -1.0):
        mesh = mesh_height_field(cap, [0.0, 0.0, sign])
        assert np.all(mesh.vertex_normals[:, 2] > 0)
        # a paraboloid sampled this densely: every vertex within a hundredth of the radius of it
        v = mesh.vertices
        assert np.abs(v[:, 2] - (1.0 - 0.5 * (v[:, :2] ** 2).sum(axis=1))).max() < 0.01


def test_a_gap_and_a_depth_jump_are_cut_not_bridged():
    terrain = height_field(20_000)
    gap = np.linalg.norm(terrain[:, :2], axis=1) < 0.3  # a hole in the data, 0.6 wide (about 40 spacings)
    step = terrain.copy()
    step[step[:, 0] > 0.5, 2] += 1.0  # a cliff one unit high across x = 0.5
    for cloud in (terrain[~gap], step):
        mesh = mesh_height_field(cloud, [0.0, 0.0, 1.0])
        centres = mesh.vertices[mesh.faces].mean(axis=1)
        if cloud is step:
            v = mesh.vertices[mesh.faces]
            assert np.ptp(v[:, :, 2], axis=1).max() < 0.5  # no curtain down the cliff
        else:
            assert not np.any(np.linalg.norm(centres[:, :2], axis=1) < 0.2)  # no lid over the hole


def test_bad_input_is_refused_with_one_message():
    points = height_field(100)
    with pytest.raises(InputError, match="at least 4 points"):
        mesh_height_field(points[:3], [0, 0, 1])
    with pytest.raises(InputError, match="finite"):
        mesh_height_field(np.where(np.arange(100)[:, None] == 3, np.inf, points), [0, 0, 1])
    with pytest.raises(InputError, match="non-zero"):
        mesh_height_field(points, [0, 0, 0])
    line = np.column_stack([np.linspace(0, 1, 50), np.zeros(50), np.linspace(0, 1, 50)])
    with pytest.raises(InputError, match="span no area"):
        mesh_height_field(line, [0, 0, 1])


def test_auto_meshes_a_one_sided_cloud_through_its_points_and_csp_can_be_told_to():
    pytest.importorskip("torch")
    from recon import Cloud, reconstruct

    cloud = Cloud(height_field(4000).astype(np.float32) * 10.0, source="terrain")
    result = reconstruct(cloud, seed=0, iterations=60)
    assert result.method == "csp" and result.choice["interpolate"] and result.mesh.surface == "open"
    assert any(d.name == "mesh" and d.value == "through the points (a height field)" for d in result.decisions)
    # the (denoised) points are vertices, then one Hermite midpoint per edge of the mesh
    # before subdividing (E edges and F faces became 2E + 3F and 4F)
    edges = np.unique(np.sort(np.concatenate([result.mesh.faces[:, [0, 1]], result.mesh.faces[:, [1, 2]],
                                              result.mesh.faces[:, [2, 0]]]), axis=1), axis=0)
    assert any(d.name == "subdivide" for d in result.decisions) and result.mesh.n_faces % 4 == 0
    samples = result.mesh.n_vertices - (len(edges) - 3 * result.mesh.n_faces // 4) // 2
    assert 0.95 * len(cloud) < samples <= len(cloud)
    assert result.field is not None and result.field.kind == "unsigned"
    named = reconstruct(cloud, method="csp", interpolate=True, seed=0, iterations=60)
    assert np.array_equal(named.mesh.faces, result.mesh.faces)
    # the mesh comes from the points alone: without fit_field no csp field is fitted
    fast = reconstruct(cloud, seed=0, fit_field=False)
    assert fast.field is None and fast.timings["fit_s"] == 0.0
    assert np.array_equal(fast.mesh.faces, result.mesh.faces) and np.array_equal(fast.mesh.vertices, result.mesh.vertices)
    assert any(d.name == "field" and d.value == "not fitted" for d in fast.decisions)
    assert fast.summary()["points_merged"] == 0
    grid = reconstruct(cloud, interpolate=False, seed=0, iterations=60)
    assert not any(d.value == "through the points (a height field)" for d in grid.decisions)


def test_an_open_cloud_over_the_point_limit_is_meshed_from_a_fitted_field(monkeypatch):
    pytest.importorskip("torch")
    import dataclasses

    from recon import Cloud, reconstruct
    from recon.meshing import through_points

    monkeypatch.setattr(through_points, "LIMITS", dataclasses.replace(through_points.LIMITS, max_points=1000))
    cloud = Cloud(height_field(4000).astype(np.float32) * 10.0, source="terrain")
    result = reconstruct(cloud, seed=0, iterations=60, fit_field=False)  # auto would skip the fit
    assert result.field is not None and result.mesh.n_faces > 0
    assert any(d.name == "mesh" and d.value == "grid" and "at most 1,000" in d.reason for d in result.decisions)
    with pytest.raises(InputError, match="cannot interpolate: a mesh through the points takes at most 1,000"):
        reconstruct(cloud, method="csp", interpolate=True, iterations=60)
