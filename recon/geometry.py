"""Small geometric helpers shared by every layer: validating query points, clipping rays."""

from __future__ import annotations

import numpy as np

from recon.errors import InputError


def check_points(x, *, name: str = "x") -> np.ndarray:
    """Validate (N, 3) query points and return them as a float64 C-contiguous array."""
    arr = np.asarray(x)
    if arr.ndim == 1 and arr.shape == (3,):
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise InputError(f"{name} must be (N, 3), got {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{name} must be a float array, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.float64)


def clip_rays(o: np.ndarray, d: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Slab test of rays o + t d (N, 3) against a box (2, 3): t_enter (>= 0) and t_exit, (N,) f64.
    No intersection gives t_enter >= t_exit."""
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / d
        ta = (bounds[0] - o) * inv
        tb = (bounds[1] - o) * inv
    lo = np.fmin(ta, tb)
    hi = np.fmax(ta, tb)
    # a zero direction component: inside the slab the axis does not limit, outside it misses
    zero = d == 0.0
    inside = (o >= bounds[0]) & (o <= bounds[1])
    lo = np.where(zero, np.where(inside, -np.inf, np.inf), lo)
    hi = np.where(zero, np.where(inside, np.inf, -np.inf), hi)
    return np.maximum(lo.max(axis=1), 0.0), hi.min(axis=1)
