"""The viewer's scene: layers, colourings, slices, iso-level, overlay and keys on one pyvista Plotter.

Nothing here opens a window: :class:`ViewerScene` builds on a ``pyvista.Plotter`` that is
either on screen (``show``), offscreen (``screenshot``, tests) or served to a browser
(``recon.viewer.web``). Every layer-adding call returns the pyvista actor (a handle), and
``None`` for an option means "keep the default".

Units: every distance shown is in the input's own units ("input units"), as read from the files.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass

import numpy as np

from recon.errors import InputError

CLOUD_COLORINGS = ("rgb", "plain", "distance")
MESH_COLORINGS = ("plain", "input", "gt", "curvature")

KEYS = {
    "h": "show / hide this list of keys",
    "c": "show / hide the input cloud",
    "m": "show / hide the mesh",
    "x": "show / hide the field slices",
    "g": "show / hide the ground truth",
    "k": "cloud colouring: own colours -> plain -> distance to the surface",
    "n": "mesh colouring: plain -> distance to the input -> to the ground truth -> curvature",
    "o": "save a screenshot (recon-view-N.png in the current folder)",
    "r": "reset the camera",
    "y": "switch to / from the sphere-traced image of the field for this camera",
}


@dataclass(frozen=True)
class ViewerConfig:
    """Sizes and styles of the viewer, in one place."""

    max_points: int = 2_000_000
    """Clouds with more points are shown decimated (a seeded uniform subset), with a note."""
    seed: int = 0
    """Seed of the decimation draw."""
    point_size: float = 3.0
    """Screen size of cloud points, pixels."""
    window_size: tuple[int, int] = (1024, 768)
    """Window or image size, pixels."""
    slice_samples: int = 200
    """Field samples along the longer side of a slice plane."""
    live_resolution: int = 128
    """Grid nodes along the longest side when the iso-level slider re-extracts the surface
    (a grid field no larger than this is meshed on its own grid)."""
    field_cmap: str = "RdBu_r"
    """Diverging colour map of the field slices, centred on the level."""
    distance_cmap: str = "viridis"
    """Colour map of distances."""
    curvature_cmap: str = "coolwarm"
    """Colour map of mean curvature (diverging, centred on 0)."""
    mesh_color: str = "lightsteelblue"
    cloud_color: str = "darkorange"
    gt_color: str = "gray"
    background: str = "white"
    metric_samples: int = 50_000
    """Surface samples for the metrics shown when a ground truth is given."""


def display_available() -> bool:
    """Whether a window can open: on Linux and BSDs that needs DISPLAY or WAYLAND_DISPLAY."""
    if sys.platform.startswith(("win", "darwin")):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _pyvista():
    if not display_available() and "VTK_DEFAULT_OPENGL_WINDOW" not in os.environ:
        # No X server: go straight to EGL when the system has it, instead of letting VTK
        # try X first and print a warning. Without EGL, VTK's own fallback (OSMesa) decides.
        import ctypes.util

        if ctypes.util.find_library("EGL"):
            os.environ["VTK_DEFAULT_OPENGL_WINDOW"] = "vtkEGLRenderWindow"
    try:
        import pyvista as pv
    except ImportError as exc:  # pragma: no cover - pyvista is a dependency
        raise InputError(f"the viewer needs pyvista and vtk ({exc}); install them with pip") from None
    return pv


def _poly_from_mesh(mesh):
    pv = _pyvista()
    poly = pv.PolyData.from_regular_faces(np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64))
    if mesh.vertex_normals is not None:
        poly.point_data["Normals"] = np.asarray(mesh.vertex_normals, np.float32)
        poly.point_data.active_normals_name = "Normals"
    return poly


class ViewerScene:
    """One scene: an input cloud, a mesh, a ground truth and a field, each optional.

    off_screen  : render without a window (screenshots, tests, servers)
    window_size : (width, height) pixels; None: ``config.window_size``
    config      : a :class:`ViewerConfig`; None: the defaults
    """

    def __init__(self, *, off_screen: bool = False, window_size=None, config: ViewerConfig | None = None):
        pv = _pyvista()
        self.config = config or ViewerConfig()
        size = tuple(window_size or self.config.window_size)
        if len(size) != 2 or min(size) < 16:
            raise InputError(f"window size must be (width, height) of at least 16 pixels, got {size}")
        self.off_screen = bool(off_screen)
        self.plotter = pv.Plotter(off_screen=self.off_screen, window_size=list(size))
        self.plotter.set_background(self.config.background)
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
        self.slices: dict[str, float] = {}  # axis name -> position, input units
        self.visible = {"cloud": True, "mesh": True, "slices": True, "gt": False}
        self.traced = False
        self._cache: dict[str, np.ndarray] = {}
        self._slice_clim = None
        self._help_shown = False
        self._shots = 0
        self._bars: dict[str, str | None] = {}
        self._note = ""
        self._interactive = False

    # ------------------------------------------------------------------ layers
    def add_cloud(self, cloud, *, coloring: str | None = None):
        """Show ``cloud`` (a recon Cloud). ``coloring``: "rgb" (its own colours), "plain",
        "distance" (to the mesh or the field's surface); None: its colours if it has them."""
        n = len(cloud.points)
        if n == 0:
            raise InputError("the cloud has no points to show")
        self.cloud = cloud
        limit = self.config.max_points
        if n > limit:
            from recon.seeding import rng

            keep = np.sort(rng(self.config.seed).choice(n, size=limit, replace=False))
            self.cloud_points = cloud.points[keep]
            self.cloud_colors = None if cloud.colors is None else cloud.colors[keep]
            self.cloud_note = f"cloud shown decimated: {limit:,} of {n:,} points"
        else:
            self.cloud_points = cloud.points
            self.cloud_colors = cloud.colors
            self.cloud_note = ""
        self._cache.pop("cloud_distance", None)
        if coloring is None:
            coloring = "rgb" if self.cloud_colors is not None else "plain"
        return self.set_cloud_coloring(coloring)

    def add_mesh(self, mesh, *, coloring: str | None = None):
        """Show ``mesh`` (a TriangleMesh). ``coloring``: "plain", "input" (distance to the
        input points), "gt" (distance to the ground truth), "curvature" (mean curvature from
        the field); None: "gt" when a ground truth is loaded, else "plain"."""
        if mesh.n_faces == 0:
            raise InputError("the mesh has no faces to show")
        self.mesh = mesh
        for key in ("mesh_input", "mesh_gt", "mesh_curvature", "cloud_distance"):
            self._cache.pop(key, None)
        self.metrics = None
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
        actor = self.plotter.add_mesh(_poly_from_mesh(gt), color=self.config.gt_color, opacity=0.35,
                                      name="gt", show_scalar_bar=False, reset_camera=False)
        actor.SetVisibility(self.visible["gt"])
        if self.mesh is not None:
            self._compute_metrics()
            self.set_mesh_coloring("gt")
        self._update_overlay()
        return actor

    def add_field(self, field, *, slices=("z",), level: float | None = None, mesh: bool = True):
        """Show ``field``: slice planes (axis names "x" "y" "z", at the centre of its bounds)
        coloured by a diverging map centred on the level with the level set drawn as a line,
        and, with ``mesh``, its surface at ``level`` (None: the field's own level)."""
        self.field = field
        self.level = float(field.level if level is None else level)
        for key in ("mesh_curvature", "cloud_distance"):
            self._cache.pop(key, None)
        bounds = np.asarray(field.bounds, np.float64)
        center = bounds.mean(axis=0)
        actors = {}
        for axis in slices:
            a = _axis_index(axis)
            actors[axis] = self.set_slice(axis, float(center[a]))
        if mesh:
            self.set_level(self.level)
        self._update_overlay()
        return actors

    # ------------------------------------------------------------------ field slices and level
    def set_slice(self, axis: str, position: float):
        """Put the ``axis`` slice plane at ``position`` (input units, clamped to the bounds)."""
        if self.field is None:
            raise InputError("no field loaded: slices need a field (.npz)")
        pv = _pyvista()
        a = _axis_index(axis)
        bounds = np.asarray(self.field.bounds, np.float64)
        position = float(np.clip(position, bounds[0, a], bounds[1, a]))
        others = [i for i in range(3) if i != a]
        ext = bounds[1] - bounds[0]
        step = max(ext[others[0]], ext[others[1]]) / (self.config.slice_samples - 1)
        dims = [1, 1, 1]
        spacing = [step, step, step]
        origin = bounds[0].copy()
        origin[a] = position
        for i in others:
            dims[i] = max(2, int(math.floor(ext[i] / step + 1e-9)) + 1)
        img = pv.ImageData(dimensions=dims, spacing=spacing, origin=origin)
        values = np.asarray(self.field.value(np.asarray(img.points, np.float64)), np.float32)
        img.point_data["field"] = values
        if self._slice_clim is None:
            spread = float(np.percentile(np.abs(values - self.level), 95)) or 1.0
            self._slice_clim = (self.level - spread, self.level + spread)
        title = "field [input units]" if self.field.kind != "occupancy" else "occupancy"
        actor = self.plotter.add_mesh(
            img, scalars="field", cmap=self.config.field_cmap, clim=self._slice_clim, name=f"slice_{axis}",
            scalar_bar_args={"title": title, **_BAR_FIELD},
            reset_camera=False, lighting=False,
        )
        self._bars["slices"] = title
        actor.SetVisibility(self.visible["slices"] and not self.traced)
        name = f"slice_{axis}_level"
        crossing = (values.min() < self.level) and (values.max() > self.level)
        if crossing:
            line = img.contour(isosurfaces=[self.level], scalars="field")
            if line.n_points:
                la = self.plotter.add_mesh(line, color="black", line_width=3, name=name, reset_camera=False)
                la.SetVisibility(self.visible["slices"] and not self.traced)
            else:
                self.plotter.remove_actor(name)
        else:
            self.plotter.remove_actor(name)
        self.slices[axis] = position
        return actor

    def set_level(self, level: float):
        """Re-extract the field's surface at ``level`` and show it as the mesh."""
        from recon.meshing.marching_cubes import extract_mesh

        if self.field is None:
            raise InputError("no field loaded: the iso-level needs a field (.npz)")
        self.level = float(level)
        shape = getattr(self.field, "shape", None)
        live = self.config.live_resolution
        resolution = None if (shape is not None and max(shape) <= live) else live
        try:
            mesh = extract_mesh(self.field, level=self.level, resolution=resolution)
        except InputError as exc:
            self.plotter.remove_actor("mesh")
            self.mesh = None
            self._note = str(exc)
            self._update_overlay()
            return None
        self._note = ""
        return self.add_mesh(mesh, coloring=self.mesh_coloring if self.mesh_coloring != "gt" or self.gt else None)

    # ------------------------------------------------------------------ colourings
    def cloud_colorings(self) -> tuple[str, ...]:
        out = []
        if self.cloud_colors is not None:
            out.append("rgb")
        out.append("plain")
        if self.mesh is not None or (self.field is not None and self.field.kind != "occupancy"):
            out.append("distance")
        return tuple(out)

    def mesh_colorings(self) -> tuple[str, ...]:
        out = ["plain"]
        if self.cloud is not None:
            out.append("input")
        if self.gt is not None:
            out.append("gt")
        if self.field is not None and self.field.kind != "occupancy":
            out.append("curvature")
        return tuple(out)

    def set_cloud_coloring(self, coloring: str):
        if self.cloud is None:
            raise InputError("no cloud loaded")
        if coloring not in CLOUD_COLORINGS:
            raise InputError(f"cloud colouring must be one of {', '.join(CLOUD_COLORINGS)}, got {coloring!r}")
        if coloring not in self.cloud_colorings():
            why = {"rgb": "the cloud has no colours", "distance": "there is no mesh or distance field"}[coloring]
            raise InputError(f"cannot colour the cloud by {coloring!r}: {why}")
        pv = _pyvista()
        cfg = self.config
        poly = pv.PolyData(np.asarray(self.cloud_points, np.float64))
        kw = dict(point_size=cfg.point_size, render_points_as_spheres=False, name="cloud", reset_camera=False)
        if coloring == "rgb":
            poly.point_data["rgb"] = self.cloud_colors
            actor = self.plotter.add_points(poly, scalars="rgb", rgb=True, **kw)
        elif coloring == "plain":
            actor = self.plotter.add_points(poly, color=cfg.cloud_color, **kw)
        else:
            d = self._cloud_distance()
            poly.point_data["distance to surface"] = d
            actor = self.plotter.add_points(
                poly, scalars="distance to surface", cmap=cfg.distance_cmap, clim=_robust_range(d), **kw,
                scalar_bar_args={"title": "cloud: distance to surface [input units]", **_BAR_CLOUD},
            )
        self._set_bar("cloud", "cloud: distance to surface [input units]" if coloring == "distance" else None)
        actor.SetVisibility(self.visible["cloud"] and not self.traced)
        self.cloud_coloring = coloring
        self._reset_if_first()
        self._update_overlay()
        return actor

    def set_mesh_coloring(self, coloring: str):
        if self.mesh is None:
            raise InputError("no mesh loaded")
        if coloring not in MESH_COLORINGS:
            raise InputError(f"mesh colouring must be one of {', '.join(MESH_COLORINGS)}, got {coloring!r}")
        if coloring not in self.mesh_colorings():
            why = {"input": "no input cloud is loaded", "gt": "no ground truth is loaded (--gt)",
                   "curvature": "curvature comes from a distance field (.npz)"}[coloring]
            raise InputError(f"cannot colour the mesh by {coloring!r}: {why}")
        cfg = self.config
        poly = _poly_from_mesh(self.mesh)
        kw = dict(name="mesh", reset_camera=False, smooth_shading=self.mesh.vertex_normals is not None)
        bar = _BAR_MESH
        title = None
        if coloring == "plain":
            actor = self.plotter.add_mesh(poly, color=cfg.mesh_color, show_scalar_bar=False, **kw)
        elif coloring == "curvature":
            k = self._mesh_curvature()
            poly.point_data["mean curvature"] = k
            lim = _robust_range(np.abs(k))[1] or 1.0
            actor = self.plotter.add_mesh(poly, scalars="mean curvature", cmap=cfg.curvature_cmap, clim=(-lim, lim),
                                          scalar_bar_args={"title": "mean curvature [1 / input units]", **bar}, **kw)
        else:
            d = self._mesh_input_distance() if coloring == "input" else self._mesh_gt_distance()
            title = ("mesh: distance to input points" if coloring == "input" else "mesh: distance to ground truth")
            poly.point_data[title] = d
            actor = self.plotter.add_mesh(poly, scalars=title, cmap=cfg.distance_cmap, clim=_robust_range(d),
                                          scalar_bar_args={"title": title + " [input units]", **bar}, **kw)
        self._set_bar("mesh", None if coloring == "plain" else title + " [input units]"
                      if coloring != "curvature" else "mean curvature [1 / input units]")
        actor.SetVisibility(self.visible["mesh"] and not self.traced)
        self.mesh_coloring = coloring
        self._reset_if_first()
        self._update_overlay()
        return actor

    def cycle_cloud_coloring(self):
        if self.cloud is not None:
            options = self.cloud_colorings()
            i = options.index(self.cloud_coloring) if self.cloud_coloring in options else -1
            self.set_cloud_coloring(options[(i + 1) % len(options)])

    def cycle_mesh_coloring(self):
        if self.mesh is not None:
            options = self.mesh_colorings()
            i = options.index(self.mesh_coloring) if self.mesh_coloring in options else -1
            self.set_mesh_coloring(options[(i + 1) % len(options)])

    # ------------------------------------------------------------------ visibility
    def set_visible(self, layer: str, visible: bool) -> None:
        """Show or hide a layer: "cloud", "mesh", "slices" or "gt"."""
        if layer not in self.visible:
            raise InputError(f"layer must be one of {', '.join(self.visible)}, got {layer!r}")
        self.visible[layer] = bool(visible)
        self._apply_visibility()

    def toggle(self, layer: str) -> None:
        self.set_visible(layer, not self.visible.get(layer, False))

    def _apply_visibility(self) -> None:
        actors = self.plotter.actors
        for name, actor in actors.items():
            layer = _layer_of(name)
            if layer is not None:
                actor.SetVisibility(self.visible[layer] and not self.traced)
        bars = self.plotter.scalar_bars
        for layer, title in self._bars.items():  # a hidden layer's colour bar goes with it
            if title and title in bars.keys():
                bars[title].SetVisibility(self.visible[layer] and not self.traced)
        self._refresh()

    # ------------------------------------------------------------------ derived quantities
    def _cloud_distance(self) -> np.ndarray:
        if "cloud_distance" not in self._cache:
            pts = np.asarray(self.cloud_points, np.float64)
            if self.field is not None and self.field.kind != "occupancy":
                d = np.abs(_chunked(self.field.value, pts) - self.level)
            else:
                from recon.metrics import _SurfaceIndex

                d, _ = _SurfaceIndex(self.mesh, pts.mean(axis=0)).query(pts)
            self._cache["cloud_distance"] = np.asarray(d, np.float32)
        return self._cache["cloud_distance"]

    def _mesh_input_distance(self) -> np.ndarray:
        if "mesh_input" not in self._cache:
            from scipy.spatial import cKDTree

            pts = np.asarray(self.cloud.points, np.float64)
            d, _ = cKDTree(pts).query(self.mesh.vertices, k=1, workers=-1)
            self._cache["mesh_input"] = d.astype(np.float32)
        return self._cache["mesh_input"]

    def _mesh_gt_distance(self) -> np.ndarray:
        if "mesh_gt" not in self._cache:
            from recon.metrics import _SurfaceIndex

            v = self.mesh.vertices
            d, _ = _SurfaceIndex(self.gt, v.mean(axis=0)).query(v)
            self._cache["mesh_gt"] = d.astype(np.float32)
        return self._cache["mesh_gt"]

    def _mesh_curvature(self) -> np.ndarray:
        """Mean curvature at the vertices: half the divergence of the field's unit gradient,
        by central differences one voxel (or 1/256 of the bounds) wide."""
        if "mesh_curvature" not in self._cache:
            f = self.field
            bounds = np.asarray(f.bounds, np.float64)
            eps = float(getattr(f, "voxel_size", 0.0)) or float(np.linalg.norm(bounds[1] - bounds[0])) / 256
            v = self.mesh.vertices
            div = np.zeros(len(v))
            for a in range(3):
                step = np.zeros(3)
                step[a] = eps
                gp = _unit(_chunked(f.gradient, v + step))
                gm = _unit(_chunked(f.gradient, v - step))
                div += (gp[:, a] - gm[:, a]) / (2 * eps)
            self._cache["mesh_curvature"] = (0.5 * div).astype(np.float32)
        return self._cache["mesh_curvature"]

    def _compute_metrics(self) -> None:
        from recon.metrics import compare_meshes

        self.metrics = compare_meshes(self.mesh, self.gt, n_samples=self.config.metric_samples,
                                      seed=self.config.seed)

    # ------------------------------------------------------------------ overlay, keys, output
    def overlay_text(self) -> str:
        lines = []
        if self.cloud is not None:
            lines.append(f"cloud: {len(self.cloud.points):,} points ({self.cloud_coloring})")
            if self.cloud_note:
                lines.append(self.cloud_note)
        if self.mesh is not None:
            lines.append(f"mesh: {self.mesh.n_faces:,} faces, {self.mesh.n_vertices:,} vertices ({self.mesh_coloring})")
        if self.field is not None:
            shape = getattr(self.field, "shape", None)
            grid = f" grid {'x'.join(map(str, shape))}" if shape else ""
            lines.append(f"field: {self.field.kind}{grid}, level {self.level:.4g}")
        if getattr(self, "_note", ""):
            lines.append(self._note)
        if self.metrics is not None:
            m = self.metrics
            fs = ", ".join(f"F@{k} {v:.3f}" for k, v in m["fscore"].items())
            lines.append(f"vs ground truth: Chamfer-L1 {m['chamfer_l1']:.4g}, NC {m['normal_consistency']:.3f}, {fs}")
        if self.traced:
            lines.append("sphere-traced image of the field (press y to go back)")
        lines.append("press h for keys")
        return "\n".join(lines)

    def help_text(self) -> str:
        return "\n".join(f"{k}  {v}" for k, v in KEYS.items())

    def _update_overlay(self) -> None:
        self.plotter.add_text(self.overlay_text(), position="upper_left", font_size=9, color="black", name="overlay")

    def toggle_help(self) -> None:
        self._help_shown = not self._help_shown
        if self._help_shown:
            self.plotter.add_text(self.help_text(), position="lower_left", font_size=9, color="black", name="help")
        else:
            self.plotter.remove_actor("help")
        self._refresh()

    def enable_controls(self) -> None:
        """Keys (see KEYS), a plane widget per slice and the iso-level slider (interactive use)."""
        p = self.plotter
        self._interactive = True
        p.add_key_event("h", self.toggle_help)
        p.add_key_event("c", lambda: self.toggle("cloud"))
        p.add_key_event("m", lambda: self.toggle("mesh"))
        p.add_key_event("x", lambda: self.toggle("slices"))
        p.add_key_event("g", lambda: self.toggle("gt"))
        p.add_key_event("k", self._guard(self.cycle_cloud_coloring))
        p.add_key_event("n", self._guard(self.cycle_mesh_coloring))
        p.add_key_event("o", self._guard(self._key_screenshot))
        p.add_key_event("r", self.reset_camera)
        p.add_key_event("y", self._guard(self.toggle_traced))
        if self.field is None:
            return
        bounds = np.asarray(self.field.bounds, np.float64)
        for axis, pos in self.slices.items():
            a = _axis_index(axis)
            origin = bounds.mean(axis=0)
            origin[a] = pos
            p.add_plane_widget(
                lambda normal, origin, axis=axis, a=a: self.set_slice(axis, float(origin[a])),
                normal=axis, origin=origin, bounds=bounds.T.ravel(), normal_rotation=False,
                assign_to_axis=axis, implicit=False, outline_translation=False, color="black",
            )
        lo, hi = self._level_range()
        p.add_slider_widget(
            lambda value: self.set_level(value), rng=(lo, hi), value=self.level, title="iso-level",
            pointa=(0.55, 0.93), pointb=(0.95, 0.93), style="modern", interaction_event="end",
            color="black",
        )

    def _guard(self, fn):
        def run():
            try:
                fn()
            except InputError as exc:  # e.g. a colouring with nothing to show: say so, keep going
                self._note = str(exc)
                self._update_overlay()
                self._refresh()
        return run

    def _level_range(self) -> tuple[float, float]:
        if self.field.kind == "occupancy":
            return 0.02, 0.98
        bounds = np.asarray(self.field.bounds, np.float64)
        span = 0.1 * float(np.linalg.norm(bounds[1] - bounds[0]))
        if self.field.kind == "unsigned":  # offset surfaces only: level > 0
            return span * 1e-3, span
        return self.level - span, self.level + span

    def reset_camera(self) -> None:
        self.plotter.view_isometric()
        self.plotter.reset_camera()
        self._refresh()

    def _reset_if_first(self) -> None:
        if not getattr(self, "_camera_set", False):
            self.plotter.view_isometric()
            self.plotter.reset_camera()
            self._camera_set = True

    def _key_screenshot(self) -> None:
        from pathlib import Path

        while True:
            self._shots += 1
            path = Path.cwd() / f"recon-view-{self._shots}.png"
            if not path.exists():
                break
        self.screenshot(path)
        self._note = f"saved {path}"
        self._update_overlay()
        self._refresh()

    def toggle_traced(self) -> None:
        """Switch between the scene and the sphere-traced image of the field at this camera."""
        if self.traced:
            self.plotter.remove_background_image()
            self.traced = False
        else:
            if self.field is None:
                raise InputError("the sphere-traced image needs a field (.npz)")
            image = self.traced_image()
            import tempfile

            from PIL import Image

            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "traced.png")
                Image.fromarray(image).save(path)
                self.plotter.add_background_image(path, as_global=False)
            self.traced = True
        self._apply_visibility()
        self._update_overlay()
        self._refresh()

    def traced_image(self) -> np.ndarray:
        """(H, W, 3) uint8: the field's surface sphere-traced for the current camera, head-lit."""
        from recon.render.camera import Camera
        from recon.render.trace import sphere_trace

        cam = self.plotter.camera
        width, height = self.plotter.window_size
        camera = Camera(eye=cam.position, target=cam.focal_point, up=cam.up, fov=cam.view_angle,
                        width=width, height=height)
        result = sphere_trace(self.field, camera)
        _, d = camera.rays()
        shade = np.abs(np.einsum("hwc,hwc->hw", result.normal, d))
        base = np.array([176, 196, 222], np.float64)  # lightsteelblue, like the mesh
        img = np.where(result.hit[..., None], (0.15 + 0.85 * shade[..., None]) * base, 255.0)
        return np.clip(img, 0, 255).astype(np.uint8)

    def image(self) -> np.ndarray:
        """(H, W, 3) uint8: render the scene now (offscreen or on screen) and return it."""
        self.plotter.render()
        return np.asarray(self.plotter.screenshot(None, return_img=True))[..., :3].copy()

    def screenshot(self, path) -> "os.PathLike":
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
        """Open the window (blocks until it is closed)."""
        self.enable_controls()
        self.plotter.show(title="recon view")

    def close(self) -> None:
        self.plotter.close()

    def _refresh(self) -> None:
        # Redraw after a change only once the user is looking (a window or a key press):
        # while a scene is being built, each redraw of a large cloud would cost a frame.
        if self._interactive:
            self.plotter.render()

    def _set_bar(self, layer: str, title: str | None) -> None:
        """Remember the scalar bar ``layer`` uses now; remove the one it used before."""
        old = self._bars.get(layer)
        if old and old != title and old in self.plotter.scalar_bars:
            self.plotter.remove_scalar_bar(old)
        self._bars[layer] = title


