"""The tile grid: square columns over the XY plane, each a core plus an overlap.

A point belongs to the *core* of exactly one tile (half-open intervals) and to the
*padded* box (core grown by ``overlap`` on every side) of up to four. A tile is fitted to
the points of its padded box, so that its field is sound across its core's border, and
its mesh is cut back to its core. Tiles are columns over the whole height range: a
terrain or a city is wide, not tall.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

from recon.errors import InputError

DEFAULT_OVERLAP_SHARE = 0.15
"Overlap of a tile on each side, as a share of the tile size, when none is given."


@dataclass(frozen=True)
class TileGrid:
    """A grid of ``shape`` square tiles of side ``size`` whose lower corner is ``origin``.

    origin  : (2,) float64, input units (x, y of the first tile's core corner)
    size    : float, side of a tile's core, input units
    overlap : float, how far a tile's padded box reaches past its core, input units
    shape   : (tiles along x, tiles along y)
    """

    origin: tuple[float, float]
    size: float
    overlap: float
    shape: tuple[int, int]

    def tiles(self) -> list[tuple[int, int]]:
        """Every tile's (i, j), in row-major order."""
        return [(i, j) for i in range(self.shape[0]) for j in range(self.shape[1])]

    def core(self, tile: tuple[int, int]) -> np.ndarray:
        """(2, 2) float64: the core's [min, max] corners in x, y."""
        lo = np.asarray(self.origin, np.float64) + np.asarray(tile, np.float64) * self.size
        return np.stack([lo, lo + self.size])

    def padded(self, tile: tuple[int, int]) -> np.ndarray:
        """(2, 2) float64: the core grown by the overlap."""
        c = self.core(tile)
        return np.stack([c[0] - self.overlap, c[1] + self.overlap])

    def owner(self, xy: np.ndarray) -> np.ndarray:
        """(N, 2) x, y -> (N, 2) int64: the tile whose core holds each point (points off
        the grid go to the nearest tile)."""
        ij = np.floor((np.asarray(xy, np.float64) - np.asarray(self.origin)) / self.size).astype(np.int64)
        return np.clip(ij, 0, np.asarray(self.shape) - 1)

    def neighbours(self, tile: tuple[int, int]) -> list[tuple[int, int]]:
        """The tile and the up to eight tiles around it."""
        i, j = tile
        return [(a, b) for a in range(i - 1, i + 2) for b in range(j - 1, j + 2)
                if 0 <= a < self.shape[0] and 0 <= b < self.shape[1]]

    def assign(self, xy: np.ndarray):
        """Yield ((i, j), rows) for every tile whose padded box holds some of ``xy`` (N, 2)."""
        xy = np.asarray(xy, np.float64)
        rel = (xy - np.asarray(self.origin)) / self.size
        reach = self.overlap / self.size
        lo = np.clip(np.floor(rel - reach).astype(np.int64), 0, np.asarray(self.shape) - 1)
        hi = np.clip(np.floor(rel + reach).astype(np.int64), 0, np.asarray(self.shape) - 1)
        # reach < 1/2, so a point lies in the padded boxes of at most two tiles per axis
        keys, rows = [], []
        for di in (0, 1):
            for dj in (0, 1):
                i, j = lo[:, 0] + di, lo[:, 1] + dj
                ok = np.flatnonzero((i <= hi[:, 0]) & (j <= hi[:, 1]))
                keys.append(i[ok] * self.shape[1] + j[ok])
                rows.append(ok)
        key, rows = np.concatenate(keys), np.concatenate(rows)
        order = np.lexsort((rows, key))
        key, rows = key[order], rows[order]
        starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else np.zeros(0, np.int64)
        for s, e in zip(starts, np.r_[starts[1:], len(key)]):
            yield (int(key[s] // self.shape[1]), int(key[s] % self.shape[1])), rows[s:e]

    @staticmethod
    def name(tile: tuple[int, int]) -> str:
        """File-name stem of a tile."""
        return f"tile_{tile[0]:04d}_{tile[1]:04d}"

    def to_json(self) -> str:
        return json.dumps({"origin": list(map(float, self.origin)), "size": self.size,
                           "overlap": self.overlap, "shape": list(self.shape)})

    @classmethod
    def from_json(cls, text: str) -> "TileGrid":
        d = json.loads(text)
        return cls(tuple(d["origin"]), float(d["size"]), float(d["overlap"]), tuple(d["shape"]))


def make_grid(bounds: np.ndarray, size: float, *, overlap: float | None = None) -> TileGrid:
    """The grid of tiles of side ``size`` covering ``bounds`` (2, 3) or (2, 2) input units.

    overlap : input units, less than half the size; default DEFAULT_OVERLAP_SHARE x size.
    """
    if isinstance(size, bool) or not isinstance(size, (int, float, np.floating)) or not (
            math.isfinite(size) and size > 0):
        raise InputError(f"the tile size must be a positive length, got {size!r}")
    if overlap is None:
        overlap = DEFAULT_OVERLAP_SHARE * float(size)
    if not (math.isfinite(overlap) and 0 < overlap < 0.5 * size):
        raise InputError(f"the tile overlap must lie between 0 and half the tile size ({0.5 * size:g}), got {overlap!r}")
    b = np.asarray(bounds, np.float64)[:, :2]
    ext = b[1] - b[0]
    shape = tuple(int(max(1, math.ceil(e / size - 1e-9))) for e in ext)
    # the grid is centred on the data, so the border tiles are cut alike
    origin = b[0] - (np.asarray(shape) * size - ext) / 2.0
    return TileGrid((float(origin[0]), float(origin[1])), float(size), float(overlap), shape)
