"""Render a field file or a mesh file to image files: what ``recon render`` does, as a function.

    from recon.render.job import render_files, CameraSpec
    summary = render_files("scan.field.npz", "view.png")                   # three-quarter view
    summary = render_files("scan.field.npz", "turn.gif", turntable=36, spec=CameraSpec(width=512, height=512))
    summary = render_files("mesh.ply", "mesh.png", camera_file="view.camera.json")  # same view, from a mesh

Output naming: ``-o view.png`` writes the colour there and the other passes beside it as
``view.normal.png``, ``view.depth.npy``, ``view.mask.png``; ``-o folder/`` writes
``folder/<input stem>.<pass>.<ext>``; ``.gif`` is a turntable. The camera always goes beside
the images as ``<stem>.camera.json`` so the same view can be rendered again.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recon.errors import InputError
from recon.fields.base import Bakeable
from recon.render.camera import Camera, orbit_camera, surface_bounds
from recon.render.output import PASSES

FIELD_SUFFIXES = (".npz",)
MESH_SUFFIXES = (".ply", ".obj", ".stl", ".off", ".glb", ".gltf")


@dataclass(frozen=True)
class CameraSpec:
    """How to place the camera when no camera file is given (None: the default)."""

    azimuth: float = 35.0
    elevation: float = 25.0
    distance: float | None = None
    eye: tuple | None = None
    target: tuple | None = None
    up: object = "+y"
    fov: float = 40.0
    width: int = 512
    height: int = 512


def input_stem(path: Path) -> str:
    name = path.name
    for suffix in (".field.npz", ".npz"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def build_camera(spec: CameraSpec, bounds, *, fit: str = "box") -> Camera:
    """A camera from ``spec``: an explicit eye (target defaults to the bounds' centre) or an
    orbit around the bounds."""
    from recon.render.camera import up_vectors

    b = np.asarray(bounds, dtype=np.float64)
    if spec.eye is not None or spec.target is not None:
        if spec.eye is None:
            raise InputError("--target needs --eye (or use --azimuth/--elevation)")
        target = b.mean(axis=0) if spec.target is None else spec.target
        up, _ = up_vectors(spec.up)
        return Camera(spec.eye, target, up, spec.fov, spec.width, spec.height)
    return orbit_camera(b, azimuth=spec.azimuth, elevation=spec.elevation, distance=spec.distance, fov=spec.fov,
                        width=spec.width, height=spec.height, up=spec.up, fit=fit)


def turntable_cameras(camera: Camera, frames: int) -> list[Camera]:
    """``frames`` cameras turning the eye about the target around the camera's up axis."""
    if int(frames) != frames or not 1 <= frames <= 3600:
        raise InputError(f"--turntable takes a number of frames in 1..3600, got {frames}")
    k = camera.up / np.linalg.norm(camera.up)
    v = camera.eye - camera.target
    cams = []
    for i in range(int(frames)):
        a = 2.0 * math.pi * i / frames
        # Rodrigues' rotation of v about k by a
        r = v * math.cos(a) + np.cross(k, v) * math.sin(a) + k * (k @ v) * (1 - math.cos(a))
        cams.append(Camera(camera.target + r, camera.target, camera.up, camera.fov, camera.width, camera.height))
    return cams


def _outputs(source: Path, out: Path | None, passes: tuple[str, ...], gif: bool) -> dict[str, Path]:
    """Map each pass (and 'camera') to its output path."""
    ext = {"color": ".png", "normal": ".normal.png", "depth": ".depth.npy", "mask": ".mask.png"}
    stem = input_stem(source)
    if out is None:
        base = source.with_name(stem)
        paths = {p: Path(str(base) + (".png" if p == "color" else ext[p])) for p in passes}
    elif out.is_dir() or str(out).endswith(("/", "\\")):
        if not out.is_dir():
            raise InputError(f"output folder does not exist: {out}")
        paths = {p: out / (stem + (".color.png" if p == "color" else ext[p])) for p in passes}
        base = out / stem
    else:
        suffix = out.suffix.lower()
        if gif:
            if suffix != ".gif":
                raise InputError(f"a turntable is written as .gif, got {out.name!r}")
        elif suffix == ".gif":
            raise InputError("a .gif output is a turntable: add --turntable N (frames)")
        elif suffix != ".png":
            raise InputError(f"cannot write an image {out.name!r}: use .png, .gif (turntable) or a folder/")
        if not (out.parent if str(out.parent) else Path(".")).is_dir():
            raise InputError(f"output folder does not exist: {out.parent}")
        base = out.with_suffix("")
        paths = {p: (out if p == "color" else Path(str(base) + ext[p])) for p in passes}
    if gif:
        if set(passes) - {"color"}:
            raise InputError("a turntable writes the colour pass only: drop --passes or render single views")
        if out is None:
            paths = {"color": source.with_name(stem + ".gif")}
            base = source.with_name(stem)
    paths["camera"] = Path(str(base) + ".camera.json")
    for p in paths.values():
        try:
            if p.resolve() == source.resolve():
                raise InputError(f"refusing to overwrite the input {source}: choose another output path")
        except OSError:
            pass
    return paths


AUTO_BAKE = 256
"Nodes along the longest side when a network field is baked without being asked (``bake=None``)."
AUTO_BAKE_RAYS = 2_000_000
"Rays (pixels x frames x samples per pixel) from which a network field is baked without being asked."


def _bakes_by_default(field, rays: int, device: str) -> bool:
    """Bake a network field unasked for many rays or for a GPU (the network is evaluated on
    the host): from about two million rays, tracing through the network takes longer than
    baking at 256 once and tracing the grid; occupancy networks always."""
    from recon.device import resolve_device

    if not isinstance(field, Bakeable):
        return False
    # an occupancy network has no distance bound to step by: tracing it takes hundreds of evaluations per ray
    return rays >= AUTO_BAKE_RAYS or resolve_device(device) == "cuda" or field.kind == "occupancy"


def _baked(field, resolution, source):
    """The block-sparse grid of a network field, for the kernels (``render_files``'s bake)."""
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) or not 16 <= resolution <= 1024:
        raise InputError(f"--bake must be 16..1024 nodes along the longest side, got {resolution!r}")
    if not isinstance(field, Bakeable):
        raise InputError(f"--bake applies to network fields (csp); {source.name} is a "
                         f"{type(field).__name__}, which the kernels trace as it is")
    return field.bake(int(resolution))


