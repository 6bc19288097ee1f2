"""``recon mesh FIELD.npz -o mesh.ply``: marching cubes on a saved field."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from recon.cli._common import input_file, mesh_suffixes, output_file, print_json, user_errors


def register(app: typer.Typer) -> None:
    app.command("mesh", help="Extract a triangle mesh from a saved field (.npz) by marching cubes.")(mesh)


@user_errors
def mesh(
    field_path: Path = typer.Argument(..., metavar="FIELD", help="A field saved by `recon fit --save-field` (.npz).", show_default=False),
    output: Path = typer.Option(None, "--output", "-o", help="Mesh file to write (.ply .obj .stl .glb ...). Default: <field stem>.mesh.ply next to the field.", show_default=False),
    resolution: int = typer.Option(None, "--resolution", help="Cells along the longest side of the bounds; default: the field's own grid.", show_default=False),
    level: float = typer.Option(None, "--level", help="Iso-level; default: the field's own (0 for distances, 0.5 for occupancy).", show_default=False),
    min_component: float = typer.Option(0.0, "--min-component", min=0.0, max=1.0, help="Drop connected pieces with fewer faces than this fraction of the largest."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors (and --json)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
) -> None:
    """Extract a triangle mesh from a saved field (.npz) by marching cubes."""
    from recon.errors import InputError
    from recon.fields import load_field
    from recon.io import write_mesh
    from recon.meshing.marching_cubes import extract_mesh

    t0 = time.perf_counter()
    field_path = input_file(field_path, what="field")
    if output is None:
        output = field_path.with_name(_stem(field_path) + ".mesh.ply")
    output = output_file(output, inputs=[field_path], suffixes=mesh_suffixes(), what="mesh")
    field = load_field(field_path)
    result = extract_mesh(field, resolution=resolution, level=level, min_component_fraction=min_component)
    if result.n_faces == 0:
        raise InputError(f"{field_path}: the field has no surface at level "
                         f"{field.level if level is None else level:g} within its bounds (0 faces); nothing written")
    write_mesh(result, output, inputs=[field_path])  # atomic; never over the input
    seconds = time.perf_counter() - t0
    summary = {
        "field": str(field_path),
        "output": str(output),
        "vertices": int(result.n_vertices),
        "faces": int(result.n_faces),
        "seconds": round(seconds, 3),
    }
    if as_json:
        print_json(summary)
    elif not quiet:
        typer.echo(f"{summary['faces']:,} faces, {summary['vertices']:,} vertices in {seconds:.2f} s -> {output}")


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".field.npz", ".npz"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem
