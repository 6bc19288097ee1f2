"""``recon normals CLOUD -o out.ply``: oriented normals (and curvature) of a cloud's points
from a closest-surface-point field, fitted on the spot or loaded with ``--field``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from recon.cli._common import FitProgress, info, input_file, output_file, print_json, user_errors

HELP = """Estimate oriented normals (and, with --curvature, principal curvatures) of a point cloud.

Fits a closest-surface-point field (--method csp) to CLOUD, or loads one with --field, and
writes CLOUD's points with their normals: each point is moved onto the field's surface and
gets the normal of a plane fitted to its projected neighbours (more neighbours where the
surface is flat, fewer at bends and edges; on fields fitted to clean points, the field's own
normal), turned outward on closed surfaces (towards the side from which rays escape the
shape), and on open ones towards their open side where the rest of the shape walls the other in,
consistently elsewhere. --curvature adds per-point properties k1, k2 (principal curvatures, 1 / input units).
--points N writes N points spread evenly over the fitted surface instead of the input's.
"""


def register(app: typer.Typer) -> None:
    app.command("normals", help=HELP, short_help="Normals (and curvature) of a cloud's points from a fitted field.")(normals)


@user_errors
def normals(
    input: Path = typer.Argument(..., metavar="CLOUD", help="The point cloud.", show_default=False),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Cloud to write (.ply .pcd .xyz .npz ...). Default: <stem>.normals.ply next to the input.", show_default=False),
    field_path: Optional[Path] = typer.Option(None, "--field", help="Use this saved closest-point field (.npz) instead of fitting one.", show_default=False),
    curvature: bool = typer.Option(False, "--curvature", help="Also write principal curvatures k1 >= k2 (1 / input units) as per-point properties."),
    points: Optional[int] = typer.Option(None, "--points", min=1, help="Write N points sampled evenly on the fitted surface (with normals) instead of the input's points.", show_default=False),
    surface: str = typer.Option("auto", "--surface", help="auto, open or closed: how normals are oriented (auto: decided from the field)."),
    iterations: Optional[int] = typer.Option(None, "--iterations", min=0, help="Training steps of the fit (default: the csp default).", show_default=False),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the fit and of --points."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda (torch)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar and no summary (errors still print)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
) -> None:
    from recon.cloud import Cloud
    from recon.fields.closest_point_geometry import point_normals
    from recon.meshing.unsigned import surface_points
    from recon.errors import InputError
    from recon.io import read_cloud, write_cloud

    t0 = time.perf_counter()
    source = input_file(input)
    if surface not in ("auto", "open", "closed"):
        raise InputError(f"--surface must be auto, open or closed, got {surface!r}")
    if output is None:
        output = source.with_name(f"{source.stem}.normals.ply")
    inputs = [source] + ([field_path] if field_path is not None else [])
    output = output_file(output, inputs=inputs, what="output")
    cloud = read_cloud(source)
    if field_path is not None:
        from recon.fields import load_field

        field = load_field(input_file(field_path, what="field"))
        if field.kind != "unsigned":
            raise InputError(f"--field {field_path}: normals need a closest-point field (recon fit --method csp --save-field)")
    else:
        from recon.fitters import fit, make_config

        overrides = {"seed": seed, "device": device}
        if surface != "auto":
            overrides["surface"] = surface
        if iterations is not None:
            overrides["iterations"] = iterations
        config = make_config("csp", **overrides)
        info(f"{source}: {len(cloud):,} points; fitting a closest-point field", quiet=quiet or as_json)
        with FitProgress("csp", quiet=quiet or as_json) as progress:
            field = fit(cloud, "csp", config, progress=progress)
    orient = None if surface == "auto" else surface
    if points is not None:
        pts, nrm = surface_points(field, int(points), seed=seed)
        out = Cloud(pts, normals=nrm, source=f"{source} (surface samples)")
        if curvature:
            from recon.fields.closest_point_geometry import principal_curvatures

            k = principal_curvatures(field, pts, nrm).astype(np.float32)
            out.extra.update(k1=k[:, 0], k2=k[:, 1])
    else:
        nrm, k = point_normals(field, cloud.points, curvature=curvature, surface=orient)
        out = Cloud(cloud.points, normals=nrm, colors=cloud.colors, source=cloud.source)
        if k is not None:
            out.extra.update(k1=k[:, 0], k2=k[:, 1])
    write_cloud(out, output, inputs=inputs)  # atomic; never over an input
    seconds = time.perf_counter() - t0
    summary = {
        "input": str(source),
        "output": str(output),
        "points": int(len(out)),
        "curvature": bool(curvature),
        "surface": str(field.params.get("surface_decided", orient or "unknown")),
        "seconds": round(seconds, 3),
    }
    if as_json:
        print_json(summary)
    elif not quiet:
        typer.echo(f"{summary['points']:,} points with normals ({summary['surface']} surface) in {seconds:.2f} s -> {output}")

