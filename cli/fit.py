"""``recon fit CLOUD``: read a cloud, fit a field, mesh it, write the mesh (and the field).

The method options (``--resolution``, ``--iterations``, ...) are not written here: they are
built from the fields of every registered fitter's config dataclass (see
:mod:`recon.cli._config_options`), so a new fitter or a new config field shows up in
``recon fit --help`` with no edit to this file. Only the options the user set are passed
to the chosen ``--method``; an option the method does not have is refused (exit 2).
"""

from __future__ import annotations

import dataclasses
import inspect
import time
from pathlib import Path
from typing import Optional

import typer

from recon.cli._common import (
    FitProgress,
    fail,
    info,
    input_file,
    mesh_suffixes,
    output_file,
    print_json,
    same_file,
    user_errors,
)
from recon.cli._config_options import collect_options, to_typer
from recon.meshing.marching_cubes import FIT_MIN_COMPONENT_FRACTION

# Options of the command itself. A config field with one of these names is fed from
# the command's option of the same name (seed, device) or left out (the others).
OWN_OPTIONS = (
    "ctx", "input", "output", "save_field", "method", "sample", "voxel_size", "remove_outliers",
    "min_component", "seed", "device", "quiet", "as_json", "json",
)
SHARED_WITH_CONFIG = ("seed", "device")
DEFAULT_METHOD = "gridpull"

HELP = """Fit a surface to a point cloud and write it as a mesh.

Reads CLOUD (.ply .pcd .xyz .las/.laz .npz ..., or a mesh with --sample N), fits a field
with --method (default gridpull), extracts its zero level set by marching cubes and writes
the mesh in the cloud's own units and frame: to <stem>.mesh.ply next to the input, or -o.
"""


def register(app: typer.Typer) -> None:
    specs = _fitter_specs()
    options = collect_options(specs, reserved=OWN_OPTIONS)
    app.command("fit", help=HELP, short_help="Fit a surface to a point cloud and write a mesh.")(
        build_command(options, methods=[s.name for s in specs])
    )


def _fitter_specs() -> list:
    """Registered fitters, the default first. A fitter module that fails to import must
    not break ``recon --help``: the error then shows when ``recon fit`` runs."""
    from recon import fitters

    try:
        registry = fitters.load_all_fitters()
    except Exception:
        registry = dict(getattr(fitters, "_REGISTRY", {}))
    return sorted(registry.values(), key=lambda s: (s.name != DEFAULT_METHOD, s.name))


