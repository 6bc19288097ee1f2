"""A tiny analytic fitter for tests/test_bench.py: importing this module registers "fake-sdf".

It is a real recon fitter (config dataclass, fit -> SignedDistanceGrid), so the bench runs
it the way it runs GridPull: fit, then recon.meshing.marching_cubes.extract_mesh, in a child process that
imports this module to find it. Tests remove it from the registry when done.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recon.fields import SignedDistanceGrid
from recon.fitters import FitterSpec, _REGISTRY, register

NAME = "fake-sdf"


@dataclass
class FakeSdfConfig:
    resolution: int = 48
    "Grid nodes along each side."
    iterations: int = 1
    "Unused; present so the bench's warm-up override has something to shrink."


def fit_fake_sdf(cloud, config: FakeSdfConfig, *, progress=None, timings=None) -> SignedDistanceGrid:
    """The signed distance to the sphere through the cloud's mean radius about its bbox centre."""
    lo, hi = cloud.points.min(axis=0), cloud.points.max(axis=0)
    centre = (lo + hi) / 2
    radius = float(np.linalg.norm(cloud.points - centre, axis=1).mean())
    n = config.resolution
    voxel = 3.0 * radius / (n - 1)
    origin = centre - 1.5 * radius
    axis = np.arange(n) * voxel
    x, y, z = np.meshgrid(axis + origin[0], axis + origin[1], axis + origin[2], indexing="ij")
    sdf = np.sqrt((x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2) - radius
    return SignedDistanceGrid(sdf.astype(np.float32), origin, voxel, params={"resolution": n})


SPEC = _REGISTRY.get(NAME) or register(FitterSpec(NAME, FakeSdfConfig, fit_fake_sdf, "test-only analytic sphere SDF"))
