"""The open-surface mesher (recon.meshing.unsigned) on a noisy closest-point field with a
known surface: a tilted square sheet whose closest points jitter about it the way a noisy
fit's do. The sheet passes close to whole rows of grid nodes, and its mesh must still come
out whole: one boundary loop (its rim) and the sheet's area."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

SLOPE = np.array([0.31, 0.17])  # z = SLOPE . (x, y) + 0.04 sin(6 x) on the square |x|, |y| <= 0.5
HALF = 0.5
RESOLUTION = 40


class JitteryTerrain:
    """Unsigned field of the sheet whose closest points scatter along its normal by up to
    ``jitter`` (input units), differently at every query point (deterministic in the point)."""

    kind = "unsigned"

    def __init__(self, jitter: float, spacing: float):
        self.bounds = np.array([[-0.6, -0.6, -0.45], [0.6, 0.6, 0.45]])
        self.jitter = jitter
        # the fitter's noise estimate: the jitter's spread in point spacings
        self.params = {"clean": False, "surface_decided": "open", "spacing_median": spacing,
                       "noise_ratio": jitter / np.sqrt(3.0) / spacing}

    @staticmethod
    def height(xy):
        return xy @ SLOPE + 0.04 * np.sin(6.0 * xy[:, 0])

    def closest_point(self, x):
        x = np.asarray(x, np.float64)
        xy = np.clip(x[:, :2], -HALF, HALF)
        for _ in range(8):  # Gauss-Newton on |(xy, z(xy)) - x|^2, clamped to the square
            z = self.height(xy)
            gx = SLOPE[0] + 0.24 * np.cos(6.0 * xy[:, 0])
            g = np.stack([gx, np.full(len(xy), SLOPE[1])], axis=1)
            r = z - x[:, 2]
            step = (xy - x[:, :2] + r[:, None] * g) / (1.0 + (g * g).sum(axis=1))[:, None]
            xy = np.clip(xy - step, -HALF, HALF)
        foot = np.column_stack([xy, self.height(xy)])
        gx = SLOPE[0] + 0.24 * np.cos(6.0 * xy[:, 0])
        normal = np.column_stack([-gx, np.full(len(xy), -SLOPE[1]), np.ones(len(xy))])
        normal /= np.linalg.norm(normal, axis=1, keepdims=True)
        # a hash of the query point: jitter that differs from node to node, like a noisy fit's
        u = np.sin(x @ np.array([127.1, 311.7, 74.7]) * 43.758) * 43758.5453
        u = 2.0 * (u - np.floor(u)) - 1.0
        return foot + (self.jitter * u)[:, None] * normal


def _mesh(field):
    from recon.meshing.unsigned import extract_unsigned_mesh

    return extract_unsigned_mesh(field, resolution=RESOLUTION)


def _area(m):
    v, f = m.vertices, m.faces
    return 0.5 * np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1).sum()


def _true_area():
    s = np.linspace(-HALF, HALF, 801)
    X, Y = np.meshgrid(s, s, indexing="ij")
    gx = SLOPE[0] + 0.24 * np.cos(6.0 * X)
    integrand = np.sqrt(1.0 + gx**2 + SLOPE[1] ** 2)
    return np.trapezoid(np.trapezoid(integrand, s, axis=1), s)


@pytest.fixture
def field():
    h = 1.2 / (RESOLUTION - 1)
    return JitteryTerrain(jitter=0.1 * h, spacing=h)


def test_noisy_sheet_meshes_without_holes(field, monkeypatch):
    import recon.meshing.unsigned as unsigned
    from recon.meshing.cleanup import boundary_loops

    m = _mesh(field)
    assert m.surface == "open"
    assert len(boundary_loops(m.faces)) == 1  # the rim, no holes inside
    assert 0.97 * _true_area() < _area(m) < 1.02 * _true_area()
    # no lid or skirt past the rim (the feet scatter along the normal, so a hair past it)
    assert np.abs(m.vertices[:, :2]).max() < HALF + field.jitter
    # whole already as a net of the crossed edges, before small holes are filled
    monkeypatch.setattr(unsigned, "TUNABLES", dataclasses.replace(unsigned.TUNABLES, open_hole_edges=0))
    assert len(boundary_loops(_mesh(field).faces)) == 1


def test_without_the_jitter_allowance_the_same_sheet_has_holes(field, monkeypatch):
    import recon.meshing.unsigned as unsigned
    from recon.meshing.cleanup import boundary_loops

    monkeypatch.setattr(unsigned, "TUNABLES",
                        dataclasses.replace(unsigned.TUNABLES, feet_jitter_noise=0.0, open_hole_edges=0))
    m = _mesh(field)
    assert len(boundary_loops(m.faces)) > 20
    assert _area(m) < 0.9 * _true_area()


def test_clean_field_gets_no_allowance(field):
    from recon.meshing.unsigned import _feet_jitter

    field.params["noise_ratio"] = 0.0
    assert _feet_jitter(field, 0.03) == 0.0
    field.params["noise_ratio"] = 10.0  # capped at a share of a voxel
    assert _feet_jitter(field, 0.03) == pytest.approx(0.3 * 0.03)
