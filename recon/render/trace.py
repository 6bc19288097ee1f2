"""Sphere tracing: images of a field's surface straight from the field, no mesh.

:func:`sphere_trace` takes any :class:`~recon.fields.Field` and a :class:`Camera`:

- grid-backed fields (:class:`~recon.fields.SignedDistanceGrid`, signed or unsigned; a grid of
  closest-point offsets; any object with ``values``/``origin``/``voxel_size``, occupancy
  included) run in the numba kernels of ``recon.kernels.sphere_trace`` on ``cpu`` (parallel
  over pixels) or ``cuda``;
- any other field (analytic, or a network evaluated in batches) runs a batched march in
  NumPy through its ``value`` / ``gradient`` / ``closest_point``, dropping finished rays from
  the batch at every step.

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

import math
import time
from dataclasses import dataclass, field as dc_field, replace

import numpy as np

from recon.errors import InputError
from recon.geometry import clip_rays
from recon.render.camera import Camera

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
        depth, normal, steps, status = _trace_numpy(field, camera, s, bounds, (sx, sy))
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
    return PreparedField(bounds, dev, kernel, mode, float(h), _surface_tolerance(field))


def _surface_tolerance(field) -> float:
    """The field's surface tolerance, input units; 0 for fields without one."""
    from recon.fields.base import HasSurfaceTolerance

    return float(field.surface_tolerance or 0.0) if isinstance(field, HasSurfaceTolerance) else 0.0


def _diag(bounds) -> float:
    return float(np.linalg.norm(bounds[1] - bounds[0]))


def _hit_dist(s: TraceSettings, bounds) -> float:
    return s.hit_dist if s.hit_dist is not None else s.rel_hit_dist * _diag(bounds)


def _miss_t(s: TraceSettings, bounds) -> float:
    if s.miss_dist is not None:
        return float(s.miss_dist)
    if s.rel_miss_dist is not None:
        return s.rel_miss_dist * _diag(bounds)
    return math.inf


def _max_steps(s: TraceSettings, kind_occupancy: bool) -> int:
    if s.max_steps is not None:
        return int(s.max_steps)
    return 2048 if kind_occupancy else 256


def _kernel_params(s: TraceSettings, prep: PreparedField, camera: Camera) -> np.ndarray:
    from recon.kernels import _trace_math as tm

    h = prep.voxel_size
    p = np.zeros(tm.N_PARAMS, np.float64)
    p[tm.P_HIT_DIST] = _hit_dist(s, prep.bounds)
    p[tm.P_MISS_T] = _miss_t(s, prep.bounds)
    p[tm.P_PIX] = camera.pixel_angle
    p[tm.P_HIT_PIX] = s.hit_pixels
    p[tm.P_MIN_STEP_PIX] = s.min_step_pixels
    p[tm.P_SAFETY] = s.safety
    p[tm.P_BISECT] = s.bisect
    p[tm.P_REFINE] = min(s.refine, 1) if prep.mode == tm.MODE_UNSIGNED else s.refine
    p[tm.P_OCC_STEP] = s.occupancy_step if s.occupancy_step is not None else 0.5 * h
    # a baked fitted field's surface is only as sharp as its fit (see the NumPy march)
    p[tm.P_HIT_FLOOR] = max(s.unsigned_grid_floor * h if prep.mode == tm.MODE_UNSIGNED else 0.0, prep.surface_tolerance)
    p[tm.P_NORMAL_EPS] = s.normal_eps * h
    p[tm.P_MAX_STEPS] = _max_steps(s, prep.mode == tm.MODE_OCCUPANCY)
    p[tm.P_STEP_SCALE] = s.step_scale
    p[tm.P_MIN_COS] = s.min_cos
    p[tm.P_RESIDUAL_PIX] = s.residual_pixels
    p[tm.P_BEAM] = 1.0 if s.beam else 0.0
    return p


