"""Degenerate geometry: flat and collinear clouds are refused before a closed-surface fit,
with the measurement in the message; real thin objects and height fields are not."""

from __future__ import annotations

import numpy as np
import pytest

from recon.cloud import Cloud
from recon.errors import InputError
from recon.points.shape_checks import MIN_THICKNESS_SPACINGS, check_encloses_volume, measure_shape


def flat_square(n_side: int = 100, *, tilt: bool = True, noise: float = 0.0) -> np.ndarray:
    ax = np.linspace(-1.0, 1.0, n_side)
    x, y = np.meshgrid(ax, ax)
    pts = np.stack([x.ravel(), y.ravel(), np.zeros(x.size)], axis=1)
    pts[:, 2] += noise * (2.0 / (n_side - 1)) * np.random.default_rng(0).standard_normal(len(pts))
    if tilt:  # not aligned with the axes: the measure must find the plane itself
        c, s = np.cos(0.7), np.sin(0.7)
        pts = pts @ np.array([[1, 0, 0], [0, c, -s], [0, s, c]]) @ np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return pts * 37.0 + 1000.0  # scale-free: any units, any offset


def sphere(n: int = 2000, thickness: float = 1.0) -> np.ndarray:
    d = np.random.default_rng(1).normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return d * np.array([1.0, 1.0, thickness])


def test_a_flat_square_is_measured_flat_and_refused_with_advice():
    pts = flat_square()
    m = measure_shape(pts)
    assert m.thickness_spacings < 1e-6 and m.width_spacings > 50
    with pytest.raises(InputError) as info:
        check_encloses_volume(pts, method="gridpull", source="square.ply")
    message = str(info.value)
    assert message.startswith("square.ply: the points are flat (thickness 0.00 point spacings off their plane")
    assert "--method csp" in message


def test_a_line_is_refused_as_a_line():
    t = np.linspace(0.0, 1.0, 500)
    with pytest.raises(InputError, match="the points lie on a line"):
        check_encloses_volume(np.c_[t, 2 * t, 3 * t], method="gridpull")


def test_thin_closed_shapes_and_a_noisy_but_thick_cloud_pass():
    for thickness in (1.0, 0.2):
        m = check_encloses_volume(sphere(thickness=thickness), method="gridpull")
        assert m.thickness_spacings > MIN_THICKNESS_SPACINGS
    # a flat square whose noise is several spacings thick is not a plane any more
    assert measure_shape(flat_square(60, noise=3.0)).thickness_spacings > MIN_THICKNESS_SPACINGS


def test_the_measure_ignores_a_few_stray_points():
    pts = flat_square()
    stray = np.random.default_rng(2).uniform(pts.min(0), pts.max(0), size=(20, 3))
    assert measure_shape(np.vstack([pts, stray])).thickness_spacings < MIN_THICKNESS_SPACINGS


def test_fit_refuses_a_flat_square_for_gridpull_before_fitting(monkeypatch):
    import recon.fitters as fitters

    spec = fitters.get_fitter("gridpull")
    assert spec.needs_volume
    called = []
    monkeypatch.setitem(fitters._REGISTRY, "gridpull", fitters.FitterSpec(
        spec.name, spec.config_cls, lambda *a, **k: called.append(1), spec.description, needs_volume=True))
    with pytest.raises(InputError, match="flat"):
        fitters.fit(Cloud(flat_square(), source="square.ply"), "gridpull")
    assert called == []
    fitters.fit(Cloud(sphere(), source="ball.ply"), "gridpull")
    assert called == [1]
    assert not fitters.get_fitter("csp").needs_volume
