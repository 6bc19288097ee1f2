"""Shading of traced images, and the one-call field renderer.

Lambert plus a soft Blinn specular under a head light (the light sits at the eye, so what
faces the camera is lit), optional ambient occlusion from a few extra field queries along
the normal, anti-aliasing by several sub-pixel samples (``spp``). Colours are computed in
linear RGB and encoded to sRGB when written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field as dc_field

import numpy as np

from recon.errors import InputError
from recon.render.camera import Camera
from recon.render.trace import TraceResult, TraceSettings, add_trace_stats, prepare, sphere_trace


@dataclass(frozen=True)
class ShadeSettings:
    """Material, light and background (colours linear RGB in [0, 1])."""

    base_color: tuple = (0.72, 0.70, 0.66)
    "Surface albedo."
    ambient: float = 0.12
    "Light that reaches every surface point."
    diffuse: float = 0.85
    "Lambert weight of the head light."
    specular: float = 0.18
    "Weight of the soft specular highlight."
    shininess: float = 24.0
    "Blinn exponent of the highlight (lower is softer)."
    background: tuple = (1.0, 1.0, 1.0)
    "Background colour where rays miss (ignored when transparent)."
    transparent: bool = False
    "Leave the background transparent (alpha 0) instead of painting it."
    ao: bool = False
    "Darken creases by ambient occlusion (a few extra field queries per hit)."
    ao_samples: int = 5
    "Field queries along the normal for ambient occlusion."
    ao_distance: float = 0.04
    "Reach of the occlusion probe, as a fraction of the bounds' diagonal."
    ao_strength: float = 1.0
    "How dark full occlusion gets (0 none, 1 black)."

    def __post_init__(self):
        for name in ("base_color", "background"):
            c = np.asarray(getattr(self, name), dtype=np.float64)
            if c.shape != (3,) or np.any(c < 0) or np.any(c > 1):
                raise InputError(f"{name} must be 3 numbers in [0, 1], got {getattr(self, name)!r}")
        for name in ("ambient", "diffuse", "specular", "ao_distance", "ao_strength"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise InputError(f"{name} must be a non-negative number, got {v!r}")
        if not self.shininess > 0:
            raise InputError(f"shininess must be positive, got {self.shininess}")
        if int(self.ao_samples) != self.ao_samples or not 1 <= self.ao_samples <= 32:
            raise InputError(f"ao_samples must be a whole number in 1..32, got {self.ao_samples}")


def shade(result: TraceResult, *, settings: ShadeSettings | None = None, field=None,
          ao_scale: float | None = None) -> np.ndarray:
    """Linear RGBA of a traced image: (H, W, 4) float32 in [0, 1], straight (not premultiplied) alpha.

    field    : needed for ambient occlusion (its ``value`` is queried along the normals)
    ao_scale : length of the occlusion probe (input units); None: ao_distance x bounds diagonal
    """
    s = settings or ShadeSettings()
    hit = result.hit
    h, w = hit.shape
    out = np.zeros((h, w, 4), np.float32)
    out[..., :3] = s.background
    out[..., 3] = 0.0 if s.transparent else 1.0
    if not hit.any():
        return out
    _, d = result.camera.rays()
    n = result.normal[hit].astype(np.float64)
    light = -d[hit]  # head light: towards the eye
    ndl = np.clip((n * light).sum(axis=1), 0.0, 1.0)
    spec = ndl ** s.shininess  # Blinn: the half vector of light and view is the view itself
    occl = np.ones(len(n))
    if s.ao:
        if field is None:
            raise InputError("ambient occlusion needs the field (pass field=)")
        occl = _ambient_occlusion(field, result, n, s, ao_scale)
    base = np.asarray(s.base_color)
    rgb = base[None, :] * (s.ambient + s.diffuse * ndl)[:, None] * occl[:, None] + s.specular * spec[:, None] * occl[:, None]
    out[hit, :3] = np.clip(rgb, 0.0, 1.0)
    out[hit, 3] = 1.0
    return out


def _ambient_occlusion(field, result: TraceResult, n, s: ShadeSettings, ao_scale) -> np.ndarray:
    b = np.asarray(field.bounds, dtype=np.float64)
    reach = ao_scale if ao_scale is not None else s.ao_distance * float(np.linalg.norm(b[1] - b[0]))
    return ambient_occlusion(field, result.points()[result.hit], n, reach=reach, samples=s.ao_samples,
                             strength=s.ao_strength)


def ambient_occlusion(field, points, normals, *, reach: float, samples: int = 5, strength: float = 1.0) -> np.ndarray:
    """Occlusion factor in [0, 1] (1: open) at surface points (M, 3) with unit normals (M, 3).

    Probes p + r_i n, r_i = i / samples x reach: where the field says the nearest surface is
    closer than r_i, something occludes; 1 - strength x sum_i 2^-i (r_i - |f|) / r_i,
    normalised. Occupancy fields count occupied probes instead.
    """
    p = np.asarray(points, dtype=np.float64)
    n = np.asarray(normals, dtype=np.float64)
    level = float(field.level)
    occ = np.zeros(len(p))
    norm = 0.0
    for i in range(1, samples + 1):
        r = reach * i / samples
        v = np.asarray(field.value(p + n * r), dtype=np.float64) - level
        if field.kind == "occupancy":  # no distance: count occupied probes
            gap = (v > 0).astype(np.float64) * r
        else:
            gap = np.clip(r - np.abs(v), 0.0, r)
        wgt = 0.5 ** (i - 1)
        occ += wgt * gap / r
        norm += wgt
    return np.clip(1.0 - strength * occ / norm, 0.0, 1.0)


def subpixel_offsets(spp: int) -> np.ndarray:
    """(spp, 2) sub-pixel offsets in [0, 1): the centre first, then the R2 low-discrepancy
    sequence (deterministic: the same image every run, no seed needed)."""
    if int(spp) != spp or not 1 <= spp <= 1024:
        raise InputError(f"spp must be a whole number in 1..1024, got {spp}")
    g = 1.32471795724474602596  # plastic number
    a = np.array([1.0 / g, 1.0 / (g * g)])
    k = np.arange(int(spp))[:, None]
    return np.mod(0.5 + k * a, 1.0)


@dataclass
class Rendering:
    """A rendered field image.

    rgba   : (H, W, 4) float32 linear colour and coverage in [0, 1] (averaged over spp samples)
    trace  : the centre sample's TraceResult (depth, hit mask, normals for the other passes)
    stats  : trace statistics summed over samples (rays, seconds, rays_per_second, ...)
    """

    rgba: np.ndarray
    trace: TraceResult
    stats: dict = dc_field(default_factory=dict)


def render_field(field, camera: Camera, *, spp: int = 1, device: str = "auto",
                 trace_settings: TraceSettings | None = None, shade_settings: ShadeSettings | None = None,
                 prepared=None) -> Rendering:
    """Sphere-trace and shade ``field`` through ``camera`` with ``spp`` samples per pixel."""
    s = shade_settings or ShadeSettings()
    offsets = subpixel_offsets(spp)
    prep = prepared if prepared is not None else prepare(field, device=device)
    acc_rgb = np.zeros((camera.height, camera.width, 3), np.float64)
    acc_a = np.zeros((camera.height, camera.width), np.float64)
    stats: dict = {}
    first = None
    for off in offsets:
        r = sphere_trace(field, camera, settings=trace_settings, offset=tuple(off), tracer=prep)
        rgba = shade(r, settings=s, field=field)
        a = rgba[..., 3].astype(np.float64)
        if s.transparent:
            acc_rgb += rgba[..., :3] * a[..., None]
        else:
            acc_rgb += rgba[..., :3]
        acc_a += a
        if first is None:
            first = r
        add_trace_stats(stats, r.stats)
    n = len(offsets)
    out = np.zeros((camera.height, camera.width, 4), np.float32)
    if s.transparent:
        cov = acc_a / n
        out[..., :3] = np.where(acc_a[..., None] > 0, acc_rgb / np.maximum(acc_a, 1e-12)[..., None], 0.0)
        out[..., 3] = cov
    else:
        out[..., :3] = acc_rgb / n
        out[..., 3] = 1.0
    stats["spp"] = n
    return Rendering(out, first, stats)
