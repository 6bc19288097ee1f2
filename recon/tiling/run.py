"""A tiled reconstruction: ingest, fit every tile, mesh every tile's core, stitch.

    from recon.tiling.run import reconstruct_tiled
    result = reconstruct_tiled("survey.laz", "survey.ply", tile_size=50.0)

The work folder (default ``<output>.tiles/`` beside the output) holds the tiles' points,
fields and meshes; with ``resume=True`` a rerun keeps what an earlier run finished (the
same input and tiling) and does only the rest.
"""

from __future__ import annotations

import dataclasses
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

DEFAULT_TILE_METHOD = "auto"
"Meshes the tiles when no --method is given: every tile is measured (recon.choice); a scene whose tiles are one-sided along z is meshed as a height field through its points, any other is fitted with FALLBACK_METHOD."
FALLBACK_METHOD = "csp"
"Fits the tiles of a scene that is not a height field (a tile of a scene is an open piece of surface)."
HEIGHT_FIELD_SHARE = 0.9
"A scene is meshed as a height field when tiles holding at least this share of its points are one-sided within HEIGHT_FIELD_DEGREES of z (the rest, buildings' walls or a sparse corner, go with them)."
HEIGHT_FIELD_DEGREES = 30.0
"How far from z a tile's one-sided direction may lean."
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


def measure_tile_task(points_path: str, seed: int, threads: int | None) -> dict:
    """Measure one tile's points and choose as ``recon fit`` would (recon.choice); returns
    the choice's kind and one-sided direction, the spacing and the point count."""
    if threads:
        os.environ["RECON_TORCH_THREADS"] = str(threads)
    from recon.choice import choose_method
    from recon.points.measure import measure_cloud

    pts = np.load(points_path)
    if len(pts) < 10:
        return {"points": int(len(pts)), "spacing": 0.0, "surface_spacing": 0.0, "kind": "too few points",
                "direction": None}
    m = measure_cloud(pts, seed=seed)
    choice = choose_method(m)
    return {"points": int(len(pts)), "spacing": float(m.spacing), "surface_spacing": float(m.surface_spacing),
            "kind": choice.kind,
            "noise_spacings": float(m.noise_spacings),
            "direction": None if choice.height_direction is None else list(choice.height_direction)}


def height_field_tile_task(workdir: str, tile: tuple, spacing: float, origin: list, max_circumradius: float,
                           threads: int | None) -> int:
    """Mesh one tile's core as a height field through its denoised points (triangles whose
    circumradius is at most ``max_circumradius`` spacings); returns its face count."""
    if threads:
        os.environ["RECON_TORCH_THREADS"] = str(threads)
    from recon.meshing.height_field import LIMITS
    from recon.tiling.tilemesh import mesh_tile_height_field

    work = Path(workdir)
    grid = TileGrid.from_json(json.dumps(json.loads((work / "manifest.json").read_text())["grid"]))
    tile = tuple(tile)
    points = np.load(work / "tiles" / f"{TileGrid.name(tile)}.npy")
    limits = dataclasses.replace(LIMITS, max_circumradius=max_circumradius)
    mesh = mesh_tile_height_field(points, grid, tile, spacing=spacing, origin=origin, limits=limits)
    _save_tile_mesh(work, tile, mesh, points)
    return int(mesh.n_faces)


def _save_tile_mesh(work: Path, tile: tuple, mesh, points: np.ndarray) -> None:
    from recon.meshing.vertex_attributes import DISTANCE_TO_DATA, distance_to_points

    # the tile's points reach the overlap past its core: distances up to the overlap are exact
    out = work / "meshes" / f"{TileGrid.name(tile)}.npz"
    tmp = out.with_suffix(".part.npz")
    np.savez(tmp, vertices=mesh.vertices, faces=mesh.faces,
             **{DISTANCE_TO_DATA: distance_to_points(mesh.vertices, points)})
    os.replace(tmp, out)


