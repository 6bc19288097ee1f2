"""The viewer's hands-on parts: keys, slice-plane and clip-plane widgets, the progressive
iso-level slider, picking, the key's screenshot, the sphere-traced image and turntables."""

from __future__ import annotations

import os

import numpy as np

from recon.errors import InputError
from recon.viewer import framing, measures
from recon.viewer.config import axis_index


def key_actions(scene) -> dict:
    """Key -> callable on ``scene``, one per entry of ``KEYS`` (the window's and the browser's keys)."""
    return {
        "h": scene.toggle_help,
        "c": lambda: scene.toggle("cloud"),
        "m": lambda: scene.toggle("mesh"),
        "x": lambda: scene.toggle("slices"),
        "g": lambda: scene.toggle("gt"),
        "d": _guard(scene, scene.toggle_error_colors),
        "l": _guard(scene, lambda: toggle_clip(scene)),
        "k": _guard(scene, scene.cycle_cloud_coloring),
        "n": _guard(scene, scene.cycle_mesh_coloring),
        "o": _guard(scene, lambda: key_screenshot(scene)),
        "r": scene.reset_camera,
        "y": _guard(scene, lambda: toggle_traced(scene)),
    }


def enable_controls(scene) -> None:
    """Keys, a plane widget per slice, the iso-level slider and right-click picking (interactive use)."""
    p = scene.plotter
    scene._interactive = True
    for key, action in key_actions(scene).items():
        p.add_key_event(key, action)
    p.enable_point_picking(callback=lambda point: scene.pick(point), left_clicking=False, show_message=False,
                           show_point=False, color="black", point_size=10, picker="hardware", tolerance=0.0)
    if scene.field is None:
        return
    for axis, pos in scene.slices.items():
        rect = scene.slice_rectangle(axis)
        a = axis_index(axis)
        origin = rect.mean(axis=0)
        origin[a] = pos
        p.add_plane_widget(
            lambda normal, origin, axis=axis, a=a: scene.set_slice(axis, float(origin[a])),
            normal=axis, origin=origin, bounds=rect.T.ravel(), normal_rotation=False,
            assign_to_axis=axis, implicit=False, outline_translation=False, color="black",
        )
    add_level_slider(scene, measures.level_range(measures.field_traits(scene.field), scene.level))


def pick_at(scene, fx: float, fy: float) -> dict | None:
    """Pick what is drawn at a point of the image, given as fractions of its width (from the
    left) and height (from the top), and read its values (:func:`recon.viewer.measures.probe`).
    None where the ray meets nothing."""
    import vtk

    w, h = scene.plotter.window_size
    if not (0.0 <= fx <= 1.0 and 0.0 <= fy <= 1.0):
        raise InputError(f"a pick is inside the image: fractions in 0..1, got ({fx}, {fy})")
    # surfaces first (the cloud is drawn under them), then the cloud where no surface is hit
    actors = scene.plotter.actors
    surfaces = [a for name, a in actors.items()
                if name not in ("cloud", "picked") and a.GetVisibility() and a.GetPickable()]
    cloud = [actors["cloud"]] if "cloud" in actors and actors["cloud"].GetVisibility() else []
    for group in (surfaces, cloud):
        picker = vtk.vtkCellPicker()
        picker.SetTolerance(0.002)
        picker.PickFromListOn()
        for actor in group:
            picker.AddPickList(actor)
        if group and picker.Pick(fx * (w - 1), (1.0 - fy) * (h - 1), 0.0, scene.plotter.renderer):
            return scene.pick(np.asarray(picker.GetPickPosition(), np.float64))
    return None


def add_level_slider(scene, rng: tuple[float, float]):
    """The iso-level slider: a coarse re-mesh while it moves, the fine one when it is let go."""
    import vtk

    state = {"last": None}

    def moving(value):
        if state["last"] != value:
            state["last"] = value
            scene.set_level(value, coarse=True)

    widget = scene.plotter.add_slider_widget(
        moving, rng=rng, value=scene.level, title="iso-level", pointa=(0.55, 0.93), pointb=(0.95, 0.93),
        style="modern", interaction_event="always", color="black",
    )

    def released(obj, _event):
        scene.set_level(obj.GetRepresentation().GetValue())
        scene.refresh()

    widget.AddObserver(vtk.vtkCommand.EndInteractionEvent, released)
    return widget


def toggle_clip(scene) -> None:
    """Show a draggable clip plane through the object's centre, facing the camera, that cuts
    away the object's near half (to look inside), or remove it."""
    p = scene.plotter
    if scene.clip is not None:
        scene.set_clip(None)
        widget = scene.clip_widget
        if widget is not None:
            widget.Off()
            scene.clip_widget = None
        return
    bounds = scene.object_bounds()
    if bounds is None:
        raise InputError("the clip plane cuts a mesh or a cloud: none is shown")
    centre = bounds.mean(axis=0)
    normal = -np.asarray(p.camera.direction, np.float64)  # towards the camera: the near half goes
    scene.set_clip(normal, centre)
    if scene._interactive:
        grown = bounds + np.array([[-1.0], [1.0]]) * 0.05 * np.linalg.norm(bounds[1] - bounds[0])
        scene.clip_widget = p.add_plane_widget(lambda n, o: scene.set_clip(n, o), normal=normal, origin=centre,
                           bounds=grown.T.ravel(), implicit=True, outline_translation=False, color="gray")


