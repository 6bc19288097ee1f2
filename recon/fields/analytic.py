"""Analytic fields with exact ray intersections: the tracer's ground truth and demo shapes.

Each shape is a :class:`~recon.fields.Field` (``value``, ``gradient``, ``closest_point``,
``bounds``) and also answers ``intersect(origins, dirs) -> (t, normal)`` exactly, so a
traced image can be checked pixel by pixel. Signed shapes: :class:`Sphere`, :class:`Torus`,
:class:`Box`. Open surfaces, as unsigned distance / closest-point fields: :class:`OpenDisc`,
:class:`Hemisphere`. :func:`sample_grid` and :func:`sample_closest_point_grid` bake any of
them onto a grid for the numba kernels.

All positions (N, 3) float64 in the shape's units; ``t`` (N,) float64, inf on a miss;
``normal`` (N, 3) float64 unit, facing against the ray.
"""

from __future__ import annotations

import numpy as np

from recon.errors import InputError


def _rows(x) -> np.ndarray:
    from recon.geometry import check_points

    return check_points(x)


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(n > 0, n, 1.0)


def _face(n: np.ndarray, d: np.ndarray) -> np.ndarray:
    n = _unit(n)
    return np.where(((n * d).sum(-1) > 0)[:, None], -n, n)


def _sphere_roots(o, d, center, radius):
    """Rays o + t d (unit d) against a sphere: the roots are t = -b +- sq where disc >= 0.
    Returns (o - center, b, disc, sq)."""
    oc = o - center
    b = (oc * d).sum(-1)
    disc = b * b - ((oc * oc).sum(-1) - radius**2)
    return oc, b, disc, np.sqrt(np.maximum(disc, 0.0))


class _Analytic:
    kind = "signed"
    level = 0.0
    normalization = None
    params: dict = {}
    pad = 0.25

    def _extent(self) -> np.ndarray:  # (2, 3) tight box of the surface
        raise NotImplementedError

    @property
    def bounds(self) -> np.ndarray:
        e = self._extent()
        m = self.pad * float(np.max(e[1] - e[0]))
        return np.stack([e[0] - m, e[1] + m])

    def value(self, x) -> np.ndarray:
        return self._value(_rows(x)).astype(np.float32)

    def gradient(self, x) -> np.ndarray:
        x = _rows(x)
        if self.kind == "signed":
            return self._gradient(x).astype(np.float32)
        return _unit(x - self._closest(x)).astype(np.float32)

    def closest_point(self, x) -> np.ndarray:
        return self._closest(_rows(x))

    def _gradient(self, x):
        return _unit(x - self._closest(x)) * np.sign(self._value(x))[:, None]

    def save(self, path):
        raise InputError("analytic fields are not saved: bake one with sample_grid() first")


class Sphere(_Analytic):
    """Signed distance to a sphere: |x - center| - radius."""

    def __init__(self, center=(0.0, 0.0, 0.0), radius: float = 0.5):
        self.center = np.asarray(center, np.float64)
        self.radius = float(radius)

    def _extent(self):
        return np.stack([self.center - self.radius, self.center + self.radius])

    def _value(self, x):
        return np.linalg.norm(x - self.center, axis=1) - self.radius

    def _gradient(self, x):
        return _unit(x - self.center)

    def _closest(self, x):
        return self.center + self.radius * _unit(x - self.center)

    def intersect(self, o, d):
        oc, b, disc, sq = _sphere_roots(o, d, self.center, self.radius)
        t = np.where(-b - sq > 0, -b - sq, -b + sq)
        t = np.where((disc >= 0) & (t > 0), t, np.inf)
        p = o + d * np.where(np.isfinite(t), t, 0.0)[:, None]
        return t, _face(p - self.center, d)