def _trace_numpy(field, camera: Camera, s: TraceSettings, bounds, offset):
    """Batched march through ``field.value`` (and ``closest_point`` / ``gradient``), in NumPy."""
    h_img, w_img = camera.height, camera.width
    o3, d3 = camera.rays(offset=offset)
    eye = camera.eye
    d = d3.reshape(-1, 3)
    n = len(d)
    o = np.broadcast_to(eye, d.shape)
    t0, t1 = clip_rays(o, d, bounds)
    t1 = np.minimum(t1, _miss_t(s, bounds))
    depth = np.full(n, np.inf)
    normal = np.zeros((n, 3))
    steps = np.zeros(n, np.int32)
    status = np.zeros(n, np.uint8)
    kind = field.kind
    level = float(field.level)
    hit_dist = _hit_dist(s, bounds)
    pix = camera.pixel_angle
    max_steps = _max_steps(s, kind == "occupancy")

    def march_value(idx, t):
        p = eye + d[idx] * t[:, None]
        v = np.asarray(field.value(p), dtype=np.float64) - level
        return -v if kind == "occupancy" else v

    idx = np.flatnonzero(t0 < t1)
    t = t0[idx].copy()
    sv = march_value(idx, t)
    steps[idx] = 1
    if kind in ("signed", "occupancy"):
        occ_step = s.occupancy_step if s.occupancy_step is not None else _diag(bounds) / 1024.0
        ta_l, sa_l, tb_l, sb_l, ib_l = [], [], [], [], []
        inside = sv < 0.0
        status[idx[inside]] = STATUS_HIT
        depth[idx[inside]] = t[inside]
        normal[idx[inside]] = -d[idx[inside]]
        keep = ~inside
        idx, t, sv = idx[keep], t[keep], sv[keep]
        while len(idx):
            done = sv < hit_dist
            status[idx[done]] = STATUS_HIT
            depth[idx[done]] = t[done]
            live = ~done & (steps[idx] < max_steps)
            status[idx[~done & ~live]] = STATUS_NOT_CONVERGED
            idx, t, sv = idx[live], t[live], sv[live]
            if not len(idx):
                break
            dt = sv * s.step_scale if kind == "signed" else np.full(len(idx), occ_step)
            dt = np.maximum(dt, s.min_step_pixels * pix * t)
            tn = np.minimum(t + dt, t1[idx])
            last = tn >= t1[idx]
            sn = march_value(idx, tn)
            steps[idx] += 1
            cross = sn < 0.0
            ta_l.append(t[cross]); sa_l.append(sv[cross]); tb_l.append(tn[cross]); sb_l.append(sn[cross])
            ib_l.append(idx[cross])
            gone = cross | last
            status[idx[last & ~cross]] = STATUS_MISS
            idx, t, sv = idx[~gone], tn[~gone], sn[~gone]
        if idx.size:
            status[idx] = STATUS_NOT_CONVERGED
        if ib_l:
            ib = np.concatenate(ib_l)
            ta, sa, tb, sb = (np.concatenate(a) for a in (ta_l, sa_l, tb_l, sb_l))
            for _ in range(s.bisect):
                tm = 0.5 * (ta + tb)
                sm = march_value(ib, tm)
                neg = sm < 0.0
                tb = np.where(neg, tm, tb); sb = np.where(neg, sm, sb)
                ta = np.where(neg, ta, tm); sa = np.where(neg, sa, sm)
            den = sa - sb
            with np.errstate(divide="ignore", invalid="ignore"):
                troot = np.where(den > 0, ta + (tb - ta) * sa / den, 0.5 * (ta + tb))
            status[ib] = STATUS_HIT
            depth[ib] = troot
        hits = np.flatnonzero((status == STATUS_HIT) & np.isfinite(depth))
        entry = np.abs(depth[hits] - t0[hits]) <= 0.0  # cut by the box at entry: keep -d
        hits = hits[~entry]
        if len(hits):
            g = np.asarray(field.gradient(eye + d[hits] * depth[hits, None]), dtype=np.float64)
            normal[hits] = -g if kind == "occupancy" else g
    else:  # unsigned distance / closest-point field
        # a fitted field's surface is only as sharp as its fit: a ray within its tolerance
        # counts as on it (else rays pass between the field's near-misses and the image is
        # speckled with holes)
        tol = _surface_tolerance(field)
        while len(idx):
            eps = np.maximum(np.maximum(s.hit_pixels * pix * t, hit_dist), tol)
            near = sv < eps
            if near.any():
                ih, th, ok, nrm = _refine_unsigned(field, eye, d, idx[near], t[near], s, t0, pix, hit_dist,
                                                   eps[near], tol)
                status[ih[ok]] = STATUS_HIT
                depth[ih[ok]] = th[ok]
                normal[ih[ok]] = nrm[ok]
            # rays that passed an open boundary step on by eps; the rest by safety x distance
            t = t + np.where(near, eps, s.safety * sv)
            hit_now = np.zeros(len(idx), bool)
            if near.any():
                hit_now[np.flatnonzero(near)[ok]] = True
            out = ~hit_now & (t > t1[idx])
            status[idx[out]] = STATUS_MISS
            live = ~hit_now & ~out & (steps[idx] < max_steps)
            gone_nc = ~hit_now & ~out & ~live
            status[idx[gone_nc]] = STATUS_NOT_CONVERGED
            idx, t = idx[live], t[live]
            if not len(idx):
                break
            sv = march_value(idx, t)
            steps[idx] += 1
    hits = status == STATUS_HIT
    normal[hits] = _facing(normal[hits], d[hits])
    return (depth.reshape(h_img, w_img).astype(np.float32), normal.reshape(h_img, w_img, 3).astype(np.float32),
            steps.reshape(h_img, w_img), status.reshape(h_img, w_img))


