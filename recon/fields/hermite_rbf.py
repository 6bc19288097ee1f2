"""HermiteRBFField: an implicit surface through every sample, from Hermite radial basis
functions with the triharmonic kernel phi(r) = r^3 (fitted by ``recon.fitters.hrbf``).

f(u) = sum_j alpha_j phi(u - c_j) - beta_j . grad phi(u - c_j) + a . u + b in the fitting
cube (u = normalised input coordinates); f = 0 at every centre, with the fitted unit
normal as its gradient there. f is not a distance; :meth:`value` divides it by its
gradient's length, which is the signed distance to first order near the surface (exact in
sign everywhere), in input units.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recon.cloud import Normalization
from recon.errors import InputError
from recon.fields.base import save_field
from recon.geometry import check_points


STEP_CAP = 0.005
"Largest |value| as a share of the box's diagonal."


class HermiteRBFField:
    """centers (N, 3) float64 cube units; alpha (N,) and beta (N, 3) float64 weights; poly
    (4,) float64 (b, a_x, a_y, a_z); box (2, 3) float64 input units: where it is defined
    (the data's box with a margin; outside, every point is outside); normalization: input
    units <-> cube. Negative inside."""

    kind = "signed"

    def __init__(self, centers, alpha, beta, poly, box, *, normalization: Normalization, kind: str = "signed",
                 level: float = 0.0, params: dict | None = None):
        self.centers = np.ascontiguousarray(centers, np.float64)
        n = len(self.centers)
        self.alpha = np.ascontiguousarray(alpha, np.float64).reshape(n)
        self.beta = np.ascontiguousarray(beta, np.float64).reshape(n, 3)
        self.poly = np.ascontiguousarray(poly, np.float64).reshape(4)
        self.box = np.asarray(box, np.float64).reshape(2, 3)
        if kind != "signed":
            raise InputError(f"a Hermite RBF field is signed, got kind {kind!r}")
        if normalization is None:
            raise InputError("a Hermite RBF field needs the normalisation it was fitted in")
        self.level = float(level)
        self.normalization = normalization
        self.params = dict(params or {})

    @property
    def bounds(self) -> np.ndarray:
        return self.box.copy()

    def _unit(self, x) -> np.ndarray:
        return (check_points(x) - self.normalization.center) * self.normalization.scale

    def _value_grad_unit(self, u: np.ndarray):
        from recon.kernels.hermite_rbf_cpu import hermite_rbf_cpu

        f = np.empty(len(u))
        g = np.empty((len(u), 3))
        if len(u):
            hermite_rbf_cpu(self.centers, self.alpha, self.beta, self.poly, np.ascontiguousarray(u), f, g)
        return f, g

    def value(self, x) -> np.ndarray:
        """(N, 3) input units -> (N,) float32: f / |grad f| in input units (the signed
        distance near the surface), its size capped at ``STEP_CAP`` of the box's diagonal
        (farther off, f / |grad f| can overstate the distance, and a sphere tracer stepping
        by it would pass through thin parts); points outside ``bounds`` get a positive value."""
        p = check_points(x)
        f, g = self._value_grad_unit(self._unit(p))
        d = f / np.maximum(np.linalg.norm(g, axis=1), 1e-12) / self.normalization.scale
        cap = STEP_CAP * float(np.linalg.norm(self.box[1] - self.box[0]))
        d = np.clip(d, -cap, cap)
        outside = np.any((p < self.box[0]) | (p > self.box[1]), axis=1)
        d[outside] = np.abs(d[outside])
        return d.astype(np.float32)

    def gradient(self, x) -> np.ndarray:
        """(N, 3) input units -> (N, 3) float32 unit vectors along grad f (the value's
        gradient at the surface)."""
        _, g = self._value_grad_unit(self._unit(x))
        return (g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)).astype(np.float32)

    def closest_point(self, x, *, max_steps: int = 32, tol: float = 1e-7) -> np.ndarray:
        """(N, 3) input units -> (N, 3) float64: Newton steps u -= f grad f / |grad f|^2."""
        u = self._unit(x).copy()
        active = np.arange(len(u))
        for _ in range(max_steps):
            f, g = self._value_grad_unit(u[active])
            u[active] -= (f / np.maximum(np.einsum("ij,ij->i", g, g), 1e-24))[:, None] * g
            active = active[np.abs(f) > tol]
            if not len(active):
                break
        return self.normalization.to_world(u)

    def bake(self, resolution: int = 128, *, bounds=None, sparse: bool = True):
        """The value on a grid of ``resolution`` nodes along the longest side of ``bounds``
        (default: the field's), clipped to 3 voxels either side so that far from the
        surface it stays a lower bound of the distance (what sphere tracing needs): a
        :class:`~recon.fields.grid.SignedDistanceGrid` the numba/CUDA kernels read."""
        from recon.fields.analytic import grid_nodes
        from recon.fields.grid import SignedDistanceGrid

        if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) or resolution < 2:
            raise InputError(f"bake resolution must be an integer >= 2, got {resolution!r}")
        box = self.box if bounds is None else np.asarray(bounds, np.float64).reshape(2, 3)
        nodes, shape, h = grid_nodes(box, int(resolution))
        values = np.clip(self.value(nodes), -3.0 * h, 3.0 * h).reshape(shape)
        return SignedDistanceGrid(values, box[0], h, normalization=self.normalization,
                                  params={**self.params, "baked_from": "HermiteRBFField"})

    def _arrays(self) -> dict:
        return {"centers": self.centers, "alpha": self.alpha, "beta": self.beta, "poly": self.poly, "box": self.box}

    @classmethod
    def _from_arrays(cls, arrays: dict, **common) -> "HermiteRBFField":
        return cls(arrays["centers"], arrays["alpha"], arrays["beta"], arrays["poly"], arrays["box"], **common)

    def save(self, path) -> Path:
        return save_field(self, path)

    def __repr__(self) -> str:
        return f"HermiteRBFField(centers={len(self.centers)}, bounds={self.box.tolist()})"
