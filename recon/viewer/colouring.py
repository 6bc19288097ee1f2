"""Colourings of the viewer's cloud and mesh, the quantities behind them (distances, curvature,
metrics) and the legend of the layers drawn, as a part of :class:`recon.viewer.scene.ViewerScene`."""

from __future__ import annotations

import numpy as np

from recon.errors import InputError
from recon.viewer import measures
from recon.viewer.config import (
    CLOUD_COLORINGS,
    MESH_COLORINGS,
    poly_from_mesh,
    pyvista,
    robust_range,
)

# Where each scalar bar sits (fractions of the window), clear of the overlay text
# (upper left) and the key list (lower left).
BAR_STYLE = {"title_font_size": 14, "label_font_size": 12, "n_labels": 3, "color": "black", "fmt": "%.3g"}
BAR_MESH = {"position_x": 0.5, "position_y": 0.88, "width": 0.42, "height": 0.08, **BAR_STYLE}
BAR_CLOUD = {"position_x": 0.25, "position_y": 0.02, "width": 0.42, "height": 0.08, **BAR_STYLE}
BAR_FIELD = {"vertical": True, "position_x": 0.84, "position_y": 0.24, "width": 0.06, "height": 0.52, **BAR_STYLE}
# The legend of the layers drawn: the lower right corner, under the field's bar.
# Legend rows in pixels (VTK sizes the text to fill its box): a row per layer, a width per
# character of the longest label, at most these fractions of the window.
LEGEND_ROW_PX, LEGEND_CHAR_PX, LEGEND_SWATCH_PX = 18, 7.5, 24
LEGEND_MAX_WIDTH, LEGEND_MAX_HEIGHT, LEGEND_MARGIN = 0.4, 0.2, 0.01
LEGEND_SHADE = 0.7  # VTK writes each entry's text in its swatch's colour: darkened, light colours stay legible
MESH_LEGEND = {"plain": "mesh", "input": "mesh: error vs the input points, top bar [input units]",
               "gt": "mesh: error vs the ground truth, top bar [input units]",
               "curvature": "mesh: mean curvature, top bar [1 / input units]"}
CLOUD_LEGEND = {"rgb": "cloud: its own colours", "plain": "cloud",
                "distance": "cloud: distance to the surface, bottom bar [input units]"}


