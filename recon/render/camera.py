"""A pinhole camera shared by the sphere tracer and the mesh renderer.

Conventions: right-handed world in the field's input units; the camera looks from ``eye``
at ``target`` with ``up`` roughly up; ``fov`` is the vertical field of view in degrees.
Pixel (row i, column j) covers ``u in [j, j+1)``, ``v in [i, i+1)`` with row 0 at the top;
its ray goes through the pixel's centre unless a sub-pixel offset is given. Depth is the
distance along the (unit) ray from the eye, in input units. A camera is saved as JSON beside
every image, so the same view can be rendered again (from a mesh, say) for comparison.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recon.errors import InputError

CAMERA_FORMAT = "recon.camera"
CAMERA_VERSION = 1

# Named up axes; each comes with the axis a front view looks along (azimuth 0 sees the
# model from +front): y-up models (Stanford scans) face +z, z-up scenes face -y.
UP_AXES = {
    "+x": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
    "-x": ((-1.0, 0.0, 0.0), (0.0, -1.0, 0.0)),
    "+y": ((0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    "-y": ((0.0, -1.0, 0.0), (0.0, 0.0, -1.0)),
    "+z": ((0.0, 0.0, 1.0), (0.0, -1.0, 0.0)),
    "-z": ((0.0, 0.0, -1.0), (0.0, 1.0, 0.0)),
}
UP_AXES["x"], UP_AXES["y"], UP_AXES["z"] = UP_AXES["+x"], UP_AXES["+y"], UP_AXES["+z"]


def _vec3(v, name: str) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    if a.shape != (3,) or not np.all(np.isfinite(a)):
        raise InputError(f"{name} must be 3 finite numbers, got {np.asarray(v).tolist()}")
    return a


@dataclass(frozen=True)
class Camera:
    """Look-at pinhole camera.

    eye, target, up : (3,) float64, input units (up need not be orthogonal to the view)
    fov    : vertical field of view, degrees, in (0, 180)
    width, height : image size, pixels
    """

    eye: np.ndarray
    target: np.ndarray
    up: np.ndarray
    fov: float = 40.0
    width: int = 512
    height: int = 512

    def __post_init__(self):
        object.__setattr__(self, "eye", _vec3(self.eye, "eye"))
        object.__setattr__(self, "target", _vec3(self.target, "target"))
        object.__setattr__(self, "up", _vec3(self.up, "up"))
        if not (0.0 < float(self.fov) < 180.0):
            raise InputError(f"fov must be in (0, 180) degrees, got {self.fov}")
        for name in ("width", "height"):
            v = getattr(self, name)
            if int(v) != v or not (1 <= int(v) <= 16384):
                raise InputError(f"{name} must be a whole number of pixels in 1..16384, got {v}")
            object.__setattr__(self, name, int(v))
        object.__setattr__(self, "fov", float(self.fov))
        fwd = self.target - self.eye
        if np.linalg.norm(fwd) < 1e-12:
            raise InputError("eye and target are the same point: the camera has no direction")
        if np.linalg.norm(np.cross(fwd, self.up)) < 1e-9 * np.linalg.norm(fwd) * max(np.linalg.norm(self.up), 1e-300):
            raise InputError("up is parallel to the viewing direction: choose another up vector")

    # -- geometry ---------------------------------------------------------------------
    def basis(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Unit (forward, right, up) vectors, float64; right = forward x up."""
        f = self.target - self.eye
        f = f / np.linalg.norm(f)
        r = np.cross(f, self.up)
        r /= np.linalg.norm(r)
        u = np.cross(r, f)
        return f, r, u

    @property
    def aspect(self) -> float:
        return self.width / self.height

    @property
    def pixel_angle(self) -> float:
        """Footprint of one pixel per unit of distance along the central ray: 2 tan(fov/2) / height."""
        return 2.0 * math.tan(math.radians(self.fov) / 2.0) / self.height

    def packed(self) -> np.ndarray:
        """(12,) float64 for the kernels: eye, forward, right * tan(fov/2) * aspect, up * tan(fov/2)."""
        f, r, u = self.basis()
        th = math.tan(math.radians(self.fov) / 2.0)
        return np.concatenate([self.eye, f, r * th * self.aspect, u * th]).astype(np.float64)

    def rays(self, *, offset=(0.5, 0.5)) -> tuple[np.ndarray, np.ndarray]:
        """Ray origins and unit directions for every pixel.

        offset : sub-pixel position (sx, sy) in [0, 1), (0.5, 0.5) is the pixel centre
        returns origins (H, W, 3) float64 (all the eye), dirs (H, W, 3) float64
        """
        sx, sy = float(offset[0]), float(offset[1])
        c = self.packed()
        j = np.arange(self.width, dtype=np.float64)
        i = np.arange(self.height, dtype=np.float64)
        u = 2.0 * (j + sx) / self.width - 1.0
        v = 1.0 - 2.0 * (i + sy) / self.height
        d = c[3:6][None, None, :] + u[None, :, None] * c[6:9][None, None, :] + v[:, None, None] * c[9:12][None, None, :]
        d /= np.linalg.norm(d, axis=-1, keepdims=True)
        o = np.broadcast_to(self.eye, d.shape).copy()
        return o, d

    def project(self, points) -> np.ndarray:
        """(N, 3) world points -> (N, 2) float64 pixel coordinates (column, row), centres at +0.5."""
        p = np.asarray(points, dtype=np.float64).reshape(-1, 3) - self.eye
        f, r, u = self.basis()
        th = math.tan(math.radians(self.fov) / 2.0)
        z = p @ f
        x = (p @ r) / (z * th * self.aspect)
        y = (p @ u) / (z * th)
        return np.stack([(x + 1.0) * self.width / 2.0, (1.0 - y) * self.height / 2.0], axis=1)

    def with_size(self, width: int, height: int) -> "Camera":
        return Camera(self.eye, self.target, self.up, self.fov, width, height)

    # -- files ------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "format": CAMERA_FORMAT,
            "version": CAMERA_VERSION,
            "eye": self.eye.tolist(),
            "target": self.target.tolist(),
            "up": self.up.tolist(),
            "fov_deg": self.fov,
            "width": self.width,
            "height": self.height,
        }

    @classmethod
    def from_dict(cls, d: dict, *, source: str = "camera") -> "Camera":
        if not isinstance(d, dict) or d.get("format") != CAMERA_FORMAT:
            raise InputError(f"{source}: not a recon camera (no '{CAMERA_FORMAT}' format marker)")
        if int(d.get("version", 0)) > CAMERA_VERSION:
            raise InputError(f"{source}: camera version {d.get('version')} is newer than this recon reads")
        try:
            return cls(d["eye"], d["target"], d["up"], float(d["fov_deg"]), int(d["width"]), int(d["height"]))
        except KeyError as exc:
            raise InputError(f"{source}: camera lacks the key {exc}") from None

    def save(self, path, *, extra: dict | None = None) -> Path:
        """Write the camera as JSON (atomically). ``extra`` keys are stored alongside."""
        from recon.io.atomic import atomic_path

        d = self.to_dict()
        if extra:
            d.update(extra)
        path = Path(path)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(d, indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path) -> "Camera":
        """Read a camera JSON (a turntable's file gives its first frame)."""
        path = Path(path)
        if not path.exists():
            raise InputError(f"no such camera file: {path}")
        try:
            d = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: not readable JSON ({exc})") from None
        if isinstance(d, dict) and "frames" in d and "eye" not in d:
            d = d["frames"][0]
        return cls.from_dict(d, source=str(path))


