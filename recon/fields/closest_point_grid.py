"""A closest-surface-point field sampled on a grid (the kind a CSP fitter produces).

Each node stores the offset from itself to its closest surface point; offsets are
trilinearly interpolated, and the closest point of x is x + offset(x). Interpolating the
offset vector, rather than the distance, keeps the field exact across a planar surface
(the offset changes sign there), so open surfaces come out sharp where an interpolated
unsigned distance never reaches zero.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recon.errors import InputError
from recon.fields.base import save_field
from recon.geometry import check_points


class ClosestPointGrid:
    """Closest-point offsets on a regular grid; an unsigned field.

    offsets    : (X, Y, Z, 3) float32, input units: closest surface point minus the node
    origin     : (3,) float64 position of node (0, 0, 0), input units
    voxel_size : float, input units
    """

    def __init__(self, offsets, origin, voxel_size: float, *, kind: str = "unsigned", level: float = 0.0,
                 normalization=None, params: dict | None = None):
        off = np.asarray(offsets)
        if off.ndim != 4 or off.shape[-1] != 3 or min(off.shape[:3]) < 2:
            raise InputError(f"offsets must be (X, Y, Z, 3) with every side >= 2, got {off.shape}")
        if kind != "unsigned" or level != 0.0:
            raise InputError(f"a closest-point grid is an unsigned field at level 0, got kind={kind!r} level={level}")
        if not (np.isfinite(voxel_size) and voxel_size > 0):
            raise InputError(f"voxel_size must be a positive number, got {voxel_size}")
        self.offsets = np.ascontiguousarray(off, dtype=np.float32)
        self.origin = np.asarray(origin, dtype=np.float64).reshape(3)
        self.voxel_size = float(voxel_size)
        self.kind = "unsigned"
        self.level = 0.0
        self.normalization = normalization
        self.params = dict(params or {})

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.offsets.shape[:3])

    @property
    def surface_tolerance(self) -> float:
        """A baked fitted field's surface tolerance (input units; 0 for exact fields): a ray
        this near its surface counts as on it."""
        return float(self.params.get("surface_tolerance", 0.0))

    @property
    def bounds(self) -> np.ndarray:
        hi = self.origin + (np.array(self.shape) - 1) * self.voxel_size
        return np.stack([self.origin, hi])

    def _offset(self, x) -> tuple[np.ndarray, np.ndarray]:
        from recon.kernels.trilinear import trilinear_value

        p = check_points(x)
        b = self.bounds
        q = np.clip(p, b[0], b[1])
        off = np.stack([trilinear_value(np.ascontiguousarray(self.offsets[..., a]), self.origin, self.voxel_size, q)
                        for a in range(3)], axis=1).astype(np.float64)
        return p, q + off  # outside the box: the closest point of the nearest box point

    def closest_point(self, x) -> np.ndarray:
        """(N, 3) -> (N, 3) float64 closest surface points."""
        return self._offset(x)[1]

    def value(self, x) -> np.ndarray:
        """(N, 3) -> (N,) float32 distance to the surface."""
        p, c = self._offset(x)
        return np.linalg.norm(p - c, axis=1).astype(np.float32)

    def gradient(self, x) -> np.ndarray:
        """(N, 3) -> (N, 3) float32 unit vectors pointing away from the closest point."""
        p, c = self._offset(x)
        v = p - c
        n = np.linalg.norm(v, axis=1, keepdims=True)
        return (v / np.where(n > 0, n, 1.0)).astype(np.float32)

    def _arrays(self) -> dict:
        return {"offsets": self.offsets, "origin": self.origin, "voxel_size": np.float64(self.voxel_size)}

    @classmethod
    def _from_arrays(cls, arrays: dict, **common) -> "ClosestPointGrid":
        return cls(arrays["offsets"], arrays["origin"], float(arrays["voxel_size"]), **common)

    def save(self, path) -> Path:
        return save_field(self, path)

    def __repr__(self) -> str:
        return f"ClosestPointGrid(shape={self.shape}, voxel_size={self.voxel_size:.6g}, bounds={self.bounds.tolist()})"
