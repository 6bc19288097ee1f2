"""Marching cubes: a Field (or its grid) to an outward-oriented triangle mesh.

Two ways in:

- a grid field (``SignedDistanceGrid``: ``.values``, ``.origin``, ``.voxel_size``) with
  ``resolution=None`` is meshed directly on its own nodes;
- any other field, or any field with ``resolution=R``, is resampled on a regular grid
  of R nodes along the longest side of its bounds. For distance fields only the blocks
  of that grid near the surface are evaluated (a coarse pass finds them), so R=512
  costs one dense float32 grid, not a dense evaluation.

In both cases scikit-image's marching cubes runs with a ``mask`` of the cells whose
corner values bracket the level (dilated by one cell), so the large far-from-surface
parts of a grid cost one vectorised comparison and nothing else.

Faces are counter-clockwise seen from outside: outside is where a distance field grows
and where an occupancy field falls. Vertex normals are the field's normalised gradient
at the vertices (marching cubes' own normals where the gradient vanishes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from recon.errors import InputError
from recon.fields.base import Bakeable, GridSamples
from recon.triangles import TriangleMesh, face_components


@dataclass(frozen=True)
class MeshTunables:
    """Every tolerance and size the mesher uses, in one place."""

    default_resolution: int = 256
    """Nodes along the longest side when a field without a grid is meshed and no resolution is given."""
    coarse_step: int = 8
    """Fine cells per coarse cell (per axis) in the near-surface search of the resampling path."""
    surface_band: float = 1.5
    """A coarse block is evaluated when a corner's |f - level| is within this many coarse cell
    diagonals. 1 suffices for an exact distance field; the margin covers fitted fields whose
    gradient norm exceeds 1."""
    chunk_points: int = 1 << 18
    """Points per call to ``field.value`` / ``field.gradient``: bounds the scratch memory."""
    compiled_mask_min_nodes: int = 1 << 21
    """Grids with at least this many nodes get their crossing mask from the numba kernel
    (one parallel pass); smaller ones use NumPy and skip the compile."""
    level_nudge: float = 1e-3
    """Values within this many voxels (distance fields) or units (occupancy) of the level are
    moved just outside it, so marching cubes never puts two vertices on one grid node
    (which would make zero-area faces). Moves the surface by at most this fraction of a voxel."""


TUNABLES = MeshTunables()


# What `recon fit` and the bench keep of a fitted surface by default: pieces with fewer
# faces than this fraction of the largest are noise (bubbles a few voxels across).
FIT_MIN_COMPONENT_FRACTION = 0.01


def fit_min_component_fraction(field) -> float:
    """The piece-size floor `recon fit` and the bench apply to ``field``'s mesh by default:
    FIT_MIN_COMPONENT_FRACTION for signed and occupancy fields, whose small pieces are bubbles; 0 for
    unsigned (closest-point) fields, whose pieces are parts of an open or torn sheet the
    data shows (dropping them can cost an open scan half its completeness)."""
    return FIT_MIN_COMPONENT_FRACTION if field.kind in ("signed", "occupancy") else 0.0


def extract_mesh(
    field,
    *,
    resolution: int | None = None,
    level: float | None = None,
    min_component_fraction: float = 0.0,
    bounds=None,
) -> TriangleMesh:
    """Mesh the level set of ``field`` with marching cubes.

    field       : a Field (``kind``, ``level``, ``bounds``, ``value``, ``gradient``);
                  a grid field also has ``values`` (X, Y, Z), ``origin`` (3,), ``voxel_size``
    resolution  : None meshes a grid field on its own nodes (other fields at
                  ``TUNABLES.default_resolution``); R resamples the field with R nodes
                  along the longest side of the bounds
    level       : the iso-value, in the field's units; None takes ``field.level``
    min_component_fraction : drop connected pieces with fewer faces than this fraction of
                  the largest piece; 0 keeps everything
    bounds      : (2, 3) min and max corner (input units) to mesh inside; None takes
                  ``field.bounds``

    Returns a TriangleMesh in input units, faces counter-clockwise seen from outside,
    vertex normals (V, 3) float32 pointing outward.
    Raises InputError when there is nothing to mesh or an option is out of range.
    """
    kind = getattr(field, "kind", None)
    if kind not in ("signed", "unsigned", "occupancy"):
        raise InputError(f"field kind must be 'signed', 'unsigned' or 'occupancy', got {kind!r}")
    if kind == "unsigned" and (level is None or level == 0.0) and not isinstance(field, GridSamples):
        # fields that give closest points (CSP networks, closest-point grids): signs from
        # the closest-point directions (recon.meshing.unsigned)
        from recon.meshing.unsigned import extract_unsigned_mesh

        return extract_unsigned_mesh(field, resolution=resolution, bounds=bounds,
                                     min_component_fraction=min_component_fraction)
    if level is None:
        level = float(field.level)
        if kind == "unsigned" and level <= 0.0:
            raise InputError(
                "an unsigned distance field has no sign change at level 0, so marching cubes finds "
                "no surface; a scalar unsigned grid has no closest points for the closest-surface-point "
                "mesher, so give a level > 0 to mesh the offset surface"
            )
    else:
        try:
            level = float(level)
        except (TypeError, ValueError):
            raise InputError(f"level must be a number, got {level!r}") from None
        if not math.isfinite(level):
            raise InputError(f"level must be finite, got {level}")
        if kind == "unsigned" and level <= 0.0:
            raise InputError(
                f"level {level} on an unsigned distance field gives no surface (distances are >= 0): "
                "a scalar unsigned grid has no closest points for the closest-surface-point mesher; give a level > 0"
            )
    if resolution is not None:
        if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)):
            raise InputError(f"resolution must be an integer, got {resolution!r}")
        resolution = int(resolution)
        if resolution < 4:
            raise InputError(f"resolution must be at least 4 nodes, got {resolution}")
    try:
        fraction = float(min_component_fraction)
    except (TypeError, ValueError):
        raise InputError(f"min_component_fraction must be a number, got {min_component_fraction!r}") from None
    if not (0.0 <= fraction <= 1.0):
        raise InputError(f"min_component_fraction must be in [0, 1], got {min_component_fraction}")
    box = _check_bounds(field.bounds if bounds is None else bounds, name="bounds")

    if kind == "occupancy" and isinstance(field, Bakeable) and not isinstance(field, GridSamples):
        # a network is too slow to evaluate at every node: its bake evaluates near the level only
        res = int(field.params.get("mesh_resolution", TUNABLES.default_resolution)) if resolution is None else resolution
        field, resolution, bounds = field.bake(res, bounds=box), None, None
    if isinstance(field, GridSamples) and resolution is None:
        values, origin, h = _crop_grid(field, box if bounds is not None else None)
        owned = False  # may be the field's own array: never written
    else:
        res = TUNABLES.default_resolution if resolution is None else resolution
        values, origin, h = _resample(field, box, res, level, kind)
        owned = True

    outward_up = kind != "occupancy"  # distance grows outward; occupancy falls outward
    verts, faces, mc_normals = _marching_cubes(values, origin, h, level, outward_up=outward_up,
                                               nudge=TUNABLES.level_nudge * (h if outward_up else 1.0), owned=owned)
    del values
    if verts is None:
        raise InputError(f"the field has no surface at level {level:g} (no value crosses it inside the bounds)")
    if fraction > 0.0:
        verts, faces, mc_normals = _keep_large_components(verts, faces, mc_normals, fraction)
    normals = _vertex_normals(field, verts, mc_normals, outward_up=outward_up)
    return TriangleMesh(verts, faces, normals)


# --------------------------------------------------------------------------- inputs


def _check_bounds(bounds, *, name: str) -> np.ndarray:
    box = np.asarray(bounds, dtype=np.float64)
    if box.shape != (2, 3):
        raise InputError(f"{name} must be (2, 3) min and max corners, got shape {box.shape}")
    if not np.all(np.isfinite(box)):
        raise InputError(f"{name} must be finite, got {box.tolist()}")
    if not np.all(box[1] > box[0]):
        raise InputError(f"{name} must have max > min on every axis, got {box.tolist()}")
    return box


def _crop_grid(field, box):
    """The grid's values (a view when not cropped), origin and voxel size, cropped to ``box``."""
    values = np.asarray(field.values)
    origin = np.asarray(field.origin, dtype=np.float64).reshape(3)
    h = float(field.voxel_size)
    if values.ndim != 3 or min(values.shape) < 2:
        raise InputError(f"grid values must be (X, Y, Z) with every side >= 2, got {values.shape}")
    if box is not None:
        shape = np.array(values.shape)
        # The nodes inside the box (1e-9 voxel of slack for round-off).
        i0 = np.clip(np.ceil((box[0] - origin) / h - 1e-9).astype(np.int64), 0, shape - 1)
        i1 = np.clip(np.floor((box[1] - origin) / h + 1e-9).astype(np.int64), 0, shape - 1)
        if np.any(i1 - i0 < 1):
            raise InputError(
                f"bounds {box.tolist()} leave fewer than 2 grid nodes on some axis of the field's grid "
                f"{field.bounds.tolist()}"
            )
        values = values[i0[0]: i1[0] + 1, i0[1]: i1[1] + 1, i0[2]: i1[2] + 1]
        origin = origin + i0 * h
    values = np.ascontiguousarray(values, dtype=np.float32)
    if not np.isfinite(values).all():
        raise InputError("the field's grid holds NaN or infinite values: it cannot be meshed")
    return values, origin, h


