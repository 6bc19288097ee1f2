"""Sphere-tracing speed beside pyvista rendering the marching-cubes mesh of the same field.

    python perf/bench_render.py --field demo.field.npz            # a saved field
    python perf/bench_render.py --case gridpull_demo              # fit it first (GridPull)
    python perf/bench_render.py                                   # a 256^3 torus grid
    python perf/bench_render.py --field f.npz --device cuda       # also the GPU, vs the CPU

Same camera (three-quarter view fitted to the surface), 512 x 512, 1 sample per pixel.
Rays per second is the median over ``--repeats`` traced images after one warm-up image (the
grid already prepared: on CUDA uploaded once, as a turntable would). The mesh side is the
median wall time of ``render_mesh`` (plotter set-up, upload, draw, read back colour and depth)
for the mesh ``recon.meshing.marching_cubes.extract_mesh`` gives at the field's own resolution. This is a
benchmark, not a test: it prints figures and checks nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO.parent / "shared" / "data" / "bench"


def load_or_make_field(args):
    from recon.fields import load_field

    if args.field:
        return load_field(args.field), str(args.field)
    if args.case:
        from recon.fitters import fit
        from recon.io import read_cloud

        cloud = read_cloud(BENCH / args.case / "input.ply")
        t = time.perf_counter()
        field = fit(cloud, "gridpull")
        print(f"fitted {args.case} with gridpull in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        if args.save_field:
            field.save(args.save_field)
        return field, f"{args.case} (gridpull, default config)"
    from recon.fields.analytic import Torus, sample_grid

    tor = Torus(major=0.5, minor=0.2)
    return sample_grid(tor, resolution=256, bounds=np.array([[-0.8, -0.8, -0.8], [0.8, 0.8, 0.8]])), "torus 256^3 grid"


def time_trace(field, camera, device: str, repeats: int) -> dict:
    from recon.render.trace import prepare, sphere_trace

    prep = prepare(field, device=device)
    sphere_trace(field, camera, tracer=prep)  # warm-up (cache load / JIT / first launch)
    runs = [sphere_trace(field, camera, tracer=prep) for _ in range(repeats)]
    secs = np.array([r.stats["seconds"] for r in runs])
    st = runs[0].stats
    return {
        "device": prep.device,
        "path": st["path"],
        "seconds_median": float(np.median(secs)),
        "seconds_all": secs.round(5).tolist(),
        "rays": st["rays"],
        "rays_per_second": st["rays"] / float(np.median(secs)),
        "hits": st["hits"],
        "mean_steps": st["mean_steps"],
        "max_steps": st["max_steps"],
        "not_converged": st["not_converged"],
    }


def time_mesh(field, camera, repeats: int) -> dict:
    from recon.meshing.marching_cubes import extract_mesh
    from recon.render.mesh_render import render_mesh

    t = time.perf_counter()
    mesh = extract_mesh(field)
    t_mc = time.perf_counter() - t
    render_mesh(mesh, camera)  # warm-up: VTK/OpenGL context
    secs = []
    for _ in range(repeats):
        t = time.perf_counter()
        render_mesh(mesh, camera)
        secs.append(time.perf_counter() - t)
    return {"faces": int(mesh.n_faces), "marching_cubes_seconds": t_mc, "seconds_median": float(np.median(secs)),
            "seconds_all": np.round(secs, 4).tolist()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--field", type=Path, help="a saved field (.npz)")
    ap.add_argument("--case", help="fit this bench case with gridpull (e.g. gridpull_demo)")
    ap.add_argument("--save-field", type=Path, help="with --case: keep the fitted field here")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="cuda: also trace on the GPU")
    ap.add_argument("--up", default="+y")
    ap.add_argument("--no-mesh", action="store_true", help="skip the pyvista side")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    import numba

    from recon.render.camera import orbit_camera, surface_bounds

    field, label = load_or_make_field(args)
    camera = orbit_camera(surface_bounds(field), width=args.size, height=args.size, up=args.up)
    report = {"field": label, "grid": list(getattr(field, "shape", ())), "size": [args.size, args.size], "spp": 1,
              "numba_threads": numba.get_num_threads()}
    report["cpu"] = time_trace(field, camera, "cpu", args.repeats)
    if args.device == "cuda":
        report["cuda"] = time_trace(field, camera, "cuda", args.repeats)
        report["cuda_over_cpu"] = report["cuda"]["rays_per_second"] / report["cpu"]["rays_per_second"]
    if not args.no_mesh:
        report["mesh"] = time_mesh(field, camera, max(3, args.repeats // 2))
        report["trace_over_mesh_time"] = report["cpu"]["seconds_median"] / report["mesh"]["seconds_median"]
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    c = report["cpu"]
    print(f"field: {label}  grid {report['grid']}  image {args.size}x{args.size}, 1 spp, numba threads {report['numba_threads']}")
    print(f"sphere trace cpu : {c['rays_per_second'] / 1e6:6.2f} M rays/s  ({c['seconds_median'] * 1e3:.1f} ms/image, "
          f"{c['hits']:,} hits, steps mean {c['mean_steps']:.1f} max {c['max_steps']}, {c['not_converged']} not converged)")
    if "cuda" in report:
        g = report["cuda"]
        print(f"sphere trace cuda: {g['rays_per_second'] / 1e6:6.2f} M rays/s  ({g['seconds_median'] * 1e3:.2f} ms/image); "
              f"{report['cuda_over_cpu']:.0f}x the CPU")
    if "mesh" in report:
        m = report["mesh"]
        print(f"pyvista mesh     : {m['seconds_median'] * 1e3:6.1f} ms/image for {m['faces']:,} faces "
              f"(marching cubes {m['marching_cubes_seconds']:.2f} s, not counted)")
        print(f"trace time / mesh render time: {report['trace_over_mesh_time']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
