"""Sphere tracing: images of a field's surface straight from the field, no mesh.

:func:`sphere_trace` takes any :class:`~recon.fields.Field` and a :class:`Camera`:

- grid-backed fields (those with the capability :class:`~recon.fields.base.GridSamples`,
  signed, unsigned or occupancy; :class:`~recon.fields.base.ClosestPointOffsets`;
  :class:`~recon.fields.base.SparseBricks`) run in the numba kernels of
  ``recon.kernels.sphere_trace`` on ``cpu`` (parallel over pixels) or ``cuda``;
- any other field (analytic, or a network evaluated in batches) runs a batched march in
  NumPy (:mod:`recon.render.march`) through its ``value`` / ``gradient`` / ``closest_point``,
  dropping finished rays from the batch at every step.

How each kind is marched (the same algorithm in both paths):

- signed distance: step by the value (never less than ``min_step_pixels`` pixel footprints),
  bisection on the sign change, normal from the gradient;
- unsigned distance and closest-point fields: no sign change, so step by ``safety`` x value,
  hit when the value is under ``hit_pixels`` pixel footprints, then step onto the tangent
  plane at the closest point (``refine`` times); normal from the closest-point direction;
- occupancy: fixed conservative steps to the ``level`` crossing, then bisection.

Rays are clipped to the field's bounds first. Normals are flipped to face the camera.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field as dc_field

import numpy as np

from recon.errors import InputError
from recon.render.camera import Camera
from recon.render.settings import (  # noqa: F401  (TraceSettings and resolve_settings: re-exported)
    STATUS_HIT,
    STATUS_MISS,
    STATUS_NOT_CONVERGED,
    TraceSettings,
    hit_distance,
    miss_distance,
    resolve_settings,
    step_budget,
    surface_tolerance,
)

@dataclass
class TraceResult:
    """One traced image.

    depth  : (H, W) float32, distance along the unit ray from the eye, input units; inf on miss
    hit    : (H, W) bool
    normal : (H, W, 3) float32 unit world-space normals facing the camera; 0 on miss
    steps  : (H, W) int32 field evaluations of the march (bisection and refinement excluded)
    status : (H, W) uint8: 0 miss, 1 hit, 2 not converged (step budget spent; counted as miss)
    camera : the camera traced
    stats  : rays, hits, misses, not_converged, mean_steps, max_steps, seconds,
             rays_per_second, device, path
    """

    depth: np.ndarray
    hit: np.ndarray
    normal: np.ndarray
    steps: np.ndarray
    status: np.ndarray
    camera: Camera
    stats: dict = dc_field(default_factory=dict)

    def points(self, *, offset=(0.5, 0.5)) -> np.ndarray:
        """(H, W, 3) float64 hit positions (NaN on miss), input units."""
        o, d = self.camera.rays(offset=offset)
        t = np.where(self.hit, self.depth, np.nan).astype(np.float64)
        return o + d * t[..., None]


def _grid_source(field):
    """How the kernels can read ``field``: (mode, values, cp, origin, h) or None; for a
    block-sparse closest-point grid, values is its block table and cp its bricks."""
    from recon.fields.base import ClosestPointOffsets, GridSamples, SparseBricks
    from recon.kernels import sphere_trace as k

    if isinstance(field, SparseBricks):
        return k.MODE_CLOSEST_SPARSE, field.table, field.bricks, field.origin, field.voxel_size
    if isinstance(field, ClosestPointOffsets):
        off = np.asarray(field.offsets)
        if off.ndim == 4 and off.shape[-1] == 3:
            return (k.MODE_CLOSEST, None, np.ascontiguousarray(np.moveaxis(off, -1, 0), np.float32), field.origin,
                    field.voxel_size)
        return None
    if not isinstance(field, GridSamples) or np.asarray(field.values).ndim != 3:
        return None
    mode = {"signed": k.MODE_SIGNED, "unsigned": k.MODE_UNSIGNED, "occupancy": k.MODE_OCCUPANCY}.get(field.kind)
    if mode is None:
        return None
    return mode, field.values, None, field.origin, field.voxel_size


def _check_field(field) -> np.ndarray:
    kind = getattr(field, "kind", None)
    if kind not in ("signed", "unsigned", "occupancy"):
        raise InputError(f"field kind must be signed, unsigned or occupancy, got {kind!r}")
    try:
        b = np.asarray(field.bounds, dtype=np.float64)
    except Exception as exc:
        raise InputError(f"the field has no usable bounds ({exc})") from None
    if b.shape != (2, 3) or not np.all(np.isfinite(b)) or np.any(b[1] <= b[0]):
        raise InputError(f"field bounds must be a finite (2, 3) box with max > min, got {b.tolist()}")
    return b


def sphere_trace(
    field,
    camera: Camera,
    *,
    device: str = "auto",
    hit_dist: float | None = None,
    miss_dist: float | None = None,
    max_steps: int | None = None,
    rel_hit_dist: float | None = None,
    rel_miss_dist: float | None = None,
    settings: TraceSettings | None = None,
    offset=(0.5, 0.5),
    tracer=None,
) -> TraceResult:
    """Trace ``camera``'s image of ``field``'s surface.

    field   : any Field (kind signed / unsigned / occupancy); grid-backed ones run in kernels
    camera  : the view and image size
    device  : "auto" | "cpu" | "cuda" for grid-backed fields (other fields run in NumPy)
    hit_dist, miss_dist, max_steps, rel_hit_dist, rel_miss_dist : override ``settings``
        (see :class:`TraceSettings`; relative forms are fractions of the bounds' diagonal)
    offset  : sub-pixel position (sx, sy) in [0, 1) of every ray
    tracer  : a prepared kernel tracer from :func:`prepare` (reuses an uploaded grid)
    returns a :class:`TraceResult`
    """
    if not isinstance(camera, Camera):
        raise InputError(f"camera must be a recon.render.Camera, got {type(camera).__name__}")
    sx, sy = (float(v) for v in offset)
    if not (0.0 <= sx < 1.0 and 0.0 <= sy < 1.0):
        raise InputError(f"offset must be in [0, 1) x [0, 1), got {offset}")
    s = resolve_settings(settings, hit_dist=hit_dist, miss_dist=miss_dist, max_steps=max_steps,
                         rel_hit_dist=rel_hit_dist, rel_miss_dist=rel_miss_dist)
    if tracer is None:
        tracer = prepare(field, device=device)
    bounds = tracer.bounds
    t_start = time.perf_counter()
    if tracer.kernel is not None:
        depth, normal, steps, status = tracer.kernel.trace(
            camera.packed(), camera.width, camera.height, _kernel_params(s, tracer, camera), sx=sx, sy=sy)
        path = f"grid-{tracer.device}"
    else:
        from recon.render.march import trace_numpy

        depth, normal, steps, status = trace_numpy(field, camera, s, bounds, (sx, sy))
        path = "numpy"
    seconds = time.perf_counter() - t_start
    hit = status == STATUS_HIT
    depth = np.where(hit, depth, np.inf).astype(np.float32)
    normal = np.where(hit[..., None], normal, 0.0).astype(np.float32)
    n = camera.width * camera.height
    stats = {
        "rays": n,
        "hits": int(hit.sum()),
        "misses": int((status == STATUS_MISS).sum()),
        "not_converged": int((status == STATUS_NOT_CONVERGED).sum()),
        "mean_steps": float(steps.mean()) if n else 0.0,
        "max_steps": int(steps.max()) if n else 0,
        "seconds": seconds,
        "rays_per_second": n / seconds if seconds > 0 else float("inf"),
        "device": tracer.device,
        "path": path,
    }
    return TraceResult(depth, hit, normal, steps.astype(np.int32), status.astype(np.uint8), camera, stats)


@dataclass
class PreparedField:
    """A field made ready for tracing: its bounds, and a kernel tracer when it is grid-backed."""

    bounds: np.ndarray
    device: str
    kernel: object | None
    mode: int | None = None
    voxel_size: float | None = None
    surface_tolerance: float = 0.0


def prepare(field, *, device: str = "auto") -> PreparedField:
    """Check ``field``, pick the path and (on cuda) upload its grid once; reuse for many images."""
    from recon.device import resolve_device

    bounds = _check_field(field)
    src = _grid_source(field)
    if src is None:
        if device not in ("auto", "cpu", "cuda"):
            resolve_device(device)  # raises the standard message
        return PreparedField(bounds, "numpy", None)
    dev = resolve_device(device)
    from recon.kernels.sphere_trace import GridTracer

    mode, values, cp, origin, h = src
    kernel = GridTracer(values=values, cp=cp, mode=mode, level=float(field.level),
                        origin=origin, h=float(h), lo=bounds[0], hi=bounds[1], device=dev)
    return PreparedField(bounds, dev, kernel, mode, float(h), surface_tolerance(field))


def _kernel_params(s: TraceSettings, prep: PreparedField, camera: Camera) -> np.ndarray:
    from recon.kernels.sphere_trace import MODE_OCCUPANCY, MODE_UNSIGNED, pack_params

    h = prep.voxel_size
    return pack_params(
        hit_dist=hit_distance(s, prep.bounds),
        miss_t=miss_distance(s, prep.bounds),
        pix=camera.pixel_angle,
        hit_pix=s.hit_pixels,
        min_step_pix=s.min_step_pixels,
        safety=s.safety,
        bisect=s.bisect,
        refine=min(s.refine, 1) if prep.mode == MODE_UNSIGNED else s.refine,
        occ_step=s.occupancy_step if s.occupancy_step is not None else 0.5 * h,
        # a baked fitted field's surface is only as sharp as its fit (see the NumPy march)
        hit_floor=max(s.unsigned_grid_floor * h if prep.mode == MODE_UNSIGNED else 0.0, prep.surface_tolerance),
        normal_eps=s.normal_eps * h,
        max_steps=step_budget(s, prep.mode == MODE_OCCUPANCY),
        step_scale=s.step_scale,
        min_cos=s.min_cos,
        residual_pix=s.residual_pixels,
        beam=1.0 if s.beam else 0.0,
    )


def add_trace_stats(total: dict, st: dict) -> None:
    """Add one trace's ``stats`` (see :class:`TraceResult`) into ``total``, in place: counts and
    seconds summed, mean steps weighted by rays, max steps the larger."""
    if not total:
        total.update(st)
        return
    for k in ("rays", "hits", "misses", "not_converged", "seconds"):
        total[k] += st[k]
    total["max_steps"] = max(total["max_steps"], st["max_steps"])
    prev = total["rays"] - st["rays"]
    total["mean_steps"] = (total["mean_steps"] * prev + st["mean_steps"] * st["rays"]) / total["rays"]
    total["rays_per_second"] = total["rays"] / total["seconds"] if total["seconds"] > 0 else float("inf")
