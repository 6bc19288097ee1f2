"""The closest-surface-point fitter (--method csp), its field, geometry and mesher.

Geometry and meshing are checked on analytic closest-point fields with exact answers
(sphere, cylinder, flat disc, dome); the network itself in tiny fits (few steps, small
tables) whose answers are known to within a tolerance.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mesh_checks import boundary_edge_count, check_mesh, signed_volume
from recon.cloud import Cloud
from recon.errors import InputError
from recon.fields.analytic import Hemisphere, OpenDisc, Sphere

torch = pytest.importorskip("torch", reason="the csp fitter needs torch (pip install 'recon[csp]')")

ROOT = Path(__file__).resolve().parents[1]


class UnsignedSphere:
    """Closest points of a sphere, seen as an unsigned field."""

    kind = "unsigned"
    level = 0.0
    params: dict = {}
    normalization = None

    def __init__(self, radius=0.5, center=(0.0, 0.0, 0.0)):
        self.s = Sphere(center=center, radius=radius)

    @property
    def bounds(self):
        return self.s.bounds

    def closest_point(self, x):
        return self.s.closest_point(x)


class Cylinder:
    """Unsigned closest points of an infinite cylinder around the z axis, radius r."""

    kind = "unsigned"
    level = 0.0
    params: dict = {}
    normalization = None

    def __init__(self, radius=0.4):
        self.r = radius

    @property
    def bounds(self):
        return np.array([[-0.6, -0.6, -0.6], [0.6, 0.6, 0.6]])

    def closest_point(self, x):
        x = np.asarray(x, np.float64)
        rho = np.hypot(x[:, 0], x[:, 1])
        s = self.r / np.where(rho > 0, rho, 1.0)
        return np.stack([x[:, 0] * s, x[:, 1] * s, x[:, 2]], axis=1)


def sphere_cloud(n=3000, radius=0.5, seed=0, noise=0.0):
    gen = np.random.default_rng(seed)
    d = gen.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return Cloud(radius * d + noise * gen.normal(size=(n, 3)), source="<sphere>")


def disc_cloud(n=3000, radius=0.5, seed=0):
    gen = np.random.default_rng(seed)
    r = radius * np.sqrt(gen.random(n))
    t = 2 * np.pi * gen.random(n)
    return Cloud(np.stack([r * np.cos(t), r * np.sin(t), np.zeros(n)], axis=1), source="<disc>")


TINY = dict(iterations=150, resolution=48, base_resolution=8, levels=4, table_log2=14, hidden=32,
            batch_size=2048, mesh_resolution=40, support_resolution=32)


# ----------------------------------------------------------------------------- geometry (exact)


def test_sphere_normals_point_outward_and_curvature_is_one_over_r():
    from recon.fields.closest_point_geometry import point_normals

    f = UnsignedSphere(radius=0.5)
    p = sphere_cloud(400, radius=0.5).points * 1.002  # slightly off the surface
    n, k = point_normals(f, p, curvature=True, step=0.01, surface="closed")
    truth = p / np.linalg.norm(p, axis=1, keepdims=True)
    assert np.degrees(np.arccos(np.clip((n * truth).sum(1), -1, 1))).max() < 0.5
    np.testing.assert_allclose(k, 2.0, rtol=0.01)


def test_cylinder_principal_curvatures():
    from recon.fields.closest_point_geometry import principal_curvatures, surface_normals

    f = Cylinder(radius=0.4)
    t = np.linspace(0, 2 * np.pi, 50, endpoint=False)
    p = np.stack([0.4 * np.cos(t), 0.4 * np.sin(t), np.linspace(-0.3, 0.3, 50)], axis=1)
    c, n = surface_normals(f, p, step=0.01)
    n *= np.sign((n * p).sum(1))[:, None]  # outward
    np.testing.assert_allclose(np.abs((n * p[:, :] * [1, 1, 0]).sum(1)) / 0.4, 1.0, atol=1e-3)
    k = principal_curvatures(f, c, n, step=0.01)
    np.testing.assert_allclose(k[:, 0], 1 / 0.4, rtol=0.01)
    np.testing.assert_allclose(k[:, 1], 0.0, atol=0.02)


def test_plane_normals_and_zero_curvature_and_closest_points():
    from recon.fields.closest_point_geometry import principal_curvatures, surface_normals

    f = OpenDisc(radius=0.5)
    gen = np.random.default_rng(1)
    p = np.c_[gen.uniform(-0.3, 0.3, (100, 2)), gen.uniform(-0.05, 0.05, 100)]
    c, n = surface_normals(f, p, step=0.01)
    np.testing.assert_allclose(c, np.c_[p[:, :2], np.zeros(100)], atol=1e-12)
    np.testing.assert_allclose(np.abs(n[:, 2]), 1.0, atol=1e-9)
    np.testing.assert_allclose(principal_curvatures(f, c, n, step=0.01), 0.0, atol=1e-6)


# ----------------------------------------------------------------------------- meshing (exact fields)


def test_closed_sphere_mesh_is_watertight_and_outward():
    from recon.meshing.unsigned import extract_unsigned_mesh

    m = extract_unsigned_mesh(UnsignedSphere(radius=0.5), resolution=40)
    assert m.surface == "closed"
    check_mesh(m, watertight=True)
    assert signed_volume(m) == pytest.approx(4 / 3 * np.pi * 0.125, rel=0.02)
    np.testing.assert_allclose(np.linalg.norm(m.vertices, axis=1), 0.5, atol=1e-9)


class WobblySphere(UnsignedSphere):
    """A sphere field whose closest points wander along the surface (by up to ``wobble``):
    directions of nodes very near the surface then disagree with their neighbours', as a
    fitted field's do, while every distance stays nearly exact."""

    params = {"surface_decided": "closed"}

    def __init__(self, radius=0.5, wobble=0.013):
        super().__init__(radius=radius)
        self.wobble = wobble

    def closest_point(self, x):
        x = np.asarray(x, np.float64)
        c = self.s.closest_point(x)
        n = c / np.linalg.norm(c, axis=1, keepdims=True)
        t = np.cross(n, [0.3, 0.5, 0.8])
        t /= np.linalg.norm(t, axis=1, keepdims=True)
        c = c + self.wobble * np.sin(97.0 * x[:, :1] + 61.0 * x[:, 1:2] - 83.0 * x[:, 2:]) * t
        return 0.5 * c / np.linalg.norm(c, axis=1, keepdims=True)