def build_command(options, *, methods):
    """The typer callback of ``recon fit``, its signature made of the fixed options plus
    one option per config field in ``options``."""
    method_params = {opt.name: (opt, to_typer(opt)) for opt in options}
    known = ", ".join(methods) or "none registered"

    fixed = [
        inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context),
        _param("input", Path, typer.Argument(..., metavar="CLOUD", help="The point cloud (or a mesh, with --sample N).", show_default=False)),
        _param("output", Optional[Path], typer.Option(None, "--output", "-o", help="Mesh to write (.ply .obj .stl .glb ...). Default: <stem>.mesh.ply next to the input.", show_default=False)),
        _param("save_field", Optional[Path], typer.Option(None, "--save-field", help="Also save the fitted field (.npz), for `recon mesh` and `recon render`.", show_default=False)),
        _param("method", str, typer.Option(DEFAULT_METHOD, "--method", "-m", help=f"Fitting method: {known}.")),
        _param("sample", Optional[int], typer.Option(None, "--sample", min=1, help="Fit N points drawn from the input: area-uniform on a mesh's surface (a mesh otherwise gives its vertices), a random subset of a cloud.", show_default=False, rich_help_panel="Input")),
        _param("voxel_size", Optional[float], typer.Option(None, "--voxel-size", help="Down-sample first: one point (the mean) per voxel of this size, input units.", show_default=False, rich_help_panel="Input")),
        _param("remove_outliers", bool, typer.Option(False, "--remove-outliers", help="Drop statistical outliers first (mean distance to 20 neighbours > mean + 2 std).", rich_help_panel="Input")),
        _param("min_component", Optional[float], typer.Option(None, "--min-component", min=0.0, max=1.0, help=f"Drop mesh pieces with fewer faces than this fraction of the largest (0 keeps all). Default: {FIT_MIN_COMPONENT_FRACTION} for signed fields (gridpull), 0 for closest-point fields (csp: an open sheet's pieces are data).", show_default=False)),
        _param("seed", Optional[int], typer.Option(None, "--seed", min=0, help="Seed of every random draw (the method's and --sample's); default 0.", show_default=False)),
        _param("device", str, typer.Option("auto", "--device", help="auto, cpu or cuda (numba); auto picks a GPU when one is visible.")),
        _param("quiet", bool, typer.Option(False, "--quiet", "-q", help="No progress bar and no summary (errors still print).")),
        _param("as_json", bool, typer.Option(False, "--json", help="Print the summary as JSON on stdout.")),
    ]
    dynamic = [_param(name, tp.annotation, tp.option) for name, (_, tp) in method_params.items()]

    def fit_command(**kwargs):
        ctx = kwargs.pop("ctx")
        method_values = {}
        for name, (_, tp) in method_params.items():
            value = kwargs.pop(name)
            if _user_set(ctx, name, value):
                method_values[name] = tp.convert(value)
        user_set_own = {name for name in SHARED_WITH_CONFIG if _user_set(ctx, name, kwargs.get(name))}
        return run_fit(**kwargs, method_values=method_values, user_set=user_set_own, options=method_params)

    parameters = fixed + dynamic
    fit_command.__signature__ = inspect.Signature(parameters)
    fit_command.__annotations__ = {p.name: p.annotation for p in parameters}
    fit_command.__doc__ = HELP
    return fit_command


def _param(name, annotation, default):
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default)


def _user_set(ctx, name: str, value) -> bool:
    try:
        source = ctx.get_parameter_source(name)
    except Exception:
        source = None
    if source is None:
        return value is not None
    return getattr(source, "name", str(source)) in ("COMMANDLINE", "ENVIRONMENT", "PROMPT")


