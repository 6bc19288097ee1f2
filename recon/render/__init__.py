"""Pictures of fields and meshes: sphere tracing straight from the field, and the same
camera through pyvista/VTK for meshes, so the two can be compared pixel to pixel.

- :mod:`recon.render.camera`: :class:`Camera` (look-at, field of view, size, JSON), ``orbit_camera``
- :mod:`recon.render.trace`: :func:`sphere_trace` -> :class:`TraceResult` (depth, hit, normals, stats)
- :mod:`recon.render.shade`: Lambert + soft specular head light, ambient occlusion, ``render_field``
- :mod:`recon.render.output`: PNG / GIF / .npy writers
- :mod:`recon.render.mesh_render`: offscreen mesh rendering through the same camera
- :mod:`recon.fields.analytic`: analytic shapes with exact ray intersections (tests, demos)
"""

from recon.render.camera import Camera, orbit_camera
from recon.render.trace import TraceResult, TraceSettings, sphere_trace

__all__ = ["Camera", "orbit_camera", "sphere_trace", "TraceResult", "TraceSettings"]