def up_vectors(up) -> tuple[np.ndarray, np.ndarray]:
    """(up, front) unit vectors for a named axis ('+y', 'z', ...) or an explicit 3-vector."""
    if isinstance(up, str):
        key = up.strip().lower()
        if key not in UP_AXES:
            raise InputError(f"up must be one of {', '.join(sorted(k for k in UP_AXES if len(k) == 2))} or 3 numbers, got {up!r}")
        u, f = UP_AXES[key]
        return np.array(u), np.array(f)
    u = _vec3(up, "up")
    u = u / np.linalg.norm(u)
    # any unit vector orthogonal to up, preferring the one nearest +z (then +y)
    for cand in ((0.0, 0.0, 1.0), (0.0, 1.0, 0.0), (1.0, 0.0, 0.0)):
        c = np.array(cand) - u * (u @ np.array(cand))
        if np.linalg.norm(c) > 1e-3:
            return u, c / np.linalg.norm(c)
    raise InputError(f"up must be a non-zero vector, got {up}")  # pragma: no cover


def orbit_camera(
    bounds,
    *,
    azimuth: float = 35.0,
    elevation: float = 25.0,
    distance: float | None = None,
    fov: float = 40.0,
    width: int = 512,
    height: int = 512,
    up="+y",
    margin: float = 1.05,
    fit: str = "box",
) -> Camera:
    """A camera on a sphere around ``bounds`` (2, 3), looking at its centre.

    azimuth, elevation : degrees; azimuth 0, elevation 0 is the front view (see UP_AXES),
        azimuth turns about ``up`` (counter-clockwise seen from above), elevation raises
        the eye towards ``up``. The default is a three-quarter view.
    distance : eye to centre, input units; None frames the bounds: ``fit="box"`` brings the
        eye as close as the box's 8 corners allow from this direction, ``fit="sphere"`` fits the
        box's enclosing sphere (safe from every direction: turntables); ``margin`` leaves room.
    """
    if fit not in ("box", "sphere"):
        raise InputError(f"fit must be 'box' or 'sphere', got {fit!r}")
    b = np.asarray(bounds, dtype=np.float64)
    if b.shape != (2, 3) or not np.all(np.isfinite(b)):
        raise InputError(f"bounds must be (2, 3) finite, got {b.shape}")
    center = b.mean(axis=0)
    radius = max(float(np.linalg.norm(b[1] - b[0])) / 2.0, 1e-9)
    u, front = up_vectors(up)
    side = np.cross(u, front)
    az, el = math.radians(azimuth), math.radians(elevation)
    if abs(math.cos(el)) < 1e-6:
        raise InputError("elevation of +-90 degrees looks straight along up: use at most 89.9")
    view = math.cos(el) * (math.cos(az) * front + math.sin(az) * side) + math.sin(el) * u
    if distance is None:
        half_v = math.radians(fov) / 2.0
        half_h = math.atan(math.tan(half_v) * width / height)
        distance = margin * radius / math.sin(min(half_v, half_h))
        if fit == "box":
            # a corner c (from the centre) stays in view when its depth D - c.v satisfies
            # |c.r| <= T_x (D - c.v) and |c.u| <= T_y (D - c.v), T = tan(half fov) / margin
            r_ax = np.cross(-view, u)
            r_ax /= np.linalg.norm(r_ax)
            u_ax = np.cross(r_ax, -view)
            tx, ty = math.tan(half_h) / margin, math.tan(half_v) / margin
            corners = np.array([[b[i, 0], b[j, 1], b[k, 2]] for i in (0, 1) for j in (0, 1) for k in (0, 1)]) - center
            need = corners @ view + np.maximum(np.abs(corners @ r_ax) / tx, np.abs(corners @ u_ax) / ty)
            distance = max(float(need.max()), 1e-6 * radius)
    elif not (distance > 0 and math.isfinite(distance)):
        raise InputError(f"distance must be a positive number, got {distance}")
    return Camera(center + distance * view, center, u, fov, width, height)


def surface_bounds(field) -> np.ndarray:
    """(2, 3) float64 box around the field's surface (for framing), input units.

    For a grid of samples, the nodes within one voxel of the level set; otherwise (network
    and closest-point fields), or when none is found, the field's own bounds.
    """
    from recon.fields.base import GridSamples

    b = np.asarray(field.bounds, dtype=np.float64)
    if not isinstance(field, GridSamples):
        return b
    vals, h = np.asarray(field.values), field.voxel_size
    if field.kind == "occupancy":
        near = vals >= field.level
    else:
        near = np.abs(vals - field.level) <= 1.0 * h
    if not near.any():
        return b
    idx = [np.flatnonzero(near.any(axis=tuple(a for a in range(3) if a != ax))) for ax in range(3)]
    lo = np.array([ix[0] for ix in idx]) * h + field.origin
    hi = np.array([ix[-1] for ix in idx]) * h + field.origin
    return np.stack([lo, hi])
