"""``recon eval MESH GT``: point-to-surface metrics of a reconstruction against ground truth."""

from __future__ import annotations

from pathlib import Path

import typer

from recon.cli._common import input_file, print_json, user_errors


def register(app: typer.Typer) -> None:
    app.command("eval", help="Compare a mesh with a ground-truth mesh: Chamfer, normal consistency, F-score.")(evaluate)


@user_errors
def evaluate(
    mesh_path: Path = typer.Argument(..., metavar="MESH", help="The reconstruction (a mesh file).", show_default=False),
    gt_path: Path = typer.Argument(..., metavar="GT", help="The ground truth (a mesh file, same units and frame).", show_default=False),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON on stdout."),
    samples: int = typer.Option(100_000, "--samples", min=1, help="Points sampled on each mesh (area-uniform)."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the surface sampling."),
    thresholds: str = typer.Option(
        "0.002,0.005,0.01", "--thresholds",
        help="F-score thresholds, comma-separated fractions of the ground truth's bounding-box diagonal.",
    ),
) -> None:
    """Compare a mesh with a ground-truth mesh.

    Distances go from samples on one mesh to the closest point on the other mesh's
    triangles, divided by the ground truth's bounding-box diagonal. F-scores are given at
    each threshold (default 0.2 %, 0.5 % and 1 % of that diagonal).
    """
    from recon.errors import InputError
    from recon.io import read_mesh
    from recon.metrics import compare_meshes, format_metrics_table

    try:
        ts = tuple(float(t) for t in thresholds.split(",") if t.strip())
    except ValueError:
        raise InputError(f"--thresholds must be comma-separated numbers, got {thresholds!r}") from None
    if not ts or any(not (0.0 < t < 1.0) for t in ts):
        raise InputError(f"--thresholds must be fractions between 0 and 1, got {thresholds!r}")
    rec = read_mesh(input_file(mesh_path, what="mesh"))
    gt = read_mesh(input_file(gt_path, what="ground truth"))
    metrics = compare_meshes(rec, gt, n_samples=samples, seed=seed, thresholds=ts)
    if as_json:
        print_json({"mesh": str(mesh_path), "ground_truth": str(gt_path), **metrics})
    else:
        typer.echo(f"{mesh_path} vs {gt_path}")
        typer.echo(format_metrics_table(metrics))
