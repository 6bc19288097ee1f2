"""Render a triangle mesh offscreen through pyvista/VTK with a recon :class:`Camera`.

The same camera (eye, target, up, vertical field of view, size) and the same head light and
material as the sphere tracer, so a field and its mesh can be compared pixel to pixel. The
depth pass is read from VTK's z-buffer and converted to distance along each pixel's ray,
like the tracer's.

Offscreen VTK needs an OpenGL context without a display: the VTK wheels fall back to EGL or
OSMesa by themselves (on Debian: ``libegl1`` or ``libosmesa6``); with neither, the first
render fails and :func:`render_mesh` says so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field as dc_field
import numpy as np

from recon.errors import InputError, ReconError
from recon.render.camera import Camera
from recon.render.shade import ShadeSettings
from recon.triangles import TriangleMesh


@dataclass
class MeshRendering:
    """rgba (H, W, 4) float32 linear colour + coverage, depth (H, W) float32 along the ray
    (inf on background), hit (H, W) bool, stats (seconds, faces)."""

    rgba: np.ndarray
    depth: np.ndarray
    hit: np.ndarray
    camera: Camera
    stats: dict = dc_field(default_factory=dict)


def _polydata(mesh: TriangleMesh):
    import pyvista as pv

    f = np.hstack([np.full((mesh.n_faces, 1), 3, np.int64), mesh.faces]).ravel()
    return pv.PolyData(mesh.vertices, f)


def render_mesh(mesh: TriangleMesh, camera: Camera, *, settings: ShadeSettings | None = None,
                smooth: bool = True, spp: int = 1) -> MeshRendering:
    """Render ``mesh`` through ``camera`` offscreen.

    smooth : interpolate vertex normals (Phong shading) instead of flat faces
    spp    : > 1 turns on VTK's supersampling anti-aliasing (colour only; depth is unaffected)
    """
    s = settings or ShadeSettings()
    if not isinstance(mesh, TriangleMesh):
        raise InputError(f"mesh must be a recon TriangleMesh, got {type(mesh).__name__}")
    if mesh.n_faces == 0:
        raise InputError("the mesh has no faces")
    import pyvista as pv

    t_start = time.perf_counter()
    w, h = camera.width, camera.height
    try:
        pl = pv.Plotter(off_screen=True, window_size=(w, h), lighting="none")
    except Exception as exc:  # no OpenGL context at all
        raise ReconError(f"offscreen rendering is unavailable ({exc}); install libegl1 or libosmesa6") from None
    try:
        poly = _polydata(mesh)
        pl.add_mesh(poly, color=tuple(s.base_color), smooth_shading=smooth, ambient=s.ambient, diffuse=s.diffuse,
                    specular=s.specular, specular_power=s.shininess, culling=False, lighting=True)
        pl.add_light(pv.Light(light_type="headlight", intensity=1.0))
        pl.set_background(tuple(s.background))
        cam = pl.camera
        cam.position = tuple(camera.eye)
        cam.focal_point = tuple(camera.target)
        cam.up = tuple(camera.basis()[2])
        cam.view_angle = camera.fov
        # a tight clipping range keeps the z-buffer precise
        lo, hi = mesh.vertices.min(axis=0), mesh.vertices.max(axis=0)
        c, r = (lo + hi) / 2.0, float(np.linalg.norm(hi - lo)) / 2.0
        dist = float(np.dot(c - camera.eye, camera.basis()[0]))
        near = max(dist - 1.01 * r, 1e-3 * max(r, 1e-9))
        cam.clipping_range = (near, dist + 1.01 * r)
        if spp > 1:
            pl.enable_anti_aliasing("ssaa")
        img = pl.screenshot(return_img=True, transparent_background=True)
        zval = pl.get_image_depth(fill_value=np.nan, reset_camera_clipping_range=False)
    except ReconError:
        raise
    except Exception as exc:
        raise ReconError(f"offscreen rendering failed ({exc.__class__.__name__}: {exc}); "
                         "VTK needs EGL or OSMesa without a display (libegl1 / libosmesa6)") from None
    finally:
        pl.close()
    img = np.asarray(img)
    if img.shape[:2] != (h, w):
        raise ReconError(f"VTK returned a {img.shape[1]}x{img.shape[0]} image for a {w}x{h} window")
    _, d = camera.rays()
    fwd = camera.basis()[0]
    zval = np.asarray(zval, dtype=np.float64)
    hit = np.isfinite(zval)
    depth = np.where(hit, -zval / (d @ fwd), np.inf).astype(np.float32)
    rgba = np.zeros((h, w, 4), np.float32)
    # VTK shades in linear RGB and writes it without gamma: keep it linear, so writing
    # applies the same sRGB encoding as for traced images
    rgba[..., :3] = img[..., :3].astype(np.float64) / 255.0
    rgba[..., 3] = img[..., 3] / 255.0 if img.shape[2] == 4 else hit.astype(np.float32)
    if not s.transparent:
        bg = np.asarray(s.background)
        a = rgba[..., 3:4]
        rgba[..., :3] = rgba[..., :3] * a + bg * (1 - a)
        rgba[..., 3] = 1.0
    return MeshRendering(rgba, depth, hit, camera, {"seconds": time.perf_counter() - t_start, "faces": mesh.n_faces})
