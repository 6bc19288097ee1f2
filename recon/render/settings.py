"""The march's settings and the quantities derived from them, shared by the kernel path
(:mod:`recon.render.trace`) and the NumPy march (:mod:`recon.render.march`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from recon.errors import InputError

NORMAL_PROBE_TOLERANCES = 12.0
"Fitted fields (a surface_tolerance): read normals this many tolerances off the surface."
STATUS_MISS = 0
STATUS_HIT = 1
STATUS_NOT_CONVERGED = 2


@dataclass(frozen=True)
class TraceSettings:
    """Tolerances and tunables of the march, in one place (distances in input units)."""

    max_steps: int | None = None
    "Step budget per ray; None: 256 for distance fields, 2048 for occupancy."
    hit_dist: float | None = None
    "Absolute hit distance; None: rel_hit_dist x the bounds' diagonal."
    rel_hit_dist: float = 1e-6
    "Hit distance relative to the diagonal of the field's bounds (used when hit_dist is None)."
    miss_dist: float | None = None
    "Rays end this far from the eye; None: rel_miss_dist, or the field's bounds alone."
    rel_miss_dist: float | None = None
    "miss_dist relative to the bounds' diagonal (used when miss_dist is None)."
    step_scale: float = 1.0
    "Signed fields: step = step_scale x value (lower it for fields whose gradient exceeds 1)."
    safety: float = 0.9
    "Unsigned / closest-point fields: step = safety x distance, below 1 so the march never lands on the surface."
    hit_pixels: float = 0.5
    "Unsigned / closest-point fields: a hit is a distance under this many pixel footprints."
    min_step_pixels: float = 0.25
    "Signed / occupancy fields: the smallest step, in pixel footprints at the current depth."
    bisect: int = 12
    "Root-refinement iterations after a sign change (Illinois false position in the kernels, bisection in NumPy)."
    refine: int = 3
    "Unsigned / closest-point fields: tangent-plane steps after a hit (scalar unsigned grids: 1)."
    occupancy_step: float | None = None
    "Occupancy fields: step length; None: 0.5 voxel on a grid, 1/1024 of the diagonal otherwise."
    unsigned_grid_floor: float = 1.0
    "Scalar unsigned grids: hit threshold never below this many voxels (their interpolant never reaches 0)."
    normal_eps: float = 0.5
    "Grid normals by central differences of this half-width, in voxels."
    min_cos: float = 0.05
    "Tangent-plane steps use max(|cos(ray, normal)|, min_cos), so grazing rays stay bounded."
    beam: bool = True
    "Grid kernels: first cone-march one ray per 8 x 8 pixel tile and start the tile's rays where it stopped (skips empty space; distance fields only)."
    residual_pixels: float = 0.1
    "Unsigned / closest-point fields: after refinement a hit must lie this close to the surface (pixel footprints), else the ray passes by (an open boundary) and marches on."

    def __post_init__(self):
        checks = {
            "max_steps": self.max_steps is None or (int(self.max_steps) == self.max_steps and self.max_steps >= 1),
            "hit_dist": self.hit_dist is None or (math.isfinite(self.hit_dist) and self.hit_dist >= 0),
            "rel_hit_dist": math.isfinite(self.rel_hit_dist) and self.rel_hit_dist >= 0,
            "miss_dist": self.miss_dist is None or self.miss_dist > 0,
            "rel_miss_dist": self.rel_miss_dist is None or self.rel_miss_dist > 0,
            "step_scale": 0 < self.step_scale <= 1.0,
            "safety": 0 < self.safety < 1.0,
            "hit_pixels": self.hit_pixels > 0,
            "min_step_pixels": self.min_step_pixels >= 0,
            "bisect": int(self.bisect) == self.bisect and 0 <= self.bisect <= 64,
            "refine": int(self.refine) == self.refine and 0 <= self.refine <= 16,
            "occupancy_step": self.occupancy_step is None or self.occupancy_step > 0,
            "unsigned_grid_floor": self.unsigned_grid_floor >= 0,
            "normal_eps": self.normal_eps > 0,
            "min_cos": 0 < self.min_cos <= 1,
            "residual_pixels": self.residual_pixels > 0,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            k = bad[0]
            raise InputError(f"trace setting {k} is out of range: {getattr(self, k)!r}")


def resolve_settings(settings: TraceSettings | None, **overrides) -> TraceSettings:
    """``settings`` (or the defaults) with the non-None ``overrides`` applied; a relative and an
    absolute form of the same tolerance together are refused."""
    s = settings or TraceSettings()
    given = {k: v for k, v in overrides.items() if v is not None}
    for a, r in (("hit_dist", "rel_hit_dist"), ("miss_dist", "rel_miss_dist")):
        if a in given and r in given:
            raise InputError(f"give {a} or {r}, not both")
    if "rel_hit_dist" in given:
        given.setdefault("hit_dist", None)
    if "rel_miss_dist" in given:
        given.setdefault("miss_dist", None)
    unknown = set(given) - set(TraceSettings.__dataclass_fields__)
    if unknown:
        raise InputError(f"unknown trace option(s): {', '.join(sorted(unknown))}")
    return replace(s, **given) if given else s


def surface_tolerance(field) -> float:
    """The field's surface tolerance, input units; 0 for fields without one."""
    from recon.fields.base import HasSurfaceTolerance

    return float(field.surface_tolerance or 0.0) if isinstance(field, HasSurfaceTolerance) else 0.0


def diagonal(bounds) -> float:
    """Length of a (2, 3) box's diagonal."""
    return float(np.linalg.norm(bounds[1] - bounds[0]))


def hit_distance(s: TraceSettings, bounds) -> float:
    """The absolute hit distance, input units."""
    return s.hit_dist if s.hit_dist is not None else s.rel_hit_dist * diagonal(bounds)


def miss_distance(s: TraceSettings, bounds) -> float:
    """How far from the eye rays end, input units (inf: the field's bounds decide)."""
    if s.miss_dist is not None:
        return float(s.miss_dist)
    if s.rel_miss_dist is not None:
        return s.rel_miss_dist * diagonal(bounds)
    return math.inf


def step_budget(s: TraceSettings, kind_occupancy: bool) -> int:
    """Steps per ray."""
    if s.max_steps is not None:
        return int(s.max_steps)
    return 2048 if kind_occupancy else 256