def test_closed_field_with_wandering_directions_still_meshes_watertight():
    from recon.meshing.unsigned import extract_unsigned_mesh

    # the sides come from the free space inside and outside, not from neighbouring
    # directions, so noisy directions at the surface cannot tear the mesh
    m = extract_unsigned_mesh(WobblySphere(), resolution=64)
    assert m.surface == "closed"
    check_mesh(m, watertight=True)
    assert signed_volume(m) == pytest.approx(4 / 3 * np.pi * 0.125, rel=0.02)
    np.testing.assert_allclose(np.linalg.norm(m.vertices, axis=1), 0.5, atol=1e-9)


def test_open_disc_keeps_its_boundary_and_gets_no_lid():
    from recon.meshing.marching_cubes import extract_mesh

    m = extract_mesh(OpenDisc(radius=0.5), resolution=48)  # dispatches to the closest-point mesher
    assert m.surface == "open"
    check_mesh(m)
    np.testing.assert_allclose(m.vertices[:, 2], 0.0, atol=1e-12)  # one sheet, no second layer
    rho = np.hypot(m.vertices[:, 0], m.vertices[:, 1])
    h = 1.25 / 47
    assert rho.max() <= 0.5 + 1e-9 and rho.max() > 0.5 - h
    area = 0.5 * np.linalg.norm(np.cross(m.vertices[m.faces[:, 1]] - m.vertices[m.faces[:, 0]],
                                         m.vertices[m.faces[:, 2]] - m.vertices[m.faces[:, 0]]), axis=1).sum()
    assert np.pi * 0.25 * 0.9 < area <= np.pi * 0.25
    from recon.meshing.cleanup import boundary_loops

    loops = boundary_loops(m.faces)  # the rim is the one boundary
    assert len(loops) == 1
    rim = m.vertices[loops[0]]
    length = np.linalg.norm(rim - np.roll(rim, -1, axis=0), axis=1).sum()
    assert 0.95 * np.pi < length < 1.3 * np.pi


def test_dome_boundary_is_its_rim_only():
    from recon.meshing.cleanup import boundary_loops
    from recon.meshing.unsigned import extract_unsigned_mesh

    m = extract_unsigned_mesh(Hemisphere(radius=0.5), resolution=48)
    loops = boundary_loops(m.faces)
    assert len(loops) == 1
    assert np.abs(m.vertices[loops[0], 2]).max() < 1.25 / 47  # at the rim (z = 0)


def test_no_surface_in_the_bounds_gives_an_empty_mesh():
    from recon.meshing.unsigned import extract_unsigned_mesh

    m = extract_unsigned_mesh(OpenDisc(radius=0.5), resolution=16, bounds=[[2, 2, 2], [3, 3, 3]])
    assert m.n_faces == 0


