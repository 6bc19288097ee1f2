"""Fake bench methods for tests/test_bench.py, importable by name in the bench's child processes.

(The bench runs each method in a fresh interpreter that imports its target
"module:function"; the runner puts the parent's sys.path, which holds tests/, on the
child's PYTHONPATH.)
"""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import trimesh  # imported here so that it is not inside the timed call

from recon.triangles import TriangleMesh


def sphere_fit(cloud, *, subdivisions: int = 3):
    """A fast stand-in method: the icosphere through the cloud's mean radius about its bbox centre."""
    lo, hi = cloud.points.min(axis=0), cloud.points.max(axis=0)
    centre = (lo + hi) / 2
    radius = float(np.linalg.norm(cloud.points - centre, axis=1).mean())
    tm = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    return TriangleMesh(np.asarray(tm.vertices) + centre, np.asarray(tm.faces))


def raise_error(cloud):
    raise RuntimeError("this fake method fails on purpose")


def hang(cloud, *, seconds: float = 120.0):
    time.sleep(seconds)


def allocate(cloud, *, gib: float = 64.0):
    block = np.ones(int(gib * 1024**3 / 8))  # past any test's memory limit
    return block.sum()


def segfault(cloud):
    os.kill(os.getpid(), signal.SIGSEGV)


def not_a_mesh(cloud):
    return "a string"


def touch_memory(cloud, *, mb: int = 300):
    """Holds ``mb`` MB resident during the call, then returns the sphere fit."""
    block = np.ones(mb * 1024**2 // 8)
    mesh = sphere_fit(cloud)
    del block
    return mesh


def grow(cloud, *, step_mb: int = 50, steps: int = 60, pause_s: float = 0.02):
    """Allocates (and touches) ``step_mb`` MB at a time, up to ``steps`` times, holding them all."""
    held = []
    for _ in range(steps):
        held.append(np.ones(step_mb * 1024**2 // 8))
        time.sleep(pause_s)
    return sphere_fit(cloud)
