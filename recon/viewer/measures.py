"""What the viewer reads off the data: a field's capabilities and colour scale, distances
from the mesh and the cloud, mean curvature, and the values under the cursor (picking)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from recon.viewer.config import chunked


def field_traits(field) -> dict:
    """What the viewer may ask of ``field``, in one place: kind, level, bounds (2, 3) and,
    for grid fields, shape and voxel_size (None otherwise); has_distance when values are
    distances (signed or unsigned)."""
    from recon.fields.base import GridSamples, RegularGrid

    grid = isinstance(field, RegularGrid)
    return {
        "kind": field.kind,
        "level": float(field.level),
        "bounds": np.asarray(field.bounds, np.float64).reshape(2, 3),
        # only a grid of samples can be meshed on its own nodes (every k-th of them while dragging)
        "shape": tuple(int(s) for s in field.shape) if isinstance(field, GridSamples) else None,
        "voxel_size": float(field.voxel_size) if grid else None,
        "has_distance": field.kind in ("signed", "unsigned"),
    }


class _StridedGrid:
    """A grid field read at every ``step``-th node along each axis (values, origin, voxel_size),
    evaluated by the full field elsewhere (value, gradient: the mesh's normals)."""

    def __init__(self, field, step: int):
        self.kind, self.level, self.bounds = field.kind, field.level, field.bounds
        self.params, self.normalization = field.params, field.normalization
        self.values = np.asarray(field.values)[::step, ::step, ::step]
        self.shape = tuple(self.values.shape)
        self.origin = np.asarray(field.origin, np.float64)
        self.voxel_size = float(field.voxel_size) * step
        self.value, self.gradient = field.value, field.gradient


def strided_grid(field, step: int):
    """``field`` (a grid: values, origin, voxel_size) seen through every ``step``-th node, for a
    quick mesh; the field itself for step 1 or a field without a grid."""
    if step <= 1 or field_traits(field)["shape"] is None:
        return field
    return _StridedGrid(field, int(step))


@dataclass(frozen=True)
class SliceScale:
    """How a field's slices are coloured: colour map, value range, and the bar's title."""

    cmap: str
    clim: tuple[float, float]
    title: str


def slice_scale(kind: str, level: float, values: np.ndarray, config) -> SliceScale:
    """The colour scale suited to a field kind: signed distances on a diverging map centred on
    the level; unsigned distances on a sequential map from 0; occupancy as a probability 0..1."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if kind == "occupancy":
        return SliceScale(config.occupancy_cmap, (0.0, 1.0), "occupancy [probability]")
    spread = float(np.percentile(np.abs(v - level), 95)) if len(v) else 1.0
    spread = spread or 1.0
    if kind == "unsigned":
        return SliceScale(config.unsigned_cmap, (0.0, level + spread), "unsigned distance [input units]")
    return SliceScale(config.signed_cmap, (level - spread, level + spread), "signed distance [input units]")


def level_range(traits: dict, level: float) -> tuple[float, float]:
    """The iso-level slider's range for a field: 0.02..0.98 for occupancy, (0, a tenth of the
    diagonal] for unsigned distances (offset surfaces only), the level +- that otherwise."""
    if traits["kind"] == "occupancy":
        return 0.02, 0.98
    b = traits["bounds"]
    span = 0.1 * float(np.linalg.norm(b[1] - b[0]))
    if traits["kind"] == "unsigned":
        return span * 1e-3, span
    return level - span, level + span


def distance_to_surface(field, level: float, points: np.ndarray) -> np.ndarray:
    """(N,) float32 |value - level| of a distance field at (N, 3) points, input units."""
    pts = np.asarray(points, np.float64)
    return np.abs(chunked(field.value, pts) - level).astype(np.float32)


def distance_to_mesh(mesh, points: np.ndarray) -> np.ndarray:
    """(N,) float32 distance from (N, 3) points to the nearest point of a TriangleMesh."""
    from recon.metrics import SurfaceIndex

    pts = np.asarray(points, np.float64)
    if not len(pts):
        return np.zeros(0, np.float32)
    d, _ = SurfaceIndex(mesh, pts.mean(axis=0)).query(pts)
    return np.asarray(d, np.float32)


def distance_to_points(tree_or_points, points: np.ndarray) -> np.ndarray:
    """(N,) float32 distance from (N, 3) points to the nearest of a cloud (its cKDTree or (M, 3))."""
    from scipy.spatial import cKDTree

    tree = tree_or_points if isinstance(tree_or_points, cKDTree) else cKDTree(np.asarray(tree_or_points, np.float64))
    d, _ = tree.query(np.asarray(points, np.float64), k=1, workers=-1)
    return np.asarray(d, np.float32)


def mean_curvature(field, points: np.ndarray) -> np.ndarray:
    """(N,) float32 mean curvature (1 / input units) at (N, 3) points: half the divergence of
    the field's unit gradient, by central differences one voxel (or 1/256 of the bounds) wide."""
    t = field_traits(field)
    b = t["bounds"]
    eps = t["voxel_size"] or float(np.linalg.norm(b[1] - b[0])) / 256
    v = np.asarray(points, np.float64)
    div = np.zeros(len(v))
    for a in range(3):
        step = np.zeros(3)
        step[a] = eps
        gp = _unit(chunked(field.gradient, v + step))
        gm = _unit(chunked(field.gradient, v - step))
        div += (gp[:, a] - gm[:, a]) / (2 * eps)
    return (0.5 * div).astype(np.float32)


def probe(position, *, field=None, cloud=None, gt=None, level: float | None = None) -> dict:
    """What the viewer shows for a picked point: the one function both the window and the browser call.

    position : (3,) input units
    field    : a Field or None; cloud: (M, 3) points or their cKDTree, or None; gt: a TriangleMesh or None
    level    : the surface's level (None: the field's own)

    Returns {"position": (3,) float64, "value": the field's value or None, "kind": the field's
    kind or None, "to_surface": |value - level| for distance fields or None, "to_data":
    distance to the nearest cloud point or None, "to_gt": distance to the ground truth or None}.
    """
    p = np.asarray(position, np.float64).reshape(1, 3)
    out = {"position": p[0].copy(), "value": None, "kind": None, "to_surface": None, "to_data": None, "to_gt": None}
    if field is not None:
        lvl = float(field.level if level is None else level)
        out["value"] = float(np.asarray(field.value(p))[0])
        out["kind"] = field.kind
        if field.kind in ("signed", "unsigned"):
            out["to_surface"] = abs(out["value"] - lvl)
    if cloud is not None:
        out["to_data"] = float(distance_to_points(cloud, p)[0])
    if gt is not None:
        out["to_gt"] = float(distance_to_mesh(gt, p)[0])
    return out


def probe_text(result: dict) -> str:
    """One line per quantity of a :func:`probe` result, units named."""
    x, y, z = result["position"]
    lines = [f"picked ({x:.4g}, {y:.4g}, {z:.4g}) [input units]"]
    if result["value"] is not None:
        unit = "probability" if result["kind"] == "occupancy" else "input units"
        lines.append(f"field value {result['value']:.4g} [{unit}]")
    for key, name in (("to_surface", "to the field's surface"), ("to_data", "to the input points"),
                      ("to_gt", "to the ground truth")):
        if result[key] is not None and math.isfinite(result[key]):
            lines.append(f"distance {name} {result[key]:.4g} [input units]")
    return "\n".join(lines)


def _unit(g: np.ndarray) -> np.ndarray:
    g = np.asarray(g, np.float64)
    n = np.linalg.norm(g, axis=1, keepdims=True)
    n[n < 1e-12] = 1.0
    return g / n
