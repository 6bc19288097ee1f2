"""Normals of noisy input points: `recon normals` (a fitted CSP field) against Open3D's
``estimate_normals`` (30 nearest neighbours), both compared with the ground truth.

    python perf/bench_normals.py [--only bunny,armadillo] [--iterations N] [--fields DIR] [--out DIR]

For every case with a ground-truth mesh: each input point's true normal is the face normal
of the nearest of 400,000 area-uniform samples of the truth (outward: the truth meshes are
closed and wound outward). Reported per case and method:

- median and mean angle (degrees) between the estimate and the true normal, ignoring
  the sign (Open3D's normals are not oriented);
- for recon: the share of points whose normal points the same way as the truth (> 0),
  i.e. not flipped (closed shapes should be at least 99 %);
- seconds (fit + normals for recon; estimation for Open3D);
- the truth's own local agreement: the share of points whose true normal points the same
  way as the sum of the true normals of its 16 nearest points (itself included). A method
  that pools 16 neighbours' evidence, as plane fits and visibility votes do, cannot beat
  it even with every neighbour's true sign; where features are thinner than the noise it
  falls below 99 %.
- where the truth's label is unclear: a point's true normal is that of its nearest face, so
  where another face lies within the noise (rms distance of the input points to the truth)
  the label follows the noise, not the surface the point was sampled from. Unclear points
  lie on a wall thinner than 4 noise rms (the truth's thickness along the inward normal at
  the point's closest truth point; a Gaussian puts 2.3 % of its samples past 2 deviations,
  such a wall's midplane) or within 2 noise rms of a sharp edge (dihedral over 45 degrees).
  Reported: their share, and recon's not-flipped share on the clear rest.

--fields DIR uses saved fields DIR/<case>.npz (recon fit --method csp --save-field) where
present instead of fitting (fit_seconds is then the load): normals can be compared on the same fields
while the fitter changes.

Writes normals.json and normals.md into --out (default: perf/out/normals).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_CASES = ["bunny", "armadillo", "abc_00011084", "abc_00016513", "abc_00994122"]


def true_normals(gt_path: Path, points: np.ndarray) -> np.ndarray:
    import trimesh
    from scipy.spatial import cKDTree

    gt = trimesh.load(str(gt_path), process=False, force="mesh")
    samples, face = trimesh.sample.sample_surface(gt, 400_000, seed=0)
    _, i = cKDTree(samples).query(points, workers=-1)
    return np.asarray(gt.face_normals)[face[i]]


def truth_local_agreement(points: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Share of points whose true normal agrees in sign with the sum of the true normals of
    their k nearest points (themselves included)."""
    from scipy.spatial import cKDTree

    _, idx = cKDTree(points).query(points, k, workers=-1)
    return float(np.mean(np.einsum("ikj,ij->i", truth[idx], truth) > 0))


def truth_surroundings(gt_path: Path, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """What lies around each point's closest truth point (its foot), in input units:
    (thickness (N,): the truth's thickness along the inward normal at the foot, inf where the
    ray leaves the mesh; edge_distance (N,): from the foot to the nearest sharp edge of the
    truth (dihedral angle over 45 degrees; edges sampled every tenth of the noise, inf when
    there is none); noise: rms distance of the points to the truth)."""
    import open3d as o3d
    import trimesh
    from scipy.spatial import cKDTree

    mesh = o3d.io.read_triangle_mesh(str(gt_path))
    mesh.compute_triangle_normals()
    face_normals = np.asarray(mesh.triangle_normals)
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(mesh))
    near = scene.compute_closest_points(o3d.core.Tensor(points.astype(np.float32)))
    foot = near["points"].numpy().astype(np.float64)
    inward = -face_normals[near["primitive_ids"].numpy()]
    eps = 1e-6 * float(np.linalg.norm(np.ptp(points, axis=0)))  # start off the point's own face
    rays = np.hstack([foot + eps * inward, inward]).astype(np.float32)
    thickness = scene.cast_rays(o3d.core.Tensor(rays))["t_hit"].numpy().astype(np.float64) + eps
    noise = float(np.sqrt(np.mean(np.sum((points - foot) ** 2, axis=1))))

    gt = trimesh.load(str(gt_path), process=False, force="mesh")
    gt.merge_vertices()
    sharp = gt.face_adjacency_edges[gt.face_adjacency_angles > np.radians(SHARP_EDGE_DEGREES)]
    if len(sharp) == 0:
        return thickness, np.full(len(points), np.inf), noise
    a, b = gt.vertices[sharp[:, 0]], gt.vertices[sharp[:, 1]]
    steps = np.maximum(np.ceil(np.linalg.norm(b - a, axis=1) / (0.1 * noise)).astype(np.int64), 1)
    which = np.repeat(np.arange(len(a)), steps + 1)
    u = np.concatenate([np.linspace(0.0, 1.0, k + 1) for k in steps])
    samples = a[which] + u[:, None] * (b - a)[which]
    edge_distance, _ = cKDTree(samples).query(foot, workers=-1)
    return thickness, edge_distance, noise


THIN_WALL_NOISES = 4.0
"A wall thinner than this many noise rms is thin (2.3 % of a Gaussian lies past 2 deviations, its midplane)."
SHARP_EDGE_DEGREES = 45.0
EDGE_NOISES = 2.0
"A point whose foot is within this many noise rms of a sharp edge is near it."


