"""``recon info PATH``: what a file holds (points, faces, attributes, bounds, a field's grid)."""

from __future__ import annotations

from pathlib import Path

import typer

from recon.cli._common import input_file, print_json, user_errors


def register(app: typer.Typer) -> None:
    app.command("info", help="Describe a cloud, mesh or field file: counts, attributes, bounds.")(info)


@user_errors
def info(
    path: Path = typer.Argument(..., help="Any file recon reads: .ply .pcd .xyz .las/.laz .obj .stl .glb .npz ...", show_default=False),
    as_json: bool = typer.Option(False, "--json", help="Print the description as JSON on stdout."),
) -> None:
    """Describe a cloud, mesh or field file: counts, attributes, bounds."""
    from recon.describe import describe

    path = input_file(path)
    description = describe(path)
    if as_json:
        print_json(description)
        return
    typer.echo(_format(description))


def _format(description) -> str:
    if isinstance(description, str):
        return description
    if not isinstance(description, dict):
        return str(description)
    width = max((len(str(k)) for k in description), default=0)
    lines = []
    for key, value in description.items():
        if isinstance(value, dict):
            lines.append(f"{str(key).ljust(width)}")
            sub = max((len(str(k)) for k in value), default=0)
            lines += [f"  {str(k).ljust(sub)}  {_value(v)}" for k, v in value.items()]
        else:
            lines.append(f"{str(key).ljust(width)}  {_value(value)}")
    return "\n".join(lines)


def _value(value) -> str:
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return str(value)
