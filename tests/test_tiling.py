"""Tiled fitting: the grid, streaming ingestion, seam-exact stitching, and the tiled job on Ray."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

from recon.cloud import Cloud
from recon.errors import InputError
from recon.tiling.stitch import stitch
from recon.tiling.tilemesh import mesh_tile
from recon.tiling.tiles import make_grid

SIDE = 10.0
TILE = 5.0
H = 0.25


def plane(xy):
    return 0.1 * xy[:, 0] + 0.2 * xy[:, 1]


def curved(xy):
    return 0.1 * xy[:, 0] + 0.2 * xy[:, 1] + 0.3 * np.sin(xy[:, 0] / 2.0) * np.cos(xy[:, 1] / 3.0)


def curved_grad(xy):
    gx = 0.1 + 0.15 * np.cos(xy[:, 0] / 2.0) * np.cos(xy[:, 1] / 3.0)
    gy = 0.2 - 0.1 * np.sin(xy[:, 0] / 2.0) * np.sin(xy[:, 1] / 3.0)
    return np.column_stack([gx, gy])


class HeightSheet:
    """Exact unsigned closest-point field of the sheet z = f(x, y) over a square,
    ``offset`` added to its frame (Gauss-Newton projection onto the graph)."""

    kind = "unsigned"

    def __init__(self, f, grad, offset=(0.0, 0.0, 0.0)):
        self.f, self.grad, self.offset = f, grad, np.asarray(offset, np.float64)
        self.params = {}

    def closest_point(self, x):
        p = np.asarray(x, np.float64) - self.offset
        uv = p[:, :2].copy()
        for _ in range(30):
            g = self.grad(uv)
            r = np.column_stack([uv, self.f(uv)]) - p
            jt = np.stack([np.column_stack([np.ones(len(uv)), np.zeros(len(uv)), g[:, 0]]),
                           np.column_stack([np.zeros(len(uv)), np.ones(len(uv)), g[:, 1]])], axis=1)
            jtj = jt @ jt.transpose(0, 2, 1)
            step = np.linalg.solve(jtj, (jt @ r[:, :, None]))[:, :, 0]
            uv -= step
        return np.column_stack([uv, self.f(uv)]) + self.offset

    def supported(self, x):
        p = np.asarray(x, np.float64)[:, :2] - self.offset[:2]
        return np.all((p >= 0) & (p <= SIDE), axis=1)


def plane_grad(xy):
    return np.tile([0.1, 0.2], (len(xy), 1))


def tiled_sheet_mesh(f, grad, offset=(0.0, 0.0, 0.0)):
    off = np.asarray(offset, np.float64)
    bounds = np.array([[0, 0, -1.0], [SIDE, SIDE, 4.0]]) + off
    grid = make_grid(bounds, TILE)
    fields = {t: HeightSheet(f, grad, off) for t in grid.tiles()}
    meshes = [mesh_tile(grid, fields, t, h=H, z_origin=bounds[0, 2], z_range=bounds[:, 2]) for t in grid.tiles()]
    return grid, stitch(meshes, h=H, grid=grid)


def edge_counts(faces):
    e = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    return np.unique(e, axis=0, return_counts=True)


def layers_at(mesh, xy):
    """How many faces of ``mesh`` cover each (x, y) seen from above."""
    tri = mesh.vertices[mesh.faces][:, :, :2]
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    def cross(u, v):
        return u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]

    out = []
    d = cross(b - a, c - a)
    for p in xy:
        w1 = cross(p - a, c - a) / d
        w2 = cross(b - a, p - a) / d
        out.append(int(np.sum((w1 >= -1e-9) & (w2 >= -1e-9) & (w1 + w2 <= 1 + 1e-9))))
    return np.array(out)


@pytest.mark.parametrize("f,grad", [(plane, plane_grad), (curved, curved_grad)], ids=["plane", "curved"])
def test_stitched_sheet_is_one_seamless_layer(f, grad):
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    from mesh_checks import check_mesh

    grid, mesh = tiled_sheet_mesh(f, grad)
    assert grid.shape == (2, 2)
    check_mesh(mesh)
    v, faces = mesh.vertices, mesh.faces
    # every vertex on the true sheet
    assert np.abs(v[:, 2] - f(v[:, :2])).max() < 1e-6
    # one connected piece
    e, counts = edge_counts(faces)
    n = len(v)
    _, label = connected_components(coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n, n)), directed=False)
    assert label.max() == 0
    # boundary edges only where the data ends: the outer border of the square
    assert counts.max() == 2
    bv = v[e[counts == 1].ravel()]
    assert len(bv) > 0
    assert np.all(np.min(np.abs(np.column_stack([bv[:, :2], SIDE - bv[:, :2]])), axis=1) < 1.5 * H)
    # no duplicate vertices: nothing closer than the weld tolerance
    assert len(cKDTree(v).query_pairs(1e-3 * H)) == 0
    # one layer over every point of the truth inside the border, the seams included
    rng = np.random.default_rng(0)
    across_seams = np.column_stack([np.full(200, TILE) + rng.uniform(-1, 1, 200), rng.uniform(1, 9, 200)])
    probes = np.concatenate([across_seams, across_seams[:, ::-1], rng.uniform(1, 9, (100, 2))])
    assert np.all(layers_at(mesh, probes) == 1)


def test_georeferenced_offsets_give_the_same_relative_mesh():
    off = np.array([1e6, 2e6, 1e6])
    _, near = tiled_sheet_mesh(curved, curved_grad)
    _, far = tiled_sheet_mesh(curved, curved_grad, offset=off)
    assert far.vertices.dtype == np.float64
    assert far.n_faces == near.n_faces and far.n_vertices == near.n_vertices
    a = near.vertices[np.lexsort(np.round(near.vertices, 4).T)]
    b = (far.vertices - off)[np.lexsort(np.round(far.vertices - off, 4).T)]
    assert np.abs(a - b).max() < 1e-6


def test_streamed_stitch_writes_the_same_mesh_and_winds_tiles_alike(tmp_path):
    from recon.io import read_mesh
    from recon.tiling.stitch import stitch_to_ply
    from recon.triangles import TriangleMesh

    off = np.array([1e6, 2e6, 1e6])
    bounds = np.array([[0, 0, -1.0], [SIDE, SIDE, 4.0]]) + off
    grid = make_grid(bounds, TILE)
    fields = {t: HeightSheet(curved, curved_grad, off) for t in grid.tiles()}
    meshes = [mesh_tile(grid, fields, t, h=H, z_origin=bounds[0, 2], z_range=bounds[:, 2]) for t in grid.tiles()]
    meshes[1] = TriangleMesh(meshes[1].vertices, meshes[1].faces[:, ::-1])  # a tile wound the other way
    # a per-vertex attribute that a welded vertex takes the least of
    meshes = [TriangleMesh(m.vertices, m.faces, vertex_attributes={"distance_to_data": m.vertices[:, 0] - off[0]})
              for m in meshes]
    paths = []
    for k, m in enumerate(meshes):
        paths.append(tmp_path / f"m{k}.npz")
        np.savez(paths[-1], vertices=m.vertices, faces=m.faces, **m.vertex_attributes)
    counts = stitch_to_ply(paths, tmp_path / "out.ply", h=H, grid=grid)
    held = stitch(meshes, h=H, grid=grid)
    streamed = read_mesh(tmp_path / "out.ply")
    assert counts == (held.n_vertices, held.n_faces) == (streamed.n_vertices, streamed.n_faces)
    assert streamed.vertices.dtype == np.float64
    assert np.array_equal(np.sort(held.vertices, axis=0), np.sort(streamed.vertices, axis=0))
    order_h, order_s = np.lexsort(held.vertices.T), np.lexsort(streamed.vertices.T)
    d_held = held.vertex_attributes["distance_to_data"][order_h]
    assert np.array_equal(d_held, streamed.vertex_attributes["distance_to_data"][order_s])
    # every vertex kept its own value (welded ones the least of theirs, at the same place)
    x = (held.vertices[order_h, 0] - off[0]).astype(np.float32)
    assert np.allclose(d_held, x, atol=1e-3 * H)
    e, c = edge_counts(streamed.faces)
    f = streamed.faces
    directed = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    assert len(np.unique(directed, axis=0)) == len(directed)  # every shared edge runs both ways
    normals = np.cross(streamed.vertices[f[:, 1]] - streamed.vertices[f[:, 0]],
                       streamed.vertices[f[:, 2]] - streamed.vertices[f[:, 0]])
    assert abs(np.mean(normals[:, 2] > 0) - 0.5) == 0.5  # one side up everywhere


def test_grid_assigns_each_point_one_core_and_every_padded_box_it_lies_in():
    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 10, (2000, 2))
    grid = make_grid(np.array([[0, 0], [10, 10]]), 3.0, overlap=0.5)
    seen = {}
    for tile, rows in grid.assign(xy):
        box = grid.padded(tile)
        inside = np.all((xy >= box[0]) & (xy < box[1]), axis=1)
        assert np.array_equal(np.sort(rows), np.flatnonzero(inside))
        seen[tile] = rows
    owner = grid.owner(xy)
    for t in grid.tiles():
        core = grid.core(t)
        in_core = np.all((xy >= core[0]) & (xy < core[1]), axis=1)
        assert np.array_equal(in_core, np.all(owner == t, axis=1))
    with pytest.raises(InputError, match="overlap"):
        make_grid(np.array([[0, 0], [10, 10]]), 3.0, overlap=2.0)
    with pytest.raises(InputError, match="tile size"):
        make_grid(np.array([[0, 0], [10, 10]]), -1.0)


def terrain_cloud(n=6000, seed=0, offset=(500000.0, 4000000.0, 100.0)):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, SIDE, (n, 2))
    return Cloud(np.column_stack([xy, curved(xy)]) + np.asarray(offset))


@pytest.mark.parametrize("suffix", [".ply", ".las"])
def test_ingest_streams_the_points_into_padded_tiles(tmp_path, suffix):
    from recon.tiling.ingest import ingest

    cloud = terrain_cloud(3000)
    path = tmp_path / f"scan{suffix}"
    if suffix == ".las":
        import laspy

        header = laspy.LasHeader(point_format=3, version="1.2")
        header.offsets = cloud.points.min(axis=0)
        header.scales = np.array([1e-4, 1e-4, 1e-4])
        las = laspy.LasData(header)
        las.x, las.y, las.z = cloud.points.T
        las.write(str(path))
        pts = np.column_stack([las.x, las.y, las.z]).astype(np.float64)
    else:
        from recon.io import write_cloud

        write_cloud(cloud, path)
        pts = cloud.points
    manifest = ingest(path, tmp_path / "work", tile_size=TILE, chunk_points=700)
    from recon.tiling.tiles import TileGrid
    import json

    grid = TileGrid.from_json(json.dumps(manifest["grid"]))
    assert manifest["points"] == len(pts)
    for t in grid.tiles():
        got = np.load(tmp_path / "work" / "tiles" / f"{TileGrid.name(t)}.npy")
        box = grid.padded(t)
        want = pts[np.all((pts[:, :2] >= box[0]) & (pts[:, :2] < box[1]), axis=1)]
        assert got.dtype == np.float64
        np.testing.assert_allclose(np.sort(got, axis=0), np.sort(want, axis=0), rtol=0, atol=1e-6)


FAST = {"iterations": 20, "batch_size": 2048}


@pytest.mark.parametrize("method, mesh_task", [("csp", "mesh_tile_task"), ("auto", "height_field_tile_task")])
def test_tiled_fit_resumes_and_gridpull_is_refused(tmp_path, method, mesh_task):
    from recon.tiling.executor import LocalExecutor
    from recon.tiling.run import reconstruct_tiled

    class Counting(LocalExecutor):
        def __init__(self):
            super().__init__()
            self.jobs = []

        def run(self, fn, jobs, *, on_done=None):
            self.jobs += [(fn.__name__, k) for k, _ in jobs]
            return super().run(fn, jobs, on_done=on_done)

    from recon.io import write_cloud

    src = write_cloud(terrain_cloud(), tmp_path / "terrain.ply")
    with pytest.raises(InputError, match="open-surface"):
        reconstruct_tiled(src, tmp_path / "out.ply", tile_size=TILE, method="gridpull", workers=0)
    first = Counting()
    a = reconstruct_tiled(src, tmp_path / "out.ply", tile_size=TILE, method=method, options=FAST, executor=first)
    assert len(first.jobs) == 8 and a.n_faces > 1000
    mesh_a = a.load_mesh()
    assert np.abs(mesh_a.vertices.min(axis=0)[:2] - [500000.0, 4000000.0]).max() < 1.0
    # distance_to_data is each tile's nearest point: exact up to the overlap, never less than the truth
    from scipy.spatial import cKDTree

    from recon.io import read_cloud

    pts = read_cloud(src).points
    want, _ = cKDTree(pts - pts.min(axis=0)).query(mesh_a.vertices - pts.min(axis=0))
    got = mesh_a.vertex_attributes["distance_to_data"]
    close = want < a.grid.overlap
    assert close.mean() > 0.99 and np.allclose(got[close], want[close], atol=1e-5)
    assert (got >= want - 1e-5).all()
    again = Counting()
    b = reconstruct_tiled(src, tmp_path / "out.ply", tile_size=TILE, method=method, options=FAST, executor=again,
                          resume=True)
    assert again.jobs == []
    assert np.array_equal(mesh_a.faces, b.load_mesh().faces)
    # a lost mesh is made again, and only that one
    os.unlink(a.workdir / "meshes" / "tile_0001_0001.npz")
    third = Counting()
    reconstruct_tiled(src, tmp_path / "out.ply", tile_size=TILE, method=method, options=FAST, executor=third,
                      resume=True)
    assert third.jobs == [(mesh_task, "tile_0001_0001")]


def test_cli_tile_option_writes_one_float64_mesh(tmp_path):
    from recon.cli import main as cli_main
    from recon.io import read_mesh, write_cloud

    src = write_cloud(terrain_cloud(), tmp_path / "terrain.ply")
    out = tmp_path / "terrain.mesh.ply"
    code = cli_main.run(["fit", str(src), "--tile", "5", "--workers", "0", "--iterations", "20", "-q", "-o", str(out)])
    assert code == 0
    mesh = read_mesh(out)
    assert mesh.vertices.min(axis=0)[0] > 499999.0
    assert cli_main.run(["fit", str(src), "--tile", "5", "--workers", "0", "--out-dir", str(tmp_path)]) == 2


def _ray_mesh(src, tmp_path, name):
    from recon.tiling.run import reconstruct_tiled

    # auto: a terrain, meshed as a height field through its points
    return reconstruct_tiled(src, tmp_path / f"{name}.ply", tile_size=TILE).load_mesh()


def test_ray_runs_tiles_reports_failures_and_a_two_node_cluster_gives_the_local_mesh(tmp_path):
    ray = pytest.importorskip("ray")

    from recon.io import write_cloud
    from recon.tiling.executor import RayExecutor

    src = write_cloud(terrain_cloud(2500), tmp_path / "terrain.ply")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        # a task that raises (a missing file) is retried, then reported; the others keep their results
        jobs = [("a", (str(src),)), ("b", (str(tmp_path / "missing.ply"),)), ("c", (str(src),))]
        out = RayExecutor(retries=1).run(os.path.getsize, jobs)
        assert out.results == {"a": src.stat().st_size, "c": src.stat().st_size}
        assert list(out.failures) == ["b"] and "missing.ply" in out.failures["b"]
        local = _ray_mesh(src, tmp_path, "local")
    finally:
        ray.shutdown()

    # two nodes on this machine, each a `ray start --block` process of this test's own,
    # stopped by ending those processes (never `ray stop`, which ends every Ray here)
    port = 20000 + os.getpid() % 5000
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths have a length limit
    cmd = [sys.executable, "-m", "ray.scripts.scripts", "start", "--block", "--num-cpus=1",
           "--node-ip-address=127.0.0.1", "--disable-usage-stats"]
    nodes = []
    try:
        nodes.append(subprocess.Popen(cmd + ["--head", f"--port={port}", "--include-dashboard=false",
                                             f"--temp-dir={temp}"], env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
        time.sleep(2)
        nodes.append(subprocess.Popen(cmd + [f"--address=127.0.0.1:{port}", f"--node-manager-port={port + 1}",
                                             f"--object-manager-port={port + 2}"], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.time() + 60
        while True:
            try:
                ray.init(address=f"127.0.0.1:{port}", log_to_driver=False)
                break
            except Exception:
                if time.time() > deadline:
                    raise
                time.sleep(1)
        while len([n for n in ray.nodes() if n["Alive"]]) < 2 and time.time() < deadline:
            time.sleep(0.5)
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2
        cluster = _ray_mesh(src, tmp_path, "cluster")
    finally:
        ray.shutdown()
        for proc in reversed(nodes):
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(temp, ignore_errors=True)
    assert np.array_equal(local.faces, cluster.faces)
    assert np.array_equal(local.vertices, cluster.vertices)


def test_a_tile_without_a_surface_is_left_empty_not_failed(tmp_path):
    from recon.tiling.run import fit_tile_task

    np.save(tmp_path / "t.npy", np.tile([[5.0e5, 4.0e6, 100.0]], (60, 1)))
    out = fit_tile_task(str(tmp_path / "t.npy"), str(tmp_path / "t.npz"), "csp", {"surface": "open"}, 0, 1)
    assert out["empty"] and "identical" in out["empty"]
    assert not (tmp_path / "t.npz").exists()


def _faces_by_position(mesh, reference):
    """``mesh``'s faces as sorted triples of ``reference``'s vertex indices (vertices matched
    by position within 1e-9 of the scene's size); -1 where a vertex has no match."""
    from scipy.spatial import cKDTree

    corner = reference.vertices.min(axis=0)
    d, idx = cKDTree(reference.vertices - corner).query(mesh.vertices - corner)
    idx[d > 1e-9 * SIDE] = -1
    return {tuple(t) for t in np.sort(idx[mesh.faces], axis=1).tolist()}


@pytest.mark.parametrize("gridded", [False, True])
def test_height_field_tiles_give_the_untiled_mesh_face_for_face(tmp_path, gridded):
    """A terrain meshed in 2 x 2 tiles is the one-tile mesh exactly: the same triangles
    through the same denoised points, no crack, no double layer at the seams. Gridded
    points (four on every circle, two ways to split each square) are split alike too."""
    from recon.io import write_cloud
    from recon.tiling.run import reconstruct_tiled

    if gridded:
        u = np.arange(0.05, SIDE, 0.125)
        xy = np.stack(np.meshgrid(u, u, indexing="ij"), -1).reshape(-1, 2)
        cloud = Cloud(np.column_stack([xy, curved(xy)]) + [500000.0, 4000000.0, 100.0])
    else:
        cloud = terrain_cloud(6000)
    src = write_cloud(cloud, tmp_path / "terrain.ply")
    tiled = reconstruct_tiled(src, tmp_path / "tiled.ply", tile_size=TILE, overlap=2.0, workers=0)
    whole = reconstruct_tiled(src, tmp_path / "whole.ply", tile_size=2 * SIDE, overlap=2.0, workers=0)
    assert tiled.grid.shape == (2, 2) and whole.grid.shape == (1, 1)
    assert "height field" in tiled.counts["auto"] and "height field" in whole.counts["auto"]
    a, b = tiled.load_mesh(), whole.load_mesh()
    assert a.n_vertices == b.n_vertices and a.n_faces == b.n_faces > 1.5 * len(cloud)
    assert _faces_by_position(a, b) == _faces_by_position(b, b)
    # one layer over the inside of the square, seams included; every face faces up
    probe = np.random.default_rng(1).uniform(0.5, SIDE - 0.5, (300, 2)) + [500000.0, 4000000.0]
    assert (layers_at(a, probe) == 1).all()
    v = a.vertices[a.faces]
    assert (np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])[:, 2] > 0).all()
    # interior edges are shared by two faces: only the data's own border is open
    edges, count = edge_counts(a.faces)
    assert count.max() == 2
    border = edges[count == 1]
    mid = 0.5 * (a.vertices[border[:, 0]] + a.vertices[border[:, 1]])[:, :2] - [500000.0, 4000000.0]
    assert (np.minimum(mid, SIDE - mid).min(axis=1) < 0.6).all()


