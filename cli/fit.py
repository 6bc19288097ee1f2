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
from pathlib import Path
from typing import Optional

import typer

from recon.cli._common import (
    FitProgress,
    info,
    input_file,
    keyword_param,
    mesh_suffixes,
    output_file,
    print_json,
    same_file,
    user_errors,
)
from recon.cli._config_options import collect_options, to_typer
from recon.cli._scale import SCALE_NAMES, SCALE_OPTIONS, is_batch_input, run_scaled
from recon.meshing.marching_cubes import FIT_MIN_COMPONENT_FRACTION
from recon.pipeline import AUTO, AUTO_METHODS, DEFAULT_METHOD

# Options of the command itself. A config field with one of these names is fed from
# the command's option of the same name (seed, device) or left out (the others).
OWN_OPTIONS = (
    "ctx", "input", "output", "save_field", "method", "sample", "voxel_size", "remove_outliers",
    "min_component", "interpolate", "seed", "device", "quiet", "as_json", "json",
    "tile", "workers", "ray_address", "out_dir", "resume",
)
SHARED_WITH_CONFIG = ("seed", "device")

HELP = """Fit a surface to a point cloud and write it as a mesh.

Reads CLOUD (.ply .pcd .xyz .las/.laz .npz ..., or a mesh with --sample N), fits a field
with --method, extracts its zero level set and writes the mesh in the cloud's own units and
frame: to <stem>.mesh.ply next to the input, or -o. The default, --method auto, measures
the cloud (spacing, noise, whether it encloses a volume, one-sidedness, scene or object),
picks gridpull (closed, well sampled) or csp (open, one-sided, scenes, holes, sparse) and
prints the decision and its evidence in one line; --method NAME overrules it.

A .ply mesh has a float32 vertex property distance_to_data (distance from each vertex to
the nearest fitted point, input units: threshold it to drop surface far from the data)
and, when the cloud has colours, red green blue from the nearest points (.obj and .glb
get the colours too).
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
    return sorted(registry.values(), key=lambda s: (s.name not in AUTO_METHODS, s.name))


def build_command(options, *, methods):
    """The typer callback of ``recon fit``, its signature made of the fixed options plus
    one option per config field in ``options``."""
    method_params = {opt.name: (opt, to_typer(opt)) for opt in options}
    known = ", ".join([AUTO, *methods])

    fixed = [
        inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context),
        keyword_param("input", Path, typer.Argument(..., metavar="CLOUD", help="The point cloud (or a mesh, with --sample N).", show_default=False)),
        keyword_param("output", Optional[Path], typer.Option(None, "--output", "-o", help="Mesh to write (.ply .obj .stl .glb ...). Default: <stem>.mesh.ply next to the input.", show_default=False)),
        keyword_param("save_field", Optional[Path], typer.Option(None, "--save-field", help="Also save the fitted field (.npz), for `recon mesh` and `recon render`.", show_default=False)),
        keyword_param("method", str, typer.Option(DEFAULT_METHOD, "--method", "-m", help=f"Fitting method: {known}. auto measures the cloud and chooses ({' or '.join(AUTO_METHODS)}).")),
        keyword_param("sample", Optional[int], typer.Option(None, "--sample", min=1, help="Fit N points drawn from the input: area-uniform on a mesh's surface (a mesh otherwise gives its vertices), a random subset of a cloud.", show_default=False, rich_help_panel="Input")),
        keyword_param("voxel_size", Optional[float], typer.Option(None, "--voxel-size", help="Down-sample first: one point (the mean) per voxel of this size, input units.", show_default=False, rich_help_panel="Input")),
        keyword_param("remove_outliers", bool, typer.Option(False, "--remove-outliers", help="Drop statistical outliers first (mean distance to 20 neighbours > mean + 2 std).", rich_help_panel="Input")),
        keyword_param("min_component", Optional[float], typer.Option(None, "--min-component", min=0.0, max=1.0, help=f"Drop mesh pieces with fewer faces than this fraction of the largest (0 keeps all). Default: {FIT_MIN_COMPONENT_FRACTION} for signed fields (gridpull), 0 for closest-point fields (csp: an open sheet's pieces are data).", show_default=False)),
        keyword_param("interpolate", Optional[bool], typer.Option(None, "--interpolate/--no-interpolate", help="Mesh through the points: with a signed field, vertices are the fitted points and faces the Delaunay triangles the field's surface crosses (restricted Delaunay); with an unsigned field (csp), the points denoised onto their neighbours' planes, triangulated across the scan's direction on a one-sided scan or a terrain, else between the two sides of those planes (an open mesh). Up to 600,000 points. Default: auto decides (clean, sparse, one-sided or mildly noisy open samples); hrbf meshes through the points, other named methods the field's grid.", show_default=False)),
        keyword_param("seed", Optional[int], typer.Option(None, "--seed", min=0, help="Seed of every random draw (the method's and --sample's); default 0.", show_default=False)),
        keyword_param("device", str, typer.Option("auto", "--device", help="auto, cpu or cuda (numba); auto picks a GPU when one is visible.")),
        keyword_param("quiet", bool, typer.Option(False, "--quiet", "-q", help="No progress bar and no summary (errors still print).")),
        keyword_param("as_json", bool, typer.Option(False, "--json", help="Print the summary as JSON on stdout.")),
        *SCALE_OPTIONS,
    ]
    dynamic = [keyword_param(name, tp.annotation, tp.option) for name, (_, tp) in method_params.items()]

    def fit_command(**kwargs):
        ctx = kwargs.pop("ctx")
        method_values = {}
        for name, (_, tp) in method_params.items():
            value = kwargs.pop(name)
            if _user_set(ctx, name, value):
                method_values[name] = tp.convert(value)
        user_set_own = {name for name in SHARED_WITH_CONFIG if _user_set(ctx, name, kwargs.get(name))}
        scale = {name: kwargs.pop(name) for name in SCALE_NAMES}
        if scale["tile"] is not None or scale["out_dir"] is not None or is_batch_input(str(kwargs["input"])):
            if kwargs.pop("interpolate") is not None:
                return _refuse_interpolate_at_scale()
            return run_scaled(**kwargs, **scale, method_values=method_values,
                              method_given=_user_set(ctx, "method", kwargs["method"]), user_set=user_set_own)
        return run_fit(**kwargs, method_values=method_values, user_set=user_set_own, options=method_params)

    parameters = fixed + dynamic
    fit_command.__signature__ = inspect.Signature(parameters)
    fit_command.__annotations__ = {p.name: p.annotation for p in parameters}
    fit_command.__doc__ = HELP
    return fit_command



@user_errors
def _refuse_interpolate_at_scale() -> None:
    from recon.errors import InputError

    raise InputError("--interpolate/--no-interpolate is for one cloud: tiles and batches mesh as their method decides")


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
    interpolate: Optional[bool],
    seed: int | None,
    device: str,
    quiet: bool,
    as_json: bool,
    method_values: dict,
    user_set: set,
    options: dict,
) -> None:
    """Parse what the user gave, call :func:`recon.pipeline.reconstruct`, write, print."""
    from recon.errors import InputError
    from recon.fitters import get_fitter
    from recon.pipeline import Preprocessing, auto_candidates, prepare, reconstruct

    # every option and path is checked before anything large is read
    source = input_file(input)
    if method == AUTO:  # the method is chosen once the cloud is read; its options are checked now
        for name in method_values:
            owners = options[name][0].methods
            if not set(owners) & set(AUTO_METHODS):
                raise InputError(
                    f"--{name.replace('_', '-')} is not an option of {' or '.join(AUTO_METHODS)}, the methods "
                    f"--method auto chooses from (it belongs to {', '.join(owners)}): give --method"
                )
        auto_candidates(method_values)
        config, options_given = None, method_values
    else:
        spec = get_fitter(method)
        fields = {f.name for f in dataclasses.fields(spec.config_cls)}
        for name in method_values:
            if name not in fields:
                owners = ", ".join(options[name][0].methods)
                raise InputError(
                    f"--{name.replace('_', '-')} is not an option of method {method!r} (it belongs to {owners}); "
                    f"see 'recon fit --help'"
                )
        _, config = prepare(method, seed=seed if "seed" in user_set else None,
                            device=device if "device" in user_set else None, **method_values)
        options_given = {}
    try:
        Preprocessing(sample=sample, voxel_size=voxel_size, remove_outliers=remove_outliers).check()
    except InputError as exc:
        raise InputError(f"--{str(exc).replace('_', '-')}") from None

    if output is None:
        output = source.with_name(f"{source.stem}.mesh.ply")
    output = output_file(output, inputs=[source], suffixes=mesh_suffixes(), what="output")
    if save_field is not None:
        if Path(save_field).suffix.lower() != ".npz":
            raise InputError(f"--save-field must end in .npz, got {Path(save_field).name!r}")
        if same_file(save_field, output):
            raise InputError(f"--save-field and --output both name {output}: give the field its own .npz path")
        save_field = output_file(save_field, inputs=[source], what="--save-field")

    with FitProgress("fit" if method == AUTO else method, quiet=quiet or as_json) as progress:
        result = reconstruct(
            source, method=method, config=config, sample=sample, voxel_size=voxel_size,
            remove_outliers=remove_outliers, min_component=min_component, interpolate=interpolate, seed=seed,
            device=device, progress=progress, fit_field=save_field is not None, log=lambda line: info(line, quiet=quiet or as_json),
            **options_given,
        )
    result.write_mesh(output, inputs=[source])  # atomic: a temporary file, then a rename
    if save_field is not None:
        result.field.save(save_field)

    summary = {"input": str(source), "output": str(output),
               "field": None if save_field is None else str(save_field), **result.summary()}
    summary.update(seconds=round(result.timings["total_s"], 3), fit_seconds=round(result.timings["fit_s"], 3),
                   mesh_seconds=round(result.timings["mesh_s"], 3))
    if as_json:
        print_json(summary)
    elif not quiet:
        _print_summary(summary)


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
    rows[1:1] = [(decision["name"], decision["reason"]) for decision in s["decisions"]]  # in the order decided
    if s["field"]:
        rows.append(("field", s["field"]))
    for label, value in rows:  # plain lines: a path is never cut to the terminal's width
        typer.echo(f"{label:<10} {value}")