class Torus(_Analytic):
    """Signed distance to a torus around the z axis: major radius R, tube radius r."""

    def __init__(self, center=(0.0, 0.0, 0.0), major: float = 0.5, minor: float = 0.2):
        self.center = np.asarray(center, np.float64)
        self.major, self.minor = float(major), float(minor)

    def _extent(self):
        e = np.array([self.major + self.minor, self.major + self.minor, self.minor])
        return np.stack([self.center - e, self.center + e])

    def _core(self, x):
        q = x - self.center
        rho = np.hypot(q[:, 0], q[:, 1])
        safe = np.where(rho > 0, rho, 1.0)
        ring = np.stack([q[:, 0] / safe, q[:, 1] / safe, np.zeros(len(q))], 1)
        ring[rho == 0] = (1.0, 0.0, 0.0)
        return self.center + self.major * ring

    def _value(self, x):
        return np.linalg.norm(x - self._core(x), axis=1) - self.minor

    def _gradient(self, x):
        return _unit(x - self._core(x))

    def _closest(self, x):
        c = self._core(x)
        return c + self.minor * _unit(x - c)

    def intersect(self, o, d):
        # |p|^2 + R^2 - r^2 = 2 R sqrt(px^2 + py^2), squared: a quartic in t
        q = o - self.center
        R, r = self.major, self.minor
        t_out = np.full(len(q), np.inf)
        for n in range(len(q)):
            ox, oy, oz = q[n]
            dx, dy, dz = d[n]
            od = ox * dx + oy * dy + oz * dz
            oo = ox * ox + oy * oy + oz * oz
            k = oo + R * R - r * r
            c4 = 1.0
            c3 = 4.0 * od
            c2 = 2.0 * k + 4.0 * od * od - 4.0 * R * R * (dx * dx + dy * dy)
            c1 = 4.0 * k * od - 8.0 * R * R * (ox * dx + oy * dy)
            c0 = k * k - 4.0 * R * R * (ox * ox + oy * oy)
            roots = np.roots([c4, c3, c2, c1, c0])
            real = roots[np.abs(roots.imag) < 1e-7].real
            real = real[real > 1e-9]
            if len(real):
                # polish the root on the exact distance with Newton steps
                t = real.min()
                for _ in range(4):
                    p = (o[n] + t * d[n])[None]
                    g = self._gradient(p)[0]
                    f = self._value(p)[0]
                    den = g @ d[n]
                    if abs(den) < 1e-6:
                        break
                    t -= f / den
                t_out[n] = t
        p = o + d * np.where(np.isfinite(t_out), t_out, 0.0)[:, None]
        return t_out, _face(self._gradient(p), d)


class Box(_Analytic):
    """Signed distance to an axis-aligned box of half extents ``half``."""

    def __init__(self, center=(0.0, 0.0, 0.0), half=(0.4, 0.3, 0.2)):
        self.center = np.asarray(center, np.float64)
        self.half = np.asarray(half, np.float64)

    def _extent(self):
        return np.stack([self.center - self.half, self.center + self.half])

    def _value(self, x):
        q = np.abs(x - self.center) - self.half
        return np.linalg.norm(np.maximum(q, 0.0), axis=1) + np.minimum(q.max(axis=1), 0.0)

    def _closest(self, x):
        p = x - self.center
        c = np.clip(p, -self.half, self.half)
        inside = np.all(np.abs(p) <= self.half, axis=1)
        if inside.any():
            pi = p[inside]
            gap = self.half - np.abs(pi)
            ax = gap.argmin(axis=1)
            ci = pi.copy()
            rows = np.arange(len(pi))
            ci[rows, ax] = np.sign(pi[rows, ax]) * self.half[ax]
            c[inside] = ci
        return self.center + c

    def _gradient(self, x):
        p = x - self.center
        q = np.abs(p) - self.half
        out = np.where(q > 0, q, 0.0) * np.sign(p)
        inside = np.all(q <= 0, axis=1)
        if inside.any():
            ax = q[inside].argmax(axis=1)
            g = np.zeros((inside.sum(), 3))
            g[np.arange(len(ax)), ax] = np.sign(p[inside][np.arange(len(ax)), ax])
            out[inside] = g
        return _unit(out)

    def intersect(self, o, d):
        from recon.geometry import clip_rays

        lo = self.center - self.half
        hi = self.center + self.half
        t0, t1 = clip_rays(o, d, np.stack([lo, hi]))
        t = np.where((t0 < t1) & (t0 > 0), t0, np.inf)
        p = o + d * np.where(np.isfinite(t), t, 0.0)[:, None]
        return t, _face(self._gradient(p), d)


class _OpenSheet(_Analytic):
    """An open surface of one centre and radius: the value is the distance to the closest
    point (unsigned)."""

    kind = "unsigned"

    def __init__(self, center=(0.0, 0.0, 0.0), radius: float = 0.5):
        self.center = np.asarray(center, np.float64)
        self.radius = float(radius)

    def _value(self, x):
        return np.linalg.norm(x - self._closest(x), axis=1)


