"""The first look, as pure functions on arrays: which way is up, where the camera goes, how big
a point is drawn, and how far a slice plane reaches. All lengths in input units."""

from __future__ import annotations

import math

import numpy as np

from recon.errors import InputError

# Looking at the front: +y up -> the camera on +z (the graphics convention of y-up files);
# +z up -> the camera on -y (the CAD and scanning convention of z-up files); +x up -> on +z.
_FRONT = {0: np.array([0.0, 0.0, 1.0]), 1: np.array([0.0, 0.0, 1.0]), 2: np.array([0.0, -1.0, 0.0])}
_BASE_SLAB = 0.03  # thickness of the end slabs, as a fraction of the extent along the axis
_BASE_MIN = 0.05  # fewest points (fraction) in a slab for a base (a sphere's cap slab holds 0.03)
_BASE_RATIO = 1.5  # a base must hold this many times the points of any other axis's end slabs
_THIN = 0.25  # an axis shorter than this fraction of the longest is the up axis of a flat scene


def parse_up(text: str) -> np.ndarray | None:
    """'+y', '-z', 'y' ... -> (3,) unit vector; 'auto' -> None (guess from the data)."""
    t = text.strip().lower()
    if t == "auto":
        return None
    sign = -1.0 if t.startswith("-") else 1.0
    t = t.lstrip("+-")
    if t not in ("x", "y", "z"):
        raise InputError(f"--up must be auto, x, y, z, +x, -x, +y, -y, +z or -z, got {text!r}")
    v = np.zeros(3)
    v["xyz".index(t)] = sign
    return v


def guess_up(points: np.ndarray, *, samples: int = 200_000, seed: int = 0) -> np.ndarray:
    """(N, 3) points -> (3,) float64 unit axis vector: the data's likely up direction, from
    a seeded sample of at most ``samples`` points.

    In order: an axis much shorter than the others is up (terrain, rooms, street scans); an
    end of an axis holding many more points than any other end is a base the object stands
    on (up points away from it); otherwise +y, the convention of most mesh files.
    """
    from recon.seeding import rng

    p = np.asarray(points)
    if len(p) > samples:
        p = p[rng(seed).choice(len(p), size=samples, replace=False)]
    p = np.asarray(p, np.float64)
    p = p[np.isfinite(p).all(axis=1)]
    up = np.array([0.0, 1.0, 0.0])
    if len(p) < 10:
        return up
    lo, hi = p.min(axis=0), p.max(axis=0)
    ext = hi - lo
    if ext.max() <= 0:
        return up
    ratio = ext / ext.max()
    thin = int(np.argmin(ratio))
    if ratio[thin] < _THIN and np.sort(ratio)[1] >= 2 * ratio[thin]:
        out = np.zeros(3)
        out[thin] = 1.0
        return out
    t = _BASE_SLAB * ext
    ends = np.array([[(p[:, a] <= lo[a] + t[a]).mean(), (p[:, a] >= hi[a] - t[a]).mean()] for a in range(3)])
    best = ends.max(axis=1)
    a = int(np.argmax(best))
    others = np.delete(best, a)
    if best[a] >= _BASE_MIN and best[a] >= _BASE_RATIO * others.max():
        out = np.zeros(3)
        # the sign only when one end is clearly the base (a cylinder's two flat ends are not)
        out[a] = -1.0 if ends[a, 1] >= 2 * ends[a, 0] else 1.0
        return out
    return up