@user_errors
def run_fit(
    *,
    input: Path,
    output: Path | None,
    save_field: Path | None,
    method: str,
    sample: int | None,
    voxel_size: float | None,
    remove_outliers: bool,
    min_component: Optional[float],
    seed: int | None,
    device: str,
    quiet: bool,
    as_json: bool,
    method_values: dict,
    user_set: set,
    options: dict,
) -> None:
    """Everything ``recon fit`` does, after typer parsed the options."""
    from recon.device import resolve_device
    from recon.errors import InputError
    from recon.fitters import get_fitter, make_config

    t_start = time.perf_counter()
    # 1. check every option and path before reading anything large
    source = input_file(input)
    spec = get_fitter(method)
    fields = {f.name for f in dataclasses.fields(spec.config_cls)}
    for name in method_values:
        if name not in fields:
            owners = ", ".join(options[name][0].methods)
            raise InputError(
                f"--{name.replace('_', '-')} is not an option of method {method!r} (it belongs to {owners}); "
                f"see 'recon fit --help'"
            )
    resolved = resolve_device(device)
    overrides = dict(method_values)
    if "seed" in fields and "seed" in user_set:
        overrides["seed"] = seed
    if "device" in fields and "device" in user_set:
        overrides["device"] = device
    config = make_config(method, **overrides)
    if voxel_size is not None and not voxel_size > 0:
        raise InputError(f"--voxel-size must be a positive length, got {voxel_size}")

    if output is None:
        output = source.with_name(f"{source.stem}.mesh.ply")
    output = output_file(output, inputs=[source], suffixes=mesh_suffixes(), what="output")
    if save_field is not None:
        if Path(save_field).suffix.lower() != ".npz":
            raise InputError(f"--save-field must end in .npz, got {Path(save_field).name!r}")
        if same_file(save_field, output):
            raise InputError(f"--save-field and --output both name {output}: give the field its own .npz path")
        save_field = output_file(save_field, inputs=[source], what="--save-field")

    # 2. read and pre-process
    cloud = _read_input(source, sample=sample, seed=0 if seed is None else seed)
    points_in = len(cloud)
    if voxel_size is not None or remove_outliers:
        from recon.points import preprocess

        if voxel_size is not None:
            cloud = preprocess.voxel_downsample(cloud, voxel_size=voxel_size)
        if remove_outliers:
            cloud = preprocess.remove_statistical_outliers(cloud)
    info(_describe_input(source, points_in, len(cloud), method, resolved), quiet=quiet or as_json)

    # 3. fit
    from recon.fitters import fit

    t_fit = time.perf_counter()
    with FitProgress(method, quiet=quiet or as_json) as progress:
        field = fit(cloud, method, config, progress=progress)
    fit_seconds = time.perf_counter() - t_fit

    # 4. mesh, then write (each file atomically; an input is never overwritten)
    from recon.io import write_mesh
    from recon.meshing.marching_cubes import extract_mesh, fit_min_component_fraction

    t_mesh = time.perf_counter()
    if min_component is None:
        min_component = fit_min_component_fraction(field)
    mesh = extract_mesh(field, min_component_fraction=min_component)
    mesh_seconds = time.perf_counter() - t_mesh
    if mesh.n_faces == 0:
        raise fail(
            f"the fitted field of {source} has no surface (0 faces); nothing written. "
            f"Try another --resolution or check the input",
            1,
        )
    write_mesh(mesh, output, inputs=[source])  # atomic: a temporary file, then a rename
    if save_field is not None:
        field.save(save_field)
    seconds = time.perf_counter() - t_start

    summary = {
        "input": str(source),
        "output": str(output),
        "field": None if save_field is None else str(save_field),
        "method": method,
        "device": resolved,
        "points_in": int(points_in),
        "points_fitted": int(len(cloud)),
        "points_merged": int((getattr(field, "params", None) or {}).get("merged_points", 0) or 0),
        "vertices": int(mesh.n_vertices),
        "faces": int(mesh.n_faces),
        "seconds": round(seconds, 3),
        "fit_seconds": round(fit_seconds, 3),
        "mesh_seconds": round(mesh_seconds, 3),
        "config": dataclasses.asdict(config) if dataclasses.is_dataclass(config) else {},
    }
    if as_json:
        print_json(summary)
    elif not quiet:
        _print_summary(summary)


def _read_input(path: Path, *, sample: int | None, seed: int):
    """The cloud to fit: the file's points, or ``sample`` points drawn from it (area-uniform
    on a mesh's surface, a random subset of a cloud)."""
    from recon.io import read_cloud

    return read_cloud(path, sample=sample, seed=seed)


def _describe_input(source: Path, n_in: int, n_used: int, method: str, device: str) -> str:
    kept = "" if n_used == n_in else f" ({n_used:,} after pre-processing)"
    return f"{source}: {n_in:,} points{kept}; fitting with {method} on {device}"


def _print_summary(s: dict) -> None:
    points = f"{s['points_in']:,}"
    if s["points_fitted"] != s["points_in"]:
        points += f" ({s['points_fitted']:,} fitted)"
    rows = [
        ("points in", points),
        ("seconds", f"{s['seconds']:.2f} (fit {s['fit_seconds']:.2f}, mesh {s['mesh_seconds']:.2f})"),
        ("faces out", f"{s['faces']:,} ({s['vertices']:,} vertices)"),
        ("output", s["output"]),
    ]
    if s["points_merged"]:
        rows.insert(1, ("merged", f"fitted to {s['points_merged']:,} voxel means: the cloud is denser than the grid "
                                  "(--merge-cells 0 fits every point)"))
    if s["field"]:
        rows.append(("field", s["field"]))
    for label, value in rows:  # plain lines: a path is never cut to the terminal's width
        typer.echo(f"{label:<10} {value}")
