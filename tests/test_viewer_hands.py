"""The viewer's first look (up axis, camera, point size, slices cut to the object), every field
kind, picking, clipping, the iso-level passes, turntables, and the web view's access rules."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from recon import Cloud, InputError, SignedDistanceGrid
from recon.viewer import framing, measures

SIZE = (320, 240)


def sphere_field(r=0.6, n=48, lo=-1.0, hi=1.0):
    ax = np.linspace(lo, hi, n)
    x, y, z = np.meshgrid(ax, ax, ax, indexing="ij")
    return SignedDistanceGrid((np.sqrt(x * x + y * y + z * z) - r).astype(np.float32), (lo, lo, lo), (hi - lo) / (n - 1))


def sphere_points(n=4000, r=0.6, seed=0, noise=0.0):
    g = np.random.default_rng(seed)
    p = g.normal(size=(n, 3))
    p = r * p / np.linalg.norm(p, axis=1, keepdims=True)
    return p + g.normal(scale=noise, size=p.shape) if noise else p


def dome_on_a_base(n=6000, seed=0, up_axis=2):
    """A half sphere standing on its flat disc (base at the minimum of ``up_axis``)."""
    g = np.random.default_rng(seed)
    p = sphere_points(n, r=1.0, seed=seed)
    p[:, 2] = np.abs(p[:, 2])
    m = n // 3
    rr = np.sqrt(g.uniform(0, 1, m))
    t = g.uniform(0, 2 * np.pi, m)
    disc = np.stack([rr * np.cos(t), rr * np.sin(t), np.zeros(m)], axis=1)
    p = np.concatenate([p, disc])
    order = {2: [0, 1, 2], 1: [0, 2, 1], 0: [2, 1, 0]}[up_axis]
    return p[:, order]


class Occupancy:
    """An analytic occupancy field: probability of being inside a sphere of radius ``r``."""

    kind = "occupancy"
    level = 0.5

    def __init__(self, r=0.5, width=0.05):
        self.r, self.width = r, width
        self.bounds = np.array([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])

    def value(self, x):
        d = np.linalg.norm(np.asarray(x, np.float64), axis=1) - self.r
        return (1 / (1 + np.exp(d / self.width))).astype(np.float32)

    def gradient(self, x):
        x = np.asarray(x, np.float64)
        v = self.value(x).astype(np.float64)
        n = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        return (-(v * (1 - v) / self.width)[:, None] * n).astype(np.float32)


class Unsigned:
    """An analytic unsigned distance field of a sphere of radius ``r``."""

    kind = "unsigned"
    level = 0.0

    def __init__(self, r=0.5):
        self.r = r
        self.bounds = np.array([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])

    def value(self, x):
        return np.abs(np.linalg.norm(np.asarray(x, np.float64), axis=1) - self.r).astype(np.float32)

    def gradient(self, x):
        x = np.asarray(x, np.float64)
        r = np.linalg.norm(x, axis=1, keepdims=True)
        return (np.sign(r - self.r) * x / np.maximum(r, 1e-12)).astype(np.float32)


# ---------------------------------------------------------------------- pure geometry of the first look


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_up_is_guessed_from_the_base_an_object_stands_on(axis):
    up = framing.guess_up(dome_on_a_base(up_axis=axis))
    expected = np.zeros(3)
    expected[axis] = 1.0
    np.testing.assert_array_equal(up, expected)
    flipped = dome_on_a_base(up_axis=axis)
    flipped[:, axis] *= -1  # standing on its head: up points the other way
    np.testing.assert_array_equal(framing.guess_up(flipped), -expected)


def test_up_of_a_can_is_its_axis_and_a_round_top_is_no_base():
    g = np.random.default_rng(2)
    t = g.uniform(0, 2 * np.pi, 6000)
    side = np.column_stack([np.cos(t), np.sin(t), g.uniform(-1, 1, 6000)])
    rr, tt = np.sqrt(g.uniform(0, 1, 4000)), g.uniform(0, 2 * np.pi, 4000)
    caps = np.column_stack([rr * np.cos(tt), rr * np.sin(tt), np.repeat([-1.0, 1.0], 2000)])
    np.testing.assert_array_equal(framing.guess_up(np.concatenate([side, caps])), [0, 0, 1])  # both ends flat: +
    head = sphere_points(8000)  # a round top holds as many points in its end slab as a round bottom
    head = head[head[:, 0] > -0.5]  # cut flat on -x, but a small cut: not a base
    np.testing.assert_array_equal(framing.guess_up(head), [0, 1, 0])


def test_up_of_a_flat_scene_is_its_thin_axis_and_the_default_is_y():
    g = np.random.default_rng(1)
    terrain = np.column_stack([g.uniform(0, 100, 5000), g.uniform(0, 80, 5000), g.uniform(0, 5, 5000)])
    np.testing.assert_array_equal(framing.guess_up(terrain), [0, 0, 1])
    np.testing.assert_array_equal(framing.guess_up(sphere_points()), [0, 1, 0])  # no base, not flat
    np.testing.assert_array_equal(framing.parse_up("-z"), [0, 0, -1])
    assert framing.parse_up("auto") is None
    with pytest.raises(InputError, match="--up must be"):
        framing.parse_up("sideways")


def test_front_camera_looks_at_the_centre_from_the_front_and_fits_the_object():
    bounds = np.array([[1.0, 2.0, 3.0], [3.0, 4.0, 5.0]])
    pos, focal, up = framing.front_camera(bounds, [0, 1, 0], azimuth=0, elevation=0, view_angle=30, aspect=4 / 3)
    np.testing.assert_allclose(focal, [2, 3, 4])
    direction = (focal - pos) / np.linalg.norm(focal - pos)
    np.testing.assert_allclose(direction, [0, 0, -1], atol=1e-12)  # y up: looking down -z
    np.testing.assert_allclose(up, [0, 1, 0])
    radius = np.sqrt(3)
    assert np.linalg.norm(pos - focal) == pytest.approx(radius / np.sin(np.radians(15)))
    pos, focal, up = framing.front_camera(bounds, [0, 0, 1], azimuth=30, elevation=20)
    d = (focal - pos) / np.linalg.norm(focal - pos)
    # z up: from the front (-y), turned to the viewer's right (+x), from above (looking down)
    assert d[1] > 0.7 and d[0] < -0.3 and d[2] == pytest.approx(-np.sin(np.radians(20)))
    tall = framing.front_camera(bounds, [0, 0, 1], aspect=0.5)[0]
    assert np.linalg.norm(tall - focal) > np.linalg.norm(pos - focal)  # a narrow image backs off


def test_point_size_follows_the_spacing_on_screen():
    g = np.arange(60) * 0.01
    grid = np.stack(np.meshgrid(g, g, [0.0], indexing="ij"), -1).reshape(-1, 3)
    assert framing.point_spacing(grid) == pytest.approx(0.01)
    px = 2 * 10 * np.tan(np.radians(15)) / 600  # one pixel at distance 10, 600 pixels high
    size = framing.point_size_pixels(0.01, 10.0, view_angle=30, height=600, fraction=0.8, limits=(0.5, 50))
    assert size == pytest.approx(0.8 * 0.01 / px)
    assert framing.point_size_pixels(1.0, 10.0, view_angle=30, height=600) == 6.0  # clipped
    assert framing.point_size_pixels(1e-6, 10.0, view_angle=30, height=600) == 1.0


def test_slice_rectangle_is_the_object_plus_a_margin_inside_the_field():
    field_b = np.array([[-2.0, -2.0, -2.0], [2.0, 2.0, 2.0]])
    obj = np.array([[-0.5, -0.25, 0.0], [0.5, 0.25, 1.0]])
    rect = framing.slice_rectangle(field_b, obj, 2, margin=0.1)
    pad = 0.1 * np.linalg.norm(obj[1] - obj[0])
    np.testing.assert_allclose(rect[:, :2], obj[:, :2] + [[-pad], [pad]])
    np.testing.assert_allclose(rect[:, 2], [-2, 2])  # across the slice: the field's range (where it may move)
    np.testing.assert_allclose(framing.slice_rectangle(field_b, None, 0), field_b)


def test_probe_on_a_sphere_reads_the_analytic_values():
    from recon.meshing.marching_cubes import extract_mesh

    field = sphere_field()
    gt = extract_mesh(sphere_field(r=0.65))
    out = measures.probe([0.9, 0.0, 0.0], field=field, cloud=sphere_points(20000), gt=gt)
    assert out["value"] == pytest.approx(0.3, abs=2e-3)
    assert out["to_surface"] == pytest.approx(0.3, abs=2e-3)
    assert out["to_data"] == pytest.approx(0.3, abs=0.02)
    assert out["to_gt"] == pytest.approx(0.25, abs=5e-3)
    text = measures.probe_text(out)
    assert "picked (0.9, 0, 0) [input units]" in text and "distance to the ground truth 0.25" in text
    bare = measures.probe([0.0, 0.0, 0.0], field=Occupancy())
    assert bare["value"] == pytest.approx(1 / (1 + np.exp(-10)), rel=1e-5) and bare["to_surface"] is None
    assert "[probability]" in measures.probe_text(bare)


def test_colour_scales_suit_each_field_kind():
    from recon.viewer import ViewerConfig

    cfg = ViewerConfig()
    v = np.linspace(-0.5, 0.5, 101)
    s = measures.slice_scale("signed", 0.0, v, cfg)
    assert s.cmap == cfg.signed_cmap and s.clim[0] == -s.clim[1] and "[input units]" in s.title
    u = measures.slice_scale("unsigned", 0.0, np.abs(v), cfg)
    assert u.cmap == cfg.unsigned_cmap and u.clim[0] == 0.0
    o = measures.slice_scale("occupancy", 0.5, v + 0.5, cfg)
    assert o.cmap == cfg.occupancy_cmap and o.clim == (0.0, 1.0) and "probability" in o.title
    assert measures.level_range(measures.field_traits(Occupancy()), 0.5) == (0.02, 0.98)
    lo, hi = measures.level_range(measures.field_traits(Unsigned()), 0.0)
    assert 0 < lo < hi


# ---------------------------------------------------------------------- the scene, rendered offscreen

pv = pytest.importorskip("pyvista")
WHITE = np.array([255, 255, 255])


def scene(**kw):
    from recon.viewer import ViewerScene

    return ViewerScene(off_screen=True, window_size=SIZE, **kw)


def ink(img) -> float:
    return float((np.abs(img.astype(int) - WHITE).sum(-1) > 30).mean())


def mesh_of(field, **kw):
    from recon.meshing.marching_cubes import extract_mesh

    return extract_mesh(field, **kw)


def test_first_view_of_a_standing_object_is_from_the_front_with_its_up_up():
    s = scene()
    s.add_cloud(Cloud(dome_on_a_base() + [5.0, 0.0, 0.0]))
    s.reset_camera()
    cam = s.plotter.camera
    np.testing.assert_allclose(cam.up, [0, 0, 1], atol=1e-9)
    np.testing.assert_allclose(cam.focal_point, [5.0, 0.0, 0.5], atol=0.02)
    d = np.asarray(cam.direction)
    assert d[1] > 0.7 and d[2] < 0  # from the front (-y), a little above
    img = s.image()
    _, cols = np.nonzero((np.abs(img.astype(int) - WHITE).sum(-1) > 30)[60:, :])  # below the overlay text
    assert abs(cols.mean() - SIZE[0] / 2) < 0.1 * SIZE[0]  # centred
    assert np.ptp(cols) > 0.35 * SIZE[0]  # filling the view, not a dot
    forced = scene(up=[0, -1, 0])
    forced.add_cloud(Cloud(dome_on_a_base()))
    forced.reset_camera()
    np.testing.assert_allclose(forced.plotter.camera.up, [0, -1, 0], atol=1e-9)
    s.close()
    forced.close()


def test_point_size_comes_from_the_spacing_and_the_cloud_is_drawn_under_the_mesh():
    field = sphere_field()
    sparse, dense = scene(), scene()
    sparse.add_cloud(Cloud(sphere_points(2000)))
    dense.add_cloud(Cloud(sphere_points(50000)))
    for s in (sparse, dense):
        s.reset_camera()
        assert s.plotter.actors["cloud"].GetProperty().GetPointSize() == pytest.approx(s.point_size)
    assert 1.0 <= dense.point_size < sparse.point_size <= 6.0
    assert sparse.point_size == pytest.approx(framing.point_size_pixels(
        framing.point_spacing(sparse.cloud_points), np.linalg.norm(np.subtract(*sparse.plotter.camera_position[:2])),
        view_angle=30, height=SIZE[1]))
    # a noisy cloud on the mesh's surface: the mesh covers the cloud's near side
    dense.add_mesh(mesh_of(field))
    img = dense.image()[80:160, 120:200].astype(int)
    orange = (img[..., 0] > 200) & (img[..., 1] < 180) & (img[..., 2] < 100)
    assert orange.mean() < 0.02
    dense.set_visible("mesh", False)
    img = dense.image()[80:160, 120:200].astype(int)
    assert ((img[..., 0] > 200) & (img[..., 1] < 180) & (img[..., 2] < 100)).mean() > 0.3
    sparse.close()
    dense.close()


def test_slices_are_cut_to_the_object_not_the_field():
    s = scene()
    s.add_mesh(mesh_of(sphere_field(r=0.3, n=64, lo=-2.0, hi=2.0)))
    s.add_field(sphere_field(r=0.3, n=64, lo=-2.0, hi=2.0), slices=("z", "x"), mesh=False)
    b = s.plotter.actors["slice_z"].bounds  # xmin, xmax, ymin, ymax, zmin, zmax
    pad = s.config.slice_margin * np.linalg.norm([0.6, 0.6, 0.6])
    assert b[0] == pytest.approx(-0.3 - pad, abs=0.03) and b[1] == pytest.approx(0.3 + pad, abs=0.03)
    assert b[4] == pytest.approx(0.0, abs=0.03) and b[5] == pytest.approx(b[4])  # through the object's centre
    bx = s.plotter.actors["slice_x"].bounds
    assert bx[3] - bx[2] < 1.0  # the object is 0.6 across, the field 4
    s.close()


def test_occupancy_field_meshes_at_one_half_with_a_probability_scale():
    s = scene()
    s.add_field(Occupancy(r=0.5), slices=("z",))
    r = np.linalg.norm(s.mesh.vertices, axis=1)
    assert np.median(r) == pytest.approx(0.5, abs=0.02)
    assert "occupancy [probability]" in s.plotter.scalar_bars
    assert "curvature" not in s.mesh_colorings()  # not from probabilities
    assert "field: occupancy, level 0.5" in s.overlay_text()
    s.set_level(0.9)  # more probably inside: a smaller sphere
    assert np.median(np.linalg.norm(s.mesh.vertices, axis=1)) < 0.5 - 0.05
    s.close()


def test_unsigned_field_slices_start_at_zero():
    s = scene()
    s.add_field(Unsigned(), slices=("z",), mesh=False)
    bar = s.plotter.scalar_bars["unsigned distance [input units]"]
    assert bar.GetLookupTable().GetRange()[0] == 0.0
    s.close()


def test_pick_clip_error_colours_and_the_coarse_pass():
    from recon.viewer import ViewerConfig

    field = sphere_field(n=64)
    s = scene(config=ViewerConfig(coarse_resolution=32))
    s.add_cloud(Cloud(sphere_points(5000)))
    s.add_field(field, slices=())
    s.add_ground_truth(mesh_of(sphere_field(r=0.65)))
    s.reset_camera()
    out = s.pick([0.0, 0.9, 0.0])
    assert out["value"] == pytest.approx(0.3, abs=3e-3) and out["to_gt"] == pytest.approx(0.25, abs=5e-3)
    assert "distance to the input points" in s.overlay_text()
    assert s.mesh_coloring == "gt"
    s.toggle_error_colors()
    assert s.mesh_coloring == "plain"
    s.set_visible("cloud", False)
    s_whole = s.image()
    whole = ink(s_whole)
    s.set_clip(-np.asarray(s.plotter.camera.direction), [0.0, 0.0, 0.0])  # cut away the near half
    cut = s.image()
    assert ink(cut) == pytest.approx(whole, rel=0.15)  # the far half still covers the disc
    assert np.abs(cut.astype(int) - s_whole.astype(int)).sum(-1).__gt__(30).mean() > 0.05  # inside shows
    cam = s.plotter.camera
    right = np.cross(cam.direction, cam.up)
    s.set_clip(right, [0.0, 0.0, 0.0])  # keep the left half of the view
    half = ink(s.image())
    assert half < 0.65 * whole
    s.set_clip(None)
    assert ink(s.image()) == pytest.approx(whole, rel=0.02)
    s.set_level(0.05, coarse=True)  # 32 nodes a side while dragging, then the field's own 64
    coarse = s.mesh
    assert s.metrics is None and s.mesh_coloring == "plain"
    assert np.median(np.linalg.norm(coarse.vertices, axis=1)) == pytest.approx(0.65, abs=0.01)
    s.set_level(0.05)
    assert s.mesh.n_faces > 3 * coarse.n_faces and s.metrics is not None
    s.close()


def test_turntable_writes_the_turn(tmp_path):
    from PIL import Image

    from recon.viewer.controls import turntable

    s = scene()
    s.add_cloud(Cloud(dome_on_a_base()))
    s.reset_camera()
    before = s.plotter.camera_position
    n = turntable(s, tmp_path / "spin.gif", 6)
    assert n == 6
    gif = Image.open(tmp_path / "spin.gif")
    frames = []
    for i in range(gif.n_frames):
        gif.seek(i)
        frames.append(np.asarray(gif.convert("RGB")).astype(int))
    assert len(frames) == 6 and frames[0].shape == (SIZE[1], SIZE[0], 3)
    assert np.abs(frames[0] - frames[1]).mean() > 1  # the object turned
    assert s.plotter.camera_position == before  # the view is put back
    with pytest.raises(InputError, match=".gif or .mp4"):
        turntable(s, tmp_path / "spin.avi", 6)
    s.close()


def test_turntable_mp4_where_the_codec_is_at_hand(tmp_path):
    pytest.importorskip("imageio_ffmpeg", reason="the [video] extra is not installed")
    import imageio.v2 as imageio

    from recon.viewer.controls import turntable

    s = scene()
    s.add_cloud(Cloud(dome_on_a_base()))
    s.reset_camera()
    assert turntable(s, tmp_path / "spin.mp4", 6) == 6
    frames = [np.asarray(f, int) for f in imageio.mimread(tmp_path / "spin.mp4", format="FFMPEG")]
    assert len(frames) == 6 and frames[0].shape == (SIZE[1], SIZE[0], 3)
    assert np.abs(frames[0] - frames[1]).mean() > 1  # the object turned
    assert (frames[0].sum(-1) < 600).mean() > 0.01  # and it is in the picture
    s.close()


def run_cli(argv, monkeypatch):
    from recon.cli.main import run

    for var in ("DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(var, raising=False)
    return run(["view", *map(str, argv)])


def test_cli_turntable_and_up(tmp_path, monkeypatch, capsys):
    from recon.io import write_cloud

    write_cloud(Cloud(dome_on_a_base()), tmp_path / "dome.ply")
    args = [tmp_path / "dome.ply", "--size", "160x120"]
    assert run_cli([*args, "--turntable", "4", "-o", tmp_path / "spin.gif"], monkeypatch) == 0
    assert "wrote" in capsys.readouterr().err and (tmp_path / "spin.gif").stat().st_size > 0
    assert run_cli([*args, "--turntable", "4"], monkeypatch) == 2
    assert "go together" in capsys.readouterr().err
    with monkeypatch.context() as m:  # no codec at hand: one line that says how to get one
        m.setitem(sys.modules, "imageio_ffmpeg", None)
        assert run_cli([*args, "--turntable", "4", "-o", tmp_path / "spin.mp4"], monkeypatch) == 2
        err = capsys.readouterr().err
        assert "recon[video]" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
        assert not (tmp_path / "spin.mp4").exists()
    assert run_cli([*args, "--up", "w", "--screenshot", tmp_path / "a.png"], monkeypatch) == 2
    assert "--up must be" in capsys.readouterr().err
    assert run_cli([*args, "--up", "-x", "--screenshot", tmp_path / "a.png"], monkeypatch) == 0


def test_pick_at_the_image_centre_finds_the_near_surface():
    from recon.viewer.controls import pick_at

    s = scene()
    s.add_field(sphere_field(), slices=())
    s.add_cloud(Cloud(sphere_points(5000)))
    s.set_visible("cloud", False)
    s.reset_camera()
    s.image()
    out = pick_at(s, 0.5, 0.5)
    cam = np.asarray(s.plotter.camera.position)
    assert out is not None and abs(out["value"]) < 0.02  # on the surface
    assert np.linalg.norm(out["position"]) == pytest.approx(0.6, abs=0.02)
    assert np.linalg.norm(out["position"] - cam) < np.linalg.norm(cam)  # the near side
    assert out["to_data"] < 0.05
    again = pick_at(s, 0.5, 0.5)  # the marker left by the first pick is not what is picked
    assert np.linalg.norm(again["position"]) == pytest.approx(0.6, abs=0.02)
    assert pick_at(s, 0.02, 0.98) is None  # a corner: nothing there
    with pytest.raises(InputError, match="fractions in 0..1"):
        pick_at(s, 1.5, 0.5)
    s.close()