def test_scalar_unsigned_grids_still_need_a_level():
    from recon.meshing.marching_cubes import extract_mesh
    from recon.fields.analytic import sample_grid

    with pytest.raises(InputError, match="closest-surface-point mesher"):
        extract_mesh(sample_grid(OpenDisc(), resolution=16))


def test_surface_decision_from_the_field():
    from recon.fields.closest_point_geometry import decide_surface

    assert decide_surface(UnsignedSphere()) == "closed"
    assert decide_surface(OpenDisc()) == "open"
    assert decide_surface(Hemisphere()) == "open"


# ----------------------------------------------------------------------------- the network field


def _trained(**overrides):
    from recon.fitters import fit

    return fit(sphere_cloud(2000), "csp", **{**TINY, **overrides})


@pytest.fixture(scope="module")
def sphere_field():
    return _trained()


def test_tiny_fit_through_the_registry_finds_the_sphere(sphere_field):
    f = sphere_field
    assert f.kind == "unsigned" and f.params["surface_decided"] == "closed"
    # renderers' hit tolerance: half the median spacing of the 2000 points on r = 0.5
    assert f.surface_tolerance == pytest.approx(0.5 * f.params["spacing_median"])
    assert 0.005 < f.surface_tolerance < 0.05
    gen = np.random.default_rng(5)
    d = gen.normal(size=(500, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    q = d * gen.uniform(0.45, 0.55, (500, 1))
    c = f.closest_point(q)
    assert np.median(np.abs(np.linalg.norm(c, axis=1) - 0.5)) < 0.01
    assert np.median(np.linalg.norm(c - 0.5 * d, axis=1)) < 0.02
    assert np.median(np.abs(f.value(q) - np.abs(np.linalg.norm(q, axis=1) - 0.5))) < 0.01


def test_numpy_and_torch_forward_agree(sphere_field):
    from recon.fields.hashgrid_network import forward_numpy, to_torch, torch_forward

    x = np.random.default_rng(0).uniform(-0.6, 0.6, (300, 3)).astype(np.float32)
    ref = forward_numpy(sphere_field.arrays, x)
    with torch.no_grad():
        got = torch_forward(to_torch(sphere_field.arrays, "cpu"), torch.as_tensor(x)).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-6)
    # the CPU evaluation kernel (encoding + MLP in numba) gives the same offsets
    np.testing.assert_allclose(sphere_field.offsets_unit(x), ref, atol=1e-6)


def _layout(**overrides):
    from recon.fields.hashgrid_network import to_torch
    from recon.fitters.csp import CSPConfig, initial_arrays
    from recon.seeding import rng

    cfg = CSPConfig(**{**dict(levels=4, table_log2=10, resolution=64, base_resolution=8), **overrides})
    a = initial_arrays(cfg, rng(0))
    return a, to_torch(a, "cpu")


def test_encoding_backward_is_the_numpy_scatter_of_its_weights():
    from recon.fields.hashgrid_network import CORNERS, level_indices
    from recon.kernels.hashgrid_cpu import encode_backward

    a, t = _layout()
    L, T, F = a["tables"].shape
    assert a["dense"].any() and not a["dense"].all()  # both kinds of level
    gen = np.random.default_rng(0)
    x = gen.uniform(-0.7, 0.7, (2000, 3)).astype(np.float32)  # some outside the box (clamped)
    g = gen.normal(size=(len(x), L * F + 3)).astype(np.float32)
    got = np.zeros_like(a["tables"])
    encode_backward(x, g, t["res_np"], t["dense_np"], t["lo_np"], t["ext_np"], got)
    ref = np.zeros((L, T, F))
    box = a["enc_box"]
    s = np.clip((x - box[0]) / (box[1] - box[0]), 0.0, 1.0)
    for lv in range(L):
        r = int(a["resolutions"][lv])
        i0 = np.minimum(np.floor(s * r).astype(np.int64), r - 1)
        w = s * r - i0
        for c in CORNERS:
            rows = level_indices(i0 + c, r, bool(a["dense"][lv]), T)
            np.add.at(ref[lv], rows, np.prod(np.where(c == 1, w, 1 - w), axis=1)[:, None] * g[:, lv * F: (lv + 1) * F])
    np.testing.assert_allclose(got, ref, atol=1e-5)


TORCH_DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="torch sees no CUDA GPU"))]


