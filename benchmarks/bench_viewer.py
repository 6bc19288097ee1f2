"""Time to the first frame of `recon view CLOUD MESH` for a large cloud (offscreen).

    python benchmarks/bench_viewer.py [--points 1000000] [--faces-res 256] [--threads 2]

Writes a binary PLY cloud (N points on a torus, with colours) and its mesh (marching cubes
of the torus at --faces-res) into a temporary folder, then runs the same steps as the CLI
in a fresh process: read both files, build the scene, render one frame offscreen. Prints
each stage's wall time. The target is < 5 s to the first frame for 1M points on 2 cores;
--threads limits the numeric libraries' thread pools to mimic that.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from recon.viewer.load import build_scene, load_inputs
from recon.viewer.config import ViewerConfig
t_import = time.perf_counter()
inputs = load_inputs([sys.argv[1], sys.argv[2]])
t_read = time.perf_counter()
scene = build_scene(inputs, off_screen=True, window_size=(1024, 768), config=ViewerConfig(window_size=(1024, 768)))
t_scene = time.perf_counter()
img = scene.image()
t_frame = time.perf_counter()
print(json.dumps({"import_s": t_import - t0, "read_s": t_read - t_import, "scene_s": t_scene - t_read,
                  "render_s": t_frame - t_scene, "first_frame_s": t_frame - t0,
                  "points": len(inputs.cloud.points), "faces": int(inputs.mesh.n_faces),
                  "ink": float((img.astype(int).sum(-1) < 3 * 250).mean())}))
"""


def make_inputs(folder: Path, n_points: int, res: int) -> tuple[Path, Path]:
    import numpy as np

    from recon import Cloud, SignedDistanceGrid
    from recon.io import write_cloud, write_mesh
    from recon.meshing.marching_cubes import extract_mesh

    g = np.random.default_rng(0)
    R, r = 0.6, 0.25
    u, v = g.uniform(0, 2 * np.pi, (2, n_points))
    pts = np.stack([(R + r * np.cos(v)) * np.cos(u), (R + r * np.cos(v)) * np.sin(u), r * np.sin(v)], axis=1)
    pts += g.normal(scale=0.003, size=pts.shape)
    colors = ((pts - pts.min(0)) / np.ptp(pts, 0) * 255).astype(np.uint8)
    cloud_path = folder / "torus.ply"
    write_cloud(Cloud(pts, colors=colors), cloud_path)
    ax = np.linspace(-1, 1, res)
    x, y, z = np.meshgrid(ax, ax, ax, indexing="ij", sparse=True)
    q = np.sqrt(x * x + y * y) - R
    d = (np.sqrt(q * q + z * z) - r).astype(np.float32)
    mesh_path = folder / "torus.mesh.ply"
    write_mesh(extract_mesh(SignedDistanceGrid(d, (-1, -1, -1), 2 / (res - 1))), mesh_path)
    return cloud_path, mesh_path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--faces-res", type=int, default=256, help="marching-cubes grid of the torus mesh")
    ap.add_argument("--threads", type=int, default=2, help="thread pools of numba / BLAS / OpenMP in the child")
    ap.add_argument("--repeat", type=int, default=2, help="runs; the first may include numba or disk caches warming")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cloud_path, mesh_path = make_inputs(Path(tmp), args.points, args.faces_res)
        env = dict(os.environ)
        for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(args.threads)
        for i in range(args.repeat):
            out = subprocess.run([sys.executable, "-c", CHILD, str(cloud_path), str(mesh_path)],
                                 capture_output=True, text=True, env=env, check=True)
            result = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"run {i + 1}: " + ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}"
                                                for k, v in result.items()))


if __name__ == "__main__":
    main()
