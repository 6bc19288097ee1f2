"""Make ``assets/demo_cloud.ply``: points on a closed, genus-1 shape with detail at several scales.

The shape is the zero set of an analytic signed distance function, in millimetres:

- a torus (ring radius 30 mm, tube radius 9 mm) around the z axis: the 60 mm scale, genus 1;
- a bulb (sphere of radius 15 mm) on the ring at +x: the 15 mm scale;
- five knobs (spheres of radius 4 mm) on the tube, around and above it: the 4 mm scale;
- all blended with a smooth minimum (1.5 mm), then a 0.6 mm sine ripple: the 1-3 mm scale.

Points are drawn uniformly by area on a fine marching-cubes mesh of the SDF, projected
onto the zero set with Newton steps, jittered with 0.08 mm Gaussian noise, and moved to
the frame origin ``OFFSET`` (so a reader that re-centres the data shows up). The file is
a binary PLY with x y z only (no normals), about 240 kB.

Usage (deterministic; the seed fixes every draw)::

    python assets/make_demo_cloud.py                      # writes assets/demo_cloud.ply
    python assets/make_demo_cloud.py --points 50000 --output /tmp/demo.ply --seed 1
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

RING_RADIUS = 30.0       # mm
TUBE_RADIUS = 9.0        # mm
BULB_RADIUS = 15.0       # mm, centred on the ring at +x
KNOB_RADIUS = 4.0        # mm
# (angle around the ring, angle around the tube from its outer equator towards +z), degrees
KNOBS_DEG = ((70.0, 0.0), (130.0, 60.0), (180.0, -30.0), (235.0, 90.0), (290.0, 20.0))
KNOB_LIFT = 1.0          # mm from the tube's surface to a knob's centre
BLEND = 1.5              # mm, smooth-minimum width
RIPPLE_AMPLITUDE = 0.6   # mm
RIPPLE_PERIOD = 6.0 * np.pi  # mm (sin(x / 3))
NOISE_SIGMA = 0.08       # mm
OFFSET = np.array([100.0, 50.0, 20.0])  # mm, the shape's centre in the file's frame
GRID_STEP = 0.5          # mm, marching-cubes spacing


def _smooth_min(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum of two distances (equal to min(a, b) when |a - b| >= k)."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b * (1.0 - h) + a * h - k * h * (1.0 - h)


def demo_sdf(p: np.ndarray) -> np.ndarray:
    """(N, 3) float64 points, mm, shape-centred frame -> (N,) float64: negative inside.

    A distance bound (exact away from the blends and ripple), which is all the zero set needs.
    """
    p = np.asarray(p, dtype=np.float64)
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    ring = np.hypot(x, y)
    d = np.hypot(ring - RING_RADIUS, z) - TUBE_RADIUS
    d = _smooth_min(d, np.linalg.norm(p - [RING_RADIUS, 0.0, 0.0], axis=1) - BULB_RADIUS, BLEND)
    for theta, phi in np.radians(KNOBS_DEG):
        radial = RING_RADIUS + (TUBE_RADIUS + KNOB_LIFT) * np.cos(phi)
        centre = np.array([radial * np.cos(theta), radial * np.sin(theta), (TUBE_RADIUS + KNOB_LIFT) * np.sin(phi)])
        d = _smooth_min(d, np.linalg.norm(p - centre, axis=1) - KNOB_RADIUS, BLEND)
    w = 2.0 * np.pi / RIPPLE_PERIOD
    return d + RIPPLE_AMPLITUDE * np.sin(w * x) * np.sin(w * y) * np.sin(w * z)


def _gradient(p: np.ndarray, h: float = 1e-4) -> np.ndarray:
    g = np.empty_like(p)
    for axis in range(3):
        e = np.zeros(3)
        e[axis] = h
        g[:, axis] = (demo_sdf(p + e) - demo_sdf(p - e)) / (2.0 * h)
    return g


def make_points(count: int = 20_000, *, seed: int = 0) -> np.ndarray:
    """(count, 3) float64 points, mm, in the file's frame (shape centre at OFFSET)."""
    from skimage.measure import marching_cubes

    from recon.io import sample_surface
    from recon.seeding import rng

    margin = 2.0 * KNOB_RADIUS + KNOB_LIFT + 2.0
    half = np.array([RING_RADIUS + BULB_RADIUS, RING_RADIUS + TUBE_RADIUS, BULB_RADIUS]) + margin
    axes = [np.arange(-h, h + GRID_STEP, GRID_STEP) for h in half]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    values = demo_sdf(grid.reshape(-1, 3)).reshape(grid.shape[:3])
    verts, faces, _, _ = marching_cubes(values, level=0.0, spacing=(GRID_STEP,) * 3)
    verts = verts.astype(np.float64) - half
    points, _ = sample_surface(verts, faces.astype(np.int64), count, seed=seed)
    for _ in range(4):  # Newton steps onto the exact zero set
        g = _gradient(points)
        points -= (demo_sdf(points) / np.maximum((g * g).sum(axis=1), 1e-12))[:, None] * g
    points += rng(seed + 1).normal(scale=NOISE_SIGMA, size=points.shape)
    return points + OFFSET


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", type=Path, default=Path(__file__).resolve().parent / "demo_cloud.ply")
    parser.add_argument("--points", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from recon.cloud import Cloud
    from recon.io import write_cloud

    points = make_points(args.points, seed=args.seed)
    write_cloud(Cloud(points, source="assets/make_demo_cloud.py"), args.output)
    lo, hi = points.min(axis=0), points.max(axis=0)
    print(f"wrote {args.output}: {len(points)} points, bounds {np.round(lo, 2).tolist()} .. "
          f"{np.round(hi, 2).tolist()} mm, {args.output.stat().st_size} bytes")


if __name__ == "__main__":
    main()
