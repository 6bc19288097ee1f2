"""A tiled reconstruction: ingest, fit every tile, mesh every tile's core, stitch.

    from recon.tiling.run import reconstruct_tiled
    result = reconstruct_tiled("survey.laz", "survey.ply", tile_size=50.0)

The work folder (default ``<output>.tiles/`` beside the output) holds the tiles' points,
fields and meshes; with ``resume=True`` a rerun keeps what an earlier run finished (the
same input and tiling) and does only the rest.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field as dc_field
from pathlib import Path

import numpy as np

from recon.errors import InputError, ReconError
from recon.tiling.executor import make_executor
from recon.tiling.tiles import TileGrid

DEFAULT_TILE_METHOD = "csp"
"Fits each tile when no --method is given: a tile of a scene is an open piece of surface (an automatic choice per tile may replace it)."
MIN_TILE_POINTS = 50
"Tiles with fewer points are left empty."
MESH_SPACINGS_CLEAN = 0.5
"Lattice spacing of the meshes of clean data, in median point spacings of the tiles' fits."
MESH_SPACINGS_NOISY = 1.0
"... of noisy data (as ``recon.meshing.unsigned`` meshes one noisy fit: a finer lattice resolves the noise)."


class TilesFailedError(ReconError):
    """Some tiles failed after their retries; the others are kept for a rerun with resume."""

    exit_code = 1


@dataclass
class TiledResult:
    """What a tiled run made, and a summary.

    mesh : the stitched TriangleMesh, or None when it went straight to a .ply output
           without being held (see :meth:`load_mesh`)
    """

    mesh: object
    grid: TileGrid
    workdir: Path
    points_in: int
    h: float
    n_vertices: int = 0
    n_faces: int = 0
    output: Path | None = None
    counts: dict = dc_field(default_factory=dict)
    failures: dict = dc_field(default_factory=dict)
    timings: dict = dc_field(default_factory=dict)

    def summary(self) -> dict:
        return {"points_in": self.points_in, "tiles": self.grid.shape[0] * self.grid.shape[1],
                "tile_size": self.grid.size, "overlap": self.grid.overlap, "lattice_spacing": self.h,
                **self.counts, "failed": dict(self.failures),
                "vertices": self.n_vertices, "faces": self.n_faces,
                "timings": {k: round(v, 3) for k, v in self.timings.items()}, "workdir": str(self.workdir)}

    def load_mesh(self):
        """The stitched mesh (read back from the output when it was not held)."""
        if self.mesh is None and self.output is not None:
            from recon.io import read_mesh

            return read_mesh(self.output)
        return self.mesh


# ---------------------------------------------------------------------------- tasks (run on workers)

def fit_tile_task(points_path: str, field_path: str, method: str, options: dict, seed: int,
                  threads: int | None) -> dict:
    """Fit one tile's points (a .npy file) and save its field; returns its spacing. A tile
    whose points hold no surface to fit (too few, all alike) is left empty, not failed."""
    if threads:
        os.environ["RECON_TORCH_THREADS"] = str(threads)
    from recon.cloud import Cloud
    from recon.fitters import fit
    from recon.pipeline import prepare

    pts = np.load(points_path)
    _, config = prepare(method, seed=seed, **options)
    try:
        field_ = fit(Cloud(pts, source=points_path), method, config)
    except InputError as exc:
        return {"spacing": 0.0, "points": int(len(pts)), "clean": True, "empty": str(exc).splitlines()[0]}
    tmp = Path(field_path).with_suffix(".part.npz")
    field_.save(tmp)
    os.replace(tmp, field_path)
    return {"spacing": float(field_.params.get("spacing_median", 0.0) or 0.0), "points": int(len(pts)),
            "clean": bool(field_.params.get("clean", False))}


def mesh_tile_task(workdir: str, tile: tuple, h: float, z_origin: float, z_range: list,
                   threads: int | None) -> int:
    """Mesh one tile's core with its own and its neighbours' fields; returns its face count."""
    if threads:
        os.environ["RECON_TORCH_THREADS"] = str(threads)
    from recon.fields.loading import load_field
    from recon.meshing.vertex_attributes import DISTANCE_TO_DATA, distance_to_points
    from recon.tiling.tilemesh import mesh_tile

    work = Path(workdir)
    grid = TileGrid.from_json(json.dumps(json.loads((work / "manifest.json").read_text())["grid"]))
    tile = tuple(tile)
    fields = {}
    for t in grid.neighbours(tile):
        path = work / "fields" / f"{TileGrid.name(t)}.npz"
        if path.exists():
            fields[t] = load_field(path)
    mesh = mesh_tile(grid, fields, tile, h=h, z_origin=z_origin, z_range=z_range)
    # the tile's points reach the overlap past its core: distances up to the overlap are exact
    points = np.load(work / "tiles" / f"{TileGrid.name(tile)}.npy", mmap_mode="r")
    out = work / "meshes" / f"{TileGrid.name(tile)}.npz"
    tmp = out.with_suffix(".part.npz")
    np.savez(tmp, vertices=mesh.vertices, faces=mesh.faces,
             **{DISTANCE_TO_DATA: distance_to_points(mesh.vertices, points)})
    os.replace(tmp, out)
    return int(mesh.n_faces)


# ---------------------------------------------------------------------------- the driver

def reconstruct_tiled(source, output=None, *, tile_size: float, overlap: float | None = None,
                      method: str = DEFAULT_TILE_METHOD, options: dict | None = None, seed: int = 0,
                      workers: int | None = None, ray_address: str | None = None, workdir=None,
                      resume: bool = False, mesh_spacing: float | None = None, chunk_points: int | None = None,
                      progress=None, executor=None) -> TiledResult:
    """Fit the cloud at ``source`` tile by tile and stitch one mesh (input units and frame).

    tile_size, overlap : tile core side and overlap, input units (see ``recon.tiling.tiles``)
    method, options    : the fitter of every tile (an unsigned, open-surface method) and
                         its config fields
    workers, ray_address : Ray workers on this machine (default one per core; 0: no Ray,
                         one tile at a time here), or a running cluster's address
    workdir            : where tiles, fields and meshes go (default ``<output>.tiles``)
    resume             : keep what an earlier run in ``workdir`` finished
    mesh_spacing       : lattice spacing, input units (default MESH_SPACINGS_CLEAN or
                         _NOISY x the tiles' median point spacing)
    progress           : ``progress(phase, done, total)`` after every tile of a phase
    executor           : run tasks on this (tests); default from workers / ray_address

    Writes the mesh to ``output`` when given (a .ply output is written a tile at a time,
    and the result then holds no mesh: see TiledResult.load_mesh). Raises TilesFailedError (listing them) when
    tiles still fail after their retries; finished tiles stay for a rerun with resume.
    """
    from recon.io import write_mesh
    from recon.pipeline import prepare
    from recon.tiling.ingest import CHUNK_POINTS, ingest
    from recon.tiling.stitch import stitch, stitch_to_ply

    source = Path(source)
    options = dict(options or {})
    spec, config = prepare(method, seed=seed, **options)  # bad options fail before any work
    if spec.name == "gridpull":
        raise InputError("tiles need an open-surface method such as csp: gridpull closes every tile into a blob")
    if "surface" in getattr(config, "__dataclass_fields__", {}):
        options.setdefault("surface", "open")  # a tile is a piece cut out of a larger surface
    if workdir is None:
        if output is None:
            raise InputError("give an output or a work folder for the tiles")
        workdir = Path(output).with_name(Path(output).name + ".tiles")
    work = Path(workdir)
    timings: dict[str, float] = {}
    own_executor = executor is None
    executor = executor or make_executor(workers=workers, address=ray_address)
    threads = 1 if executor.name == "ray" else None
    try:
        t = time.perf_counter()
        manifest = _ingested(work, source, tile_size, overlap) if resume else None
        if manifest is None:
            for sub in ("tiles", "fields", "meshes"):
                if (work / sub).is_dir():
                    shutil.rmtree(work / sub)
            work.mkdir(parents=True, exist_ok=True)
            manifest = ingest(source, work, tile_size=tile_size, overlap=overlap,
                              chunk_points=chunk_points or CHUNK_POINTS)
        timings["ingest_s"] = time.perf_counter() - t
        grid = TileGrid.from_json(json.dumps(manifest["grid"]))
        tiles = {name: info for name, info in manifest["tiles"].items() if info["points"] >= MIN_TILE_POINTS}
        for sub in ("fields", "meshes"):
            (work / sub).mkdir(exist_ok=True)

        t = time.perf_counter()
        fit_key = json.dumps({"method": spec.name, "options": options, "seed": seed}, sort_keys=True, default=str)
        if not (resume and _same_text(work / "fields" / "job.json", fit_key)):
            _clear(work / "fields")
            _clear(work / "meshes")
        (work / "fields" / "job.json").write_text(fit_key)
        stats = _read_json(work / "fields" / "stats.json")
        jobs = [(name, (str(work / "tiles" / f"{name}.npy"), str(work / "fields" / f"{name}.npz"), spec.name,
                        options, seed, threads))
                for name in tiles if not (name in stats and (stats[name].get("empty")
                                                             or (work / "fields" / f"{name}.npz").exists()))]
        done = _progress(progress, "fit", len(tiles), len(tiles) - len(jobs))
        fitted = executor.run(fit_tile_task, jobs, on_done=done)
        stats.update(fitted.results)
        (work / "fields" / "stats.json").write_text(json.dumps(stats))
        timings["fit_s"] = time.perf_counter() - t
        counts = {"tiles_with_points": len(tiles), "fitted": len(fitted.results),
                  "fits_resumed": len(tiles) - len(jobs)}
        if fitted.failures:
            raise TilesFailedError(_failed_message("fit", fitted.failures, work))

        t = time.perf_counter()
        tiles = {name: info for name, info in tiles.items() if not stats[name].get("empty")}
        counts["tiles_left_empty"] = counts["tiles_with_points"] - len(tiles)
        spacings = [stats[name]["spacing"] for name in tiles if stats[name]["spacing"] > 0]
        share = MESH_SPACINGS_CLEAN if all(stats[name].get("clean") for name in tiles) else MESH_SPACINGS_NOISY
        h = float(mesh_spacing) if mesh_spacing else share * float(np.median(spacings)) if spacings else 0.0
        if not h > 0:
            raise InputError("no tile could be fitted: the tiles hold too few points (make --tile larger)")
        mesh_key = json.dumps({"h": h})
        if not _same_text(work / "meshes" / "job.json", mesh_key):
            _clear(work / "meshes")
        (work / "meshes" / "job.json").write_text(mesh_key)
        z_origin = float(manifest["bounds"][0][2])
        jobs = [(name, (str(work), _tile_of(name), h, z_origin, tiles[name]["z"], threads))
                for name in tiles if not (work / "meshes" / f"{name}.npz").exists()]
        done = _progress(progress, "mesh", len(tiles), len(tiles) - len(jobs))
        meshed = executor.run(mesh_tile_task, jobs, on_done=done)
        timings["mesh_s"] = time.perf_counter() - t
        counts.update(meshed=len(meshed.results), meshes_resumed=len(tiles) - len(jobs))
        if meshed.failures:
            raise TilesFailedError(_failed_message("mesh", meshed.failures, work))
    finally:
        if own_executor:
            executor.close()

    t = time.perf_counter()
    mesh = None
    if output is not None and Path(output).suffix.lower() == ".ply":
        # the scene's mesh may be larger than memory: a tile at a time into the file
        paths = [work / "meshes" / f"{name}.npz" for name in tiles]
        n_vertices, n_faces = stitch_to_ply(paths, output, h=h, grid=grid, inputs=[source])
    else:
        mesh = stitch(_load_meshes(work, tiles), h=h, grid=grid)
        n_vertices, n_faces = mesh.n_vertices, mesh.n_faces
        if n_faces and output is not None:
            write_mesh(mesh, output, inputs=[source])
    timings["stitch_s"] = time.perf_counter() - t
    if n_faces == 0:
        raise InputError(f"{source}: the tiles' fields have no surface; nothing written")
    timings["total_s"] = sum(timings.values())
    return TiledResult(mesh, grid, work, int(manifest["points"]), h, n_vertices, n_faces,
                       None if output is None else Path(output), counts, {}, timings)


def _tile_of(name: str) -> tuple[int, int]:
    _, i, j = name.split("_")
    return int(i), int(j)


def _load_meshes(work: Path, tiles) -> list:
    from recon.meshing.vertex_attributes import DISTANCE_TO_DATA
    from recon.triangles import TriangleMesh

    out = []
    for name in tiles:
        with np.load(work / "meshes" / f"{name}.npz") as data:
            attributes = {DISTANCE_TO_DATA: data[DISTANCE_TO_DATA]} if DISTANCE_TO_DATA in data else {}
            out.append(TriangleMesh(data["vertices"], data["faces"], vertex_attributes=attributes))
    return out


def _ingested(work: Path, source: Path, tile_size, overlap):
    """The manifest of an earlier ingestion of the same file with the same tiling, or None."""
    m = _read_json(work / "manifest.json")
    if not m:
        return None
    st = source.stat()
    same = (m["source"] == str(source.resolve()) and m["source_bytes"] == st.st_size
            and m["source_mtime"] == st.st_mtime and m["grid"]["size"] == float(tile_size)
            and (overlap is None or m["grid"]["overlap"] == float(overlap)))
    tiles_there = all((work / "tiles" / f"{n}.npy").exists() for n in m.get("tiles", {}))
    return m if same and tiles_there else None


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _same_text(path: Path, text: str) -> bool:
    try:
        return path.read_text() == text
    except OSError:
        return False


def _clear(folder: Path) -> None:
    for p in folder.glob("tile_*.npz"):
        p.unlink()
    for p in folder.glob("*.json"):
        p.unlink()


def _progress(progress, phase: str, total: int, already: int):
    count = [already]
    if progress is not None:
        progress(phase, already, total)

    def done(key, ok):
        count[0] += 1
        if progress is not None:
            progress(phase, count[0], total)
    return done


def _failed_message(phase: str, failures: dict, work: Path) -> str:
    lines = "; ".join(f"{k}: {v}" for k, v in sorted(failures.items()))
    return (f"{len(failures)} tile(s) failed to {phase} after retries ({lines}); the finished tiles are kept "
            f"in {work}: rerun with --resume")