def mesh_tile_task(workdir: str, tile: tuple, h: float, z_origin: float, z_range: list,
                   threads: int | None) -> int:
    """Mesh one tile's core with its own and its neighbours' fields; returns its face count."""
    if threads:
        os.environ["RECON_TORCH_THREADS"] = str(threads)
    from recon.fields.loading import load_field
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
    _save_tile_mesh(work, tile, mesh, np.load(work / "tiles" / f"{TileGrid.name(tile)}.npy", mmap_mode="r"))
    return int(mesh.n_faces)


# ---------------------------------------------------------------------------- the driver

def reconstruct_tiled(source, output=None, *, tile_size: float, overlap: float | None = None,
                      method: str = DEFAULT_TILE_METHOD, options: dict | None = None, seed: int = 0,
                      workers: int | None = None, ray_address: str | None = None, workdir=None,
                      resume: bool = False, mesh_spacing: float | None = None, chunk_points: int | None = None,
                      progress=None, executor=None) -> TiledResult:
    """Mesh the cloud at ``source`` tile by tile and stitch one mesh (input units and frame).

    tile_size, overlap : tile core side and overlap, input units (see ``recon.tiling.tiles``)
    method, options    : "auto" (default): every tile is measured; a scene of one-sided
                         tiles (a terrain, an aerial scan) is meshed as a height field
                         through its denoised points, any other is fitted with
                         FALLBACK_METHOD. Or the fitter of every tile (an unsigned,
                         open-surface method) and its config fields
    workers, ray_address : Ray workers on this machine (default one per core; 0: no Ray,
                         one tile at a time here), or a running cluster's address
    workdir            : where tiles, fields and meshes go (default ``<output>.tiles``)
    resume             : keep what an earlier run in ``workdir`` finished
    mesh_spacing       : lattice spacing of fitted tiles, input units (default
                         MESH_SPACINGS_CLEAN or _NOISY x the tiles' median point spacing)
    progress           : ``progress(phase, done, total)`` after every tile of a phase
    executor           : run tasks on this (tests); default from workers / ray_address

    Writes the mesh to ``output`` when given (a .ply output is written a tile at a time,
    and the result then holds no mesh: see TiledResult.load_mesh). Raises TilesFailedError (listing them) when
    tiles still fail after their retries; finished tiles stay for a rerun with resume.
    """
    from recon.pipeline import prepare
    from recon.tiling.ingest import CHUNK_POINTS, ingest

    source = Path(source)
    options = dict(options or {})
    auto = method == "auto"
    spec, config = prepare(FALLBACK_METHOD if auto else method, seed=seed, **options)  # bad options fail first
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
    counts: dict = {}
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
            (work / "measures.json").unlink(missing_ok=True)
            work.mkdir(parents=True, exist_ok=True)
            manifest = ingest(source, work, tile_size=tile_size, overlap=overlap,
                              chunk_points=chunk_points or CHUNK_POINTS)
        timings["ingest_s"] = time.perf_counter() - t
        grid = TileGrid.from_json(json.dumps(manifest["grid"]))
        tiles = {name: info for name, info in manifest["tiles"].items() if info["points"] >= MIN_TILE_POINTS}
        for sub in ("fields", "meshes"):
            (work / sub).mkdir(exist_ok=True)
        counts["tiles_with_points"] = len(tiles)
        mode = {"mode": "fit"}
        if auto:
            mode = _measure_tiles(work, tiles, seed, threads, executor, progress, timings)
            counts["auto"] = mode["reason"]
        if mode["mode"] == "height_field":
            seam = _height_field_tiles(work, tiles, manifest, mode, threads, executor, progress, timings, counts)
        else:
            seam = _fit_and_mesh_tiles(work, tiles, manifest, spec.name, options, seed, mesh_spacing, threads,
                                       executor, progress, timings, counts)
    finally:
        if own_executor:
            executor.close()
    return _stitched(source, output, work, grid, tiles, manifest, seam, timings, counts)


