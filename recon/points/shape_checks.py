"""Degenerate clouds: points that lie on a plane or a line cannot enclose a volume.

A fitter of closed surfaces (GridPull) given a flat square returns closed bubbles around
it, and given points on a line nothing sensible at all. Both are told apart from a real
thin object by one scale-free measure: the cloud's thickness along its least principal
axis (and, for a line, along the middle one), in the cloud's own point spacings. A closed
surface, however thin the object, has two sheets, and two sheets are at least a few point
spacings apart, or the cloud cannot show which side is inside.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recon.errors import InputError

MIN_THICKNESS_SPACINGS = 2.0
"A cloud thinner than this many point spacings (least principal axis) is flat: it encloses nothing."
EXTENT_QUANTILE = 0.01
"Extents along an axis run between these quantiles of the points, so a few stray points do not count."
SPACING_SAMPLE = 20_000
"Points whose nearest-neighbour distance estimates the spacing (a seeded subsample of larger clouds)."


@dataclass(frozen=True)
class ShapeMeasure:
    """How far a cloud is from a plane and from a line.

    extents   : (3,) float64, the cloud's extent along its principal axes, largest variance
                first, input units (between the 1 % and 99 % quantiles)
    spacing   : float, the median distance from a point to its nearest other point, input units
    thickness_spacings : extents[2] / spacing, the thickness off the best plane in spacings
    width_spacings     : extents[1] / spacing, the width off the best line in spacings
    """

    extents: np.ndarray
    spacing: float

    @property
    def thickness_spacings(self) -> float:
        return float(self.extents[2] / self.spacing) if self.spacing > 0 else 0.0

    @property
    def width_spacings(self) -> float:
        return float(self.extents[1] / self.spacing) if self.spacing > 0 else 0.0

    @property
    def thickness_fraction(self) -> float:
        """Thickness over the largest extent (0 for a plane, about 1 for a ball)."""
        top = float(self.extents.max())
        return float(self.extents[2] / top) if top > 0 else 0.0


def measure_shape(points: np.ndarray, *, seed: int = 0) -> ShapeMeasure:
    """The principal extents and point spacing of ``points`` ((N, 3) float, N >= 2)."""
    from scipy.spatial import cKDTree

    from recon.seeding import rng

    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3 or len(p) < 2:
        raise InputError(f"points must be (N, 3) with N >= 2, got {p.shape}")
    if not np.all(np.isfinite(p)):
        raise InputError("points must be finite")
    # measured on the points divided by their largest magnitude: the measure is a ratio,
    # and coordinates near the float range would overflow in the covariance
    unit = float(np.abs(p).max()) or 1.0
    p = p / unit
    centred = p - p.mean(axis=0)
    _, axes = np.linalg.eigh(centred.T @ centred)
    proj = centred @ axes[:, ::-1]  # largest axis first
    lo, hi = np.quantile(proj, [EXTENT_QUANTILE, 1.0 - EXTENT_QUANTILE], axis=0)
    extents = hi - lo
    sample = p if len(p) <= SPACING_SAMPLE else p[rng(seed).choice(len(p), SPACING_SAMPLE, replace=False)]
    dist, _ = cKDTree(p).query(sample, k=min(len(p), 8))
    # the nearest other point at a distance above zero (duplicates are not the spacing)
    positive = np.where(dist[:, 1:] > 0, dist[:, 1:], np.inf).min(axis=1)
    positive = positive[np.isfinite(positive)]
    spacing = float(np.median(positive)) if len(positive) else 0.0
    return ShapeMeasure(extents=extents * unit, spacing=spacing * unit)


def check_encloses_volume(points: np.ndarray, *, method: str, source: str = "the cloud") -> ShapeMeasure:
    """Refuse (InputError) a cloud that lies on a line or a plane, for a method that needs
    a closed surface; return the measure otherwise. The message names the measurement and
    points to ``--method csp``, which fits open surfaces."""
    m = measure_shape(points)
    if m.spacing == 0:
        raise InputError(f"{source}: all points are identical: there is no surface to fit")
    if m.width_spacings < MIN_THICKNESS_SPACINGS:
        raise InputError(
            f"{source}: the points lie on a line (width {m.width_spacings:.2f} point spacings across "
            f"the line, under {MIN_THICKNESS_SPACINGS:g}): they span no surface for method {method!r} to fit")
    if m.thickness_spacings < MIN_THICKNESS_SPACINGS:
        raise InputError(
            f"{source}: the points are flat (thickness {m.thickness_spacings:.2f} point spacings off "
            f"their plane, under {MIN_THICKNESS_SPACINGS:g}), so they enclose no volume and "
            f"method {method!r} fits closed surfaces only; for an open surface use --method csp")
    return m