def front_camera(bounds, up, *, view_angle: float = 30.0, azimuth: float = 30.0, elevation: float = 20.0,
                 aspect: float = 4 / 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Camera (position, focal point, view-up), each (3,) float64, that frames ``bounds`` from the front.

    bounds    : (2, 3) min and max corner of the object, input units
    up        : (3,) the up axis (a signed coordinate axis)
    view_angle: vertical field of view, degrees; aspect: width / height of the image
    azimuth   : degrees turned to the viewer's right from straight ahead, about ``up``
    elevation : degrees above the horizon

    The whole bounding sphere fits the narrower of the two fields of view.
    """
    b = np.asarray(bounds, np.float64).reshape(2, 3)
    u = np.asarray(up, np.float64)
    u = u / np.linalg.norm(u)
    centre = b.mean(axis=0)
    radius = max(0.5 * float(np.linalg.norm(b[1] - b[0])), 1e-9)
    front = _FRONT[int(np.argmax(np.abs(u)))]
    right = np.cross(u, front)
    az, el = math.radians(azimuth), math.radians(elevation)
    eye_dir = math.cos(el) * (math.cos(az) * front + math.sin(az) * right) + math.sin(el) * u
    half = math.radians(view_angle) / 2
    if aspect < 1:  # a tall image: the horizontal field of view is the narrower one
        half = math.atan(math.tan(half) * aspect)
    distance = radius / math.sin(half)
    return centre + distance * eye_dir, centre, u.copy()


def turntable_cameras(bounds, up, n_frames: int, **kw):
    """``n_frames`` cameras (position, focal point, view-up) a full turn about ``up``, from the front."""
    if n_frames < 2:
        raise InputError(f"a turntable needs at least 2 frames, got {n_frames}")
    start = kw.pop("azimuth", 30.0)
    return [front_camera(bounds, up, azimuth=start + 360.0 * i / n_frames, **kw) for i in range(n_frames)]


def point_spacing(points: np.ndarray, *, samples: int = 2000, seed: int = 0) -> float:
    """Median distance from a point to its nearest neighbour (a seeded sample of ``samples``
    points queried against all), input units; 0 for fewer than 2 points."""
    from vtkmodules.util.numpy_support import numpy_to_vtk
    from vtkmodules.vtkCommonCore import vtkIdList, vtkPoints
    from vtkmodules.vtkCommonDataModel import vtkPolyData, vtkStaticPointLocator

    from recon.seeding import rng

    p = np.asarray(points, np.float64)
    p = p[np.isfinite(p).all(axis=1)]
    if len(p) < 2:
        return 0.0
    picks = np.arange(len(p)) if len(p) <= samples else rng(seed).choice(len(p), size=samples, replace=False)
    # VTK's static locator (already loaded by the viewer) builds in a fraction of a k-d tree's time
    vp = vtkPoints()
    vp.SetData(numpy_to_vtk(np.ascontiguousarray(p), deep=False))
    poly = vtkPolyData()
    poly.SetPoints(vp)
    locator = vtkStaticPointLocator()
    locator.SetDataSet(poly)
    locator.BuildLocator()
    ids = vtkIdList()
    d = []
    for i in picks:
        locator.FindClosestNPoints(2, p[i], ids)
        others = [ids.GetId(k) for k in range(ids.GetNumberOfIds()) if ids.GetId(k) != i]
        if others:
            d.append(np.linalg.norm(p[others[0]] - p[i]))
    d = np.asarray(d)
    d = d[np.isfinite(d) & (d > 0)]
    return float(np.median(d)) if len(d) else 0.0


def point_size_pixels(spacing: float, distance: float, *, view_angle: float, height: int,
                      fraction: float = 0.8, limits=(1.0, 6.0)) -> float:
    """Screen size (pixels) of a point so that neighbours ``spacing`` apart at ``distance`` from
    the camera nearly touch: ``fraction`` of their on-screen spacing, clipped to ``limits``."""
    pixel = 2 * distance * math.tan(math.radians(view_angle) / 2) / max(int(height), 1)
    size = fraction * spacing / pixel if pixel > 0 else limits[0]
    return float(np.clip(size, *limits))


def object_bounds(points_list, *, trim: float = 0.001, samples: int = 200_000, seed: int = 0) -> np.ndarray | None:
    """(2, 3) float64 bounds of the object's points: the union over ``points_list`` (arrays
    (N, 3)); clouds of over 1000 points lose ``trim`` of their points at each end per axis
    (quantiles of a seeded sample of ``samples`` points), so a few stray points do not shrink
    the object to a dot. None when there are no points."""
    from recon.seeding import rng

    los, his = [], []
    for p in points_list:
        p = np.asarray(p)
        if len(p) > samples:
            p = p[rng(seed).choice(len(p), size=samples, replace=False)]
        p = np.asarray(p, np.float64)
        p = p[np.isfinite(p).all(axis=1)]
        if not len(p):
            continue
        if len(p) > 1000 and trim > 0:
            los.append(np.quantile(p, trim, axis=0))
            his.append(np.quantile(p, 1 - trim, axis=0))
        else:
            los.append(p.min(axis=0))
            his.append(p.max(axis=0))
    if not los:
        return None
    return np.stack([np.min(los, axis=0), np.max(his, axis=0)])


def slice_rectangle(field_bounds, object_bounds_, axis: int, *, margin: float = 0.05) -> np.ndarray:
    """(2, 3) float64 extent of a slice plane across ``axis``: the object's bounds grown by
    ``margin`` of their diagonal, cut to the field's bounds (the field's bounds when no object)."""
    fb = np.asarray(field_bounds, np.float64).reshape(2, 3)
    if object_bounds_ is None:
        return fb.copy()
    ob = np.asarray(object_bounds_, np.float64).reshape(2, 3)
    pad = margin * float(np.linalg.norm(ob[1] - ob[0]))
    rect = np.stack([np.maximum(ob[0] - pad, fb[0]), np.minimum(ob[1] + pad, fb[1])])
    if np.any(rect[1] < rect[0]):  # the object lies outside the field: show the field's bounds
        return fb.copy()
    rect[:, axis] = fb[:, axis]
    return rect