def _measure_tiles(work, tiles, seed, threads, executor, progress, timings) -> dict:
    """Measure every tile; decide whether the scene is a height field over x, y. Returns
    {"mode": "height_field" or "fit", "reason": ..., "spacing": ...}."""
    t = time.perf_counter()
    stats = _read_json(work / "measures.json")
    jobs = [(name, (str(work / "tiles" / f"{name}.npy"), seed, threads)) for name in tiles if name not in stats]
    done = _progress(progress, "measure", len(tiles), len(tiles) - len(jobs))
    measured = executor.run(measure_tile_task, jobs, on_done=done)
    stats.update(measured.results)
    _write_json(work / "measures.json", stats)
    timings["measure_s"] = time.perf_counter() - t
    if measured.failures:
        raise TilesFailedError(_failed_message("measure", measured.failures, work))
    return scene_mode({name: stats[name] for name in tiles})


def scene_mode(measures: dict) -> dict:
    """Whether a scene is meshed as a height field over x, y, from its tiles' measures
    ({name: measure_tile_task's dict}): {"mode": "height_field" (with "spacing" and
    "surface_spacing", the one-sided tiles' medians, input units) or "fit", "reason": a line}."""
    cos = np.cos(np.radians(HEIGHT_FIELD_DEGREES))
    points = sum(m["points"] for m in measures.values())
    upright = {n for n, m in measures.items() if m["direction"] is not None and abs(m["direction"][2]) >= cos}
    share = sum(measures[n]["points"] for n in upright) / max(points, 1)
    spacings = [(measures[n]["spacing"], measures[n]["surface_spacing"]) for n in upright if measures[n]["spacing"] > 0]
    if share >= HEIGHT_FIELD_SHARE and spacings:
        spacing, surface = np.median(spacings, axis=0)
        return {"mode": "height_field", "spacing": float(spacing), "surface_spacing": float(surface),
                "reason": f"{share:.0%} of the points in tiles one-sided along z: a height field through the "
                          "denoised points"}
    kinds = sorted({m["kind"] for n, m in measures.items() if n not in upright})
    return {"mode": "fit", "reason": f"{share:.0%} of the points in tiles one-sided along z (the others: "
                                     f"{', '.join(kinds[:3])}): {FALLBACK_METHOD} fits every tile"}


def _height_field_tiles(work, tiles, manifest, mode, threads, executor, progress, timings, counts) -> dict:
    """Mesh every tile as a height field; returns the stitch's weld settings."""
    from recon.meshing.height_field import LIMITS, cut_spacing

    grid = TileGrid.from_json(json.dumps(manifest["grid"]))
    # the cuts in the whole scene's terms: its spacing, and the gaps its number of points leaves
    spacing = cut_spacing(mode["spacing"], mode["surface_spacing"], int(manifest["points"]))
    # a kept triangle's circumcircle, and its corners' neighbourhoods (16 points: about 4
    # nearest-neighbour spacings), must lie in the padded box of the tile that keeps it:
    # narrower overlaps keep only narrower circles
    radius = min(LIMITS.max_circumradius, (grid.overlap - 4.0 * mode["spacing"]) / spacing)
    if radius < LIMITS.max_edge_plane / 2:
        need = 4.0 * mode["spacing"] + LIMITS.max_edge_plane / 2 * spacing
        raise InputError(f"the tiles' overlap ({grid.overlap:g}) is under {need:g}, too narrow for the points' "
                         "spacing: make --tile larger")
    t = time.perf_counter()
    origin = [grid.origin[0], grid.origin[1], float(manifest["bounds"][0][2])]
    key = json.dumps({"mode": "height_field", "spacing": spacing, "origin": origin, "radius": radius})
    _mesh_tiles(work, tiles, key, height_field_tile_task,
                lambda name: (str(work), _tile_of(name), spacing, origin, radius, threads),
                executor, progress, timings, counts, started=t)
    # a kept triangle's corners lie within its circumradius of its circumcentre, in the core
    return {"h": spacing, "seam_reach": (radius + 1.0) * spacing}


