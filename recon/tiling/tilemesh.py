"""Meshing one tile's core so that neighbouring tiles' meshes meet vertex for vertex.

Every tile is meshed on one lattice shared by the whole scene (spacing ``h``, nodes at
the grid's origin plus whole multiples of ``h``), with one field shared by the whole
scene: at a point, the field of the tile whose core holds it (:class:`SeamField`). Two
tiles that mesh the same lattice cell near their common border therefore read the same
field at the same nodes and make the same faces with the same vertices; each keeps only
the faces whose centre lies in its own core, so together they cover the border once,
and :mod:`recon.tiling.stitch` welds the shared vertices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from recon.errors import InputError
from recon.tiling.tiles import TileGrid
from recon.triangles import TriangleMesh


@dataclass(frozen=True)
class TileMeshTunables:
    """Tolerances of tile meshing, in lattice cells."""

    margin_cells: int = 4
    "The meshed box reaches this many cells past the core (the mesher's cells at its box's edge are incomplete)."
    block_cells: int = 4
    "Box corners sit on whole multiples of this many cells (the mesher's coarse search works in such blocks)."


TUNABLES = TileMeshTunables()


class SeamField:
    """The scene's unsigned closest-point field, made of the tiles' fields: at a point,
    the field of the tile whose core holds it (or of ``home`` where that tile has none).

    grid   : the TileGrid
    fields : {(i, j): field} with ``closest_point`` (and optionally ``supported``,
             ``onto_data``), input units
    home   : the tile being meshed
    box    : (2, 3) float64, the box this field is meshed in, input units
    """

    kind = "unsigned"
    level = 0.0

    def __init__(self, grid: TileGrid, fields: dict, home: tuple[int, int], box: np.ndarray):
        if home not in fields:
            raise InputError(f"tile {home} has no field")
        self.grid, self.fields, self.home = grid, dict(fields), home
        self.box = np.asarray(box, np.float64)
        own = getattr(fields[home], "params", {}) or {}
        self.params = {"surface_decided": "open",
                       "clean": all(bool((getattr(f, "params", {}) or {}).get("clean", False)) for f in self.fields.values()),
                       "spacing_median": float(own.get("spacing_median", 0.0) or 0.0)}

    @property
    def bounds(self) -> np.ndarray:
        return self.box.copy()

    @property
    def keeps_data(self) -> bool:
        return all(getattr(f, "keeps_data", False) for f in self.fields.values())

    def _groups(self, x: np.ndarray):
        ij = self.grid.owner(x[:, :2])
        key = ij[:, 0] * self.grid.shape[1] + ij[:, 1]
        for k in np.unique(key):
            tile = (int(k // self.grid.shape[1]), int(k % self.grid.shape[1]))
            yield self.fields.get(tile, self.fields[self.home]), np.flatnonzero(key == k)

    def _by_owner(self, x, method: str, fallback) -> np.ndarray:
        x = np.asarray(x, np.float64).reshape(-1, 3)
        out = None
        for f, rows in self._groups(x):
            fn = getattr(f, method, None)
            vals = np.asarray(fn(x[rows]) if fn is not None else fallback(x[rows]))
            if out is None:
                out = np.empty((len(x),) + vals.shape[1:], vals.dtype)
            out[rows] = vals
        return out if out is not None else np.zeros((0, 3))

    def closest_point(self, x) -> np.ndarray:
        return self._by_owner(x, "closest_point", None).astype(np.float64)

    def onto_data(self, x) -> np.ndarray:
        return self._by_owner(x, "onto_data", lambda p: p).astype(np.float64)

    def supported(self, x) -> np.ndarray:
        return self._by_owner(x, "supported", lambda p: np.ones(len(p), bool)).astype(bool)


def mesh_box(grid: TileGrid, tile: tuple[int, int], h: float, z_origin: float, z_range) -> np.ndarray:
    """(2, 3) float64: the box tile ``tile`` is meshed in: its core grown by
    ``TUNABLES.margin_cells`` cells, over ``z_range`` (input units) grown alike, its
    corners on the shared lattice (origin: the grid's x, y and ``z_origin``)."""
    T = TUNABLES
    core = grid.core(tile)
    lattice0 = np.array([grid.origin[0], grid.origin[1], z_origin], np.float64)
    lo = np.array([core[0, 0], core[0, 1], float(z_range[0])]) - T.margin_cells * h
    hi = np.array([core[1, 0], core[1, 1], float(z_range[1])]) + T.margin_cells * h
    block = T.block_cells * h
    lo_k = np.floor((lo - lattice0) / block)
    hi_k = np.ceil((hi - lattice0) / block)
    # every side a whole number of cells, so the mesher's spacing is h on all three axes
    return np.stack([lattice0 + lo_k * block, lattice0 + hi_k * block])


def mesh_tile(grid: TileGrid, fields: dict, tile: tuple[int, int], *, h: float, z_origin: float,
              z_range) -> TriangleMesh:
    """The mesh of the surface in tile ``tile``'s core, input units (float64).

    fields   : {(i, j): unsigned field with closest_point} of this tile and (where they
               exist) its neighbours
    h        : lattice spacing, input units (the same for every tile of the scene)
    z_origin : the lattice's height origin (the same for every tile), input units
    z_range  : (zmin, zmax) of this tile's points, input units

    Faces are kept when their centre lies in the core; on a side where the grid has no
    neighbour the core reaches out to the data's end.
    """
    from recon.meshing.unsigned import extract_unsigned_mesh

    if not (math.isfinite(h) and h > 0):
        raise InputError(f"the lattice spacing must be a positive length, got {h!r}")
    box = mesh_box(grid, tile, h, z_origin, z_range)
    cells = np.rint((box[1] - box[0]) / h).astype(np.int64)
    field = SeamField(grid, fields, tile, box)
    mesh = extract_unsigned_mesh(field, resolution=int(cells.max()) + 1, bounds=box, surface="open",
                                 min_component_fraction=0.0)
    return crop_to_core(mesh, grid, tile)


def crop_to_core(mesh: TriangleMesh, grid: TileGrid, tile: tuple[int, int]) -> TriangleMesh:
    """Keep the faces whose centre lies in the tile's core, [min, max) per axis; a border
    of the grid does not cut. Unused vertices are dropped."""
    if mesh.n_faces == 0:
        return TriangleMesh(np.zeros((0, 3)), np.zeros((0, 3), np.int64))
    return _keep_faces(mesh, in_core(mesh.vertices[mesh.faces].mean(axis=1)[:, :2], grid, tile))


def in_core(xy: np.ndarray, grid: TileGrid, tile: tuple[int, int]) -> np.ndarray:
    """(N,) bool: which of the (N, 2) points lie in the tile's core, [min, max) per axis,
    a border of the grid reaching out to infinity."""
    core = grid.core(tile)
    keep = np.ones(len(xy), bool)
    for axis in (0, 1):
        if tile[axis] > 0:
            keep &= xy[:, axis] >= core[0, axis]
        if tile[axis] < grid.shape[axis] - 1:
            keep &= xy[:, axis] < core[1, axis]
    return keep


def mesh_tile_height_field(points: np.ndarray, grid: TileGrid, tile: tuple[int, int], *, spacing: float,
                           origin, limits=None) -> TriangleMesh:
    """The open mesh of tile ``tile``'s core through the denoised points, a height field
    over x, y (``recon.meshing.height_field``), input units (float64), faces facing +z.

    points  : (N, 3) the tile's padded points, input units
    spacing : the scene's point spacing, input units (the cuts are counted in it, alike in every tile)
    origin  : (3,) the scene's origin (the same for every tile: a point's denoised position
              comes out the same, to the last bits, in every tile holding its neighbours)

    Which tile keeps a triangle: the one whose core holds its circumcentre. A triangle of
    the whole scene's Delaunay triangulation is one of any tile's whose padded box holds its
    circumcircle, so neighbouring tiles agree on the triangles near their common border,
    and points on a circle (gridded data) give all their triangles to one tile, whichever
    way each tile split them. (Every triangle kept has a circumradius of at most
    ``limits.max_circumradius`` spacings, so its circle lies in the keeping tile's padded box
    when the overlap exceeds that.)
    """
    from recon.meshing.height_field import LIMITS, circumcircles, height_field_faces

    limits = limits or LIMITS
    origin = np.asarray(origin, np.float64)
    moved, faces, _ = height_field_faces(np.asarray(points, np.float64) - origin, np.array([0.0, 0.0, 1.0]),
                                         spacing=spacing, limits=limits)
    mesh = TriangleMesh(moved + origin, faces)
    if len(faces) == 0:
        return TriangleMesh(np.zeros((0, 3)), np.zeros((0, 3), np.int64))
    centre, _ = circumcircles(moved[:, :2], faces)
    return _keep_faces(mesh, in_core(centre + origin[:2], grid, tile))


def _keep_faces(mesh: TriangleMesh, keep: np.ndarray) -> TriangleMesh:
    faces = mesh.faces[keep]
    used = np.unique(faces)
    remap = np.full(mesh.n_vertices, -1, np.int64)
    remap[used] = np.arange(len(used))
    return mesh.take_vertices(used, remap[faces])
