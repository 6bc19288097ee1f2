"""Scalar fields sampled on a regular grid and trilinearly interpolated: SignedDistanceGrid
(what GridPull fits) and the shared ScalarGrid it builds on (recon.fields.occupancy_network's
OccupancyGrid too)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recon.cloud import Normalization
from recon.errors import InputError
from recon.fields.base import FieldKind, save_field
from recon.geometry import check_points


class ScalarGrid:
    """Scalar values at the nodes of a regular grid, trilinearly interpolated in between.

    values     : (X, Y, Z) float32; node (i, j, k) sits at ``origin + (i, j, k) * voxel_size``
    origin     : (3,) float64, input units
    voxel_size : float, input units
    kind, level, normalization (the fitter's transform, kept for provenance, or None), params
    (JSON-serialisable, or {}). Subclasses name the kinds they hold (``KINDS``) and how a
    point reaches their level (``closest_point``).
    """

    KINDS: tuple = ()
    DEFAULT_LEVEL = 0.0

    def __init__(self, values: np.ndarray, origin, voxel_size: float, *, kind: FieldKind | None = None,
                 level: float | None = None, normalization: Normalization | None = None,
                 params: dict | None = None):
        values = np.asarray(values)
        kind = self.KINDS[0] if kind is None else kind
        if values.ndim != 3 or min(values.shape) < 2:
            raise InputError(f"values must be (X, Y, Z) with every side >= 2, got {values.shape}")
        if kind not in self.KINDS:
            raise InputError(f"kind must be {' or '.join(map(repr, self.KINDS))} for a {type(self).__name__}, got {kind!r}")
        if not (np.isfinite(voxel_size) and voxel_size > 0):
            raise InputError(f"voxel_size must be a positive number, got {voxel_size}")
        self.values = np.ascontiguousarray(values, dtype=np.float32)
        self.origin = np.asarray(origin, dtype=np.float64).reshape(3)
        self.voxel_size = float(voxel_size)
        self.kind = kind
        self.level = float(self.DEFAULT_LEVEL if level is None else level)
        self.normalization = normalization
        self.params = dict(params or {})

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.values.shape)

    @property
    def bounds(self) -> np.ndarray:
        hi = self.origin + (np.array(self.values.shape) - 1) * self.voxel_size
        return np.stack([self.origin, hi])

    def value(self, x) -> np.ndarray:
        from recon.kernels.trilinear import trilinear_value

        return trilinear_value(self.values, self.origin, self.voxel_size, check_points(x))

    def gradient(self, x) -> np.ndarray:
        from recon.kernels.trilinear import trilinear_value_grad

        return trilinear_value_grad(self.values, self.origin, self.voxel_size, check_points(x))[1]

    def _arrays(self) -> dict:
        return {"values": self.values, "origin": self.origin, "voxel_size": np.float64(self.voxel_size)}

    @classmethod
    def _from_arrays(cls, arrays: dict, **common):
        return cls(arrays["values"], arrays["origin"], float(arrays["voxel_size"]), **common)

    def save(self, path) -> Path:
        return save_field(self, path)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(kind={self.kind!r}, shape={self.shape}, "
                f"voxel_size={self.voxel_size:.6g}, bounds={self.bounds.tolist()})")


class SignedDistanceGrid(ScalarGrid):
    """A distance field sampled on a regular grid (see :class:`ScalarGrid` for the arrays):
    kind "signed" (default) or "unsigned", values in input units.

    Outside the grid the value is the value at the nearest grid point plus the distance
    to the grid's box, so it never creates a surface there.
    """

    KINDS = ("signed", "unsigned")

    def closest_point(self, x, *, max_steps: int = 64, tol: float = 1e-4) -> np.ndarray:
        """Project by ``x - (f - level) * grad / |grad|`` until ``|f - level|`` is below
        ``tol`` voxels (or ``max_steps``). Off the band the value is a lower bound of the
        distance, so far points take several steps; none overshoots."""
        from recon.kernels.trilinear import trilinear_value_grad

        p = check_points(x).copy()
        active = np.arange(len(p))
        for _ in range(max_steps):
            f, g = trilinear_value_grad(self.values, self.origin, self.voxel_size, p[active])
            d = f - self.level
            norm = np.linalg.norm(g, axis=1)
            norm[norm < 1e-12] = 1.0
            p[active] -= (d / norm)[:, None] * g
            active = active[np.abs(d) > tol * self.voxel_size]
            if not len(active):
                break
        return p
