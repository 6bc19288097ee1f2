"""``recon fit`` at scale: ``--tile SIZE`` (one large scene in tiles) and many clouds (a
folder, a glob or a list file as the input), on Ray (``--workers``, ``--ray-address``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from recon.batch import is_batch_input
from recon.cli._common import FitProgress, info, keyword_param, print_json, user_errors

__all__ = ["SCALE_NAMES", "SCALE_OPTIONS", "is_batch_input", "run_scaled"]

PANEL = "Scale"
SCALE_NAMES = ("tile", "workers", "ray_address", "out_dir", "resume")


SCALE_OPTIONS = [
    keyword_param("tile", Optional[float], typer.Option(None, "--tile", help="Fit in square tiles of this side (input units), overlapping, stitched into one mesh; for scenes too large to fit in one piece. By default every tile is measured: a terrain or aerial scan (tiles one-sided along z) is meshed as a height field through its points, any other scene is fitted with csp (open surfaces).", show_default=False, rich_help_panel=PANEL)),
    keyword_param("workers", Optional[int], typer.Option(None, "--workers", min=0, help="Ray workers on this machine (default: one per core); 0 runs one task at a time in this process, without Ray.", show_default=False, rich_help_panel=PANEL)),
    keyword_param("ray_address", Optional[str], typer.Option(None, "--ray-address", help="Run the tasks on a running Ray cluster: 'auto' or host:port.", show_default=False, rich_help_panel=PANEL)),
    keyword_param("out_dir", Optional[Path], typer.Option(None, "--out-dir", help="Many clouds (CLOUD a folder, a glob or a .list file): write <stem>.mesh.ply for each here.", show_default=False, rich_help_panel=PANEL)),
    keyword_param("resume", bool, typer.Option(False, "--resume", help="Keep what an earlier run finished (tiles fitted and meshed, clouds meshed) and do only the rest.", rich_help_panel=PANEL)),
]


class _PhaseProgress:
    """``progress(phase, done, total)`` for tiles: one bar per phase, on stderr."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.bars: dict[str, FitProgress] = {}

    def __call__(self, phase: str, done: int, total: int) -> None:
        if phase not in self.bars:
            for bar in self.bars.values():
                bar.__exit__(None, None, None)
            self.bars[phase] = FitProgress(f"{phase} tiles", quiet=self.quiet).__enter__()
        self.bars[phase](done, total, {})

    def close(self) -> None:
        for bar in self.bars.values():
            bar.__exit__(None, None, None)


@user_errors
def run_scaled(*, input: Path, output, save_field, method: str, sample, voxel_size, remove_outliers,
               min_component, seed, device, quiet: bool, as_json: bool, tile, workers, ray_address,
               out_dir, resume: bool, method_values: dict, method_given: bool, user_set: set) -> None:
    """Run a tiled fit (``--tile``) or a batch (a folder, glob or list input, or --out-dir)."""
    from recon.errors import InputError

    quiet = quiet or as_json
    options = dict(method_values)
    if "device" in user_set:
        options["device"] = device
    if is_batch_input(str(input)) or (out_dir is not None and tile is None):
        if tile is not None:
            raise InputError("--tile fits one large cloud; give one file, not a folder, glob or list")
        if out_dir is None:
            raise InputError(f"{input} names many clouds: give --out-dir for their meshes")
        if output is not None or save_field is not None:
            raise InputError("-o/--save-field name one file: with many clouds, use --out-dir")
        return _batch(input, out_dir, method, options, seed, workers, ray_address, resume, quiet, as_json,
                      sample=sample, voxel_size=voxel_size, remove_outliers=remove_outliers,
                      min_component=min_component)
    if out_dir is not None:
        raise InputError("--out-dir is for many clouds; a tiled fit writes one mesh (-o)")
    for flag, value in (("--sample", sample), ("--voxel-size", voxel_size), ("--save-field", save_field)):
        if value is not None:
            raise InputError(f"{flag} is not available with --tile")
    if remove_outliers:
        raise InputError("--remove-outliers is not available with --tile")
    per_tile = method if method_given else None
    return _tiled(input, output, tile, per_tile, options, seed or 0, workers,
                  ray_address, resume, quiet, as_json)


def _tiled(source, output, tile, method, options, seed, workers, ray_address, resume, quiet, as_json):
    from recon.cli._common import input_file, mesh_suffixes, output_file
    from recon.tiling.run import DEFAULT_TILE_METHOD, reconstruct_tiled

    source = input_file(source)
    if output is None:
        output = source.with_name(f"{source.stem}.mesh.ply")
    output = output_file(output, inputs=[source], suffixes=mesh_suffixes(), what="output")
    progress = _PhaseProgress(quiet)
    try:
        result = reconstruct_tiled(source, output, tile_size=tile, method=method or DEFAULT_TILE_METHOD,
                                   options=options, seed=seed, workers=workers, ray_address=ray_address,
                                   resume=resume, progress=progress)
    finally:
        progress.close()
    summary = {"input": str(source), "output": str(output), **result.summary()}
    if as_json:
        print_json(summary)
    elif not quiet:
        t = summary["timings"]
        kept = summary.get("fits_resumed", summary.get("meshes_resumed", 0))
        phases = ", ".join(f"{k[:-2]} {v:.1f}" for k, v in t.items() if k != "total_s")
        rows = [("points in", f"{summary['points_in']:,}"),
                ("tiles", f"{summary['tiles_with_points']} with points of {summary['tiles']} "
                          f"({kept} kept from before)")]
        if "auto" in summary:
            rows.append(("auto", summary["auto"]))
        rows += [("seconds", f"{t['total_s']:.1f} ({phases})"),
                 ("faces out", f"{summary['faces']:,} ({summary['vertices']:,} vertices)"),
                 ("output", summary["output"]),
                 ("work", f"{summary['workdir']} (tiles, fields and meshes, for --resume)")]
        for label, value in rows:
            typer.echo(f"{label:<10} {value}")


def _batch(input, out_dir, method, options, seed, workers, ray_address, resume, quiet, as_json, **pre):
    from recon.batch import expand_inputs, run_batch

    inputs = expand_inputs(str(input))
    options = {**options, **{k: v for k, v in pre.items() if v not in (None, False)}}
    info(f"{len(inputs)} clouds -> {out_dir}", quiet=quiet)
    rows = run_batch(inputs, out_dir, method=method, options=options, seed=seed or 0, workers=workers,
                     ray_address=ray_address, resume=resume,
                     on_row=None if quiet else (lambda row: typer.echo(row.line())))
    failed = [r for r in rows if not r.ok]
    if as_json:
        from dataclasses import asdict

        print_json({"clouds": len(rows), "failed": len(failed), "rows": [asdict(r) for r in rows]})
    elif not quiet:
        typer.echo(f"{len(rows) - len(failed)} of {len(rows)} clouds meshed"
                   + (f"; failed: {', '.join(Path(r.input).name for r in failed)}" if failed else ""))
    if failed:
        raise typer.Exit(1)