# ---------------------------------------------------------------------- helpers

# Where each scalar bar sits (fractions of the window), clear of the overlay text
# (upper left) and the key list (lower left).
_BAR_STYLE = {"title_font_size": 14, "label_font_size": 12, "n_labels": 3, "color": "black", "fmt": "%.3g"}
_BAR_MESH = {"position_x": 0.55, "position_y": 0.88, "width": 0.42, "height": 0.08, **_BAR_STYLE}
_BAR_CLOUD = {"position_x": 0.55, "position_y": 0.02, "width": 0.42, "height": 0.08, **_BAR_STYLE}
_BAR_FIELD = {"vertical": True, "position_x": 0.9, "position_y": 0.2, "width": 0.06, "height": 0.55, **_BAR_STYLE}



def _axis_index(axis: str) -> int:
    try:
        return "xyz".index(axis)
    except ValueError:
        raise InputError(f"slice axis must be 'x', 'y' or 'z', got {axis!r}") from None


def _layer_of(actor_name: str) -> str | None:
    if actor_name == "cloud":
        return "cloud"
    if actor_name == "mesh":
        return "mesh"
    if actor_name == "gt":
        return "gt"
    if actor_name.startswith("slice_"):
        return "slices"
    return None


def _robust_range(d: np.ndarray) -> tuple[float, float]:
    """(0, 99th percentile): a colour range that one far outlier cannot wash out."""
    d = np.asarray(d, np.float64)
    d = d[np.isfinite(d)]
    hi = float(np.percentile(d, 99)) if len(d) else 1.0
    return 0.0, hi if hi > 0 else 1.0


def _unit(g: np.ndarray) -> np.ndarray:
    g = np.asarray(g, np.float64)
    n = np.linalg.norm(g, axis=1, keepdims=True)
    n[n < 1e-12] = 1.0
    return g / n


def _chunked(fn, x: np.ndarray, step: int = 1 << 18) -> np.ndarray:
    parts = [np.asarray(fn(x[i: i + step])) for i in range(0, len(x), step)]
    return np.concatenate(parts) if parts else np.zeros((0,), np.float32)