def _refine_unsigned(field, eye, d, idx, t, s: TraceSettings, t0, pix, hit_dist, eps, tol=0.0):
    """Tangent-plane (Newton) steps for rays idx that came within eps of an unsigned surface.

    Returns (idx, t, ok, normal): ok where the refined point lies on the surface (residual
    under ``residual_pixels`` footprints, or the field's tolerance ``tol``), normal (n, 3)
    facing the ray.
    """
    from recon.fields.base import HasSupport

    dh = d[idx]
    th = t.copy()
    p = eye + dh * th[:, None]
    c = np.asarray(field.closest_point(p), dtype=np.float64)
    ref = _facing(p - c, dh)  # reference orientation: towards the eye
    nrm = ref.copy()
    for _ in range(s.refine):
        v = p - c
        ln = np.linalg.norm(v, axis=1)
        # the direction to the closest point is reliable only away from the surface: turn
        # the plane only there, otherwise keep the last normal and use the offset along it
        turn = ln > 0.25 * eps
        sign = np.where((v * ref).sum(axis=1) >= 0, 1.0, -1.0)
        nrm = np.where(turn[:, None], v * (sign / np.where(ln > 0, ln, 1.0))[:, None], nrm)
        off = (v * nrm).sum(axis=1)
        cosd = np.maximum(-(nrm * dh).sum(axis=1), s.min_cos)
        th = np.maximum(th + off / cosd, t0[idx])
        p = eye + dh * th[:, None]
        c = np.asarray(field.closest_point(p), dtype=np.float64)
    residual = np.linalg.norm(p - c, axis=1)
    ok = residual <= np.maximum(np.maximum(s.residual_pixels * pix * th, hit_dist), tol)
    if isinstance(field, HasSupport):
        # a fitted field's surfaces far from its data are the network's guesses (floating
        # flakes around open boundaries): rays pass them
        ok &= np.asarray(field.supported(p), bool)
    # the normal, read from a point eps off the surface (the direction is ill-posed on it);
    # a fitted field's direction is sure only a few tolerances off (closer, it is noise),
    # and there the probe goes back along the ray: the side it came from, whatever the
    # refinement's normal says
    probe = -dh if tol > 0 else nrm
    q = p + probe * np.maximum(eps, NORMAL_PROBE_TOLERANCES * tol)[:, None]
    cq = np.asarray(field.closest_point(q), dtype=np.float64)
    nq = q - cq
    good = np.linalg.norm(nq, axis=1) > 0
    nrm = np.where(good[:, None], _facing(nq, dh), nrm)
    return idx, th, ok, nrm


def _facing(nrm: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Unit normals (N, 3) flipped to face against the ray directions d (N, 3)."""
    ln = np.linalg.norm(nrm, axis=1, keepdims=True)
    bad = ln[:, 0] < 1e-30
    out = np.where(bad[:, None], -d, nrm / np.where(bad[:, None], 1.0, ln))
    flip = (out * d).sum(axis=1) > 0
    out[flip] *= -1.0
    return out
