"""Fit speed on a CUDA GPU against the CPU of the same machine, in one process.

    python perf/bench_gpu.py CLOUD.ply [CLOUD.ply ...] --out DIR [--repeats 3]

For each cloud, at the default settings:

- csp on ``cuda``: one cold fit (CUDA start-up, kernel compilation and caches included),
  then ``--repeats`` warm fits with the same seed; the median warm fit is the figure. The
  warm fits are compared array by array (is ``--seed`` deterministic on the GPU?). One fit
  on the CPU gives the ratio. The first warm cuda field is saved to ``DIR/<name>.csp.npz``
  so that meshing and metrics can run on a machine that has the bench's tools.
- GridPull on ``cpu`` and on ``cuda``: one warm-up fit each, then ``--repeats`` timed
  fits; the largest difference between the two devices' grids is printed as a check. The
  first cuda grid is saved to ``DIR/<name>.gridpull.npz`` unless ``--no-save-grid``.
- occupancy the same way as csp (cold, warm, same-seed check, CPU ratio, saved field);
  its refinement is the part on the GPU.
- The csp field meshed once (``recon.meshing.marching_cubes.extract_mesh``; the mesher runs on the CPU and
  evaluates the field on the GPU).

Times are wall-clock seconds of ``recon.fitters.fit`` (normalisation, preprocessing,
training and the open/closed decision: everything the CLI's fit step does), synchronised
by the fit returning NumPy arrays. A benchmark, not a test: it prints figures, writes
``DIR/bench_gpu.json`` and checks nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

DEVICE = "cuda"
"The accelerator compared with the CPU (``--device cpu`` only exercises this script)."


_PHASES: dict[int, dict] = {}
"id(field) -> the seconds of the phases of the fit that made it (a field does not store them)."


def fit_with_phases(cloud, method: str, **config):
    from recon.fitters import fit

    timings = {}
    field = fit(cloud, method, timings=timings, **config)
    _PHASES[id(field)] = timings
    return field


def _timed_fit(cloud, method: str, **config):
    t = time.perf_counter()
    field = fit_with_phases(cloud, method, **config)
    return field, time.perf_counter() - t


def _phases(field) -> dict:
    return {k: round(float(v), 3) for k, v in _PHASES.get(id(field), {}).items()}


def _max_array_difference(a, b) -> float:
    keys = [k for k in a.arrays if isinstance(a.arrays[k], np.ndarray) and a.arrays[k].dtype.kind == "f"]
    return max(float(np.max(np.abs(a.arrays[k] - b.arrays[k]))) if a.arrays[k].size else 0.0 for k in keys)


def bench_network(cloud, method: str, name: str, out: Path, repeats: int) -> dict:
    """A torch fitter (csp, occupancy): one cold fit on the device, ``repeats`` warm ones
    (compared array by array), one on the CPU; the first warm field saved and meshed."""
    from recon.meshing.marching_cubes import extract_mesh

    _, cold = _timed_fit(cloud, method, device=DEVICE)
    warm = [_timed_fit(cloud, method, device=DEVICE) for _ in range(repeats)]
    first = warm[0][0]
    first.save(out / f"{name}.{method}.npz")
    t = time.perf_counter()
    mesh = extract_mesh(first)
    mesh_s = time.perf_counter() - t
    _, cpu_s = _timed_fit(cloud, method, device="cpu")
    secs = [s for _, s in warm]
    return {
        "cuda_cold_s": cold,
        "cuda_warm_s": secs,
        "cuda_median_s": float(np.median(secs)),
        "cuda_phases": _phases(first),
        "cpu_s": cpu_s,
        "cpu_over_cuda": cpu_s / float(np.median(secs)),
        "same_seed_max_difference": max(_max_array_difference(first, f) for f, _ in warm[1:]) if repeats > 1 else None,
        "surface_decided": first.params.get("surface_decided"),
        "mesh_s": mesh_s,
        "mesh_faces": int(mesh.n_faces),
    }


def bench_gridpull(cloud, name: str, out: Path, repeats: int, save_grid: bool) -> dict:
    res = {}
    fields = {}
    for label, device in (("cpu", "cpu"), ("cuda", DEVICE)):
        _timed_fit(cloud, "gridpull", device=device)  # warm-up: numba compilation / caches
        runs = [_timed_fit(cloud, "gridpull", device=device) for _ in range(repeats)]
        fields[label] = runs[0][0]
        res[f"{label}_s"] = [s for _, s in runs]
        res[f"{label}_median_s"] = float(np.median(res[f"{label}_s"]))
        if label == "cuda" and repeats > 1:
            res["cuda_same_seed_max_difference"] = float(np.max(np.abs(runs[0][0].values - runs[1][0].values)))
    res["cpu_over_cuda"] = res["cpu_median_s"] / res["cuda_median_s"]
    a, b = fields["cpu"].values, fields["cuda"].values
    res["cuda_vs_cpu_max_difference"] = float(np.max(np.abs(a - b)))
    res["grid_step"] = float(fields["cpu"].voxel_size)
    if save_grid:
        fields["cuda"].save(out / f"{name}.gridpull.npz")
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("clouds", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--methods", default="csp,gridpull,occupancy")
    ap.add_argument("--no-save-grid", action="store_true")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    global DEVICE
    DEVICE = args.device

    import numba
    import torch

    from recon.io import read_cloud

    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "numba": numba.__version__,
        "cpu_count": os.cpu_count(),
        "numba_threads": numba.get_num_threads(),
        "torch_threads": torch.get_num_threads(),
        "cases": {},
    }
    methods = args.methods.split(",")
    for path in args.clouds:
        name = path.parent.name if path.stem == "input" else path.stem
        cloud = read_cloud(path)
        case = {"points": len(cloud)}
        for method in ("csp", "occupancy"):
            if method in methods:
                case[method] = bench_network(cloud, method, name, args.out, args.repeats)
        if "gridpull" in methods:
            case["gridpull"] = bench_gridpull(cloud, name, args.out, args.repeats, not args.no_save_grid)
        report["cases"][name] = case
        (args.out / "bench_gpu.json").write_text(json.dumps(report, indent=2))
        print(json.dumps({name: case}, indent=1), flush=True)

    print(f"\n{report['gpu']}, torch {report['torch']}, numba {report['numba']}, {report['cpu_count']} CPUs")
    print(f"{'case':14s} {'points':>8s} {'csp cuda med':>12s} {'cold':>6s} {'csp cpu':>8s} {'ratio':>6s} "
          f"{'same seed':>10s} {'gp cuda':>8s} {'gp cpu':>7s} {'ratio':>6s} {'occ cuda':>8s} {'occ cpu':>7s} "
          f"{'same seed':>10s}")
    for name, c in report["cases"].items():
        cs, gp, oc = c.get("csp", {}), c.get("gridpull", {}), c.get("occupancy", {})
        print(f"{name:14s} {c['points']:8d} {cs.get('cuda_median_s', float('nan')):12.2f} "
              f"{cs.get('cuda_cold_s', float('nan')):6.1f} {cs.get('cpu_s', float('nan')):8.2f} "
              f"{cs.get('cpu_over_cuda', float('nan')):6.1f} {str(cs.get('same_seed_max_difference')):>10.10s} "
              f"{gp.get('cuda_median_s', float('nan')):8.2f} {gp.get('cpu_median_s', float('nan')):7.2f} "
              f"{gp.get('cpu_over_cuda', float('nan')):6.1f} {oc.get('cuda_median_s', float('nan')):8.2f} "
              f"{oc.get('cpu_s', float('nan')):7.2f} {str(oc.get('same_seed_max_difference')):>10.10s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
