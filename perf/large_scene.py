"""A large georeferenced terrain with a known truth: tiled fit against an untiled fit of a crop.

    python perf/large_scene.py [--points 1e6] [--density 25] [--tile 50] [--workers 2]
                                     [--crop 50] [--noise 0.02] [--iterations N] [--out DIR]

Makes a procedural terrain (rolling hills, ridges and a few sharp mounds; z = f(x, y) in
metres), samples ``--points`` points uniformly over a square at ``--density`` points per
square metre with Gaussian noise of ``--noise`` metres in z, shifts them by the offsets
of a UTM survey (+500000, +4000000, +100 m) and writes them as a binary PLY (float64),
streamed in chunks. Then runs, each as its own ``recon fit`` process:

1. the tiled fit of the whole scene (``--tile``, ``--workers`` Ray workers; ``--method``,
   default auto: a terrain is meshed as a height field through its points);
2. the untiled fit (the same method; csp with an open surface) of a ``--crop`` square at
   the centre of the scene.

For each: wall time, peak memory of all its processes together (RSS of the process and
all its children, Ray's included, sampled every 0.2 s), and Chamfer-L1 (relative to the
crop's diagonal) against the truth, both over the crop square (the tiled mesh cut to it).
Prints and writes ``large_scene.json`` into --out (default perf/out/large_scene).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

OFFSET = np.array([500000.0, 4000000.0, 100.0])


def height(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Terrain height (m) at (x, y) metres from the scene's corner."""
    z = 3.0 * np.sin(x / 37.0) * np.cos(y / 29.0) + 1.5 * np.sin((x + 2 * y) / 13.0)
    z += 0.02 * x + 0.01 * y
    for cx, cy, r, hgt in ((60.0, 80.0, 9.0, 4.0), (150.0, 40.0, 6.0, 3.0), (110.0, 170.0, 12.0, 5.0)):
        z += hgt * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (r * r))
    return z


def write_scene(path: Path, n: int, side: float, noise: float, seed: int, chunk: int = 1_000_000) -> None:
    """Stream ``n`` noisy samples of the terrain over [0, side]^2 (plus OFFSET) to a binary PLY."""
    gen = np.random.default_rng(seed)
    header = (f"ply\nformat binary_little_endian 1.0\nelement vertex {n}\n"
              "property double x\nproperty double y\nproperty double z\nend_header\n").encode()
    with open(path, "wb") as fh:
        fh.write(header)
        for s in range(0, n, chunk):
            m = min(chunk, n - s)
            xy = gen.uniform(0.0, side, (m, 2))
            z = height(xy[:, 0], xy[:, 1]) + gen.normal(0.0, noise, m)
            fh.write((np.column_stack([xy, z]) + OFFSET).astype("<f8").tobytes())


def truth_mesh(lo: np.ndarray, hi: np.ndarray, step: float):
    """The terrain over the square [lo, hi] (scene metres) as a grid mesh, georeferenced."""
    from recon.triangles import TriangleMesh

    nx = int(math.ceil((hi[0] - lo[0]) / step)) + 1
    ny = int(math.ceil((hi[1] - lo[1]) / step)) + 1
    x, y = np.meshgrid(np.linspace(lo[0], hi[0], nx), np.linspace(lo[1], hi[1], ny), indexing="ij")
    v = np.column_stack([x.ravel(), y.ravel(), height(x, y).ravel()]) + OFFSET
    idx = np.arange(nx * ny).reshape(nx, ny)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel(), idx[:-1, 1:].ravel()
    return TriangleMesh(v, np.concatenate([np.column_stack([a, b, c]), np.column_stack([a, c, d])]))


def crop_mesh(mesh, lo: np.ndarray, hi: np.ndarray):
    """Faces whose centre lies in the square [lo, hi] (georeferenced x, y)."""
    from recon.triangles import TriangleMesh

    cen = mesh.vertices[mesh.faces].mean(axis=1)[:, :2]
    faces = mesh.faces[np.all((cen >= lo) & (cen <= hi), axis=1)]
    used = np.unique(faces)
    remap = np.full(mesh.n_vertices, -1, np.int64)
    remap[used] = np.arange(len(used))
    return TriangleMesh(mesh.vertices[used], remap[faces])


