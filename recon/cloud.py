"""The point cloud every fitter takes, and the unit-cube normalisation."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from recon.errors import InputError


@dataclass(frozen=True)
class Normalization:
    """Uniform similarity taking input units to the fitting cube: ``u = (x - center) * scale``.

    center : (3,) float64, input units
    scale  : float, 1 / input units. Uniform, so a distance ``d_u`` in the cube is
             ``d_u / scale`` in input units, and normals are unchanged.
    """

    center: np.ndarray
    scale: float

    @classmethod
    def fit_unit_cube(cls, points: np.ndarray, *, extent: float = 1.0) -> "Normalization":
        """Centre the bounding box of ``points`` (N, 3) at 0; its longest side becomes ``extent``."""
        lo = points.min(axis=0)
        hi = points.max(axis=0)
        side = float((hi - lo).max())
        if not np.isfinite(side) or side <= 0.0:
            raise InputError("all points are identical: there is no surface to fit")
        return cls(center=((lo + hi) / 2.0).astype(np.float64), scale=extent / side)

    def to_unit(self, x: np.ndarray) -> np.ndarray:
        """(N, 3) input units -> (N, 3) float32 cube units."""
        return ((np.asarray(x, dtype=np.float64) - self.center) * self.scale).astype(np.float32)

    def to_world(self, u: np.ndarray) -> np.ndarray:
        """(N, 3) cube units -> (N, 3) float64 input units."""
        return np.asarray(u, dtype=np.float64) / self.scale + self.center


@dataclass
class Cloud:
    """A point cloud in the user's own units and frame.

    points  : (N, 3) float64, input units. float64 keeps georeferenced coordinates
              (LiDAR in UTM metres) exact; fitters work in float32 after normalising.
    normals : (N, 3) float32 unit vectors, or None
    colors  : (N, 3) uint8 RGB, or None
    source  : where it came from (a path or a description), for messages and metadata
    """

    points: np.ndarray
    normals: np.ndarray | None = None
    colors: np.ndarray | None = None
    source: str = "<array>"
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        pts = np.asarray(self.points)
        if pts.ndim != 2 or pts.shape[1] != 3:
            raise InputError(f"points must be (N, 3), got {pts.shape}")
        if not np.issubdtype(pts.dtype, np.floating) and not np.issubdtype(pts.dtype, np.integer):
            raise TypeError(f"points must be numeric, got dtype {pts.dtype}")
        self.points = np.ascontiguousarray(pts, dtype=np.float64)
        n = len(self.points)
        if self.normals is not None:
            nrm = np.asarray(self.normals, dtype=np.float32)
            if nrm.shape != (n, 3):
                raise InputError(f"normals must be ({n}, 3) like the points, got {nrm.shape}")
            self.normals = np.ascontiguousarray(nrm)
        if self.colors is not None:
            col = np.asarray(self.colors)
            if col.shape != (n, 3):
                raise InputError(f"colors must be ({n}, 3) like the points, got {col.shape}")
            self.colors = np.ascontiguousarray(col, dtype=np.uint8)

    def __len__(self) -> int:
        return len(self.points)

    def subset(self, mask_or_index: np.ndarray) -> "Cloud":
        """A new Cloud with the rows selected by a boolean mask or an index array.

        Per-point arrays in ``extra`` (first dimension N) are selected too; other entries are copied.
        """
        n = len(self.points)
        return Cloud(
            points=self.points[mask_or_index],
            normals=None if self.normals is None else self.normals[mask_or_index],
            colors=None if self.colors is None else self.colors[mask_or_index],
            source=self.source,
            extra={
                k: (v[mask_or_index] if isinstance(v, np.ndarray) and v.ndim >= 1 and len(v) == n else v)
                for k, v in self.extra.items()
            },
        )

    def bounds(self) -> np.ndarray:
        """(2, 3) float64: min and max corner, input units."""
        return np.stack([self.points.min(axis=0), self.points.max(axis=0)])
