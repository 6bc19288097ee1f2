"""The sphere-tracing march in NumPy, for fields the kernels cannot read (analytic ones,
networks evaluated in batches): rays march in one batch through the field's ``value``
(and ``closest_point`` / ``gradient``), and finished rays leave the batch at every step."""

from __future__ import annotations

import numpy as np

from recon.geometry import clip_rays
from recon.render.camera import Camera
from recon.render.settings import (
    NORMAL_PROBE_TOLERANCES,
    STATUS_HIT,
    STATUS_MISS,
    STATUS_NOT_CONVERGED,
    TraceSettings,
    diagonal,
    hit_distance,
    miss_distance,
    step_budget,
    surface_tolerance,
)


def trace_numpy(field, camera: Camera, s: TraceSettings, bounds, offset):
    """Batched march through ``field.value`` (and ``closest_point`` / ``gradient``), in NumPy."""
    h_img, w_img = camera.height, camera.width
    o3, d3 = camera.rays(offset=offset)
    eye = camera.eye
    d = d3.reshape(-1, 3)
    n = len(d)
    o = np.broadcast_to(eye, d.shape)
    t0, t1 = clip_rays(o, d, bounds)
    t1 = np.minimum(t1, miss_distance(s, bounds))
    depth = np.full(n, np.inf)
    normal = np.zeros((n, 3))
    steps = np.zeros(n, np.int32)
    status = np.zeros(n, np.uint8)
    kind = field.kind
    level = float(field.level)
    hit_dist = hit_distance(s, bounds)
    pix = camera.pixel_angle
    max_steps = step_budget(s, kind == "occupancy")

    def march_value(idx, t):
        p = eye + d[idx] * t[:, None]
        v = np.asarray(field.value(p), dtype=np.float64) - level
        return -v if kind == "occupancy" else v

    idx = np.flatnonzero(t0 < t1)
    t = t0[idx].copy()
    sv = march_value(idx, t)
    steps[idx] = 1
    if kind in ("signed", "occupancy"):
        occ_step = s.occupancy_step if s.occupancy_step is not None else diagonal(bounds) / 1024.0
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
        tol = surface_tolerance(field)
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
    normal[hits] = facing(normal[hits], d[hits])
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
    ref = facing(p - c, dh)  # reference orientation: towards the eye
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
    nrm = np.where(good[:, None], facing(nq, dh), nrm)
    return idx, th, ok, nrm


def facing(nrm: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Unit normals (N, 3) flipped to face against the ray directions d (N, 3)."""
    ln = np.linalg.norm(nrm, axis=1, keepdims=True)
    bad = ln[:, 0] < 1e-30
    out = np.where(bad[:, None], -d, nrm / np.where(bad[:, None], 1.0, ln))
    flip = (out * d).sum(axis=1) > 0
    out[flip] *= -1.0
    return out