@pytest.mark.parametrize("device", TORCH_DEVICES)
def test_torch_encoding_matches_the_numba_kernel_forward_and_backward(device):
    # the GPU trains through encode_torch, the CPU through the numba kernels: one field,
    # fitted on either, must mean the same thing on both (a GPU-fitted field is evaluated
    # by numba once loaded on a laptop)
    from recon.fields.hashgrid_network import encode_torch, to_torch
    from recon.kernels.hashgrid_cpu import encode, encode_backward

    a, t = _layout()
    L, T, F = a["tables"].shape
    gen = np.random.default_rng(1)
    a["tables"] = gen.normal(size=a["tables"].shape).astype(np.float32)
    x = gen.uniform(-0.7, 0.7, (3000, 3)).astype(np.float32)  # some outside the box (clamped)
    g = gen.normal(size=(len(x), L * F + 3)).astype(np.float32)
    ref = np.empty((len(x), L * F + 3), np.float32)
    encode(x, a["tables"], t["res_np"], t["dense_np"], t["lo_np"], t["ext_np"], ref)
    ref_grad = np.zeros_like(a["tables"])
    encode_backward(x, g, t["res_np"], t["dense_np"], t["lo_np"], t["ext_np"], ref_grad)

    td = to_torch(a, device, requires_grad=True)
    h = encode_torch(td, torch.as_tensor(x, device=device))
    (h * torch.as_tensor(g, device=device)).sum().backward()
    # float32 cell coordinates in torch, float64 in numba: features of unit size agree to
    # a float32 rounding of the position times their slope across the finest cell
    np.testing.assert_allclose(h.detach().cpu().numpy(), ref, atol=1e-4)
    np.testing.assert_allclose(td["tables"].grad.cpu().numpy(), ref_grad, atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA GPU")
def test_fit_on_cuda_finds_the_sphere_and_reads_the_same_on_the_cpu(tmp_path):
    from recon.fields import load_field

    f = _trained(device="cuda")
    assert f.params["device_used"] == "cuda"
    gen = np.random.default_rng(5)
    d = gen.normal(size=(500, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    q = d * gen.uniform(0.45, 0.55, (500, 1))
    c = f.closest_point(q)  # evaluated by torch on the GPU
    assert np.median(np.abs(np.linalg.norm(c, axis=1) - 0.5)) < 0.01
    f.save(tmp_path / "gpu.csp.npz")
    on_cpu = load_field(tmp_path / "gpu.csp.npz")
    on_cpu.device = "cpu"  # the numba kernel, as on a machine without a GPU
    np.testing.assert_allclose(on_cpu.closest_point(q), c, atol=1e-5)


def test_table_adam_step_matches_torch_adam_and_clears_the_gradient():
    from recon.kernels.hashgrid_cpu import adam_step

    gen = np.random.default_rng(2)
    p = gen.normal(size=(2, 64, 2)).astype(np.float32)
    ref = torch.tensor(p.copy(), requires_grad=True)
    opt = torch.optim.Adam([ref], lr=0.01, betas=(0.9, 0.99), eps=1e-15)
    m, v = np.zeros_like(p), np.zeros_like(p)
    used = np.array([40, 64])  # level 0 uses 40 rows (a dense level's tail stays untouched)
    for step in range(1, 4):
        g = gen.normal(size=p.shape).astype(np.float32)
        g[0, 40:] = 0.0
        ref.grad = torch.tensor(g)
        opt.step()
        adam_step(p, g, m, v, used, 0.01, 0.9, 0.99, 1e-15, step, False)
        assert not g.any()
    np.testing.assert_allclose(p, ref.detach().numpy(), atol=1e-6)


def test_save_load_round_trip_and_bake(sphere_field, tmp_path):
    from recon.fields.closest_point_grid import ClosestPointGrid
    from recon.fields import load_field
    from recon.fields.sparse_closest_point_grid import SparseClosestPointGrid

    path = sphere_field.save(tmp_path / "s.csp.npz")
    with np.load(path, allow_pickle=False) as data:  # plain arrays only
        assert "a_net_tables" in data.files
    g = load_field(path)
    x = np.random.default_rng(1).uniform(-0.5, 0.5, (200, 3))
    np.testing.assert_array_equal(g.closest_point(x), sphere_field.closest_point(x))
    assert g.params["surface_decided"] == "closed"
    grid = g.bake(24, sparse=False)
    assert isinstance(grid, ClosestPointGrid)
    nodes = grid.origin + np.array([[3, 4, 5], [10, 12, 7]]) * grid.voxel_size
    np.testing.assert_allclose(grid.closest_point(nodes), g.closest_point(nodes), atol=1e-5)
    sparse = g.bake(24)  # the default: bricks near the surface only
    assert isinstance(sparse, SparseClosestPointGrid)
    near = np.random.default_rng(2).normal(size=(300, 3))
    near = 0.5 * near / np.linalg.norm(near, axis=1, keepdims=True)  # on the fitted sphere
    np.testing.assert_allclose(sparse.closest_point(near), grid.closest_point(near), atol=1e-5)


def test_progress_comes_every_hundredth_of_the_run_with_the_losses():
    calls = []
    _trained(iterations=200, progress=lambda step, total, losses: calls.append((step, total, losses)))
    assert [c[0] for c in calls] == [1] + list(range(2, 201, 2)) and {c[1] for c in calls} == {200}
    assert set(calls[-1][2]) == {"pull", "surface"} and calls[-1][2]["pull"] < calls[0][2]["pull"]


def test_same_seed_same_field_other_seed_differs():
    a, b, c = _trained(iterations=5), _trained(iterations=5), _trained(iterations=5, seed=1)
    np.testing.assert_array_equal(a.arrays["tables"], b.arrays["tables"])
    np.testing.assert_array_equal(a.arrays["w0"], b.arrays["w0"])
    assert not np.array_equal(a.arrays["w0"], c.arrays["w0"])


def test_cli_render_bakes_a_network_field_for_the_kernels(sphere_field, tmp_path, monkeypatch):
    import json

    from PIL import Image
    from typer.testing import CliRunner

    from recon.cli.main import app

    path = sphere_field.save(tmp_path / "s.csp.npz")
    runs = {}
    for name, extra in (("net", ["--bake", "0"]), ("baked", ["--bake", "48"])):
        res = CliRunner().invoke(app, ["render", str(path), "-o", str(tmp_path / f"{name}.png"), "--size", "40",
                                       "--passes", "mask", "--json"] + extra)
        assert res.exit_code == 0, res.output
        runs[name] = json.loads(res.stdout)["stats"], np.asarray(Image.open(tmp_path / f"{name}.mask.png")) > 0
    (net, net_mask), (baked, baked_mask) = runs["net"], runs["baked"]
    assert net["path"] == "numpy" and baked["path"] in ("grid-cpu", "grid-cuda")
    assert baked["baked"] == 48 and baked["bake_seconds"] > 0
    # the same sphere: the masks differ only along its outline (pixels a ray grazes)
    from scipy.ndimage import binary_dilation, binary_erosion

    outline = binary_dilation(net_mask, iterations=1) & ~binary_erosion(net_mask, iterations=1)
    differ = net_mask ^ baked_mask
    assert net_mask.sum() > 200 and differ.sum() < outline.sum() // 2 and not (differ & ~outline).any()
    assert path.exists()  # the input stays
    # enough rays bake by default, unless told not to (threshold and resolution made small here)
    import recon.render.job as job

    monkeypatch.setattr(job, "AUTO_BAKE_RAYS", 2 * 24 * 24)
    monkeypatch.setattr(job, "AUTO_BAKE", 32)
    for extra, baked_by_default in ((["--size", "24"], True), (["--size", "24", "--bake", "0"], False),
                                    (["--size", "16"], False)):
        res = CliRunner().invoke(app, ["render", str(path), "-o", str(tmp_path / "t.gif"), "--turntable", "2",
                                       "--json", "--device", "cpu"] + extra)
        assert res.exit_code == 0, res.output
        stats = json.loads(res.stdout)["stats"]
        assert stats.get("bake_auto", False) is baked_by_default and stats.get("baked", 0) == 32 * baked_by_default
        assert stats["path"] == ("grid-cpu" if baked_by_default else "numpy")


def test_fitted_sphere_meshes_closed_and_fitted_disc_open(sphere_field):
    from recon.fitters import fit
    from recon.meshing.marching_cubes import extract_mesh

    m = extract_mesh(sphere_field)
    check_mesh(m, watertight=True)
    assert signed_volume(m) == pytest.approx(4 / 3 * np.pi * 0.125, rel=0.1)
    disc = fit(disc_cloud(2000), "csp", **TINY)
    assert disc.params["surface_decided"] == "open"
    md = extract_mesh(disc)
    assert boundary_edge_count(md) > 0
    assert np.abs(md.vertices[:, 2]).max() < 0.02  # one sheet, no lid


@pytest.mark.parametrize("overrides, message", [
    (dict(surface="both"), "surface must be one of auto, open, closed"),
    (dict(iterations=-1), "iterations must be an integer >= 0"),
    (dict(base_resolution=64, resolution=32), "base_resolution"),
    (dict(device="tpu"), "device must be auto, cpu or cuda"),
    (dict(uniform_fraction=1.5), r"uniform_fraction must be in \[0, 1\]"),
    (dict(table_log2=30), "table_log2 must be at most 24"),
    (dict(net_learning_rate=float("nan")), "net_learning_rate must be a finite number"),
])
def test_bad_options_are_refused(overrides, message):
    from recon.fitters import fit

    with pytest.raises(InputError, match=message):
        fit(sphere_cloud(200), "csp", **overrides)


def test_bad_inputs():
    from recon.fitters import fit

    with pytest.raises(InputError, match="needs at least 10"):
        fit(sphere_cloud(5), "csp")
    with pytest.raises(InputError, match="all points are identical"):
        fit(Cloud(np.ones((50, 3))), "csp", iterations=1)
    with pytest.raises(InputError, match="has no option"):
        fit(sphere_cloud(50), "csp", band_width=3)


def test_imports_and_a_clear_error_without_torch():
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import numpy as np\n"
        "from recon.fitters import load_all_fitters, fit\n"
        "from recon.cloud import Cloud\n"
        "from recon.errors import InputError\n"
        "assert 'csp' in load_all_fitters()\n"
        "try:\n"
        "    fit(Cloud(np.random.default_rng(0).normal(size=(100, 3))), 'csp')\n"
        "except InputError as e:\n"
        "    print('ERR', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "ERR" in out.stdout and "pip install" in out.stdout and "torch" in out.stdout


# ----------------------------------------------------------------------------- recon normals


def test_normals_command_writes_outward_normals_and_curvature(tmp_path, sphere_field):
    from recon.cli import main as cli_main
    from recon.io import read_cloud, write_cloud

    src = tmp_path / "ball.ply"
    write_cloud(sphere_cloud(2000), src)
    field_path = sphere_field.save(tmp_path / "ball.csp.npz")
    out = tmp_path / "ball_n.ply"
    assert cli_main.run(["normals", str(src), "--field", str(field_path), "-o", str(out), "--curvature", "-q"]) == 0
    got = read_cloud(out)
    p = got.points / np.linalg.norm(got.points, axis=1, keepdims=True)
    cos = (got.normals * p).sum(1)
    assert (cos > 0).mean() >= 0.99 and np.median(cos) > 0.99
    mean_curvature = 0.5 * (got.extra["k1"] + got.extra["k2"])
    assert np.median(mean_curvature) == pytest.approx(2.0, rel=0.3)  # a tiny fit: rough at its finest scale
    # never over the input
    assert cli_main.run(["normals", str(src), "--field", str(field_path), "-o", str(src), "-q"]) == 2


def test_thick_noise_is_trimmed_before_the_fit():
    from recon.fitters.csp import fit_csp, CSPConfig
    from recon.points.preprocess import thick_noise_keep

    # a thin plate under noise thicker than it (see tests/test_gridpull.py): the same
    # points go as for GridPull, and the field's support follows the kept points
    from noisy_shapes import noisy_plate

    n = 20000
    plate = noisy_plate(n, thickness=0.01, sigma=0.02)
    keep = thick_noise_keep(plate)
    field = fit_csp(Cloud(plate), CSPConfig(iterations=2, surface="open"))
    assert field.params["trimmed"] == int((~keep).sum()) > 0
    assert field.params["n_points"] == n



def reference_plane_targets(queries, surf, surf_normals, surf_radius, spacing, tree, neighbors):
    """Plain-NumPy form of ``recon.kernels.plane_targets_cpu.plane_targets`` (the fitter's
    own code before the kernel)."""
    d, j = tree.query(queries, k=neighbors)
    j0 = j[:, 0]
    n0 = surf_normals[j0]
    sig = np.maximum(spacing[j0], 1e-12)[:, None]
    nb, nn = surf[j], surf_normals[j]
    off = np.einsum("bki,bi->bk", nb - surf[j0][:, None, :], n0)
    align = np.sign(np.einsum("bki,bi->bk", nn, n0))
    w = np.exp(-(d / sig) ** 2 - (off / sig) ** 2) * (align != 0)
    w[:, 0] = np.maximum(w[:, 0], 1e-12)
    c = np.einsum("bk,bki->bi", w, nb) / w.sum(1, keepdims=True)
    n = np.einsum("bk,bki->bi", w * align, nn)
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    foot = queries - np.einsum("bi,bi->b", queries - c, n)[:, None] * n
    rel = foot - surf[j0]
    tang = rel - np.einsum("bi,bi->b", rel, n)[:, None] * n
    tl = np.linalg.norm(tang, axis=1)
    over = np.maximum(tl - surf_radius[j0], 0.0) / np.maximum(tl, 1e-12)
    return foot - tang * over[:, None]


def _plane_targets_case(points, normals, queries, neighbors=8):
    from scipy.spatial import cKDTree

    from recon.points.plane_targets import make_targets

    tree = cKDTree(points)
    spacing = tree.query(points, k=9)[0][:, 1:].mean(axis=1)
    radius = 1.5 * spacing
    got = make_targets(queries, points, normals, radius, spacing, tree, neighbors=neighbors)
    ref = reference_plane_targets(queries, points, normals, radius, spacing, tree, neighbors)
    return got, ref


def test_plane_targets_are_feet_on_a_plane_and_clamped_past_its_edge():
    gen = np.random.default_rng(3)
    xy = gen.uniform(-0.5, 0.5, (4000, 2))
    n = np.array([1.0, 2.0, 2.0]) / 3.0
    u = np.cross(n, [1.0, 0.0, 0.0])
    u /= np.linalg.norm(u)
    v = np.cross(n, u)
    points = xy[:, :1] * u + xy[:, 1:] * v + 0.1 * n
    normals = np.where(gen.random((4000, 1)) < 0.5, n, -n)  # unoriented
    inner = gen.uniform(-0.4, 0.4, (3000, 2))
    h = gen.uniform(-0.1, 0.1, (3000, 1))
    q = inner[:, :1] * u + inner[:, 1:] * v + 0.1 * n + h * n
    got, ref = _plane_targets_case(points, normals, q)
    np.testing.assert_allclose(got, ref, atol=1e-12)
    np.testing.assert_allclose(got @ n, 0.1, atol=1e-12)  # on the plane
    # the foot itself, except where it falls in a sampling gap wider than the radius
    assert np.mean(np.linalg.norm(got - (q - h * n), axis=1) < 1e-12) > 0.99
    # past the edge the target stops within the radius of the last samples
    far = np.array([[0.8, 0.0]])
    got, _ = _plane_targets_case(points, normals, far[:, :1] * u + far[:, 1:] * v + 0.1 * n)
    assert float(got[0] @ u) < 0.5 + 0.05 and abs(float(got[0] @ n) - 0.1) < 1e-12


def test_plane_targets_on_a_sphere_and_a_thin_plate_match_the_numpy_form():
    gen = np.random.default_rng(4)
    p = gen.normal(size=(5000, 3))
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    q = p[:2000] * gen.uniform(0.9, 1.1, (2000, 1))
    got, ref = _plane_targets_case(p, p, q, neighbors=16)
    np.testing.assert_allclose(got, ref, atol=1e-10)
    assert np.median(np.abs(np.linalg.norm(got, axis=1) - 1.0)) < 2e-3  # within the chord
    # two sheets 0.02 apart (closer than the blending reach): each query keeps its own side
    xy = gen.uniform(-0.5, 0.5, (6000, 2))
    z = np.where(np.arange(6000) % 2 == 0, 0.01, -0.01)[:, None]
    plate = np.hstack([xy, z])
    normals = np.tile([0.0, 0.0, 1.0], (6000, 1))
    q = np.hstack([gen.uniform(-0.4, 0.4, (1000, 2)), gen.choice([0.03, -0.03], (1000, 1))])
    got, ref = _plane_targets_case(plate, normals, q, neighbors=16)
    np.testing.assert_allclose(got, ref, atol=1e-10)
    own = got[:, 2] * np.sign(q[:, 2])
    # never pulled past the middle; typically a few % of the gap towards the other sheet
    assert own.min() > 0.005 and np.median(np.abs(own - 0.01)) < 5e-4


def reference_denoise(points, dist, nbr):
    """Plain-NumPy form of ``recon.kernels.denoise_cpu.project_on_local_planes`` (the
    fitter's own code before the kernel)."""
    nb = points[nbr]
    bw = np.maximum(dist[:, -1:], 1e-12) * 0.6
    w = np.exp(-(dist / bw) ** 2)
    for _ in range(2):
        c = (w[:, :, None] * nb).sum(1) / w.sum(1, keepdims=True)
        cen = nb - c[:, None, :]
        _, vecs = np.linalg.eigh(np.einsum("bk,bki,bkj->bij", w, cen, cen))
        nrm = vecs[:, :, 0]
        r = np.einsum("bki,bi->bk", cen, nrm)
        sigma = 1.5 * np.median(np.abs(r), axis=1, keepdims=True) + 1e-12
        w = np.exp(-(dist / bw) ** 2) / (1.0 + (r / sigma) ** 2)
    off = np.einsum("bi,bi->b", points - c, nrm)
    return points - off[:, None] * nrm, nrm


def test_denoise_kernel_matches_the_numpy_form_and_keeps_a_plane():
    from scipy.spatial import cKDTree

    from recon.fitters.csp import denoise

    gen = np.random.default_rng(6)
    n = np.array([2.0, -1.0, 2.0]) / 3.0
    u = np.cross(n, [0.0, 0.0, 1.0])
    u /= np.linalg.norm(u)
    v = np.cross(n, u)
    xy = gen.uniform(-0.5, 0.5, (3000, 2))
    plane = xy[:, :1] * u + xy[:, 1:] * v + 0.2 * n
    out, normals, _ = denoise(plane, 24)
    np.testing.assert_allclose(out, plane, atol=1e-12)  # on the plane already
    np.testing.assert_allclose(np.abs(normals @ n), 1.0, atol=1e-9)

    noisy = plane + gen.normal(0.0, 0.004, (3000, 1)) * n
    out, normals, _ = denoise(noisy, 24)
    dist, nbr = cKDTree(noisy).query(noisy, k=24)
    ref_out, ref_n = reference_denoise(noisy, dist, nbr)
    np.testing.assert_allclose(out, ref_out, atol=1e-10)
    np.testing.assert_allclose(np.abs((normals * ref_n).sum(1)), 1.0, atol=1e-9)  # up to sign
    inner = np.all(np.abs(xy) < 0.45, axis=1)
    assert np.median(np.abs((out[inner] @ n) - 0.2)) < 0.5 * np.median(np.abs((noisy[inner] @ n) - 0.2))


def test_meshes_of_dense_fits_end_on_the_data_planes_and_sparse_fits_keep_none(sphere_field, tmp_path):
    from recon.fields import load_field
    from recon.fitters import fit
    from recon.meshing.marching_cubes import extract_mesh

    assert sphere_field.params["sparse"] and "data_points" not in sphere_field.arrays  # 2000 points
    q = np.random.default_rng(2).normal(size=(50, 3)) * 0.3
    np.testing.assert_array_equal(sphere_field.onto_data(q), q)  # nothing to end on

    f = fit(sphere_cloud(8000), "csp", **TINY)
    assert not f.params["sparse"] and len(f.arrays["data_points"]) == 8000
    d = np.random.default_rng(3).normal(size=(500, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    near = d * np.random.default_rng(4).uniform(0.49, 0.51, (500, 1))
    # feet on the blended tangent planes of exact samples: on the sphere to within the chord
    assert np.abs(np.linalg.norm(f.onto_data(near), axis=1) - 0.5).max() < 1e-3
    f.save(tmp_path / "dense.csp.npz")
    again = load_field(tmp_path / "dense.csp.npz")
    np.testing.assert_allclose(again.onto_data(near), f.onto_data(near), atol=1e-12)
    m = extract_mesh(f)
    r = np.linalg.norm(m.vertices, axis=1)
    assert np.median(np.abs(r - 0.5)) < 2e-4 and m.surface == "closed"


def test_sparse_clean_points_are_not_taken_for_noise():
    # between 500 samples of a sphere a light plane fit cuts the curvature's chord, so exact
    # points look noisy by it (noise_ratio over the clean threshold); a quadric tells them
    # apart from the same cloud with noise a third of a spacing deep
    from recon.fitters import fit

    exact = fit(sphere_cloud(500), "csp", **{**TINY, "iterations": 5})
    noisy = fit(sphere_cloud(500, noise=0.03), "csp", **{**TINY, "iterations": 5})
    assert exact.params["sparse"] and noisy.params["sparse"]
    assert exact.params["noise_ratio"] > exact.params["clean_threshold"] and exact.params["clean"]
    assert not noisy.params["clean"]
    # and their finest feature grid is coarser: SPARSE_CELLS_PER_SPACING cells per spacing
    from recon.fitters.csp import SPARSE_CELLS_PER_SPACING

    spacing = exact.params["spacing_median"] * exact.normalization.scale  # fitting-cube units
    want = max(TINY["base_resolution"], round(SPARSE_CELLS_PER_SPACING / spacing))
    assert exact.params["resolution_used"] == want < TINY["resolution"]


def test_a_cloud_denser_than_the_grid_is_fitted_to_voxel_means():
    from recon.fitters.csp import CSPConfig, fit_csp

    gen = np.random.default_rng(6)
    d = gen.normal(size=(120_000, 3))
    dense = d / np.linalg.norm(d, axis=1, keepdims=True) + gen.normal(0.0, 0.005, (120_000, 3))
    field = fit_csp(Cloud(dense), CSPConfig(resolution=64, iterations=2, surface="closed"))
    assert 10_000 < field.params["merged_points"] < 120_000 // 3
    assert field.params["n_points"] == 120_000
    every = fit_csp(Cloud(dense[:5000]), CSPConfig(resolution=64, iterations=1, surface="closed", merge_cells=0))
    assert every.params["merged_points"] == 0


def test_merge_cells_out_of_range_is_refused_by_csp():
    from recon.fitters.csp import CSPConfig, fit_csp

    with pytest.raises(InputError, match=r"merge_cells must be a number in 0\.\.4 \(cells\), got -1"):
        fit_csp(Cloud(np.random.default_rng(0).normal(size=(100, 3))), CSPConfig(merge_cells=-1))
