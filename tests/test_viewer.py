"""The viewer, rendered offscreen: every layer, colourings, slices, level, CLI, and the web view in Chromium."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from recon import Cloud, InputError, SignedDistanceGrid

pv = pytest.importorskip("pyvista")

SIZE = (320, 240)
DATA = Path(__file__).resolve().parent / "data"
BACKGROUND = np.array([255, 255, 255])


@pytest.fixture(scope="module")
def offscreen_ok():
    """Skip the module when this machine cannot render offscreen (no EGL / OSMesa)."""
    code = (
        "import pyvista as pv; p = pv.Plotter(off_screen=True, window_size=(64, 64)); "
        "p.add_mesh(pv.Sphere()); img = p.screenshot(None, return_img=True); print(int(img.mean() < 250))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    if out.returncode != 0 or out.stdout.strip() != "1":
        pytest.skip(f"offscreen rendering unavailable here: {out.stderr.strip().splitlines()[-1:]}")


def sphere_field(r=0.6, n=48):
    ax = np.linspace(-1, 1, n)
    x, y, z = np.meshgrid(ax, ax, ax, indexing="ij")
    return SignedDistanceGrid((np.sqrt(x * x + y * y + z * z) - r).astype(np.float32), (-1, -1, -1), 2 / (n - 1))


def sphere_cloud(n=4000, r=0.6, seed=0, colors=True):
    g = np.random.default_rng(seed)
    p = g.normal(size=(n, 3))
    p = r * p / np.linalg.norm(p, axis=1, keepdims=True)
    c = ((p - p.min(0)) / np.ptp(p, 0) * 255).astype(np.uint8) if colors else None
    return Cloud(p, colors=c)


@pytest.fixture(scope="module")
def field():
    return sphere_field()


@pytest.fixture(scope="module")
def mesh(field):
    from recon.meshing.marching_cubes import extract_mesh

    return extract_mesh(field)


def scene(**kw):
    from recon.viewer import ViewerScene

    return ViewerScene(off_screen=True, window_size=SIZE, **kw)


def ink(img) -> float:
    """Fraction of pixels that are not the background."""
    return float((np.abs(img.astype(int) - BACKGROUND).sum(-1) > 30).mean())


def changed(a, b) -> float:
    return float((np.abs(a.astype(int) - b.astype(int)).sum(-1) > 30).mean())


# ---------------------------------------------------------------------- layers


@pytest.mark.parametrize("coloring", ["rgb", "plain", "distance"])
def test_cloud_colorings_render(offscreen_ok, mesh, coloring):
    s = scene()
    s.add_mesh(mesh)
    s.set_visible("mesh", False)
    s.add_cloud(sphere_cloud(), coloring=coloring)
    img = s.image()
    assert img.shape == (SIZE[1], SIZE[0], 3)
    assert ink(img) > 0.02
    assert (s.cloud_coloring == coloring)
    if coloring == "distance":
        assert "cloud: distance to surface [input units]" in s.plotter.scalar_bars
    s.close()


@pytest.mark.parametrize("coloring", ["plain", "input", "gt", "curvature"])
def test_mesh_colorings_render(offscreen_ok, field, mesh, coloring):
    from recon.meshing.marching_cubes import extract_mesh

    s = scene()
    s.add_field(field, slices=(), mesh=False)
    s.add_cloud(sphere_cloud())
    s.set_visible("cloud", False)
    s.add_ground_truth(extract_mesh(sphere_field(r=0.65)))
    s.add_mesh(mesh, coloring=coloring)
    img = s.image()
    assert ink(img) > 0.1
    if coloring != "plain":
        assert any("mesh" in t or "curvature" in t for t in s.plotter.scalar_bars.keys())
    s.close()


def test_mesh_and_no_mesh_differ(offscreen_ok, mesh):
    s = scene()
    s.add_mesh(mesh)
    with_mesh = s.image()
    s.toggle("mesh")
    without = s.image()
    assert ink(with_mesh) > 0.1
    assert ink(without) < 0.03  # only the overlay text is left
    assert changed(with_mesh, without) > 0.1
    s.close()


def test_slice_at_two_positions_differs_and_draws_the_level_line(offscreen_ok, field):
    s = scene()
    s.add_field(field, slices=("z",), mesh=False)
    assert "slice_z_level" in s.plotter.actors  # z = 0 cuts the sphere: a circle
    a = s.image()
    s.set_slice("z", 0.45)
    b = s.image()
    assert ink(a) > 0.2 and ink(b) > 0.2
    assert changed(a, b) > 0.01
    s.set_slice("z", 0.95)  # above the sphere: no level line
    assert "slice_z_level" not in s.plotter.actors
    s.toggle("slices")
    assert ink(s.image()) < 0.03  # only the overlay text is left
    s.close()


def test_ground_truth_layer_toggles(offscreen_ok, mesh):
    from recon.meshing.marching_cubes import extract_mesh

    s = scene()
    s.add_mesh(mesh)
    s.set_visible("mesh", False)
    s.add_ground_truth(extract_mesh(sphere_field(r=0.65)))
    hidden = s.image()
    s.toggle("gt")
    shown = s.image()
    assert changed(hidden, shown) > 0.1
    s.close()


# ---------------------------------------------------------------------- values behind the colours


def test_distances_and_curvature_have_the_analytic_values(offscreen_ok, field, mesh):
    from recon.meshing.marching_cubes import extract_mesh

    s = scene()
    s.add_field(field, slices=(), mesh=False)
    s.add_mesh(mesh)
    s.add_ground_truth(extract_mesh(sphere_field(r=0.65)))
    far = sphere_cloud(r=0.7, colors=False)
    s.add_cloud(far)
    np.testing.assert_allclose(s._mesh_gt_distance(), 0.05, atol=2e-3)
    np.testing.assert_allclose(s._cloud_distance(), 0.1, atol=2e-3)  # |f| of the field
    near = s._mesh_input_distance()
    assert 0.1 - 1e-3 < near.min() and near.max() < 0.15  # nearest input point is >= 0.1 away
    k = s._mesh_curvature()
    assert np.median(k) == pytest.approx(1 / 0.6, rel=0.05)  # mean curvature of a sphere
    assert s.metrics is not None and s.metrics["chamfer_l1"] > 0
    assert "vs ground truth: Chamfer-L1" in s.overlay_text()
    s.close()


def test_cloud_distance_without_field_uses_the_mesh(offscreen_ok, mesh):
    s = scene()
    s.add_mesh(mesh)
    s.add_cloud(sphere_cloud(r=0.7, colors=False), coloring="distance")
    np.testing.assert_allclose(s._cloud_distance(), 0.1, atol=2e-3)
    s.close()


def test_level_re_extracts_the_surface(offscreen_ok, field):
    s = scene()
    s.add_field(field, slices=())
    r0 = np.linalg.norm(s.mesh.vertices, axis=1).mean()
    s.set_level(0.1)
    r1 = np.linalg.norm(s.mesh.vertices, axis=1).mean()
    assert r0 == pytest.approx(0.6, abs=5e-3)
    assert r1 == pytest.approx(0.7, abs=5e-3)
    s.set_level(5.0)  # no surface there: said in the overlay, not raised
    assert s.mesh is None and "no surface at level 5" in s.overlay_text()
    s.close()


def test_large_cloud_is_decimated_with_a_note_and_seeded(offscreen_ok):
    from recon.viewer import ViewerConfig

    cloud = sphere_cloud(n=5000)
    a = scene(config=ViewerConfig(max_points=1000))
    a.add_cloud(cloud)
    b = scene(config=ViewerConfig(max_points=1000))
    b.add_cloud(cloud)
    assert len(a.cloud_points) == 1000
    np.testing.assert_array_equal(a.cloud_points, b.cloud_points)
    assert a.cloud_note == "cloud shown decimated: 1,000 of 5,000 points"
    assert a.cloud_note in a.overlay_text()
    a.close()
    b.close()


def test_cloud_under_a_shown_mesh_is_drawn_decimated_and_in_full_without_it(offscreen_ok, mesh):
    from recon.viewer import ViewerConfig

    cloud = sphere_cloud(n=5000)
    s = scene(config=ViewerConfig(max_points=3000, max_points_under_mesh=800))
    s.add_cloud(cloud)
    assert len(s.cloud_points) == 3000  # no mesh yet: max_points
    s.add_mesh(mesh)
    assert len(s.cloud_points) == 800 and "under the mesh" in s.overlay_text()
    s.image()  # the points drawn, as the renderer has them
    assert s.plotter.actors["cloud"].mapper.dataset.n_points == 800
    bounds = s.object_bounds().copy()
    s.set_visible("mesh", False)  # m: the mesh hidden, the cloud up to max_points again
    assert len(s.cloud_points) == 3000
    s.image()
    assert s.plotter.actors["cloud"].mapper.dataset.n_points == 3000
    np.testing.assert_array_equal(s.object_bounds(), bounds)  # the view's bounds do not move
    s.set_visible("mesh", True)
    assert len(s.cloud_points) == 800
    s.close()


def test_first_frame_has_a_legend_of_the_layers_drawn_and_their_units(offscreen_ok, field, mesh):
    from recon.viewer.load import ViewInputs, build_scene

    gt = mesh
    inputs = ViewInputs(cloud=sphere_cloud(), mesh=mesh, field=field, gt=gt)
    s = build_scene(inputs, off_screen=True, window_size=(640, 480), slices=("z",))
    labels = [label for label, _ in s.legend_entries()]
    assert labels == ["mesh: error vs the ground truth, top bar [input units]", "cloud: its own colours",
                      "slices: signed distance, right bar [input units]"]
    legend = s.plotter.legend
    assert legend is not None and legend.GetNumberOfEntries() == 3 and legend.GetVisibility()
    img = s.image().astype(int)
    h, w = img.shape[:2]
    x0, y0, bw, bh = s.legend_box()
    box = img[h - int((y0 + bh) * h): h - int(y0 * h), int(x0 * w): int((x0 + bw) * w)]
    assert (box.sum(-1) < 450).mean() > 0.01  # its text is in the picture
    s.set_visible("cloud", False)  # c: the cloud leaves the legend
    assert [label for label, _ in s.legend_entries()] == [labels[0], labels[2]]
    assert s.plotter.legend.GetNumberOfEntries() == 2
    s.set_mesh_coloring("curvature")
    assert s.legend_entries()[0][0] == "mesh: mean curvature, top bar [1 / input units]"
    s.close()


def test_unavailable_colorings_and_bad_options_are_named(offscreen_ok, mesh):
    s = scene()
    s.add_mesh(mesh)
    with pytest.raises(InputError, match="no ground truth is loaded"):
        s.set_mesh_coloring("gt")
    with pytest.raises(InputError, match="mesh colouring must be one of"):
        s.set_mesh_coloring("rainbow")
    s.add_cloud(sphere_cloud(colors=False))
    with pytest.raises(InputError, match="the cloud has no colours"):
        s.set_cloud_coloring("rgb")
    with pytest.raises(InputError, match="no field loaded"):
        s.set_slice("z", 0.0)
    with pytest.raises(InputError, match="layer must be one of"):
        s.toggle("everything")
    s.close()


def test_help_lists_every_key(offscreen_ok, mesh):
    from recon.viewer import KEYS

    s = scene()
    s.add_mesh(mesh)
    s.toggle_help()
    assert "help" in s.plotter.actors
    for key in KEYS:
        assert f"{key}  " in s.help_text()
    s.toggle_help()
    assert "help" not in s.plotter.actors
    s.close()


def test_sphere_traced_image_switch(offscreen_ok, field):
    pytest.importorskip("recon.render.trace", reason="the renderer is not in this tree")
    s = scene()
    s.add_field(field, slices=())
    from recon.viewer.controls import toggle_traced

    scene_img = s.image()
    toggle_traced(s)
    traced = s.image()
    assert s.traced and ink(traced) > 0.1
    assert changed(scene_img, traced) > 0.01  # the traced shading differs from VTK's
    toggle_traced(s)
    assert not s.traced
    s.close()


# ---------------------------------------------------------------------- image regression


def canonical_scene():
    """One fixed scene: mesh coloured by distance to a ground truth, cloud, one slice."""
    from recon.meshing.marching_cubes import extract_mesh

    s = scene()
    f = sphere_field()
    s.add_field(f, slices=("x",), mesh=True)
    s.add_ground_truth(extract_mesh(sphere_field(r=0.63)))
    s.add_cloud(sphere_cloud(n=2000))
    s.plotter.camera_position = [(3.0, 2.0, 2.5), (0.0, 0.0, 0.0), (0.0, 0.0, 1.0)]
    return s


def test_canonical_scene_matches_the_reference_image(offscreen_ok):
    from PIL import Image

    ref_path = DATA / "viewer_canonical.png"
    s = canonical_scene()
    img = s.image()
    s.close()
    if os.environ.get("RECON_UPDATE_IMAGES") or not ref_path.exists():
        ref_path.parent.mkdir(exist_ok=True)
        Image.fromarray(img).save(ref_path)
        if not os.environ.get("RECON_UPDATE_IMAGES"):
            pytest.skip(f"wrote a new reference image {ref_path}; check it and commit it")
    ref = np.asarray(Image.open(ref_path).convert("RGB"))
    assert ref.shape == img.shape
    # Tolerance: drivers differ in anti-aliasing and point rasterisation, not in the scene.
    assert np.abs(img.astype(int) - ref.astype(int)).mean() < 4.0
    assert changed(img, ref) < 0.03


# ---------------------------------------------------------------------- files and CLI


@pytest.fixture(scope="module")
def files(tmp_path_factory, mesh):
    from recon.io import write_cloud, write_mesh
    from recon.meshing.marching_cubes import extract_mesh

    d = tmp_path_factory.mktemp("view")
    sphere_field().save(d / "s.field.npz")
    write_cloud(sphere_cloud(), d / "s.ply")
    write_mesh(mesh, d / "s.mesh.ply")
    write_mesh(extract_mesh(sphere_field(r=0.62)), d / "gt.ply")
    np.savez(d / "pts.npz", points=sphere_cloud().points)
    return d


def test_file_kind_reads_contents_not_names(files):
    from recon.viewer.load import file_kind

    assert file_kind(files / "s.ply") == "cloud"
    assert file_kind(files / "s.mesh.ply") == "mesh"
    assert file_kind(files / "s.field.npz") == "field"
    assert file_kind(files / "pts.npz") == "cloud"


def run_cli(argv, monkeypatch, display=None):
    from recon.cli.main import run

    for var in ("DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(var, raising=False)
    if display:
        monkeypatch.setenv("DISPLAY", display)
    return run(["view", *map(str, argv)])


def test_cli_without_display_says_what_to_use(files, monkeypatch, capsys):
    code = run_cli([files / "s.mesh.ply"], monkeypatch)
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().count("\n") == 0
    assert "no display" in err and "--screenshot" in err and "--web" in err


def test_cli_screenshot_of_every_input_kind(offscreen_ok, files, monkeypatch, capsys, tmp_path):
    from PIL import Image

    out = tmp_path / "shot.png"
    args = [files / "s.field.npz", "--cloud", files / "s.ply", "--gt", files / "gt.ply",
            "--screenshot", out, "--size", "320x240"]
    assert run_cli(args, monkeypatch) == 0, capsys.readouterr().err
    img = np.asarray(Image.open(out).convert("RGB"))
    assert img.shape == (240, 320, 3) and ink(img) > 0.1
    out2 = tmp_path / "cloud_mesh.png"
    assert run_cli([files / "s.ply", files / "s.mesh.ply", "--screenshot", out2, "--size", "320x240"], monkeypatch) == 0
    assert ink(np.asarray(Image.open(out2).convert("RGB"))) > 0.1


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--screenshot", "x.jpg"], "unknown extension '.jpg'"),
        (["--screenshot", "x.png", "--web"], "alternatives"),
        (["--size", "big"], "--size must be WIDTHxHEIGHT"),
        (["--slices", "xw", "--screenshot", "x.png"], "--slices takes the letters"),
        (["--mesh-color", "gt", "--screenshot", "x.png"], "no ground truth is loaded"),
    ],
)
def test_cli_bad_options(offscreen_ok, files, monkeypatch, capsys, tmp_path, extra, message):
    monkeypatch.chdir(tmp_path)
    code = run_cli([files / "s.mesh.ply", *extra], monkeypatch, display=":99")
    assert code == 2
    assert message in capsys.readouterr().err


def test_cli_refuses_to_overwrite_an_input_and_two_meshes(files, monkeypatch, capsys):
    mesh_png = files / "s.mesh.ply"
    assert run_cli([files / "s.ply", "--screenshot", files / "s.ply"], monkeypatch) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert run_cli([mesh_png, files / "gt.ply", "--screenshot", files / "two.png"], monkeypatch) == 2
    assert "a second mesh" in capsys.readouterr().err


def test_interactive_controls_build_and_keys_run(offscreen_ok, field, tmp_path, monkeypatch):
    """The window's controls (keys, slice plane widget, iso-level slider) set up offscreen."""
    from recon.viewer import KEYS

    monkeypatch.chdir(tmp_path)
    s = scene()
    s.add_field(field, slices=("z",))
    s.add_cloud(sphere_cloud())
    from recon.viewer.controls import enable_controls

    enable_controls(s)
    widgets = getattr(s.plotter, "widgets", s.plotter)  # pyvista >= 0.47 groups them
    assert len(widgets.plane_widgets) == 1
    assert len(widgets.slider_widgets) == 1
    events = s.plotter.iren._key_press_event_callbacks
    for key in KEYS:
        assert key in events, key
    for key in ("c", "k", "n", "o", "l"):
        for callback in events[key]:
            callback()
    assert not s.visible["cloud"]
    assert s.clip is not None and len(widgets.plane_widgets) == 2  # the clip plane and its handle
    for callback in events["l"]:
        callback()
    assert s.clip is None
    assert (tmp_path / "recon-view-1.png").exists()
    assert s.mesh_coloring == "input"  # "n" moved on from plain
    s.set_level(0.1)
    assert ink(s.image()) > 0.05
    s.close()