def render_files(
    source,
    out=None,
    *,
    spec: CameraSpec | None = None,
    camera_file=None,
    camera_size: tuple[int, int] | None = None,
    passes: tuple[str, ...] = ("color",),
    spp: int = 1,
    turntable: int | None = None,
    fps: float = 12.0,
    device: str = "auto",
    trace_settings=None,
    shade_settings=None,
    bake: int | None = None,
) -> dict:
    """Render ``source`` (a field .npz or a mesh) to files; return a summary dict
    (outputs, camera, stats). See the module docstring for naming.

    spec        : camera placement and image size (ignored when ``camera_file`` is given)
    camera_file : a camera JSON written beside an earlier image: render the same view
    camera_size : (width, height) replacing the camera file's own size
    bake        : a network field (csp) is first baked onto a block-sparse grid with this
                  many nodes along its longest side, which the numba/CUDA kernels trace
                  (a bake costs about as much as one frame through the network, and each
                  frame after it far less); 0: never; None: at ``AUTO_BAKE`` for
                  ``AUTO_BAKE_RAYS`` or more rays or on a GPU, else never
    """
    from recon.render.output import mask_to_uint8, normal_to_uint8, rgba_to_uint8, write_gif, write_npy, write_png
    from recon.render.shade import ShadeSettings

    source = Path(source)
    out = None if out is None else Path(out)
    spec = spec or CameraSpec()
    sh = shade_settings or ShadeSettings()
    bad = [p for p in passes if p not in PASSES]
    if bad:
        raise InputError(f"unknown pass {bad[0]!r}; choose from {', '.join(PASSES)}")
    gif = turntable is not None
    paths = _outputs(source, out, tuple(passes), gif)
    suffix = source.suffix.lower()
    if suffix in FIELD_SUFFIXES:
        kind = "field"
        from recon.fields import load_field

        obj = load_field(source)
        bounds = surface_bounds(obj)
    elif suffix in MESH_SUFFIXES:
        kind = "mesh"
        from recon.io import read_mesh

        obj = read_mesh(source)
        if obj.n_faces == 0:
            raise InputError(f"{source}: has no triangles (a point cloud? fit it first with `recon fit`)")
        bounds = np.stack([obj.vertices.min(axis=0), obj.vertices.max(axis=0)])
        if "normal" in passes:
            raise InputError("the normal pass is rendered for fields only; a mesh gives color, depth, mask")
    else:
        raise InputError(f"{source.name}: render takes a field (.npz) or a mesh ({', '.join(MESH_SUFFIXES)})")
    if bake and kind != "field":
        raise InputError("--bake needs a network field (.npz): a mesh has nothing to bake")
    if camera_file is not None:
        camera = Camera.load(camera_file)
        if camera_size is not None:
            camera = camera.with_size(*camera_size)
    else:
        camera = build_camera(spec, bounds, fit="sphere" if gif else "box")
    cams = turntable_cameras(camera, turntable) if gif else [camera]
    rays = len(cams) * spp * camera.width * camera.height
    bake_auto = kind == "field" and bake is None and _bakes_by_default(obj, rays, device)
    if bake_auto:
        bake = AUTO_BAKE
    if kind == "field" and bake:
        t_bake = time.perf_counter()
        obj = _baked(obj, bake, source)
        t_bake = time.perf_counter() - t_bake

    t0 = time.perf_counter()
    frames, stats, last = [], {}, None
    prep = None
    if kind == "field":
        from recon.render.shade import render_field
        from recon.render.trace import add_trace_stats, prepare

        prep = prepare(obj, device=device)
        for cam in cams:
            last = render_field(obj, cam, spp=spp, shade_settings=sh, trace_settings=trace_settings, prepared=prep)
            frames.append(last.rgba)
            add_trace_stats(stats, last.stats)
        stats["spp"] = spp
        if bake:
            stats.update(baked=int(bake), bake_seconds=t_bake, bake_auto=bake_auto)
    else:
        from recon.render.mesh_render import render_mesh

        seconds = 0.0
        for cam in cams:
            last = render_mesh(obj, cam, settings=sh, spp=spp)
            frames.append(last.rgba)
            seconds += last.stats["seconds"]
        stats = {"frames": len(cams), "seconds": seconds, "faces": obj.n_faces, "path": "pyvista"}
    written = {}
    if gif:
        written["color"] = write_gif(paths["color"], [rgba_to_uint8(f) for f in frames], fps=fps,
                                     inputs=[source], transparent=sh.transparent)
        camera.save(paths["camera"], extra={"frames": [c.to_dict() for c in cams]})
    else:
        trace = last.trace if kind == "field" else None
        hit = trace.hit if trace is not None else last.hit
        depth = trace.depth if trace is not None else last.depth
        for p in passes:
            if p == "color":
                written[p] = write_png(paths[p], rgba_to_uint8(frames[0]), inputs=[source], drop_alpha=not sh.transparent)
            elif p == "normal":
                written[p] = write_png(paths[p], normal_to_uint8(trace.normal, trace.hit), inputs=[source])
            elif p == "depth":
                written[p] = write_npy(paths[p], depth.astype(np.float32), inputs=[source])
            elif p == "mask":
                written[p] = write_png(paths[p], mask_to_uint8(hit), inputs=[source])
        camera.save(paths["camera"])
    written["camera"] = paths["camera"]
    stats["frames"] = len(cams)
    stats["wall_seconds"] = time.perf_counter() - t0
    return {
        "input": str(source),
        "kind": kind,
        "outputs": {k: str(v) for k, v in written.items()},
        "camera": camera.to_dict(),
        "stats": stats,
    }
