"""``recon view FILES...``: look at a cloud, a mesh and a field together (window, PNG or browser)."""

from __future__ import annotations

from pathlib import Path

import typer
from recon.cli._common import info, input_file, output_file, user_errors

NO_DISPLAY = (
    "no display to open a window on (DISPLAY is not set): use --screenshot FILE.png for an image, "
    "or --web to view it in a browser"
)


def register(app: typer.Typer) -> None:
    app.command("view", help="Look at a cloud, a mesh and a field together: in a window, as a PNG, or in a browser.")(view)


def _size(text: str) -> tuple[int, int]:
    from recon.errors import InputError

    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"--size must be WIDTHxHEIGHT in pixels, e.g. 1024x768, got {text!r}") from None
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        raise InputError(f"--size must be between 16 and 8192 pixels a side, got {text!r}")
    return w, h


@user_errors
def view(
    files: list[Path] = typer.Argument(..., metavar="FILES...", help="A cloud, a mesh and/or a field (.npz), one of each, in any order.", show_default=False),
    cloud: Path = typer.Option(None, "--cloud", help="The input points to show with a field or mesh.", show_default=False),
    gt: Path = typer.Option(None, "--gt", help="A ground-truth mesh: colours the mesh by its error and shows the metrics.", show_default=False),
    screenshot: Path = typer.Option(None, "--screenshot", help="Render offscreen to this PNG and exit (no window, no display needed).", show_default=False),
    web: bool = typer.Option(False, "--web", help="Serve the view to a browser (needs the [web] extra)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address the web view binds to; beyond this machine (not 127.0.0.1) it warns and serves only to URLs with the token it prints."),
    port: int = typer.Option(8080, "--port", help="Port of the web view."),
    level: float = typer.Option(None, "--level", help="Iso-level of the field's surface; default: the field's own.", show_default=False),
    slices: str = typer.Option("z", "--slices", help="Axes of the field's slice planes, e.g. 'z' or 'xyz'; '' for none."),
    cloud_color: str = typer.Option(None, "--cloud-color", help="rgb | plain | distance (default: the cloud's own colours).", show_default=False),
    mesh_color: str = typer.Option(None, "--mesh-color", help="plain | input | gt | curvature (default: gt when --gt is given).", show_default=False),
    max_points: int = typer.Option(2_000_000, "--max-points", min=1, help="Show larger clouds decimated to this many points."),
    size: str = typer.Option("1024x768", "--size", help="Window or image size, WIDTHxHEIGHT pixels."),
    up: str = typer.Option("auto", "--up", help="Up axis of the first view: auto (guessed from the data), +y, -z, ..."),
    turntable: int = typer.Option(None, "--turntable", min=2, max=720, help="Write a turn about the up axis of this many frames to -o (.gif, or .mp4 with the [video] extra) and exit.", show_default=False),
    output: Path = typer.Option(None, "-o", "--output", help="The turntable's file (.gif or .mp4).", show_default=False),
) -> None:
    """Look at a cloud, a mesh and a field together: in a window, as a PNG, or in a browser."""
    from recon.errors import InputError
    from recon.viewer.config import ViewerConfig, display_available
    from recon.viewer.framing import parse_up

    up_axis = parse_up(up)
    if (turntable is None) != (output is None):
        raise InputError("--turntable N and -o FILE go together: give both")
    if sum(x is not None and x is not False for x in (screenshot, web or None, turntable)) > 1:
        raise InputError("--screenshot, --web and --turntable are alternatives: give one")
    offscreen = screenshot is not None or web or turntable is not None
    if not offscreen and not display_available():
        raise InputError(NO_DISPLAY)
    window = _size(size)
    axes = tuple(slices)
    for a in axes:
        if a not in "xyz":
            raise InputError(f"--slices takes the letters x, y, z, got {slices!r}")
    paths = [input_file(p) for p in files]
    cloud = input_file(cloud, what="cloud") if cloud is not None else None
    gt = input_file(gt, what="ground truth") if gt is not None else None
    if screenshot is not None:
        screenshot = output_file(screenshot, inputs=[*paths, cloud, gt], suffixes={".png"}, what="screenshot")
    if output is not None:
        output = output_file(output, inputs=[*paths, cloud, gt], suffixes={".gif", ".mp4"}, what="turntable")

    from recon.viewer.load import build_scene, load_inputs

    inputs = load_inputs(paths, cloud=cloud, gt=gt)
    config = ViewerConfig(max_points=max_points, window_size=window)
    scene = build_scene(inputs, off_screen=offscreen, window_size=window, config=config, level=level, slices=axes,
                        cloud_coloring=cloud_color, mesh_coloring=mesh_color, up=up_axis)
    if scene.cloud_note:
        info(f"recon view: {scene.cloud_note}")
    if screenshot is not None:
        scene.screenshot(screenshot)
        scene.close()
        info(f"recon view: wrote {screenshot}")
        return
    if turntable is not None:
        from recon.viewer.controls import turntable as write_turntable

        n = write_turntable(scene, output, turntable)
        scene.close()
        info(f"recon view: wrote {output} ({n} frames)")
        return
    if web:
        from recon.viewer.web import serve

        serve(scene, host=host, port=port, announce=lambda line: typer.echo(line),
              warn=lambda line: typer.echo(line, err=True))
        return
    scene.show()