class Colorings:
    """The colouring half of ViewerScene: needs its plotter, config, cloud, mesh, gt, field,
    level, _cache, _finish, _set_bar and _update_overlay."""

    # ------------------------------------------------------------------ colourings
    def cloud_colorings(self) -> tuple[str, ...]:
        out = ["rgb"] if self.cloud_colors is not None else []
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
        pv = pyvista()
        cfg = self.config
        poly = pv.PolyData(np.asarray(self.cloud_points, np.float64))
        kw = {"point_size": self.point_size or cfg.point_size_range[1], "render_points_as_spheres": False,
              "name": "cloud", "reset_camera": False, "render": False}
        title = "cloud: distance to surface [input units]"
        if coloring == "rgb":
            poly.point_data["rgb"] = self.cloud_colors
            actor = self.plotter.add_points(poly, scalars="rgb", rgb=True, **kw)
        elif coloring == "plain":
            actor = self.plotter.add_points(poly, color=cfg.cloud_color, **kw)
        else:
            d = self._cloud_distance()
            poly.point_data[title] = d
            actor = self.plotter.add_points(poly, scalars=title, cmap=cfg.distance_cmap, clim=robust_range(d),
                                            scalar_bar_args={"title": title, **BAR_CLOUD}, **kw)
        self._set_bar("cloud", title if coloring == "distance" else None)
        self._finish(actor, "cloud")
        self.cloud_coloring = coloring
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
        actor = self._draw_mesh(coloring)
        self.mesh_coloring = coloring
        self._update_overlay()
        return actor

    def _draw_mesh(self, coloring: str):
        cfg = self.config
        poly = poly_from_mesh(self.mesh)
        kw = {"name": "mesh", "reset_camera": False, "render": False,
              "smooth_shading": self.mesh.vertex_normals is not None}
        title = None
        if coloring == "plain":
            actor = self.plotter.add_mesh(poly, color=cfg.mesh_color, show_scalar_bar=False, **kw)
        elif coloring == "curvature":
            k = self._mesh_curvature()
            title = "mean curvature [1 / input units]"
            poly.point_data[title] = k
            lim = robust_range(np.abs(k))[1] or 1.0
            actor = self.plotter.add_mesh(poly, scalars=title, cmap=cfg.curvature_cmap, clim=(-lim, lim),
                                          scalar_bar_args={"title": title, **BAR_MESH}, **kw)
        else:
            d = self._mesh_input_distance() if coloring == "input" else self._mesh_gt_distance()
            title = ("mesh: distance to input points" if coloring == "input"
                     else "mesh: distance to ground truth") + " [input units]"
            poly.point_data[title] = d
            actor = self.plotter.add_mesh(poly, scalars=title, cmap=cfg.distance_cmap, clim=robust_range(d),
                                          scalar_bar_args={"title": title, **BAR_MESH}, **kw)
        self._set_bar("mesh", title)
        self._finish(actor, "mesh")
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

    def toggle_error_colors(self):
        """Mesh colouring: plain <-> its error (distance to the ground truth, else to the input)."""
        if self.mesh is None:
            raise InputError("no mesh loaded")
        error = "gt" if self.gt is not None else "input" if self.cloud is not None else None
        if error is None:
            raise InputError("error colours need a ground truth (--gt) or the input cloud (--cloud)")
        self.set_mesh_coloring("plain" if self.mesh_coloring == error else error)

    # ------------------------------------------------------------------ legend
    def legend_entries(self) -> list[tuple[str, tuple[float, float, float]]]:
        """(label, RGB colour in 0..1) of each layer drawn now, naming its colouring and the
        units of its colour bar; the swatch is the layer's colour (or a colour of its map), darkened."""
        from matplotlib import colormaps
        from matplotlib.colors import to_rgb

        cfg = self.config
        out = []
        if self.traced:
            return out
        if self.mesh is not None and self.visible["mesh"] and "mesh" in self.plotter.actors:
            coloring = self.mesh_coloring or "plain"
            cmap = cfg.curvature_cmap if coloring == "curvature" else cfg.distance_cmap
            colour = to_rgb(cfg.mesh_color) if coloring == "plain" else colormaps[cmap](0.4)[:3]
            out.append((MESH_LEGEND[coloring], colour))
        if self.cloud is not None and self.visible["cloud"]:
            colour = {"rgb": lambda: tuple(np.asarray(self.cloud_colors, np.float64).mean(axis=0) / 255),
                      "plain": lambda: to_rgb(cfg.cloud_color),
                      "distance": lambda: colormaps[cfg.distance_cmap](0.5)[:3]}[self.cloud_coloring]()
            out.append((CLOUD_LEGEND[self.cloud_coloring], colour))
        if self.slices and self.visible["slices"] and self._slice_scale is not None:
            sc = self._slice_scale
            what, _, units = sc.title.partition(" [")
            out.append((f"slices: {what}, right bar [{units}", colormaps[sc.cmap](0.9)[:3]))
        if self.gt is not None and self.visible["gt"]:
            out.append(("ground truth", to_rgb(cfg.gt_color)))
        return [(label, tuple(LEGEND_SHADE * float(c) for c in colour)) for label, colour in out]

    def legend_box(self, entries=None) -> tuple[float, float, float, float] | None:
        """(x, y, width, height) of the legend as fractions of the window (y from the bottom),
        sized to its text; None when nothing is drawn."""
        entries = self.legend_entries() if entries is None else entries
        if not entries:
            return None
        w, h = self.plotter.window_size
        longest = max(len(label) for label, _ in entries)
        width = min((LEGEND_SWATCH_PX + LEGEND_CHAR_PX * longest) / w, LEGEND_MAX_WIDTH)
        height = min(LEGEND_ROW_PX * len(entries) / h, LEGEND_MAX_HEIGHT)
        return 1 - width - LEGEND_MARGIN, LEGEND_MARGIN, width, height

    def _update_legend(self) -> None:
        entries = self.legend_entries()
        if self.plotter.legend is not None:
            self.plotter.remove_legend(render=False)
        if not entries:
            return
        x, y, width, height = self.legend_box(entries)
        legend = self.plotter.add_legend([[label, colour] for label, colour in entries], bcolor="white",
                                         border=True, size=(width, height), loc="lower right",
                                         face="rectangle", background_opacity=0.8)
        legend.SetPosition(x, y)

    # ------------------------------------------------------------------ derived quantities
    def _cloud_distance(self) -> np.ndarray:
        if "cloud_distance" not in self._cache:
            if self.field is not None and self.field.kind != "occupancy":
                d = measures.distance_to_surface(self.field, self.level, self.cloud_points)
            else:
                d = measures.distance_to_mesh(self.mesh, self.cloud_points)
            self._cache["cloud_distance"] = d
        return self._cache["cloud_distance"]

    def _cloud_tree(self):
        if "cloud_tree" not in self._cache:
            from scipy.spatial import cKDTree

            self._cache["cloud_tree"] = cKDTree(np.asarray(self.cloud.points, np.float64))
        return self._cache["cloud_tree"]

    def _mesh_input_distance(self) -> np.ndarray:
        if "mesh_input" not in self._cache:
            self._cache["mesh_input"] = measures.distance_to_points(self._cloud_tree(), self.mesh.vertices)
        return self._cache["mesh_input"]

    def _mesh_gt_distance(self) -> np.ndarray:
        if "mesh_gt" not in self._cache:
            self._cache["mesh_gt"] = measures.distance_to_mesh(self.gt, self.mesh.vertices)
        return self._cache["mesh_gt"]

    def _mesh_curvature(self) -> np.ndarray:
        if "mesh_curvature" not in self._cache:
            self._cache["mesh_curvature"] = measures.mean_curvature(self.field, self.mesh.vertices)
        return self._cache["mesh_curvature"]

    def _compute_metrics(self) -> None:
        from recon.metrics import compare_meshes

        self.metrics = compare_meshes(self.mesh, self.gt, n_samples=self.config.metric_samples,
                                      seed=self.config.seed)
