"""``recon render FIELD.npz|MESH -o view.png``: sphere-trace a field (or render a mesh) to images."""

from __future__ import annotations

from pathlib import Path

import typer

from recon.cli._common import input_file, print_json, user_errors


def register(app: typer.Typer) -> None:
    app.command("render", help="Render a field by sphere tracing (no mesh), or a mesh through the same camera.")(render)


def _triple(text: str | None, name: str):
    from recon.errors import InputError

    if text is None:
        return None
    parts = [p for p in text.replace(",", " ").split() if p]
    try:
        vals = tuple(float(p) for p in parts)
    except ValueError:
        vals = ()
    if len(vals) != 3:
        raise InputError(f"{name} takes three numbers like 1,2,3, got {text!r}")
    return vals


@user_errors
def render(
    source: Path = typer.Argument(..., metavar="INPUT", help="A field saved by `recon fit --save-field` (.npz), or a mesh (.ply .obj .stl .off .glb).", show_default=False),
    output: Path = typer.Option(None, "--output", "-o", help="Image to write: .png, .gif (with --turntable) or an existing folder/. Default: <input stem>.png next to the input.", show_default=False),
    camera_file: Path = typer.Option(None, "--camera", help="Render the view saved beside an earlier image (<stem>.camera.json).", show_default=False),
    azimuth: float = typer.Option(35.0, "--azimuth", help="Degrees about the up axis; 0 is the front view."),
    elevation: float = typer.Option(25.0, "--elevation", help="Degrees above the horizon."),
    distance: float = typer.Option(None, "--distance", help="Eye to centre, input units. Default: fit the object in view.", show_default=False),
    eye: str = typer.Option(None, "--eye", help="Explicit eye position x,y,z (input units) instead of azimuth/elevation.", show_default=False),
    target: str = typer.Option(None, "--target", help="Point looked at, x,y,z (with --eye). Default: the object's centre.", show_default=False),
    up: str = typer.Option("+y", "--up", help="Up axis: +x -x +y -y +z -z, or three numbers."),
    fov: float = typer.Option(40.0, "--fov", help="Vertical field of view, degrees."),
    size: int = typer.Option(None, "--size", help="Square image side in pixels (default 512).", show_default=False),
    width: int = typer.Option(None, "--width", help="Image width in pixels (overrides --size).", show_default=False),
    height: int = typer.Option(None, "--height", help="Image height in pixels (overrides --size).", show_default=False),
    passes: str = typer.Option("color", "--passes", help="Comma-separated: color, normal (PNG), depth (.npy, distance along the ray), mask (PNG)."),
    spp: int = typer.Option(1, "--spp", help="Samples per pixel (anti-aliasing)."),
    turntable: int = typer.Option(None, "--turntable", help="Write a turntable GIF with this many frames.", show_default=False),
    fps: float = typer.Option(12.0, "--fps", help="Turntable frames per second."),
    transparent: bool = typer.Option(False, "--transparent", help="Transparent background."),
    ao: bool = typer.Option(False, "--ao", help="Ambient occlusion from a few extra field queries (fields only)."),
    device: str = typer.Option("auto", "--device", help="Where grid fields are traced: auto, cpu or cuda."),
    bake: int = typer.Option(None, "--bake", help="Bake a network field (csp) onto a block-sparse grid of this many nodes along its longest side first, and trace that with the numba/CUDA kernels: faster for turntables and large images. Default: 256 from two million rays (pixels x frames x spp) or on a GPU, else the network itself; 0: always the network.", show_default=False),
    max_steps: int = typer.Option(None, "--max-steps", help="March steps per ray (default 256; occupancy 2048).", show_default=False),
    hit_dist: float = typer.Option(None, "--hit-dist", help="Absolute hit distance, input units (default: 1e-6 of the bounds' diagonal).", show_default=False),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors (and --json)."),
    as_json: bool = typer.Option(False, "--json", help="Print outputs, camera and statistics as JSON on stdout."),
) -> None:
    """Render a field by sphere tracing (no mesh), or a mesh through the same camera."""
    from recon.errors import InputError
    from recon.render.job import CameraSpec, render_files
    from recon.render.output import parse_passes
    from recon.render.shade import ShadeSettings
    from recon.render.trace import resolve_settings

    source = input_file(source, what="input")
    if camera_file is not None:
        camera_file = input_file(camera_file, what="camera file")
    for name, v in (("--size", size), ("--width", width), ("--height", height)):
        if v is not None and not 1 <= v <= 16384:
            raise InputError(f"{name} must be in 1..16384 pixels, got {v}")
    w = width or size or 512
    h = height or size or 512
    up_value: object = up
    if up.strip().lower() not in ("+x", "-x", "+y", "-y", "+z", "-z", "x", "y", "z"):
        up_value = _triple(up, "--up")
    spec = CameraSpec(azimuth=azimuth, elevation=elevation, distance=distance, eye=_triple(eye, "--eye"),
                      target=_triple(target, "--target"), up=up_value, fov=fov, width=w, height=h)
    resized = (w, h) if any(v is not None for v in (size, width, height)) else None
    if not 1 <= spp <= 1024:
        raise InputError(f"--spp must be in 1..1024, got {spp}")
    if ao and source.suffix.lower() != ".npz":
        raise InputError("--ao needs a field (.npz): it queries the field")
    settings = resolve_settings(None, max_steps=max_steps, hit_dist=hit_dist)
    summary = render_files(
        source, output, spec=spec, camera_file=camera_file, camera_size=resized, passes=parse_passes(passes),
        spp=spp, turntable=turntable, fps=fps, device=device, trace_settings=settings,
        shade_settings=ShadeSettings(transparent=transparent, ao=ao), bake=bake,
    )
    if as_json:
        print_json(summary)
    elif not quiet:
        st = summary["stats"]
        for name, path in summary["outputs"].items():
            typer.echo(f"{name:>6}: {path}")
        if summary["kind"] == "field":
            if "baked" in st:
                why = " (by default from two million rays, on a GPU or for occupancy networks; --bake 0 traces the network)" if st["bake_auto"] else ""
                typer.echo(f"baked at {st['baked']} nodes along the longest side in {st['bake_seconds']:.2f} s{why}")
            typer.echo(
                f"{st['rays']:,} rays ({st['frames']} frame(s), {st['spp']} spp) in {st['seconds']:.3f} s: "
                f"{st['rays_per_second'] / 1e6:.2f} M rays/s on {st['device']} ({st['path']}); steps mean "
                f"{st['mean_steps']:.1f}, max {st['max_steps']}; {st['misses']:,} misses, "
                f"{st['not_converged']:,} not converged"
            )
        else:
            typer.echo(f"{st['faces']:,} faces, {st['frames']} frame(s) rendered by pyvista in {st['seconds']:.2f} s")