def run_measured(cmd: list[str]) -> dict:
    """Run ``cmd``; wall seconds and the peak of the summed RSS of it and its children."""
    import psutil

    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0]
    done = threading.Event()

    def sample():
        root = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                procs = [root] + root.children(recursive=True)
                total = 0
                for p in procs:
                    try:
                        total += p.memory_info().rss
                    except psutil.Error:
                        pass
                peak[0] = max(peak[0], total)
            except psutil.Error:
                pass
            time.sleep(0.2)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    out, err = proc.communicate()
    done.set()
    th.join()
    seconds = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-3000:]}")
    return {"seconds": round(seconds, 2), "peak_rss_gb": round(peak[0] / 1e9, 3), "stdout": out}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--points", type=float, default=1e6)
    ap.add_argument("--density", type=float, default=25.0, help="points per square metre")
    ap.add_argument("--tile", type=float, default=50.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--crop", type=float, default=50.0)
    ap.add_argument("--noise", type=float, default=0.02)
    ap.add_argument("--iterations", type=int, default=None, help="csp iterations (default: csp's)")
    ap.add_argument("--method", default="auto", help="auto (default) or csp")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-untiled", action="store_true")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / "large_scene")
    args = ap.parse_args(argv)

    from recon.io import read_mesh
    from recon.metrics import compare_meshes

    n = int(args.points)
    side = math.sqrt(n / args.density)
    args.out.mkdir(parents=True, exist_ok=True)
    scene = args.out / f"scene_{n}_noise{args.noise:g}_seed{args.seed}.ply"
    t = time.perf_counter()
    if not scene.exists():  # the same arguments make the same scene: a second run reuses it
        write_scene(scene, n, side, args.noise, args.seed)
    print(f"scene: {n:,} points over {side:.0f} m x {side:.0f} m, ready in {time.perf_counter() - t:.1f} s")
    extra = ["--iterations", str(args.iterations)] if args.iterations else []
    base = [sys.executable, "-m", "recon.cli.main", "fit"]

    lo = np.full(2, side / 2 - args.crop / 2)
    hi = lo + args.crop
    glo, ghi = lo + OFFSET[:2], hi + OFFSET[:2]
    truth = truth_mesh(lo, hi, 0.25)
    report = {"points": n, "side_m": side, "tile": args.tile, "workers": args.workers, "crop_m": args.crop,
              "noise_m": args.noise, "method": args.method}

    tiled_out = args.out / f"scene_{n}_tiled_{args.method}_{args.workers}w.ply"
    method = ["--method", args.method]
    run = run_measured(base + [str(scene), "--tile", str(args.tile), "--workers", str(args.workers),
                               "-o", str(tiled_out), "--json", *method, *extra])
    summary = json.loads(run.pop("stdout"))
    tiled = crop_mesh(read_mesh(tiled_out), glo, ghi)
    run["chamfer_l1_crop"] = compare_meshes(tiled, truth)["chamfer_l1"]
    run["faces"], run["timings"] = summary["faces"], summary["timings"]
    report["tiled"] = run
    print("tiled  ", json.dumps(run))

    if not args.skip_untiled:
        from recon.cloud import Cloud
        from recon.io import write_cloud
        from recon.tiling.ingest import iter_chunks

        parts = [p[np.all((p[:, :2] >= glo) & (p[:, :2] <= ghi), axis=1)] for p in iter_chunks(scene)]
        crop_path = write_cloud(Cloud(np.concatenate(parts)), args.out / f"scene_{n}_crop.ply")
        crop_out = args.out / f"scene_{n}_crop.mesh.ply"
        open_ = ["--surface", "open"] if args.method == "csp" else []
        run = run_measured(base + [str(crop_path), *method, *open_, "-o", str(crop_out), "--json", *extra])
        run.pop("stdout")
        untiled = crop_mesh(read_mesh(crop_out), glo, ghi)
        run["chamfer_l1_crop"] = compare_meshes(untiled, truth)["chamfer_l1"]
        run["points"] = int(sum(len(p) for p in parts))
        report["untiled_crop"] = run
        print("untiled", json.dumps(run))
        report["chamfer_ratio_tiled_over_untiled"] = report["tiled"]["chamfer_l1_crop"] / run["chamfer_l1_crop"]
    (args.out / "large_scene.json").write_text(json.dumps(report, indent=1))
    print(json.dumps({k: v for k, v in report.items() if not isinstance(v, dict)}))


if __name__ == "__main__":
    main()