def key_screenshot(scene) -> str:
    """Save the view as recon-view-N.png (the first N free) in the current folder."""
    from pathlib import Path

    while True:
        scene._shots += 1
        path = Path.cwd() / f"recon-view-{scene._shots}.png"
        if not path.exists():
            break
    scene.screenshot(path)
    scene._note = f"saved {path}"
    scene._update_overlay()
    scene.refresh()
    return str(path)


def toggle_traced(scene) -> None:
    """Switch between the scene and the sphere-traced image of the field at this camera."""
    p = scene.plotter
    if scene.traced:
        p.remove_background_image()
        scene.traced = False
    else:
        if scene.field is None:
            raise InputError("the sphere-traced image needs a field (.npz)")
        image = traced_image(scene)
        import tempfile

        from PIL import Image

        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "traced.png")
            Image.fromarray(image).save(path)
            p.add_background_image(path, as_global=False)
        scene.traced = True
    scene._apply_visibility()
    scene._update_overlay()
    scene.refresh()


def traced_image(scene) -> np.ndarray:
    """(H, W, 3) uint8: the field's surface sphere-traced for the scene's camera, head-lit."""
    from recon.render.camera import Camera
    from recon.render.trace import sphere_trace

    cam = scene.plotter.camera
    width, height = scene.plotter.window_size
    camera = Camera(eye=cam.position, target=cam.focal_point, up=cam.up, fov=cam.view_angle,
                    width=width, height=height)
    result = sphere_trace(scene.field, camera)
    _, d = camera.rays()
    shade = np.abs(np.einsum("hwc,hwc->hw", result.normal, d))
    base = np.array([176, 196, 222], np.float64)  # lightsteelblue, like the mesh
    img = np.where(result.hit[..., None], (0.15 + 0.85 * shade[..., None]) * base, 255.0)
    return np.clip(img, 0, 255).astype(np.uint8)


VIDEO_EXTRA_HINT = "pip install 'recon[video]' (imageio-ffmpeg, which ships an ffmpeg binary)"


def mp4_writer():
    """imageio's ``mimwrite`` when an H.264 encoder is at hand (imageio-ffmpeg and its binary);
    else an InputError that says how to get one."""
    try:
        import imageio.v2 as imageio
        import imageio_ffmpeg
    except ImportError as exc:
        raise InputError(f"an .mp4 turntable needs the [video] extra ({exc.name} is missing): "
                         f"{VIDEO_EXTRA_HINT}; or write a .gif") from None
    try:
        imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as exc:  # the package without a binary for this platform
        raise InputError(f"an .mp4 turntable needs an ffmpeg binary ({exc}); write a .gif instead") from None
    return imageio.mimwrite


def turntable(scene, path, n_frames: int, *, duration_s: float = 4.0) -> int:
    """Write a turn about the up axis, ``n_frames`` views from the front, as an animated GIF
    (``.gif``) or an H.264 ``.mp4`` (with the [video] extra). Returns the frames written."""
    from pathlib import Path

    from recon.io.atomic import atomic_path

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise InputError(f"a turntable is written as .gif or .mp4, got {path.name!r}")
    mimwrite = mp4_writer() if suffix == ".mp4" else None  # said before any frame is rendered
    bounds = scene.object_bounds()
    if bounds is None:
        bounds = np.asarray(scene.field.bounds, np.float64) if scene.field is not None else None
    if bounds is None:
        raise InputError("nothing to turn: the scene is empty")
    cfg = scene.config
    w, h = scene.plotter.window_size
    cams = framing.turntable_cameras(bounds, scene.up(), int(n_frames), view_angle=cfg.view_angle,
                                     azimuth=cfg.view_azimuth, elevation=cfg.turntable_elevation, aspect=w / h)
    frames = []
    scene.plotter.remove_actor("overlay", render=False)  # a presentation: the colour bars stay, the text goes
    for pos, focal, up in cams:
        scene.plotter.camera_position = [tuple(pos), tuple(focal), tuple(up)]
        scene.plotter.reset_camera_clipping_range()
        frames.append(scene.image())
    scene.reset_camera()
    with atomic_path(path) as tmp:
        if suffix == ".gif":
            from PIL import Image

            images = [Image.fromarray(f) for f in frames]
            images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], loop=0,
                           duration=int(1000 * duration_s / len(frames)))
        else:
            # blocks of 2 pixels: H.264's 4:2:0 colour needs even sides (an odd one is scaled up by 1)
            mimwrite(tmp, frames, fps=max(1, round(len(frames) / duration_s)), format="FFMPEG", codec="libx264",
                     macro_block_size=2, ffmpeg_log_level="error")
    return len(frames)


def _guard(scene, fn):
    """``fn`` for a key: an InputError (nothing to show) becomes a note in the overlay."""
    def run():
        try:
            fn()
        except InputError as exc:
            scene._note = str(exc)
            scene._update_overlay()
            scene.refresh()
    return run
