"""Viewer timings, offscreen: the first frame of `recon view CLOUD MESH`, and the iso-level
slider's coarse pass on a 256^3 grid field.

    python perf/bench_viewer.py first-frame [--points 1000000] [--faces-res 256] [--repeat 3] [--max-points M]
    python perf/bench_viewer.py iso [--grid 256] [--repeat 7]

first-frame writes a binary PLY cloud (N points on a torus, with colours) and its mesh
(marching cubes of the torus at --faces-res: about 300,000 faces at 256) into a temporary
folder, then runs the same steps as the CLI in a fresh process per run: read both files,
build the scene (first view, point size from the spacing), render one frame offscreen.
iso builds a scene on a signed-distance grid of the torus and times ``set_level(level,
coarse=True)`` plus one rendered frame at levels across the slider's range. Each prints
every run and the median.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from recon.viewer.load import build_scene, load_inputs
from recon.viewer.config import ViewerConfig
t_import = time.perf_counter()
inputs = load_inputs([sys.argv[1], sys.argv[2]])
t_read = time.perf_counter()
config = ViewerConfig(window_size=(1024, 768), max_points=int(sys.argv[3]))
scene = build_scene(inputs, off_screen=True, window_size=(1024, 768), config=config)
t_scene = time.perf_counter()
img = scene.image()
t_frame = time.perf_counter()
print(json.dumps({"import_s": t_import - t0, "read_s": t_read - t_import, "scene_s": t_scene - t_read,
                  "render_s": t_frame - t_scene, "first_frame_s": t_frame - t0,
                  "points": len(inputs.cloud.points), "points_drawn": len(scene.cloud_points),
                  "faces": int(inputs.mesh.n_faces),
                  "point_size_px": scene.point_size,
                  "ink": float((img.astype(int).sum(-1) < 3 * 250).mean())}))
"""

R_MAJOR, R_MINOR = 0.6, 0.25


def torus_grid(res: int):
    import numpy as np

    from recon import SignedDistanceGrid

    ax = np.linspace(-1, 1, res)
    x, y, z = np.meshgrid(ax, ax, ax, indexing="ij", sparse=True)
    q = np.sqrt(x * x + y * y) - R_MAJOR
    d = (np.sqrt(q * q + z * z) - R_MINOR).astype(np.float32)
    return SignedDistanceGrid(d, (-1, -1, -1), 2 / (res - 1))


def make_inputs(folder: Path, n_points: int, res: int) -> tuple[Path, Path]:
    import numpy as np

    from recon import Cloud
    from recon.io import write_cloud, write_mesh
    from recon.meshing.marching_cubes import extract_mesh

    g = np.random.default_rng(0)
    u, v = g.uniform(0, 2 * np.pi, (2, n_points))
    pts = np.stack([(R_MAJOR + R_MINOR * np.cos(v)) * np.cos(u), (R_MAJOR + R_MINOR * np.cos(v)) * np.sin(u),
                    R_MINOR * np.sin(v)], axis=1)
    pts += g.normal(scale=0.003, size=pts.shape)
    colors = ((pts - pts.min(0)) / np.ptp(pts, 0) * 255).astype(np.uint8)
    cloud_path = folder / "torus.ply"
    write_cloud(Cloud(pts, colors=colors), cloud_path)
    mesh_path = folder / "torus.mesh.ply"
    write_mesh(extract_mesh(torus_grid(res)), mesh_path)
    return cloud_path, mesh_path


def first_frame(args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cloud_path, mesh_path = make_inputs(Path(tmp), args.points, args.faces_res)
        env = dict(os.environ)
        for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(args.threads)
        times = []
        for i in range(args.repeat):
            out = subprocess.run([sys.executable, "-c", CHILD, str(cloud_path), str(mesh_path), str(args.max_points)],
                                 capture_output=True, text=True, env=env, check=True)
            result = json.loads(out.stdout.strip().splitlines()[-1])
            times.append(result["first_frame_s"])
            print(f"run {i + 1}: " + ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}"
                                                for k, v in result.items()))
        print(f"first frame: median {statistics.median(times):.2f} s of {len(times)} runs")


def iso(args) -> None:
    import numpy as np

    from recon.viewer.config import ViewerConfig
    from recon.viewer.scene import ViewerScene

    field = torus_grid(args.grid)
    scene = ViewerScene(off_screen=True, window_size=(1024, 768), config=ViewerConfig(window_size=(1024, 768)))
    scene.add_field(field, slices=("z",))
    scene.reset_camera()
    scene.image()
    levels = np.linspace(-0.1, 0.1, args.repeat + 1)[1:]
    mesh_s, frame_s = [], []
    for i, level in enumerate(levels):
        t0 = time.perf_counter()
        scene.set_level(float(level), coarse=True)
        t1 = time.perf_counter()
        scene.image()
        t2 = time.perf_counter()
        mesh_s.append(t1 - t0)
        frame_s.append(t2 - t0)
        print(f"run {i + 1}: level {level:+.3f}, faces {scene.mesh.n_faces:,}, re-mesh {t1 - t0:.3f} s, "
              f"with the frame {t2 - t0:.3f} s")
    print(f"coarse pass on a {args.grid}^3 grid: median re-mesh {statistics.median(mesh_s):.3f} s, "
          f"with the frame {statistics.median(frame_s):.3f} s, of {len(levels)} runs")
    scene.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="what", required=True)
    ff = sub.add_parser("first-frame")
    ff.add_argument("--points", type=int, default=1_000_000)
    ff.add_argument("--faces-res", type=int, default=256, help="marching-cubes grid of the torus mesh")
    ff.add_argument("--threads", type=int, default=2, help="thread pools of numba / BLAS / OpenMP in the child")
    ff.add_argument("--repeat", type=int, default=3)
    ff.add_argument("--max-points", type=int, default=2_000_000, help="the viewer's --max-points (points drawn)")
    it = sub.add_parser("iso")
    it.add_argument("--grid", type=int, default=256)
    it.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    first_frame(args) if args.what == "first-frame" else iso(args)


if __name__ == "__main__":
    main()
