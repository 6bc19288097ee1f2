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


def fake_results(cases: dict, *, methods=("gridpull", "o3d-poisson", "o3d-bpa")) -> dict:
    """A results dict shaped as recon.bench writes it, from made-up figures (no run).

    ``cases`` maps a case name to ``{"gt": bool, method: figures or None}``; figures is a
    dict with ``chamfer_l1``, ``normal_consistency``, ``wall_s`` and ``peak_mb`` (the last
    two optional); None means the method failed on the case (status 'timeout').
    """
    settings = {
        "repeat": 1, "timeout_s": 600.0, "prepare_timeout_s": 600.0, "memory_limit_bytes": 8 * 1024**3,
        "memory_mode": "address-space", "n_samples": 1000, "seed": 0, "thresholds": [0.002, 0.005, 0.01],
        "methods": {m: {"kind": "baseline" if m.startswith("o3d") else "fitter", "description": f"fake {m}",
                        "target": "x:y", "options": {}} for m in methods},
        "timing": "made up", "memory": "made up",
    }
    out = {"settings": settings, "cases": {}, "results": {}, "runs": [],
           "command": "recon bench --fake", "date": "2026-01-01T00:00:00+00:00",
           "versions": {"python": "3.11", "recon": "0"}, "machine": {"cpu": "fake", "cores": 2, "cores_usable": 2}}
    for case, spec in cases.items():
        has_gt = spec.get("gt", True)
        out["cases"][case] = {"gt": "gt.ply" if has_gt else None, "n_points": 100}
        out["results"][case] = {}
        for m in methods:
            fig = spec.get(m)
            if fig is None:
                out["results"][case][m] = {"ok": False, "status": "timeout", "error": "made up"}
                out["runs"].append({"case": case, "method": m, "repeat": 0, "ok": False, "status": "timeout", "error": "made up"})
                continue
            wall, peak = fig.get("wall_s", 1.0), fig.get("peak_mb", 100.0)
            metrics = ({"chamfer_l1": fig["chamfer_l1"], "chamfer_l2": fig["chamfer_l1"] ** 2,
                        "normal_consistency": fig["normal_consistency"],
                        "fscore": {"0.2%": 0.5, "0.5%": 0.7, "1%": 0.9}} if has_gt else
                       {"input_to_mesh_mean": 1e-3, "mesh_to_input_mean": 1e-3, "mesh_to_input_p95": 2e-3})
            out["results"][case][m] = {
                "ok": True, "status": "ok", "n_ok": 1, "faces": 1000, "vertices": 502, "watertight": True,
                "wall_s": {"median": wall, "min": wall, "max": wall, "all": [wall]},
                "peak_rss_mb": {"median": peak, "min": peak, "max": peak, "all": [peak]},
                "metrics": metrics, "mesh": f"meshes/{case}/{m}.ply",
            }
            out["runs"].append({"case": case, "method": m, "repeat": 0, "ok": True, "status": "ok", "error": None})
    return out