def angles(est: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unsigned angle in degrees, signed cosine) per point."""
    e = est / np.maximum(np.linalg.norm(est, axis=1, keepdims=True), 1e-12)
    cos = np.einsum("ij,ij->i", e, truth)
    return np.degrees(np.arccos(np.clip(np.abs(cos), 0.0, 1.0))), cos


def run_case(case_dir: Path, iterations: int | None, fields: Path | None = None) -> dict:
    import open3d as o3d

    from recon.fields.closest_point_geometry import point_normals
    from recon.fitters import fit
    from recon.io import read_cloud

    cloud = read_cloud(case_dir / "input.ply")
    truth = true_normals(case_dir / "gt.ply", cloud.points)
    out = {"case": case_dir.name, "points": len(cloud)}

    t0 = time.perf_counter()
    saved = None if fields is None else fields / f"{case_dir.name}.npz"
    if saved is not None and saved.is_file():
        from recon.fields import load_field

        field = load_field(saved)
        out["field"] = str(saved)
    else:
        overrides = {} if iterations is None else {"iterations": iterations}
        field = fit(cloud, "csp", **overrides)
    t_fit = time.perf_counter() - t0
    n, _ = point_normals(field, cloud.points)
    t_all = time.perf_counter() - t0
    ang, cos = angles(n, truth)
    out["truth_local_agreement_16"] = truth_local_agreement(cloud.points, truth, 16)
    thickness, edge_distance, noise = truth_surroundings(case_dir / "gt.ply", cloud.points)
    thin = thickness < THIN_WALL_NOISES * noise
    near_edge = edge_distance < EDGE_NOISES * noise
    clear = ~thin & ~near_edge
    out["noise_rms"] = noise
    out["thin_wall_share"] = float(thin.mean())
    out["near_edge_share"] = float(near_edge.mean())
    out["unclear_share"] = float(1.0 - clear.mean())
    out["recon"] = {"median_deg": float(np.median(ang)), "mean_deg": float(ang.mean()),
                    "not_flipped": float((cos > 0).mean()),
                    "not_flipped_clear": float((cos[clear] > 0).mean()) if clear.any() else None,
                    "seconds": t_all, "fit_seconds": t_fit,
                    "surface": field.params.get("surface_decided")}

    t0 = time.perf_counter()
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(cloud.points))
    pcd.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(knn=30))
    t_o3d = time.perf_counter() - t0
    ang, _ = angles(np.asarray(pcd.normals), truth)
    out["open3d_knn30"] = {"median_deg": float(np.median(ang)), "mean_deg": float(ang.mean()), "seconds": t_o3d}
    return out


def _percent(x) -> str:
    return "-" if x is None else f"{100 * x:.2f} %"


def markdown(rows: list[dict], load: tuple) -> str:
    lines = [
        "# Normals of the input points: recon normals (CSP) vs Open3D estimate_normals (30 NN)",
        "",
        f"Load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
        "",
        (f"Unclear points: on a wall thinner than {THIN_WALL_NOISES:g} noise rms, or within {EDGE_NOISES:g} noise rms "
        f"of a sharp edge (over {SHARP_EDGE_DEGREES:g} degrees) of the truth; the rest are clear."),
        "",
        "| case | points | recon median ° | recon mean ° | recon not flipped | truth's agreement over 16 | unclear points (thin walls, near edges) | recon not flipped on clear points | recon s | Open3D median ° | Open3D mean ° | Open3D s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        a, b = r["recon"], r["open3d_knn30"]
        lines.append(f"| {r['case']} | {r['points']:,} | {a['median_deg']:.2f} | {a['mean_deg']:.2f} | "
                     f"{100 * a['not_flipped']:.2f} % | {100 * r['truth_local_agreement_16']:.2f} % | "
                     f"{100 * r['unclear_share']:.1f} % ({100 * r['thin_wall_share']:.1f} %, "
                     f"{100 * r['near_edge_share']:.1f} %) | {_percent(a['not_flipped_clear'])} | "
                     f"{a['seconds']:.1f} | {b['median_deg']:.2f} | "
                     f"{b['mean_deg']:.2f} | {b['seconds']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    from recon.bench.cases import default_cases_dir

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=Path, default=None, help="benchmark folder (default: the shared one)")
    ap.add_argument("--only", default=",".join(DEFAULT_CASES), help="comma-separated case names")
    ap.add_argument("--iterations", type=int, default=None, help="csp training steps (default: its default)")
    ap.add_argument("--fields", type=Path, default=None, help="folder of saved fields <case>.npz to use instead of fitting")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out" / "normals")
    args = ap.parse_args(argv)
    root = args.cases or default_cases_dir()
    load = os.getloadavg()
    rows = []
    for name in [c for c in args.only.split(",") if c]:
        case = root / name
        if not (case / "gt.ply").is_file():
            print(f"skip {name}: no {case / 'gt.ply'}", file=sys.stderr)
            continue
        r = run_case(case, args.iterations, args.fields)
        rows.append(r)
        print(json.dumps(r), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "normals.json").write_text(json.dumps({"load_average": load, "rows": rows}, indent=1))
    (args.out / "normals.md").write_text(markdown(rows, load))
    print(markdown(rows, load))
    return 0


if __name__ == "__main__":
    sys.exit(main())