def _fit_and_mesh_tiles(work, tiles, manifest, method, options, seed, mesh_spacing, threads, executor,
                        progress, timings, counts) -> dict:
    """Fit every tile with ``method``, then mesh each core on the scene's shared lattice;
    returns the stitch's weld settings."""
    t = time.perf_counter()
    fit_key = json.dumps({"method": method, "options": options, "seed": seed}, sort_keys=True, default=str)
    if not _same_text(work / "fields" / "job.json", fit_key):
        _clear(work / "fields")
        _clear(work / "meshes")
    (work / "fields" / "job.json").write_text(fit_key)
    stats = _read_json(work / "fields" / "stats.json")
    jobs = [(name, (str(work / "tiles" / f"{name}.npy"), str(work / "fields" / f"{name}.npz"), method,
                    options, seed, threads))
            for name in tiles if not (name in stats and (stats[name].get("empty")
                                                         or (work / "fields" / f"{name}.npz").exists()))]
    done = _progress(progress, "fit", len(tiles), len(tiles) - len(jobs))
    fitted = executor.run(fit_tile_task, jobs, on_done=done)
    stats.update(fitted.results)
    _write_json(work / "fields" / "stats.json", stats)
    timings["fit_s"] = time.perf_counter() - t
    counts.update(fitted=len(fitted.results), fits_resumed=len(tiles) - len(jobs))
    if fitted.failures:
        raise TilesFailedError(_failed_message("fit", fitted.failures, work))

    t = time.perf_counter()
    empty = [name for name in tiles if stats[name].get("empty")]
    for name in empty:
        del tiles[name]  # the caller's dict: the stitch takes the tiles left
    counts["tiles_left_empty"] = len(empty)
    spacings = [stats[name]["spacing"] for name in tiles if stats[name]["spacing"] > 0]
    share = MESH_SPACINGS_CLEAN if all(stats[name].get("clean") for name in tiles) else MESH_SPACINGS_NOISY
    h = float(mesh_spacing) if mesh_spacing else share * float(np.median(spacings)) if spacings else 0.0
    if not h > 0:
        raise InputError("no tile could be fitted: the tiles hold too few points (make --tile larger)")
    z_origin = float(manifest["bounds"][0][2])
    _mesh_tiles(work, tiles, json.dumps({"h": h}), mesh_tile_task,
                lambda name: (str(work), _tile_of(name), h, z_origin, tiles[name]["z"], threads),
                executor, progress, timings, counts, started=t)
    return {"h": h}


def _mesh_tiles(work, tiles, key: str, task, arguments, executor, progress, timings, counts, *, started) -> None:
    """Run ``task(*arguments(name))`` for every tile without a mesh on disk from a run of the
    same ``key`` (the meshing settings); raises TilesFailedError when some still fail."""
    if not _same_text(work / "meshes" / "job.json", key):
        _clear(work / "meshes")
    (work / "meshes" / "job.json").write_text(key)
    jobs = [(name, arguments(name)) for name in tiles if not (work / "meshes" / f"{name}.npz").exists()]
    done = _progress(progress, "mesh", len(tiles), len(tiles) - len(jobs))
    meshed = executor.run(task, jobs, on_done=done)
    timings["mesh_s"] = time.perf_counter() - started
    counts.update(meshed=len(meshed.results), meshes_resumed=len(tiles) - len(jobs))
    if meshed.failures:
        raise TilesFailedError(_failed_message("mesh", meshed.failures, work))


def _stitched(source, output, work, grid, tiles, manifest, seam, timings, counts) -> TiledResult:
    from recon.io import write_mesh
    from recon.tiling.stitch import stitch, stitch_to_ply

    t = time.perf_counter()
    mesh = None
    h, reach = seam["h"], seam.get("seam_reach")
    if output is not None and Path(output).suffix.lower() == ".ply":
        # the scene's mesh may be larger than memory: a tile at a time into the file
        paths = [work / "meshes" / f"{name}.npz" for name in tiles]
        n_vertices, n_faces = stitch_to_ply(paths, output, h=h, grid=grid, inputs=[source], seam_reach=reach)
    else:
        mesh = stitch(_load_meshes(work, tiles), h=h, grid=grid, seam_reach=reach)
        n_vertices, n_faces = mesh.n_vertices, mesh.n_faces
        if n_faces and output is not None:
            write_mesh(mesh, output, inputs=[source])
    timings["stitch_s"] = time.perf_counter() - t
    if n_faces == 0:
        raise InputError(f"{source}: the tiles hold no surface; nothing written")
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


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".part.json")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


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
