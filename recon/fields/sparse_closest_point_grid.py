"""Closest-point offsets baked on a block-sparse grid: nodes near the surface only.

A dense grid of offsets (:class:`~recon.fields.closest_point_grid.ClosestPointGrid`) costs 12 bytes
a node everywhere, yet the sphere tracer needs offsets only near the surface; farther
off, a lower bound on the distance is enough to step by. So the box is cut into blocks of
``brick`` x ``brick`` x ``brick`` cells: a block that may lie within ``margin`` of the
surface keeps a brick of (brick + 1)^3 node offsets (shared faces are stored twice, so
each brick interpolates on its own), every other block only a lower bound on the
distance from its points to the surface. At 256 nodes and bricks of 8 cells a surface
touches a few thousand of the 32,768 blocks.

The layout is what the numba/CUDA kernels read (``MODE_CLOSEST_SPARSE``):

- ``table`` (BX, BY, BZ) float32: k >= 0, block (i, j, k) stores brick k (k + 0.5: brick k,
  off the data's support); negative, an empty block whose points lie at least
  ``-1 - table`` from the surface;
- ``bricks`` (3, K * (B + 1), B + 1, B + 1) float32: brick k's offsets (closest surface
  point minus node, input units) are ``bricks[:, k * (B + 1):(k + 1) * (B + 1)]``.

Within a brick the field is the same trilinear interpolation of the same node offsets as
the dense grid. In an empty block there is no closest point stored: ``value`` is the
block's lower bound and ``closest_point`` lies that far towards the nearest stored brick,
which is enough to step by but is not the surface (mesh the baked grid at a voxel no finer
than its own, whose band stays within the margin).

A fitted field carries two things into the bake: its data support, per block (a brick none
of whose nodes the data supports is marked, ``supported`` is false there, and the kernels
pass its surface, the network's guess, as the NumPy march passes it on the field), and its
``surface_tolerance``, which becomes the kernels' hit floor.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recon.errors import InputError
from recon.fields.base import HasSupport, HasSurfaceTolerance, save_field
from recon.geometry import check_points


class SparseClosestPointGrid:
    """Closest-point offsets in bricks near the surface; an unsigned field.

    table      : (BX, BY, BZ) float32, see the module docstring
    bricks     : (3, K * (B + 1), B + 1, B + 1) float32 offsets, input units
    origin     : (3,) float64 position of node (0, 0, 0), input units
    voxel_size : float, input units
    bounds     : (2, 3) box the grid was baked over (within the blocks' box)
    """

    def __init__(self, table, bricks, origin, voxel_size: float, bounds, *, kind: str = "unsigned",
                 level: float = 0.0, normalization=None, params: dict | None = None):
        table = np.ascontiguousarray(table, np.float32)
        bricks = np.ascontiguousarray(bricks, np.float32)
        if table.ndim != 3 or min(table.shape) < 1:
            raise InputError(f"table must be (BX, BY, BZ), got {table.shape}")
        if bricks.ndim != 4 or bricks.shape[0] != 3 or bricks.shape[2] != bricks.shape[3] or bricks.shape[2] < 2 \
                or bricks.shape[1] % bricks.shape[2]:
            raise InputError(f"bricks must be (3, K * (B + 1), B + 1, B + 1), got {bricks.shape}")
        count = bricks.shape[1] // bricks.shape[2]
        stored = table[table >= 0]
        if stored.size and (np.floor(stored).max() >= count or np.any(2 * stored != np.round(2 * stored))):
            raise InputError(f"table names bricks that are not there ({count} stored)")
        if kind != "unsigned" or level != 0.0:
            raise InputError(f"a closest-point grid is an unsigned field at level 0, got kind={kind!r} level={level}")
        if not (np.isfinite(voxel_size) and voxel_size > 0):
            raise InputError(f"voxel_size must be a positive number, got {voxel_size}")
        self.table, self.bricks = table, bricks
        self.origin = np.asarray(origin, np.float64).reshape(3)
        self.voxel_size = float(voxel_size)
        self.brick = bricks.shape[2] - 1
        self.bounds = np.asarray(bounds, np.float64).reshape(2, 3)
        self.kind, self.level = "unsigned", 0.0
        self.normalization = normalization
        self.params = dict(params or {})
        self._nearest_brick = None

    @property
    def shape(self) -> tuple[int, int, int]:
        """Nodes along each axis that the blocks span."""
        return tuple(int(m) * self.brick + 1 for m in self.table.shape)

    @property
    def surface_tolerance(self) -> float:
        """The baked field's surface tolerance (input units; 0 for exact fields): a ray this
        near its surface counts as on it."""
        return float(self.params.get("surface_tolerance", 0.0))

    def supported(self, x) -> np.ndarray:
        """(N, 3) -> (N,) bool: whether x lies in a stored brick that the data supports
        (elsewhere the grid knows only a bound, or the surface is the network's guess)."""
        code = self._codes(check_points(x))
        return (code >= 0) & (code - np.floor(code) < 0.25)

    @property
    def n_bricks(self) -> int:
        return self.bricks.shape[1] // (self.brick + 1)

    @property
    def nbytes(self) -> int:
        return int(self.table.nbytes + self.bricks.nbytes)

    def _block(self, p):
        """Clamped points, grid coordinates and block indices of points (N, 3)."""
        b, h = self.brick, self.voxel_size
        top = self.origin + np.array(self.table.shape) * b * h
        q = np.clip(p, self.origin, top)
        g = (q - self.origin) / h
        return q, g, np.minimum((g // b).astype(np.int64), np.array(self.table.shape) - 1)

    def _codes(self, p):
        blk = self._block(p)[2]
        return self.table[blk[:, 0], blk[:, 1], blk[:, 2]]

    def _lookup(self, x):
        """(points (N, 3), offsets (N, 3) float64 where stored, stored (N,) bool, bound (N,))."""
        from recon.kernels.trilinear import trilinear_value

        p = check_points(x)
        b = self.brick
        q, g, blk = self._block(p)
        code = self.table[blk[:, 0], blk[:, 1], blk[:, 2]]
        stored = code >= 0
        off = np.zeros((len(p), 3))
        if stored.any():
            k = np.floor(code[stored]).astype(np.int64)
            local = g[stored] - blk[stored] * b  # brick coordinates, 0..b
            # one brick per row: stack them along x, as the kernels read them
            flat = np.column_stack([local[:, 0] + k * (b + 1), local[:, 1], local[:, 2]])
            for a in range(3):
                off[stored, a] = trilinear_value(self.bricks[a], np.zeros(3), 1.0, flat)
        off[stored] += (q - p)[stored]  # outside the blocks: the closest point of the nearest box point
        bound = np.where(stored, 0.0, -1.0 - code) + np.linalg.norm(q - p, axis=1) * ~stored
        return p, off, stored, bound

    def closest_point(self, x) -> np.ndarray:
        """(N, 3) -> (N, 3) float64: closest surface points where a brick is stored; in an
        empty block, the point its lower bound away towards the nearest stored brick."""
        p, off, stored, bound = self._lookup(x)
        if (~stored).any():
            toward = self._toward_bricks(p[~stored])
            off[~stored] = toward * bound[~stored, None]
        return p + off

    def value(self, x) -> np.ndarray:
        """(N, 3) -> (N,) float32 distance to the surface (a lower bound in empty blocks)."""
        p, off, stored, bound = self._lookup(x)
        return np.where(stored, np.linalg.norm(off, axis=1), bound).astype(np.float32)

    def gradient(self, x) -> np.ndarray:
        """(N, 3) -> (N, 3) float32 unit vectors pointing away from the closest point."""
        p = check_points(x)
        v = p - self.closest_point(p)
        n = np.linalg.norm(v, axis=1, keepdims=True)
        return (v / np.where(n > 0, n, 1.0)).astype(np.float32)

    def _toward_bricks(self, p):
        """Unit vectors from points (M, 3) towards the centre of the stored brick nearest
        their block (a distance transform of the block table, made once)."""
        from scipy import ndimage

        b, h = self.brick, self.voxel_size
        if self._nearest_brick is None:
            if self.n_bricks == 0:
                self._nearest_brick = np.zeros((3,) + self.table.shape, np.int32)
            else:
                self._nearest_brick = ndimage.distance_transform_edt(
                    self.table < 0, return_distances=False, return_indices=True).astype(np.int32)
        blk = self._block(p)[2]
        near = self._nearest_brick[:, blk[:, 0], blk[:, 1], blk[:, 2]].T
        v = self.origin + (near + 0.5) * b * h - p
        n = np.linalg.norm(v, axis=1, keepdims=True)
        return np.where(n > 0, v / np.where(n > 0, n, 1.0), np.array([1.0, 0.0, 0.0]))

    def _arrays(self) -> dict:
        return {"table": self.table, "bricks": self.bricks, "origin": self.origin,
                "voxel_size": np.float64(self.voxel_size), "box": self.bounds}

    @classmethod
    def _from_arrays(cls, arrays: dict, **common) -> "SparseClosestPointGrid":
        return cls(arrays["table"], arrays["bricks"], arrays["origin"], float(arrays["voxel_size"]),
                   arrays["box"], **common)

    def save(self, path) -> Path:
        return save_field(self, path)

    def __repr__(self) -> str:
        return (f"SparseClosestPointGrid(blocks={self.table.shape}, brick={self.brick}, bricks={self.n_bricks}, "
                f"voxel_size={self.voxel_size:.6g})")


def bake_sparse(field, resolution: int = 256, *, bounds=None, brick: int = 8, margin_voxels: float = 4.0,
                chunk: int = 1 << 18) -> SparseClosestPointGrid:
    """Sample ``field.closest_point`` on a block-sparse grid of ``resolution`` nodes along
    the longest side of ``bounds`` (default: the field's).

    Closest points are first taken at the blocks' corners; the distance is 1-Lipschitz, so
    no point of a block is nearer the surface than its nearest corner's distance less half
    the block's diagonal. Blocks whose bound is within ``margin_voxels`` voxels store a
    brick of node offsets; the rest store the bound. ``chunk``: points per closest-point
    call (memory). Returns a :class:`SparseClosestPointGrid` in the field's units.
    """
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) or resolution < 2:
        raise InputError(f"bake resolution must be an integer >= 2, got {resolution!r}")
    if isinstance(brick, bool) or not isinstance(brick, (int, np.integer)) or brick < 1:
        raise InputError(f"brick must be a positive integer, got {brick!r}")
    if not (np.isfinite(margin_voxels) and margin_voxels >= 0):
        raise InputError(f"margin_voxels must be a finite number >= 0, got {margin_voxels!r}")
    box = np.asarray(field.bounds if bounds is None else bounds, np.float64).reshape(2, 3)
    if not np.all(np.isfinite(box)) or not np.all(box[1] > box[0]):
        raise InputError(f"bounds must be a finite (2, 3) box with max > min, got {box.tolist()}")
    b = int(brick)
    h = float((box[1] - box[0]).max()) / (int(resolution) - 1)
    cells = np.maximum(np.ceil((box[1] - box[0]) / h - 1e-9).astype(np.int64), 1)
    nb = -(-cells // b)  # blocks per axis

    def closest(pts):
        return np.concatenate([np.asarray(field.closest_point(pts[s: s + chunk]), np.float64)
                               for s in range(0, len(pts), chunk)]) if len(pts) else np.zeros((0, 3))

    corners = np.stack(np.meshgrid(*(np.arange(m + 1) for m in nb), indexing="ij"), -1).reshape(-1, 3)
    cpts = box[0] + corners * b * h
    d = np.linalg.norm(cpts - closest(cpts), axis=1).reshape(tuple(nb + 1))
    near = np.full(tuple(nb), np.inf)
    for c in range(8):
        i, j, k = (c >> 2) & 1, (c >> 1) & 1, c & 1
        np.minimum(near, d[i: i + nb[0], j: j + nb[1], k: k + nb[2]], out=near)
    bound = np.maximum(near - 0.5 * np.sqrt(3.0) * b * h, 0.0)
    active = np.argwhere(bound <= margin_voxels * h)
    local = np.stack(np.meshgrid(*(np.arange(b + 1),) * 3, indexing="ij"), -1).reshape(-1, 3)
    supported = field.supported if isinstance(field, HasSupport) else None
    code = np.arange(len(active), dtype=np.float32)
    bricks = np.empty((3, len(active) * (b + 1), b + 1, b + 1), np.float32)
    per = max(1, chunk // len(local))
    for s in range(0, len(active), per):
        blocks = active[s: s + per]
        nodes = box[0] + ((blocks[:, None, :] * b + local[None]) * h).reshape(-1, 3)
        off = (closest(nodes) - nodes).astype(np.float32).reshape(len(blocks), b + 1, b + 1, b + 1, 3)
        bricks[:, s * (b + 1):(s + len(blocks)) * (b + 1)] = np.moveaxis(off, -1, 0).reshape(
            3, len(blocks) * (b + 1), b + 1, b + 1)
        if supported is not None:
            # a fitted field's surface far from its data is the network's guess (flakes): a
            # brick none of whose nodes the data supports is marked, and the kernels pass its
            # surface as the NumPy march does (its offsets stay: meshing reads them)
            keep = np.asarray(supported(nodes), bool).reshape(len(blocks), -1).any(axis=1)
            code[s: s + len(blocks)][~keep] += 0.5
    table = (-1.0 - bound).astype(np.float32)
    table[tuple(active.T)] = code
    tolerance = float(field.surface_tolerance or 0.0) if isinstance(field, HasSurfaceTolerance) else 0.0
    params = {**field.params, "baked_from": type(field).__name__,
              "brick": b, "margin_voxels": float(margin_voxels), "surface_tolerance": tolerance}
    return SparseClosestPointGrid(table, bricks, box[0], h, box, normalization=field.normalization, params=params)