def test_scene_mode_meshes_height_fields_and_fits_other_scenes():
    from recon.tiling.run import scene_mode

    up = {"points": 1000, "spacing": 0.1, "surface_spacing": 0.2, "kind": "clean open one-sided scan", "direction": [0.0, 0.1, -0.99]}
    side = {"points": 1000, "spacing": 0.1, "surface_spacing": 0.2, "kind": "clean open one-sided scan", "direction": [1.0, 0.0, 0.0]}
    closed = {"points": 1000, "spacing": 0.1, "surface_spacing": 0.2, "kind": "closed object", "direction": None}
    few = {"points": 60, "spacing": 0.5, "surface_spacing": 1.0, "kind": "sparse cloud", "direction": None}
    mode = scene_mode({f"t{i}": up for i in range(9)} | {"corner": few})
    assert mode["mode"] == "height_field" and mode["spacing"] == 0.1 and mode["surface_spacing"] == 0.2
    assert scene_mode({"a": up, "b": side})["mode"] == "fit"
    mode = scene_mode({"a": up, "b": closed})
    assert mode["mode"] == "fit" and "closed object" in mode["reason"] and "csp" in mode["reason"]


def test_a_tile_of_a_closed_object_is_not_a_height_field(tmp_path):
    from recon.tiling.run import measure_tile_task

    p = np.random.default_rng(0).normal(size=(4000, 3))
    np.save(tmp_path / "ball.npy", p / np.linalg.norm(p, axis=1, keepdims=True) + [5.0e5, 4.0e6, 100.0])
    out = measure_tile_task(str(tmp_path / "ball.npy"), 0, 1)
    assert out["direction"] is None and "closed" in out["kind"] and out["points"] == 4000
    np.save(tmp_path / "sheet.npy", terrain_cloud(3000).points)
    out = measure_tile_task(str(tmp_path / "sheet.npy"), 0, 1)
    assert abs(out["direction"][2]) > 0.9 and 0 < out["spacing"] < 0.2
