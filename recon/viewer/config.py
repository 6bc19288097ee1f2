"""The viewer's sizes, styles and keys in one place, and the pyvista loader every module uses."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import numpy as np

from recon.errors import InputError

CLOUD_COLORINGS = ("rgb", "plain", "distance")
MESH_COLORINGS = ("plain", "input", "gt", "curvature")
UP_AXES = ("auto", "+x", "-x", "+y", "-y", "+z", "-z")

KEYS = {
    "h": "show / hide this list of keys",
    "c": "show / hide the input cloud",
    "m": "show / hide the mesh",
    "x": "show / hide the field slices",
    "g": "show / hide the ground truth",
    "d": "show / hide the error colours (mesh colouring plain <-> distance to the ground truth)",
    "l": "show / hide the clip plane (drag it to cut the scene)",
    "k": "cloud colouring: own colours -> plain -> distance to the surface",
    "n": "mesh colouring: plain -> distance to the input -> to the ground truth -> curvature",
    "o": "save a screenshot (recon-view-N.png in the current folder)",
    "r": "reset the camera to the front view",
    "y": "switch to / from the sphere-traced image of the field for this camera",
}
# VTK's own interactor keys (e and q quit, p picks, w s wireframe / surface, f fly to, j t 3 u,
# v b in pyvista) are left alone.
MOUSE = {
    "right click (double click in the browser)": "read the position, the field's value and the distances "
                                                  "to the data and the ground truth at the point under the cursor",
    "iso-level slider": "re-mesh the field at another level (coarse while dragging, fine on release)",
}


@dataclass(frozen=True)
class ViewerConfig:
    """Sizes and styles of the viewer, in one place."""

    max_points: int = 2_000_000
    """Clouds with more points are shown decimated (a seeded uniform subset), with a note."""
    max_points_under_mesh: int = 300_000
    """While a mesh is shown, the cloud drawn under it is decimated to this many points: most
    of it is hidden, and every point drawn costs render time; ``m`` (mesh off) shows up to
    ``max_points``."""
    seed: int = 0
    """Seed of the decimation and spacing-sample draws."""
    point_size: float | None = None
    """Screen size of cloud points, pixels; None: from the cloud's spacing at the first view."""
    point_size_range: tuple[float, float] = (1.0, 6.0)
    """Smallest and largest automatic point size, pixels."""
    point_size_fraction: float = 0.8
    """Automatic point size as a fraction of the neighbour spacing seen on screen."""
    cloud_depth_offset: float = 2000.0
    """Depth offset that puts cloud points behind a surface they lie on (depth-buffer steps),
    so the mesh and its error colours stay visible where both are drawn."""
    window_size: tuple[int, int] = (1024, 768)
    """Window or image size, pixels."""
    multi_samples: int | None = None
    """Samples per pixel of multisampled anti-aliasing; None: 1 offscreen (a software
    renderer pays for every sample in every frame of a large cloud), pyvista's own on screen."""
    view_angle: float = 30.0
    """Vertical field of view, degrees."""
    view_azimuth: float = 30.0
    """First view: degrees turned right from the front, about the up axis."""
    view_elevation: float = 20.0
    """First view: degrees above the horizon."""
    slice_samples: int = 200
    """Field samples along the longer side of a slice plane."""
    slice_margin: float = 0.05
    """Slices reach this fraction of the object's diagonal past its bounds."""
    slice_opacity: float = 0.6
    """Opacity of the slice planes while a mesh is shown, so the half behind a plane still shows."""
    coarse_resolution: int = 96
    """Grid nodes along the longest side for the iso-level slider's pass while dragging."""
    live_resolution: int = 192
    """Grid nodes along the longest side for the slider's pass on release (a grid field no
    larger than this is meshed on its own grid)."""
    turntable_elevation: float = 20.0
    """Degrees above the horizon of the turntable's camera."""
    signed_cmap: str = "RdBu_r"
    """Diverging colour map of signed-distance slices, centred on the level."""
    unsigned_cmap: str = "magma_r"
    """Sequential colour map of unsigned-distance slices (0 at the surface)."""
    occupancy_cmap: str = "PuOr_r"
    """Colour map of occupancy slices over the fixed range 0..1 (a probability)."""
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


def pyvista():
    """The pyvista module, with VTK pointed at EGL when there is no X server."""
    if not display_available() and "VTK_DEFAULT_OPENGL_WINDOW" not in os.environ:
        # No X server: go straight to EGL when the system has it, instead of letting VTK
        # try X first and print a warning. Without EGL, VTK's own fallback (OSMesa) decides.
        import ctypes.util

        if ctypes.util.find_library("EGL"):
            os.environ["VTK_DEFAULT_OPENGL_WINDOW"] = "vtkEGLRenderWindow"
            # pyvista would open a throwaway render window to ask whether plotting works: EGL does
            os.environ.setdefault("ALLOW_PLOTTING", "true")
    try:
        import pyvista as pv
    except ImportError as exc:  # pragma: no cover - pyvista is a dependency
        raise InputError(f"the viewer needs pyvista and vtk ({exc}); install them with pip") from None
    return pv


def poly_from_mesh(mesh):
    """A pyvista PolyData of a TriangleMesh (with its vertex normals when it has them)."""
    pv = pyvista()
    poly = pv.PolyData.from_regular_faces(np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64))
    if mesh.vertex_normals is not None:
        poly.point_data["Normals"] = np.asarray(mesh.vertex_normals, np.float32)
        poly.point_data.active_normals_name = "Normals"
    return poly


def axis_index(axis: str) -> int:
    try:
        return "xyz".index(axis)
    except ValueError:
        raise InputError(f"slice axis must be 'x', 'y' or 'z', got {axis!r}") from None


def robust_range(d: np.ndarray) -> tuple[float, float]:
    """(0, 99th percentile): a colour range that one far outlier cannot wash out."""
    d = np.asarray(d, np.float64)
    d = d[np.isfinite(d)]
    hi = float(np.percentile(d, 99)) if len(d) else 1.0
    return 0.0, hi if hi > 0 else 1.0


def chunked(fn, x: np.ndarray, step: int = 1 << 18) -> np.ndarray:
    """``fn`` applied to ``x`` in blocks of ``step`` rows (bounded memory for large inputs)."""
    parts = [np.asarray(fn(x[i: i + step])) for i in range(0, len(x), step)]
    return np.concatenate(parts) if parts else np.zeros((0,), np.float32)
