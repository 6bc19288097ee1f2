"""Baking a closest-point field: block-sparse grid against dense grid, in one process.

    python perf/bench_bake.py [--field saved.npz | --case bunny] [--resolution 256] [--runs 3]
                                    [--device cpu[,cuda]] [--size 320x240] [--out DIR]

Fits csp to the case's input (or loads --field), then for each grid kind: bake time as a
median of --runs, render time on each --device (orbit camera, --size pixels;
``bench_render.time_trace``: the grid prepared once, then the median of --runs images),
the grid's bytes, and how many hit pixels the two renders share and how far apart their
depths are (renders of the first device). Writes bake.json into --out (default
perf/out/bake).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np


def _median_time(fn, runs: int):
    times, out = [], None
    for _ in range(runs):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main(argv=None) -> int:
    from bench_render import time_trace

    from recon.fields import load_field
    from recon.render.camera import orbit_camera
    from recon.render.trace import sphere_trace

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--field", type=Path, default=None, help="a saved csp field (default: fit --case)")
    ap.add_argument("--case", default="bunny", help="bench case to fit when no --field is given")
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--device", default="cpu", help="render devices, comma-separated: cpu, cuda or cpu,cuda")
    ap.add_argument("--size", default="320x240", help="image size WIDTHxHEIGHT in pixels")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out" / "bake")
    args = ap.parse_args(argv)

    if args.field is not None:
        field = load_field(args.field)
    else:
        from recon.bench.cases import default_cases_dir
        from recon.fitters import fit
        from recon.io import read_cloud

        field = fit(read_cloud(default_cases_dir() / args.case / "input.ply"), "csp")
    devices = args.device.split(",")
    width, height = (int(v) for v in args.size.lower().split("x"))
    cam = orbit_camera(field.bounds, azimuth=30, elevation=20, width=width, height=height)
    rows, renders = {}, {}
    for kind, sparse in (("sparse", True), ("dense", False)):
        bake_s, grid = _median_time(lambda: field.bake(args.resolution, sparse=sparse), args.runs)
        traces = {d: time_trace(grid, cam, d, args.runs) for d in devices}
        nbytes = grid.nbytes if sparse else grid.offsets.nbytes
        rows[kind] = {"bake_s": bake_s, "bytes": int(nbytes),
                      "render_s": {d: t["seconds_median"] for d, t in traces.items()},
                      "hits": traces[devices[0]]["hits"], "path": {d: t["path"] for d, t in traces.items()}}
        renders[kind] = sphere_trace(grid, cam, device=devices[0])
        print(kind, json.dumps(rows[kind]), flush=True)
    a, b = renders["sparse"], renders["dense"]
    both = a.hit & b.hit
    gap = np.abs(a.depth[both] - b.depth[both])
    summary = {"resolution": args.resolution, "runs": args.runs, "size": [width, height], "rows": rows,
               "hit_pixels_differing": int((a.hit ^ b.hit).sum()),
               "depth_gap_median": float(np.median(gap)) if both.any() else None,
               "bytes_ratio": rows["sparse"]["bytes"] / rows["dense"]["bytes"],
               "bake_ratio": rows["sparse"]["bake_s"] / rows["dense"]["bake_s"],
               "render_ratio": {d: rows["sparse"]["render_s"][d] / rows["dense"]["render_s"][d] for d in devices}}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bake.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
