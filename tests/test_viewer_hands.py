"""The viewer's first look (up axis, camera, point size, slices cut to the object), every field
kind, picking, clipping, the iso-level passes, turntables, and the web view's access rules."""

from __future__ import annotations

import numpy as np
import pytest

from recon import InputError, SignedDistanceGrid
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
