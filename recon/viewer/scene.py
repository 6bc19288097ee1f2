"""The viewer's scene: layers, colourings, slices, iso-level, clip plane and overlay on one pyvista Plotter.

Nothing here opens a window: :class:`ViewerScene` builds on a ``pyvista.Plotter`` that is
either on screen (``show``), offscreen (``screenshot``, tests) or served to a browser
(``recon.viewer.web``). Every layer-adding call returns the pyvista actor (a handle), and
``None`` for an option means "keep the default". Keys and widgets: ``recon.viewer.controls``;
the first view's geometry: ``recon.viewer.framing``; values read off the data: ``recon.viewer.measures``.

Units: every distance shown is in the input's own units ("input units"), as read from the files.
"""

from __future__ import annotations

import math
import os

import numpy as np

from recon.errors import InputError
from recon.viewer import framing, measures
from recon.viewer.colouring import BAR_FIELD, Colorings
from recon.viewer.config import (
    KEYS,
    MOUSE,
    ViewerConfig,
    axis_index,
    poly_from_mesh,
    pyvista,
)

_LAYERS = ("cloud", "mesh", "slices", "gt")
class ViewerScene(Colorings):
    """One scene: an input cloud, a mesh, a ground truth and a field, each optional.

    off_screen  : render without a window (screenshots, tests, servers)
    window_size : (width, height) pixels; None: ``config.window_size``
    config      : a :class:`ViewerConfig`; None: the defaults
    up          : (3,) the up axis of the first view; None: guessed from the data
    """

    def __init__(self, *, off_screen: bool = False, window_size=None, config: ViewerConfig | None = None, up=None):
        pv = pyvista()
        self.config = config or ViewerConfig()
        size = tuple(window_size or self.config.window_size)
        if len(size) != 2 or min(size) < 16:
            raise InputError(f"window size must be (width, height) of at least 16 pixels, got {size}")
        self.off_screen = bool(off_screen)
        import copy

        theme = copy.deepcopy(pv.global_theme)
        samples = self.config.multi_samples
        if samples is not None or self.off_screen:
            theme.multi_samples = 1 if samples is None else int(samples)
        self.plotter = pv.Plotter(off_screen=self.off_screen, window_size=list(size), theme=theme)
        self.plotter.set_background(self.config.background)
        self.up_given = None if up is None else np.asarray(up, np.float64)
        self.cloud = None  # the Cloud as given
        self.cloud_points = None  # (M, 3) the points shown (decimated when large)
        self.cloud_colors = None  # (M, 3) uint8 or None
        self.cloud_note = ""
        self.mesh = None  # TriangleMesh
        self.gt = None  # TriangleMesh
        self.field = None
        self.level = None
        self.metrics = None  # compare_meshes(mesh, gt) result
        self.cloud_coloring = None
        self.mesh_coloring = None
        self.point_size = self.config.point_size
        self.slices: dict[str, float] = {}  # axis name -> position, input units
        self.visible = {"cloud": True, "mesh": True, "slices": True, "gt": False}
        self.traced = False
        self.picked = None  # the last measures.probe result
        self.clip = None  # vtkPlane cutting mesh, cloud and ground truth, or None
        self.clip_widget = None  # the draggable plane widget of the clip, while it is shown
        self._cache: dict[str, np.ndarray] = {}
        self._slice_scale = None
        self._help_shown = False
        self._shots = 0
        self._bars: dict[str, str | None] = {}
        self._note = ""
        self._interactive = False
        self._camera_set = False

    # ------------------------------------------------------------------ layers
    def add_cloud(self, cloud, *, coloring: str | None = None):
        """Show ``cloud`` (a recon Cloud), drawn under any surface it lies on. ``coloring``:
        "rgb" (its own colours), "plain", "distance" (to the mesh or the field's surface);
        None: its colours if it has them."""
        n = len(cloud.points)
        if n == 0:
            raise InputError("the cloud has no points to show")
        self.cloud = cloud
        self._cache.pop("cloud_tree", None)
        self._pick_cloud_points()
        if coloring is None:
            coloring = "rgb" if self.cloud_colors is not None else "plain"
        return self.set_cloud_coloring(coloring)

    def cloud_limit(self) -> int:
        """Most cloud points drawn now: ``config.max_points``, and ``config.max_points_under_mesh``
        while a mesh is shown (the cloud is drawn under it, so most of it is hidden anyway)."""
        limit = self.config.max_points
        if self.mesh is not None and self.visible["mesh"]:
            limit = min(limit, self.config.max_points_under_mesh)
        return int(limit)

    def _pick_cloud_points(self) -> None:
        """Choose the cloud points drawn: all of them, or a seeded uniform subset of ``cloud_limit()``."""
        cloud, limit = self.cloud, self.cloud_limit()
        n = len(cloud.points)
        if n > limit:
            from recon.seeding import rng

            keep = np.sort(rng(self.config.seed).choice(n, size=limit, replace=False))
            self.cloud_points = cloud.points[keep]
            self.cloud_colors = None if cloud.colors is None else cloud.colors[keep]
            self.cloud_note = f"cloud shown decimated: {limit:,} of {n:,} points"
            if limit < self.config.max_points:
                self.cloud_note += " (under the mesh; m hides the mesh and shows more)"
        else:
            self.cloud_points = cloud.points
            self.cloud_colors = cloud.colors
            self.cloud_note = ""
        for key in ("cloud_distance", "spacing"):
            self._cache.pop(key, None)

    def _sync_cloud(self) -> None:
        """Redraw the cloud when the number of points it may show has changed (a mesh came or went)."""
        if self.cloud is not None and len(self.cloud_points) != min(len(self.cloud.points), self.cloud_limit()):
            self._pick_cloud_points()
            self.set_cloud_coloring(self.cloud_coloring)

    def add_mesh(self, mesh, *, coloring: str | None = None, quick: bool = False):
        """Show ``mesh`` (a TriangleMesh). ``coloring``: "plain", "input" (distance to the
        input points), "gt" (distance to the ground truth), "curvature" (mean curvature from
        the field); None: "gt" when a ground truth is loaded, else "plain". ``quick``: plain,
        no metrics (the iso-level slider's pass while dragging)."""
        if mesh.n_faces == 0:
            raise InputError("the mesh has no faces to show")
        self.mesh = mesh
        for key in ("mesh_input", "mesh_gt", "mesh_curvature", "cloud_distance"):
            self._cache.pop(key, None)
        self.metrics = None
        self._sync_cloud()
        if quick:
            return self._draw_mesh("plain")
        if self.gt is not None:
            self._compute_metrics()
        if coloring is None:
            coloring = "gt" if self.gt is not None else (self.mesh_coloring or "plain")
        return self.set_mesh_coloring(coloring)

    def add_ground_truth(self, gt):
        """Load a ground-truth TriangleMesh: colours the mesh by its distance to it and puts
        the metrics in the overlay. The ground truth itself is a layer hidden until ``g``."""
        if gt.n_faces == 0:
            raise InputError("the ground truth has no faces")
        self.gt = gt
        self._cache.pop("mesh_gt", None)
        actor = self.plotter.add_mesh(poly_from_mesh(gt), color=self.config.gt_color, opacity=0.35,
                                      name="gt", show_scalar_bar=False, reset_camera=False, render=False)
        self._finish(actor, "gt")
        if self.mesh is not None:
            self._compute_metrics()
            self.set_mesh_coloring("gt")
        self._update_overlay()
        return actor

    def add_field(self, field, *, slices=("z",), level: float | None = None, mesh: bool = True):
        """Show ``field``: with ``mesh``, its surface at ``level`` (None: the field's own); slice
        planes (axis names "x" "y" "z") through the object's centre, cut to its bounds, coloured
        by a map suited to the field's kind, with the level set drawn as a line."""
        traits = measures.field_traits(field)
        self.field = field
        self.level = float(traits["level"] if level is None else level)
        self._slice_scale = None
        for key in ("mesh_curvature", "cloud_distance"):
            self._cache.pop(key, None)
        if mesh:
            self.set_level(self.level)
        centre = (self.object_bounds() if self.object_bounds() is not None else traits["bounds"]).mean(axis=0)
        actors = {axis: self.set_slice(axis, float(centre[axis_index(axis)])) for axis in slices}
        self._update_overlay()
        return actors

    # ------------------------------------------------------------------ field slices and level
    def slice_rectangle(self, axis: str) -> np.ndarray:
        """(2, 3) extent of the ``axis`` slice: the object's bounds plus a margin, inside the field's."""
        if self.field is None:
            raise InputError("no field loaded: slices need a field (.npz)")
        return framing.slice_rectangle(self.field.bounds, self.object_bounds(), axis_index(axis),
                                       margin=self.config.slice_margin)

    def set_slice(self, axis: str, position: float):
        """Put the ``axis`` slice plane at ``position`` (input units, clamped to the field's bounds)."""
        if self.field is None:
            raise InputError("no field loaded: slices need a field (.npz)")
        pv = pyvista()
        a = axis_index(axis)
        rect = self.slice_rectangle(axis)
        position = float(np.clip(position, rect[0, a], rect[1, a]))
        others = [i for i in range(3) if i != a]
        ext = rect[1] - rect[0]
        step = max(ext[others[0]], ext[others[1]], 1e-12) / (self.config.slice_samples - 1)
        dims = [1, 1, 1]
        origin = rect[0].copy()
        origin[a] = position
        for i in others:
            dims[i] = max(2, math.floor(ext[i] / step + 1e-9) + 1)
        img = pv.ImageData(dimensions=dims, spacing=[step] * 3, origin=origin)
        values = np.asarray(self.field.value(np.asarray(img.points, np.float64)), np.float32)
        img.point_data["field"] = values
        if self._slice_scale is None:
            self._slice_scale = measures.slice_scale(self.field.kind, self.level, values, self.config)
        sc = self._slice_scale
        actor = self.plotter.add_mesh(img, scalars="field", cmap=sc.cmap, clim=sc.clim, name=f"slice_{axis}",
                                      scalar_bar_args={"title": sc.title, **BAR_FIELD},
                                      reset_camera=False, lighting=False, render=False,
                                      opacity=self.config.slice_opacity if self.mesh is not None else 1.0)
        self._bars["slices"] = sc.title
        self._finish(actor, "slices")
        name = f"slice_{axis}_level"
        if values.min() < self.level < values.max():
            line = img.contour(isosurfaces=[self.level], scalars="field")
            if line.n_points:
                self._finish(self.plotter.add_mesh(line, color="black", line_width=3, name=name, reset_camera=False,
                                                   render=False),
                             "slices")
            else:
                self.plotter.remove_actor(name, render=False)
        else:
            self.plotter.remove_actor(name, render=False)
        self.slices[axis] = position
        return actor

    def set_level(self, level: float, *, coarse: bool = False):
        """Re-extract the field's surface at ``level`` and show it as the mesh. ``coarse``: a
        quick pass at ``config.coarse_resolution``, plain coloured (while a slider moves)."""
        from recon.meshing.marching_cubes import extract_mesh

        if self.field is None:
            raise InputError("no field loaded: the iso-level needs a field (.npz)")
        self.level = float(level)
        shape = measures.field_traits(self.field)["shape"]
        limit = self.config.coarse_resolution if coarse else self.config.live_resolution
        # grid fields are meshed on their own nodes for the fine pass (as fast as resampling)
        resolution = None if shape is not None and (not coarse or max(shape) <= limit) else limit
        target = self.field
        if coarse and shape is not None and max(shape) > limit:  # every k-th node: no resampling
            target, resolution = measures.strided_grid(self.field, math.ceil(max(shape) / limit)), None
        try:
            mesh = extract_mesh(target, level=self.level, resolution=resolution)
        except InputError as exc:
            self.plotter.remove_actor("mesh", render=False)
            self.mesh = None
            self._sync_cloud()
            self._note = str(exc)
            self._update_overlay()
            return None
        self._note = ""
        for axis, pos in list(self.slices.items()):  # the level line moves with the level
            self.set_slice(axis, pos)
        keep = self.mesh_coloring if self.mesh_coloring != "gt" or self.gt else None
        return self.add_mesh(mesh, coloring=keep, quick=coarse)

    # ------------------------------------------------------------------ visibility and clipping
    def set_visible(self, layer: str, visible: bool) -> None:
        """Show or hide a layer: "cloud", "mesh", "slices" or "gt"."""
        if layer not in self.visible:
            raise InputError(f"layer must be one of {', '.join(self.visible)}, got {layer!r}")
        self.visible[layer] = bool(visible)
        if layer == "mesh":
            self._sync_cloud()
        self._apply_visibility()

    def toggle(self, layer: str) -> None:
        self.set_visible(layer, not self.visible.get(layer, False))

    def _apply_visibility(self) -> None:
        for name, actor in self.plotter.actors.items():
            layer = _layer_of(name)
            if layer is not None:
                actor.SetVisibility(self.visible[layer] and not self.traced)
        bars = self.plotter.scalar_bars
        for layer, title in self._bars.items():  # a hidden layer's colour bar goes with it
            if title and title in bars:
                bars[title].SetVisibility(self.visible[layer] and not self.traced)
        self._update_legend()
        self.refresh()

    def set_clip(self, normal=None, origin=None) -> None:
        """Cut mesh, cloud and ground truth by the plane through ``origin`` (3,) with ``normal``
        (3,): what lies on the side ``normal`` points to is cut away; ``normal=None`` removes the cut."""
        import vtk

        if normal is None:
            self.clip = None
        else:
            n = np.asarray(normal, np.float64)
            if n.shape != (3,) or not np.isfinite(n).all() or np.linalg.norm(n) == 0:
                raise InputError(f"clip normal must be a non-zero (3,) vector, got {normal!r}")
            self.clip = vtk.vtkPlane()
            self.clip.SetNormal(*(-n / np.linalg.norm(n)))
            self.clip.SetOrigin(*np.asarray(origin, np.float64))
        for name in ("mesh", "cloud", "gt"):
            if name in self.plotter.actors:
                self._apply_clip(self.plotter.actors[name])
        self.refresh()

    def _apply_clip(self, actor) -> None:
        mapper = actor.GetMapper()
        mapper.RemoveAllClippingPlanes()
        if self.clip is not None:
            mapper.AddClippingPlane(self.clip)

    def _finish(self, actor, layer: str) -> None:
        """What every layer's actor gets: its visibility, the clip plane, and for the cloud its
        point size and the depth offset that draws it under a surface it lies on."""
        actor.SetVisibility(self.visible[layer] and not self.traced)
        if layer in ("mesh", "cloud", "gt"):
            self._apply_clip(actor)
        if layer == "cloud":
            mapper = actor.GetMapper()
            mapper.SetResolveCoincidentTopologyToPolygonOffset()
            mapper.SetRelativeCoincidentTopologyPointOffsetParameter(self.config.cloud_depth_offset)

    def pick(self, position) -> dict:
        """Read the field's value and the distances at ``position`` (3,) and show them in the overlay."""
        self.picked = measures.probe(position, field=self.field, level=self.level,
                                     cloud=self._cloud_tree() if self.cloud is not None else None, gt=self.gt)
        self.plotter.add_points(np.asarray(self.picked["position"]).reshape(1, 3), color="black", point_size=12,
                                render_points_as_spheres=True, name="picked", reset_camera=False, render=False)
        self._update_overlay()
        self.refresh()
        return self.picked

    # ------------------------------------------------------------------ camera
    def object_bounds(self) -> np.ndarray | None:
        """(2, 3) bounds of what is shown of the object (mesh and cloud), None before either."""
        parts = []
        for name, part in (("mesh", self.mesh), ("cloud", self.cloud)):
            if part is None:
                continue
            # each part's bounds once: the whole cloud's, so redrawing a subset of it keeps them
            if self._cache.get(f"bounds_{name}_of") is not part:
                pts = part.vertices if name == "mesh" else part.points
                self._cache[f"bounds_{name}"] = framing.object_bounds([pts], seed=self.config.seed)
                self._cache[f"bounds_{name}_of"] = part
            if self._cache[f"bounds_{name}"] is not None:
                parts.append(self._cache[f"bounds_{name}"])
        if not parts:
            return None
        return np.stack([np.min([b[0] for b in parts], axis=0), np.max([b[1] for b in parts], axis=0)])

    def up(self) -> np.ndarray:
        """(3,) the up axis: as given, else guessed from the cloud (or the mesh's vertices)."""
        if self.up_given is not None:
            return self.up_given
        if "up" not in self._cache:
            pts = self.cloud.points if self.cloud is not None else None if self.mesh is None else self.mesh.vertices
            self._cache["up"] = (framing.guess_up(pts, seed=self.config.seed) if pts is not None
                                 else np.array([0.0, 1.0, 0.0]))
        return self._cache["up"]

    def reset_camera(self) -> None:
        """The first view: the object (mesh and cloud, else the field) from the front, filling the
        image, ``up()`` upward; the cloud's point size from its spacing at that distance."""
        bounds = self.object_bounds()
        if bounds is None:
            bounds = None if self.field is None else np.asarray(self.field.bounds, np.float64)
        if bounds is None:
            return
        cfg = self.config
        w, h = self.plotter.window_size
        pos, focal, up = framing.front_camera(bounds, self.up(), view_angle=cfg.view_angle, azimuth=cfg.view_azimuth,
                                              elevation=cfg.view_elevation, aspect=w / h)
        cam = self.plotter.camera
        cam.view_angle = cfg.view_angle
        self.plotter.camera_position = [tuple(pos), tuple(focal), tuple(up)]
        self.plotter.reset_camera_clipping_range()
        self._camera_set = True
        if cfg.point_size is None and self.cloud is not None:
            if "spacing" not in self._cache:
                self._cache["spacing"] = framing.point_spacing(self.cloud_points, seed=cfg.seed)
            self.point_size = framing.point_size_pixels(
                self._cache["spacing"], float(np.linalg.norm(pos - focal)), view_angle=cfg.view_angle, height=h,
                fraction=cfg.point_size_fraction, limits=cfg.point_size_range)
            if "cloud" in self.plotter.actors:
                self.plotter.actors["cloud"].GetProperty().SetPointSize(self.point_size)
        self._update_overlay()
        self.refresh()

    # ------------------------------------------------------------------ overlay and output
    def overlay_text(self) -> str:
        lines = []
        if self.cloud is not None:
            lines.append(f"cloud: {len(self.cloud.points):,} points ({self.cloud_coloring})")
            if self.cloud_note:
                lines.append(self.cloud_note)
        if self.mesh is not None:
            lines.append(f"mesh: {self.mesh.n_faces:,} faces, {self.mesh.n_vertices:,} vertices ({self.mesh_coloring})")
        if self.field is not None:
            shape = measures.field_traits(self.field)["shape"]
            grid = f" grid {'x'.join(map(str, shape))}" if shape else ""
            lines.append(f"field: {self.field.kind}{grid}, level {self.level:.4g}")
        b = self.object_bounds()
        if b is not None:
            ext = b[1] - b[0]
            lines.append(f"size {ext[0]:.3g} x {ext[1]:.3g} x {ext[2]:.3g} [input units]")
        if self._note:
            lines.append(self._note)
        if self.metrics is not None:
            m = self.metrics
            fs = ", ".join(f"F@{k} {v:.3f}" for k, v in m["fscore"].items())
            lines.append(f"vs ground truth: Chamfer-L1 {m['chamfer_l1']:.4g}, NC {m['normal_consistency']:.3f}, {fs}")
        if self.picked is not None:
            lines.append(measures.probe_text(self.picked))
        if self.traced:
            lines.append("sphere-traced image of the field (press y to go back)")
        lines.append("press h for keys")
        return "\n".join(lines)

    def help_text(self) -> str:
        return "\n".join([f"{k}  {v}" for k, v in KEYS.items()] + [f"{k}: {v}" for k, v in MOUSE.items()])

    def _update_overlay(self) -> None:
        self._update_legend()
        self.plotter.add_text(self.overlay_text(), position="upper_left", font_size=9, color="black", name="overlay",
                              render=False)

    def toggle_help(self) -> None:
        self._help_shown = not self._help_shown
        if self._help_shown:
            self.plotter.add_text(self.help_text(), position="lower_left", font_size=9, color="black", name="help",
                                  render=False)
        else:
            self.plotter.remove_actor("help", render=False)
        self.refresh()

    def image(self) -> np.ndarray:
        """(H, W, 3) uint8: render the scene now (offscreen or on screen) and return it."""
        self.plotter.render()
        return np.asarray(self.plotter.screenshot(None, return_img=True))[..., :3].copy()

    def screenshot(self, path) -> os.PathLike:
        """Render and write a PNG to ``path`` (atomically)."""
        from pathlib import Path

        from PIL import Image

        from recon.io.atomic import atomic_path

        path = Path(path)
        if path.suffix.lower() != ".png":
            raise InputError(f"screenshots are PNG files: {path.name!r} does not end in .png")
        img = self.image()
        with atomic_path(path) as tmp:
            Image.fromarray(img).save(tmp, format="PNG")
        return path

    def show(self) -> None:
        """Open the window with its keys and widgets (blocks until it is closed)."""
        from recon.viewer.controls import enable_controls

        enable_controls(self)
        self.plotter.show(title="recon view")

    def close(self) -> None:
        self.plotter.close()

    def refresh(self) -> None:
        # Redraw after a change only once the user is looking (a window or a key press):
        # while a scene is being built, each redraw of a large cloud would cost a frame.
        if self._interactive:
            self.plotter.render()

    def _set_bar(self, layer: str, title: str | None) -> None:
        """Remember the scalar bar ``layer`` uses now; remove the one it used before."""
        old = self._bars.get(layer)
        if old and old != title and old in self.plotter.scalar_bars:
            self.plotter.remove_scalar_bar(old, render=False)
        self._bars[layer] = title


def _layer_of(actor_name: str) -> str | None:
    if actor_name in ("cloud", "mesh", "gt"):
        return actor_name
    if actor_name.startswith("slice_"):
        return "slices"
    return None