class OpenDisc(_OpenSheet):
    """Unsigned distance to a flat disc in the plane z = center_z, radius ``radius``."""

    def _extent(self):
        r = self.radius
        e = np.array([r, r, 0.25 * r])
        return np.stack([self.center - e, self.center + e])

    def _closest(self, x):
        q = x - self.center
        rho = np.hypot(q[:, 0], q[:, 1])
        s = np.where(rho > self.radius, self.radius / np.where(rho > 0, rho, 1.0), 1.0)
        return self.center + np.stack([q[:, 0] * s, q[:, 1] * s, np.zeros(len(q))], 1)

    def intersect(self, o, d):
        q = o - self.center
        with np.errstate(divide="ignore", invalid="ignore"):
            t = -q[:, 2] / d[:, 2]
        t = np.where(np.isfinite(t) & (t > 0), t, np.inf)
        p = q + d * np.where(np.isfinite(t), t, 0.0)[:, None]
        t = np.where(np.hypot(p[:, 0], p[:, 1]) <= self.radius, t, np.inf)
        return t, _face(np.tile([0.0, 0.0, 1.0], (len(o), 1)), d)


class Hemisphere(_OpenSheet):
    """Unsigned distance to the upper half (z >= center_z) of a sphere: an open dome."""

    def _extent(self):
        r = self.radius
        return np.stack([self.center - [r, r, 0.0], self.center + [r, r, r]])

    def _closest(self, x):
        q = x - self.center
        r = self.radius
        up = q[:, 2] >= 0
        out = np.empty_like(q)
        out[up] = r * _unit(q[up])
        rim = np.stack([q[~up, 0], q[~up, 1], np.zeros((~up).sum())], 1)
        zero = np.linalg.norm(rim, axis=1) == 0
        rim[zero] = (1.0, 0.0, 0.0)
        out[~up] = r * _unit(rim)
        both = up & (np.linalg.norm(q, axis=1) == 0)
        out[both] = (0.0, 0.0, r)
        return self.center + out

    def intersect(self, o, d):
        oc, b, disc, sq = _sphere_roots(o, d, self.center, self.radius)
        t = np.full(len(o), np.inf)
        for cand in (-b + sq, -b - sq):  # the nearer valid root wins (assigned last)
            z = oc[:, 2] + cand * d[:, 2]
            ok = (disc >= 0) & (cand > 0) & (z >= 0)
            t = np.where(ok & (cand < t), cand, t)
        p = oc + d * np.where(np.isfinite(t), t, 0.0)[:, None]
        return t, _face(p, d)


def grid_nodes(bounds, resolution: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Nodes of a cubic-voxel grid covering ``bounds`` with ``resolution`` nodes on its longest side.

    returns nodes (X*Y*Z, 3) float64 in C order, shape (X, Y, Z), voxel size
    """
    b = np.asarray(bounds, np.float64)
    h = float((b[1] - b[0]).max()) / (resolution - 1)
    shape = tuple(int(np.ceil((b[1, a] - b[0, a]) / h - 1e-9)) + 1 for a in range(3))
    axes = [b[0, a] + h * np.arange(shape[a]) for a in range(3)]
    g = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    return g, shape, h


def sample_grid(field, *, resolution: int = 128, bounds=None):
    """Bake ``field`` (signed or unsigned) onto a :class:`~recon.fields.SignedDistanceGrid`."""
    from recon.fields.grid import SignedDistanceGrid

    b = field.bounds if bounds is None else bounds
    nodes, shape, h = grid_nodes(b, resolution)
    vals = np.asarray(field.value(nodes), np.float32).reshape(shape)
    return SignedDistanceGrid(vals, np.asarray(b, np.float64)[0], h, kind=field.kind)


def sample_closest_point_grid(field, *, resolution: int = 128, bounds=None):
    """Bake ``field``'s closest points onto a :class:`~recon.fields.closest_point_grid.ClosestPointGrid`."""
    from recon.fields.closest_point_grid import ClosestPointGrid

    b = field.bounds if bounds is None else bounds
    nodes, shape, h = grid_nodes(b, resolution)
    off = (np.asarray(field.closest_point(nodes), np.float64) - nodes).astype(np.float32)
    return ClosestPointGrid(off.reshape(*shape, 3), np.asarray(b, np.float64)[0], h)
