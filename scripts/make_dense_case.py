"""Make a bench case of a dense noisy scan from a ground-truth mesh, for `recon bench --cases`.

    python scripts/make_dense_case.py GT.ply OUT_DIR [--points 2000000] [--noise 0.0015] [--seed 1]

Samples ``--points`` area-uniform points on the mesh (trimesh, seeded), adds isotropic
Gaussian noise of ``--noise`` times the samples' bounding-box diagonal, and writes
OUT_DIR/input.ply, OUT_DIR/gt.ply (a copy of the mesh) and OUT_DIR/meta.json. The bench's
own clouds have 35,000 to 100,000 points; scans of millions are what a dense-cloud path
(``recon.points.preprocess.dense_voxel_means``) is measured on:

    python scripts/make_dense_case.py ../shared/data/bench/armadillo/gt.ply /tmp/dense/armadillo_2m
    recon bench --cases /tmp/dense --methods gridpull,csp --out /tmp/dense-results
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("gt", type=Path, help="ground-truth mesh (.ply)")
    ap.add_argument("out", type=Path, help="case folder to write (created)")
    ap.add_argument("--points", type=int, default=2_000_000)
    ap.add_argument("--noise", type=float, default=0.0015, help="noise deviation, share of the bbox diagonal")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)

    import trimesh

    from recon.cloud import Cloud
    from recon.io import write_cloud

    mesh = trimesh.load(str(args.gt), process=False, force="mesh")
    points, _ = trimesh.sample.sample_surface(mesh, args.points, seed=args.seed)
    diagonal = float(np.linalg.norm(np.ptp(points, axis=0)))
    sigma = args.noise * diagonal
    points = points + np.random.default_rng(args.seed).normal(0.0, sigma, points.shape)
    args.out.mkdir(parents=True, exist_ok=True)
    write_cloud(Cloud(points), args.out / "input.ply")
    shutil.copyfile(args.gt, args.out / "gt.ply")
    meta = {"name": args.out.name, "kind": "closed", "points": int(args.points),
            "input": f"{args.points} area-uniform samples of {args.gt.name} (trimesh, seed {args.seed}), "
                     f"Gaussian noise {args.noise:g} of the diagonal ({sigma:.6g})",
            "source": str(args.gt)}
    (args.out / "meta.json").write_text(json.dumps(meta, indent=1))
    print(f"wrote {args.out}: {args.points:,} points, noise {sigma:.6g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
