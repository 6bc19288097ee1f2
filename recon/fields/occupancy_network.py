"""An occupancy field backed by a convolutional occupancy network (what ``--method occupancy`` fits).

The network's state after fitting is a feature grid and a decoder (after Peng et al.,
"Convolutional Occupancy Networks", ECCV 2020): a point's features are trilinearly
interpolated from the grid, and a small ReLU MLP maps them (and the point's position)
to an occupancy logit. The value is the probability sigmoid(logit); the surface is its
0.5 level.

Arrays (all plain, saved without pickle):
``features`` (C, R, R, R) float32, feature vectors at the nodes of a grid spanning
``enc_box`` (2, 3) float64 (cube units, node (0, 0, 0) at its low corner); decoder layers
``w{i}`` (out, in) float32 and ``b{i}`` (out,) float32, ``n_layers`` of them, the first
taking C + 3 inputs (features, then the position scaled to [-1, 1] across the box), the
last giving 1 output. Evaluation is NumPy (no torch needed).

:class:`OccupancyGrid` holds occupancy samples on a regular grid (what ``bake`` gives),
which the marching-cubes and sphere-tracing kernels read directly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recon.cloud import Normalization
from recon.errors import InputError
from recon.fields.base import network_frame, save_field
from recon.fields.grid import ScalarGrid
from recon.geometry import check_points

EVAL_BATCH = 1 << 16
"Points per decoder evaluation batch (bounds the scratch memory)."
GRADIENT_STEP = 0.25
"Central-difference step of the gradient, in feature-grid cells."
BAKE_COARSE_STEP = 4
"Bake: fine nodes per coarse cell of the first pass."
BAKE_BAND = 0.3
"Bake: a coarse cell is refined when a corner's |occupancy - 0.5| is below this (or its corners disagree)."


def cell_corners(i0, w, R: int):
    """The eight corners of each query's feature-grid cell, as (rows, weights) pairs: rows
    (M,) index the (R^3, C) feature table (node (i, j, k) at row (i * R + j) * R + k),
    weights (M,) are the trilinear weights. i0 (M, 3) integer lower corners and w (M, 3)
    fractions in the cell, NumPy arrays or torch tensors alike (the NumPy decoder and the
    torch one share it)."""
    for cx in (0, 1):
        wx = w[:, 0] if cx else 1.0 - w[:, 0]
        for cy in (0, 1):
            wy = w[:, 1] if cy else 1.0 - w[:, 1]
            for cz in (0, 1):
                wz = w[:, 2] if cz else 1.0 - w[:, 2]
                yield ((i0[:, 0] + cx) * R + i0[:, 1] + cy) * R + i0[:, 2] + cz, wx * wy * wz


def decode_numpy(arrays: dict, u: np.ndarray) -> np.ndarray:
    """(N, 3) cube-unit points -> (N,) float32 occupancy logits (the reference forward pass)."""
    feats = np.asarray(arrays["features"], np.float32)
    C, R = feats.shape[0], feats.shape[1]
    box = np.asarray(arrays["enc_box"], np.float64)
    table = np.ascontiguousarray(feats.reshape(C, -1).T)  # (R^3, C), node (i, j, k) at row (i*R + j)*R + k
    s = np.clip((np.asarray(u, np.float64) - box[0]) / (box[1] - box[0]), 0.0, 1.0)
    pos = s * (R - 1)
    i0 = np.minimum(np.floor(pos).astype(np.int64), R - 2)
    w = (pos - i0).astype(np.float32)
    f = np.zeros((len(s), C), np.float32)
    for rows, weight in cell_corners(i0, w, R):
        f += weight[:, None] * table[rows]
    h = np.concatenate([f, (2.0 * s - 1.0).astype(np.float32)], axis=1)
    n_layers = int(arrays["n_layers"])
    for i in range(n_layers):
        h = h @ np.asarray(arrays[f"w{i}"], np.float32).T + np.asarray(arrays[f"b{i}"], np.float32)
        if i < n_layers - 1:
            np.maximum(h, 0.0, out=h)
    return h[:, 0]


def check_network_arrays(arrays: dict) -> None:
    """Raise InputError unless ``arrays`` hold a consistent feature grid and decoder."""
    missing = [k for k in ("features", "enc_box", "n_layers") if k not in arrays]
    if missing:
        raise InputError(f"occupancy field arrays lack {', '.join(missing)}")
    feats = np.asarray(arrays["features"])
    if feats.ndim != 4 or len(set(feats.shape[1:])) != 1 or feats.shape[1] < 2:
        raise InputError(f"occupancy features must be (C, R, R, R) with R >= 2, got {feats.shape}")
    box = np.asarray(arrays["enc_box"], np.float64)
    if box.shape != (2, 3) or not np.all(box[1] > box[0]):
        raise InputError(f"occupancy enc_box must be a (2, 3) box, got {box.tolist()}")
    n_layers = int(arrays["n_layers"])
    if not 1 <= n_layers <= 64:
        raise InputError(f"occupancy decoder must have 1..64 layers, got {n_layers}")
    width = feats.shape[0] + 3
    for i in range(n_layers):
        if f"w{i}" not in arrays or f"b{i}" not in arrays:
            raise InputError(f"occupancy decoder layer {i} is missing")
        w, b = np.asarray(arrays[f"w{i}"]), np.asarray(arrays[f"b{i}"])
        out = 1 if i == n_layers - 1 else w.shape[0]
        if w.ndim != 2 or w.shape != (out, width) or b.shape != (out,):
            raise InputError(f"occupancy decoder layer {i} must be ({out}, {width}) weights and ({out},) "
                             f"biases, got {w.shape} and {b.shape}")
        width = out


class OccupancyField:
    """Occupancy probability from a feature grid and a decoder (kind "occupancy", level 0.5).

    arrays        : the network (see the module docstring)
    normalization : input units <-> fitting cube (uniform scale)
    box           : (2, 3) float64 bounds of the field in input units (default: the encoding box's)
    params        : fitting parameters (JSON)
    """

    def __init__(self, arrays: dict, *, normalization: Normalization, box=None, kind: str = "occupancy",
                 level: float = 0.5, params: dict | None = None):
        if kind != "occupancy" or level != 0.5:
            raise InputError(f"an occupancy field has kind 'occupancy' at level 0.5, got kind={kind!r} level={level}")
        self.arrays, self.normalization, self.box = network_frame(
            arrays, normalization, box, what="an occupancy field", check=check_network_arrays)
        self.kind = "occupancy"
        self.level = 0.5
        self.params = dict(params or {})

    @property
    def bounds(self) -> np.ndarray:
        return self.box.copy()

    @property
    def cell_size(self) -> float:
        """Feature-grid node spacing, input units."""
        box = np.asarray(self.arrays["enc_box"], np.float64)
        return float((box[1] - box[0]).max()) / (self.arrays["features"].shape[1] - 1) / self.normalization.scale

    def logits(self, x) -> np.ndarray:
        """(N, 3) points, input units -> (N,) float32 occupancy logits."""
        p = check_points(x)
        u = self.normalization.to_unit(p)
        out = np.empty(len(u), np.float32)
        for s in range(0, len(u), EVAL_BATCH):
            out[s: s + EVAL_BATCH] = decode_numpy(self.arrays, u[s: s + EVAL_BATCH])
        return out

    def value(self, x) -> np.ndarray:
        """(N, 3) -> (N,) float32 probability of being inside."""
        z = self.logits(x).astype(np.float64)
        return (0.5 * (1.0 + np.tanh(0.5 * z))).astype(np.float32)

    def gradient(self, x) -> np.ndarray:
        """(N, 3) -> (N, 3) float32 gradient of the probability (central differences)."""
        p = check_points(x)
        h = GRADIENT_STEP * self.cell_size
        out = np.empty((len(p), 3), np.float32)
        for a in range(3):
            e = np.zeros(3)
            e[a] = h
            out[:, a] = (self.value(p + e) - self.value(p - e)) / (2.0 * h)
        return out

    def closest_point(self, x, *, steps: int = 32) -> np.ndarray:
        """(N, 3) -> (N, 3) float64 points on the 0.5 level: bisection along the gradient line
        through each point, within a few feature cells (points with no crossing there stay put)."""
        p = check_points(x)
        g = self.gradient(p).astype(np.float64)
        n = np.linalg.norm(g, axis=1, keepdims=True)
        d = g / np.where(n > 0, n, 1.0)
        reach = 4.0 * self.cell_size
        inside = self.value(p) >= 0.5
        # inside points go down the gradient (outward), outside points up it
        direction = np.where(inside[:, None], -d, d)
        far = p + reach * direction
        crosses = (self.value(far) >= 0.5) != inside
        lo, hi = np.zeros(len(p)), np.full(len(p), reach)
        for _ in range(steps):
            mid = 0.5 * (lo + hi)
            same = (self.value(p + mid[:, None] * direction) >= 0.5) == inside
            lo = np.where(same, mid, lo)
            hi = np.where(same, hi, mid)
        t = np.where(crosses, 0.5 * (lo + hi), 0.0)
        return p + t[:, None] * direction

    def bake(self, resolution: int = 256, *, bounds=None, sparse: bool = True) -> OccupancyGrid:
        """The probability on a grid with ``resolution`` nodes along the longest side of
        ``bounds`` (default: the field's): an :class:`OccupancyGrid` that the kernels read.

        A coarse pass every BAKE_COARSE_STEP nodes finds the cells near the 0.5 level; only
        their nodes are evaluated, the rest take the coarse pass's trilinear interpolation
        (far from 0.5, so it makes no crossing). ``sparse=False`` evaluates every node."""
        if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) or resolution < 2:
            raise InputError(f"bake resolution must be an integer >= 2, got {resolution!r}")
        box = self.box if bounds is None else np.asarray(bounds, np.float64).reshape(2, 3)
        if not np.all(np.isfinite(box)) or not np.all(box[1] > box[0]):
            raise InputError(f"bake bounds must be a finite box with max > min, got {box.tolist()}")
        h = float((box[1] - box[0]).max()) / (int(resolution) - 1)
        shape = np.maximum(np.ceil((box[1] - box[0]) / h - 1e-9).astype(np.int64) + 1, 2)
        values = _bake_values(self.value, box[0], h, shape, BAKE_COARSE_STEP if sparse else 1)
        return OccupancyGrid(values, box[0], h, normalization=self.normalization,
                             params={**self.params, "baked_from": "OccupancyField"})

    def _arrays(self) -> dict:
        return {**{"net_" + k: v for k, v in self.arrays.items()}, "box": self.box}

    @classmethod
    def _from_arrays(cls, arrays: dict, *, kind, level, normalization, params) -> OccupancyField:
        net = {k[4:]: v for k, v in arrays.items() if k.startswith("net_")}
        return cls(net, normalization=normalization, box=arrays["box"], kind=kind, level=level, params=params)

    def save(self, path) -> Path:
        return save_field(self, path)

    def __repr__(self) -> str:
        f = self.arrays["features"]
        return f"OccupancyField(features={f.shape[0]}x{f.shape[1]}^3, bounds={self.box.tolist()})"


def _nodes(origin, h, ix, iy, iz) -> np.ndarray:
    gx, gy, gz = np.meshgrid(origin[0] + ix * h, origin[1] + iy * h, origin[2] + iz * h, indexing="ij")
    return np.stack([gx.ravel(), gy.ravel(), gz.ravel()], axis=1)


def _bake_values(value, origin, h, shape, step: int) -> np.ndarray:
    """(X, Y, Z) float32 samples of ``value`` at ``origin + ijk * h``, coarse to fine."""
    shape = np.asarray(shape, np.int64)
    if step <= 1:
        out = np.empty(tuple(shape), np.float32)
        iy, iz = np.arange(shape[1]), np.arange(shape[2])
        for i in range(shape[0]):
            out[i] = value(_nodes(origin, h, np.array([i]), iy, iz)).reshape(shape[1], shape[2])
        return out
    nb = -(-(shape - 1) // step)  # coarse cells per axis (the last may reach past the grid)
    coarse = value(_nodes(origin, h, *[np.arange(m + 1) * step for m in nb])).reshape(tuple(nb + 1))
    near = np.abs(coarse - 0.5) < BAKE_BAND
    above = coarse >= 0.5
    refine = np.zeros(tuple(nb), bool)
    any_above = np.zeros(tuple(nb), bool)
    all_above = np.ones(tuple(nb), bool)
    for c in range(8):
        sl = tuple(slice((c >> (2 - a)) & 1, ((c >> (2 - a)) & 1) + nb[a]) for a in range(3))
        refine |= near[sl]
        any_above |= above[sl]
        all_above &= above[sl]
    refine |= any_above & ~all_above
    # the first pass, trilinearly interpolated to every fine node
    import scipy.ndimage as ndi

    fine = [np.arange(n) / step for n in shape]
    gx, gy, gz = np.meshgrid(*fine, indexing="ij")
    out = ndi.map_coordinates(coarse, [gx, gy, gz], order=1, mode="nearest").astype(np.float32)
    del gx, gy, gz
    # refined cells (and their neighbours, so no crossing sits on a cell border) evaluate every node
    refine = ndi.binary_dilation(refine, iterations=1)
    blocks = [np.minimum(np.arange(n) // step, m - 1) for n, m in zip(shape, nb)]
    todo = np.argwhere(refine[np.ix_(*blocks)])
    for s in range(0, len(todo), EVAL_BATCH):
        ijk = todo[s: s + EVAL_BATCH]
        out[ijk[:, 0], ijk[:, 1], ijk[:, 2]] = value(origin + ijk * h)
    return out


class OccupancyGrid(ScalarGrid):
    """Occupancy probabilities sampled on a regular grid (see
    :class:`~recon.fields.grid.ScalarGrid` for the arrays), kind "occupancy", level 0.5."""

    KINDS = ("occupancy",)
    DEFAULT_LEVEL = 0.5

    def closest_point(self, x, *, steps: int = 32) -> np.ndarray:
        """(N, 3) -> (N, 3) float64 points on the level: bisection along the gradient line
        within four voxels (points with no crossing there stay put)."""
        p = check_points(x)
        g = self.gradient(p).astype(np.float64)
        n = np.linalg.norm(g, axis=1, keepdims=True)
        d = g / np.where(n > 0, n, 1.0)
        inside = self.value(p) >= self.level
        direction = np.where(inside[:, None], -d, d)
        reach = 4.0 * self.voxel_size
        crosses = (self.value(p + reach * direction) >= self.level) != inside
        lo, hi = np.zeros(len(p)), np.full(len(p), reach)
        for _ in range(steps):
            mid = 0.5 * (lo + hi)
            same = (self.value(p + mid[:, None] * direction) >= self.level) == inside
            lo, hi = np.where(same, mid, lo), np.where(same, hi, mid)
        return p + np.where(crosses, 0.5 * (lo + hi), 0.0)[:, None] * direction
