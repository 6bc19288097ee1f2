"""Streaming a large cloud into per-tile files, without holding the whole cloud.

LAS/LAZ files are read in chunks (laspy's chunk iterator; the bounds come from the
header), binary PLY and .npy files are memory-mapped and read a chunk at a time (one pass
for the bounds, one to bin). Other formats are read whole by ``recon.io.read_cloud`` and
then binned the same way: their peak memory is the input's.

Each tile's points (of its padded box) are appended to a raw file as chunks arrive, and
turned into ``<tile>.npy`` (N, 3) float64 at the end, one tile at a time: the peak memory
is a chunk plus a tile, not the input.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from recon.errors import InputError
from recon.tiling.tiles import TileGrid, make_grid

CHUNK_POINTS = 1_000_000
"Points read (and binned) at a time."
STREAMED_SUFFIXES = (".las", ".laz", ".ply", ".npy")
"Formats read a chunk at a time; others are read whole."


def iter_chunks(path, *, chunk_points: int = CHUNK_POINTS):
    """Yield the points of the cloud at ``path`` as (n, 3) float64 arrays of at most
    ``chunk_points`` rows, input units; rows with NaN or Inf are left out."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".las", ".laz"):
        gen = _las_chunks(path, chunk_points)
    elif suffix in (".ply", ".npy") and (rows := _mapped_rows(path)) is not None:
        gen = _mapped_chunks(rows, chunk_points)
    else:
        gen = _whole_chunks(path, chunk_points)
    for pts in gen:
        pts = pts[np.isfinite(pts).all(axis=1)]
        if len(pts):
            yield pts


def scan_bounds(path, *, chunk_points: int = CHUNK_POINTS) -> tuple[np.ndarray, int]:
    """((2, 3) float64 bounds, point count) of a cloud, read from a LAS header when there
    is one, else in one streaming pass."""
    path = Path(path)
    if path.suffix.lower() in (".las", ".laz"):
        laspy = _laspy(path)
        try:
            with laspy.open(str(path)) as reader:
                h = reader.header
                return np.array([h.mins, h.maxs], np.float64), int(h.point_count)
        except Exception as exc:
            raise InputError(f"{path}: not a readable LAS/LAZ file ({exc})") from None
    lo, hi, n = np.full(3, np.inf), np.full(3, -np.inf), 0
    for pts in iter_chunks(path, chunk_points=chunk_points):
        lo, hi, n = np.minimum(lo, pts.min(axis=0)), np.maximum(hi, pts.max(axis=0)), n + len(pts)
    if n == 0:
        raise InputError(f"{path}: no points")
    return np.stack([lo, hi]), n


def ingest(path, workdir, *, tile_size: float, overlap: float | None = None,
           chunk_points: int = CHUNK_POINTS) -> dict:
    """Bin the cloud at ``path`` into tiles under ``workdir``; returns the manifest.

    Writes ``workdir/tiles/<tile>.npy`` ((N, 3) float64, input units: the points of the
    tile's padded box) and ``workdir/manifest.json``: the grid, the input's bounds and
    point count, and per tile its point count and height range.
    """
    path, workdir = Path(path), Path(workdir)
    bounds, count = scan_bounds(path, chunk_points=chunk_points)
    grid = make_grid(bounds, tile_size, overlap=overlap)
    tile_dir = workdir / "tiles"
    tile_dir.mkdir(parents=True, exist_ok=True)
    for stale in tile_dir.glob("*.part"):
        stale.unlink()
    counts: dict[str, int] = {}
    zrange: dict[str, list[float]] = {}
    for pts in iter_chunks(path, chunk_points=chunk_points):
        for tile, rows in grid.assign(pts[:, :2]):
            name = TileGrid.name(tile)
            part = pts[rows]
            with open(tile_dir / f"{name}.part", "ab") as fh:
                fh.write(np.ascontiguousarray(part, np.float64).tobytes())
            counts[name] = counts.get(name, 0) + len(part)
            z = zrange.setdefault(name, [np.inf, -np.inf])
            z[0], z[1] = min(z[0], float(part[:, 2].min())), max(z[1], float(part[:, 2].max()))
    for name in counts:
        raw = np.fromfile(tile_dir / f"{name}.part", np.float64).reshape(-1, 3)
        np.save(tile_dir / f"{name}.npy", raw)
        del raw
        os.unlink(tile_dir / f"{name}.part")
    manifest = {"source": str(path.resolve()), "source_bytes": path.stat().st_size,
                "source_mtime": path.stat().st_mtime, "bounds": bounds.tolist(), "points": count,
                "grid": json.loads(grid.to_json()),
                "tiles": {name: {"points": counts[name], "z": zrange[name]} for name in sorted(counts)}}
    (workdir / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


# ---------------------------------------------------------------------------- readers

def _laspy(path):
    try:
        import laspy
    except ImportError:
        raise InputError(f"{path}: reading LAS/LAZ needs the laspy package (pip install 'laspy[lazrs]')") from None
    return laspy


def _las_chunks(path: Path, chunk_points: int):
    laspy = _laspy(path)
    try:
        with laspy.open(str(path)) as reader:
            for chunk in reader.chunk_iterator(chunk_points):
                yield np.column_stack([np.asarray(chunk.x, np.float64), np.asarray(chunk.y, np.float64),
                                       np.asarray(chunk.z, np.float64)])
    except InputError:
        raise
    except Exception as exc:  # laspy raises its own and lazrs' errors
        raise InputError(f"{path}: not a readable LAS/LAZ file ({exc})") from None


def _mapped_rows(path: Path):
    """A memory map of the points of a binary PLY (vertex element first, no lists in it)
    or a (N, >=3) float .npy file: a structured (N,) array with fields x, y, z, or a
    (N, k) array; None when the file is not of that kind."""
    if path.suffix.lower() == ".npy":
        try:
            arr = np.load(path, mmap_mode="r")
        except Exception:
            return None
        return arr if arr.ndim == 2 and arr.shape[1] >= 3 and arr.dtype.kind == "f" else None
    from recon.io.ply import parse_header

    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    if b"end_header" not in head:
        return None
    header = parse_header(head, path)
    if header.format == "ascii" or not header.elements or header.elements[0].name != "vertex":
        return None
    el = header.elements[0]
    if el.has_lists or not all(el.property(a) is not None for a in "xyz"):
        return None
    dt = np.dtype([(p.name, header.endian + p.type) for p in el.properties])
    if header.body_offset + el.count * dt.itemsize > path.stat().st_size:
        raise InputError(f"{path}: truncated PLY body: element 'vertex' ({el.count} rows)")
    return np.memmap(path, dtype=dt, mode="r", offset=header.body_offset, shape=(el.count,))


def _mapped_chunks(rows, chunk_points: int):
    for s in range(0, len(rows), chunk_points):
        block = rows[s: s + chunk_points]
        if block.dtype.names:
            yield np.column_stack([np.asarray(block[a], np.float64) for a in "xyz"])
        else:
            yield np.asarray(block[:, :3], np.float64)


def _whole_chunks(path: Path, chunk_points: int):
    from recon.io import read_cloud

    pts = read_cloud(path).points
    for s in range(0, len(pts), chunk_points):
        yield pts[s: s + chunk_points]