# --------------------------------------------------------------------------- resampling


def _evaluate(field, points: np.ndarray) -> np.ndarray:
    """field.value over (N, 3) float64 points in chunks -> (N,) float32."""
    out = np.empty(len(points), np.float32)
    step = TUNABLES.chunk_points
    for s in range(0, len(points), step):
        out[s: s + step] = np.asarray(field.value(points[s: s + step]), dtype=np.float32).reshape(-1)
    return out


def _lattice(origin, h, ix, iy, iz) -> np.ndarray:
    """(len(ix)*len(iy)*len(iz), 3) float64 node positions, x slowest."""
    gx, gy, gz = np.meshgrid(origin[0] + ix * h, origin[1] + iy * h, origin[2] + iz * h, indexing="ij")
    return np.stack([gx.ravel(), gy.ravel(), gz.ravel()], axis=1)


def _resample(field, box, resolution: int, level: float, kind: str):
    """Sample ``field`` on a grid with ``resolution`` nodes along the longest side of ``box``.

    Returns values (X, Y, Z) float32, origin (3,) float64, voxel size. For distance
    fields only blocks near the surface hold evaluated values; every other block holds a
    constant of the sign its coarse corners have, which makes no crossing.
    """
    lo, hi = box
    ext = hi - lo
    h = float(ext.max()) / (resolution - 1)
    n = np.maximum(np.ceil(ext / h - 1e-9).astype(np.int64) + 1, 2)
    s = TUNABLES.coarse_step
    nb = np.maximum(-(-(n - 1) // s), 1)  # blocks per axis, the last may be partial

    if kind == "occupancy":
        # No distance bound: evaluate every node, slab by slab.
        values = np.empty(tuple(n), np.float32)
        iy, iz = np.arange(n[1]), np.arange(n[2])
        slab = max(1, TUNABLES.chunk_points // int(n[1] * n[2]))
        for x0 in range(0, int(n[0]), slab):
            ix = np.arange(x0, min(x0 + slab, int(n[0])))
            values[ix[0]: ix[-1] + 1] = _evaluate(field, _lattice(lo, h, ix, iy, iz)).reshape(len(ix), n[1], n[2])
        return values, lo.copy(), h

    # Coarse pass on the block corners (fine index k*s, k = 0..nb, may step past the box).
    kc = [np.arange(m + 1) * s for m in nb]
    d = _evaluate(field, _lattice(lo, h, *kc)).reshape(tuple(nb + 1)) - np.float32(level)
    if not np.isfinite(d).all():
        raise InputError("the field gives NaN or infinite values inside the bounds: it cannot be meshed")
    absd = np.abs(d)
    pos = d > 0
    min_abs = np.full(tuple(nb), np.inf, np.float32)
    any_pos = np.zeros(tuple(nb), bool)
    all_pos = np.ones(tuple(nb), bool)
    for cx in (0, 1):
        for cy in (0, 1):
            for cz in (0, 1):
                sl = (slice(cx, cx + nb[0]), slice(cy, cy + nb[1]), slice(cz, cz + nb[2]))
                np.minimum(min_abs, absd[sl], out=min_abs)
                any_pos |= pos[sl]
                all_pos &= pos[sl]
    diag = s * h * math.sqrt(3.0)
    active = (min_abs <= TUNABLES.surface_band * diag) | (any_pos & ~all_pos)

    # Dense grid filled per block with a value on the block's side of the level.
    fill = np.where(all_pos, level + diag, level - diag).astype(np.float32)
    bidx = [np.minimum(np.arange(m) // s, b - 1) for m, b in zip(n, nb)]
    values = fill[np.ix_(*bidx)]
    del fill

    # Fine evaluation of every node of an active block (each node once), slab by slab
    # along x. A node on a block face belongs to the blocks on both sides of it.
    def owners(m, b):
        i = np.arange(m)
        hi_b = np.minimum(i // s, b - 1)
        lo_b = np.where((i % s == 0) & (i > 0), i // s - 1, hi_b)
        return lo_b, hi_b

    oy, oz = owners(n[1], nb[1]), owners(n[2], nb[2])

    def node_mask(block_mask_2d):  # (nb_y, nb_z) blocks -> (n_y, n_z) nodes they hold
        out = np.zeros((n[1], n[2]), bool)
        for by in oy:
            for bz in oz:
                out |= block_mask_2d[np.ix_(by, bz)]
        return out

    for a, x0 in enumerate(range(0, int(n[0]), s)):
        xs = np.arange(x0, min(x0 + s, int(n[0])))
        row = active[min(a, nb[0] - 1)]
        needed = np.empty((len(xs), n[1], n[2]), bool)
        needed[:] = node_mask(row)
        if a > 0:  # the plane x0 is shared with the block row before
            needed[0] = node_mask(row | active[a - 1])
        ii, jj, kk = np.nonzero(needed)
        if len(ii) == 0:
            continue
        ii += x0
        pts = np.stack([lo[0] + ii * h, lo[1] + jj * h, lo[2] + kk * h], axis=1)
        vals = _evaluate(field, pts)
        if not np.isfinite(vals).all():
            raise InputError("the field gives NaN or infinite values inside the bounds: it cannot be meshed")
        values[ii, jj, kk] = vals
    return values, lo.copy(), h


# --------------------------------------------------------------------------- marching cubes


def crossing_mask(values: np.ndarray, level: float) -> np.ndarray:
    """(X, Y, Z) bool: cells whose 8 corner values bracket ``level``, dilated by one cell.

    Cell (i, j, k) spans nodes i..i+1, j..j+1, k..k+1 and is marked at index (i, j, k);
    the dilation also covers scikit-image's own indexing of cells and the neighbours
    Lewiner's algorithm reads for its ambiguity tests.
    """
    above = values > level
    any_up = above[:-1] | above[1:]
    all_up = above[:-1] & above[1:]
    del above
    any_up = any_up[:, :-1] | any_up[:, 1:]
    all_up = all_up[:, :-1] & all_up[:, 1:]
    any_up = any_up[:, :, :-1] | any_up[:, :, 1:]
    all_up = all_up[:, :, :-1] & all_up[:, :, 1:]
    mask = np.zeros(values.shape, bool)
    np.logical_and(any_up, ~all_up, out=mask[:-1, :-1, :-1])
    del any_up, all_up
    # Dilate by one along each axis (numpy buffers overlapping in-place operands).
    for axis in range(3):
        fwd = [slice(None)] * 3
        bwd = [slice(None)] * 3
        fwd[axis] = slice(1, None)
        bwd[axis] = slice(None, -1)
        mask[tuple(fwd)] |= mask[tuple(bwd)]
        mask[tuple(bwd)] |= mask[tuple(fwd)]
    return mask


def _crossing_and_near(values: np.ndarray, level, near):
    """(crossing mask (X, Y, Z) bool, number of nodes with |value - level| < near)."""
    if values.size >= TUNABLES.compiled_mask_min_nodes:
        from recon.kernels.crossing_cpu import crossing_mask_cpu

        mask = np.empty(values.shape, bool)
        n_near = crossing_mask_cpu(values, float(level), float(near), mask, np.empty(values.shape, bool))
        return mask, int(n_near)
    n_near = int(np.count_nonzero((values > level - near) & (values < level + near)))
    return crossing_mask(values, level), n_near


def _marching_cubes(values, origin, h, level, *, outward_up: bool, nudge: float, owned: bool = False,
                    use_mask: bool = True):
    """Run scikit-image's marching cubes on ``values`` (changed in place only when ``owned``).

    Returns vertices (V, 3) float64 input units, faces (F, 3) int64 counter-clockwise seen
    from outside, skimage's normals (V, 3) float32 turned outward; or (None, None, None)
    when nothing crosses the level.
    """
    from skimage.measure import marching_cubes

    lvl = np.float32(level)
    nudge32 = np.float32(nudge)
    mask, n_near = _crossing_and_near(values, lvl, nudge32)
    if n_near:
        # Nodes (almost) on the level would put several vertices on one node: move them
        # just outside, then mark the cells again.
        if not owned:
            values = values.copy()
        near = (values > lvl - nudge32) & (values < lvl + nudge32)
        values[near] = lvl + nudge32 if outward_up else lvl - nudge32
        del near
        mask, _ = _crossing_and_near(values, lvl, np.float32(0.0))
    if not mask.any():
        return None, None, None
    if not use_mask:
        mask = None
    try:
        verts, faces, normals, _ = marching_cubes(
            values,
            level=float(lvl),
            spacing=(h, h, h),
            # skimage's "descent" winds faces counter-clockwise seen from the side where
            # the values are larger: outward for a distance field.
            gradient_direction="descent" if outward_up else "ascent",
            mask=mask,
        )
    except (ValueError, RuntimeError):  # level outside the data range / no surface found
        return None, None, None
    if len(faces) == 0:
        return None, None, None
    verts = verts.astype(np.float64) + origin
    faces = faces.astype(np.int64)
    # skimage's normals point toward smaller values.
    normals = (-normals if outward_up else normals).astype(np.float32)
    keep = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    if not keep.all():
        faces = faces[keep]
        verts, faces, normals = _drop_unused(verts, faces, normals)
    return verts, faces, normals


# --------------------------------------------------------------------------- clean-up


def _drop_unused(verts, faces, normals):
    used = np.zeros(len(verts), bool)
    used[faces.ravel()] = True
    if used.all():
        return verts, faces, normals
    remap = np.cumsum(used) - 1
    return verts[used], remap[faces], (None if normals is None else normals[used])


def _keep_large_components(verts, faces, normals, fraction: float):
    labels = face_components(faces, len(verts))
    counts = np.bincount(labels)
    keep_label = counts >= fraction * counts.max()
    keep = keep_label[labels]
    if keep.all():
        return verts, faces, normals
    return _drop_unused(verts, faces[keep], normals)


def _vertex_normals(field, verts, mc_normals, *, outward_up: bool) -> np.ndarray:
    """(V, 3) float32 outward unit normals: the field's gradient, else marching cubes' normals."""
    out = np.array(mc_normals, dtype=np.float32, copy=True)
    sign = 1.0 if outward_up else -1.0
    step = TUNABLES.chunk_points
    try:
        for s in range(0, len(verts), step):
            g = np.asarray(field.gradient(verts[s: s + step]), dtype=np.float64).reshape(-1, 3)
            norm = np.linalg.norm(g, axis=1)
            ok = np.isfinite(norm) & (norm > 1e-12)
            out[s: s + step][ok] = (sign * g[ok] / norm[ok, None]).astype(np.float32)
    except NotImplementedError:
        pass  # a field without a gradient: keep marching cubes' normals
    bad = ~np.isfinite(out).all(axis=1)
    if bad.any():
        out[bad] = 0.0
    return out
