"""Train the occupancy fitter's prior on procedural shapes and write its weights.

    .venv/bin/python scripts/train_occupancy.py --out recon/fitters/occupancy_prior.npz \
        --seed 0 --minutes 12

Shapes: 1 to 3 primitives (spheres, boxes, tori, cylinders, capsules, thin plates, thin
rods), each randomly rotated, scaled and placed, combined by union or difference; their
occupancy labels come from the analytic inside test (signed distance < 0). Each shape is
seen as a cloud the way scans come: 300 to 5,000 surface points (log-uniform), Gaussian
noise up to 1 % of the size, and occlusion holes (balls and a cut side removed). No mesh
or data set is read. Runs on one CPU thread, for a wall-clock budget, then evaluates the
IoU on held-out shapes (another seed) and writes plain float32 arrays (no pickle).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


# --------------------------------------------------------------------- analytic shapes
def _rotation(rng) -> np.ndarray:
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def _primitive(rng):
    """A random primitive: a function (N, 3) -> (N,) signed distance (negative inside)."""
    kind = rng.choice(["sphere", "box", "torus", "cylinder", "capsule", "plate", "rod"],
                      p=[0.18, 0.2, 0.14, 0.14, 0.12, 0.11, 0.11])
    rot = _rotation(rng)
    centre = rng.uniform(-0.25, 0.25, 3)

    def local(x):
        return (x - centre) @ rot

    if kind == "sphere":
        r = rng.uniform(0.15, 0.45)
        return lambda x: np.linalg.norm(local(x), axis=1) - r
    if kind in ("box", "plate"):
        b = rng.uniform(0.08, 0.4, 3)
        if kind == "plate":
            b[0] = rng.uniform(0.02, 0.05)
        edge = rng.uniform(0.0, 0.3) * b.min()

        def box(x):
            q = np.abs(local(x)) - (b - edge)
            return np.linalg.norm(np.maximum(q, 0.0), axis=1) + np.minimum(q.max(axis=1), 0.0) - edge
        return box
    if kind == "torus":
        R = rng.uniform(0.15, 0.4)
        r = rng.uniform(0.04, 0.6 * R)

        def torus(x):
            p = local(x)
            return np.hypot(np.hypot(p[:, 0], p[:, 1]) - R, p[:, 2]) - r
        return torus
    if kind in ("cylinder", "rod"):
        r = rng.uniform(0.08, 0.35) if kind == "cylinder" else rng.uniform(0.025, 0.06)
        h = rng.uniform(0.1, 0.45)

        def cylinder(x):
            p = local(x)
            d = np.stack([np.hypot(p[:, 0], p[:, 1]) - r, np.abs(p[:, 2]) - h], axis=1)
            return np.linalg.norm(np.maximum(d, 0.0), axis=1) + np.minimum(d.max(axis=1), 0.0)
        return cylinder
    r = rng.uniform(0.05, 0.25)
    h = rng.uniform(0.05, 0.35)

    def capsule(x):
        p = local(x)
        p[:, 2] -= np.clip(p[:, 2], -h, h)
        return np.linalg.norm(p, axis=1) - r
    return capsule


def random_shape(rng):
    """A union / difference of 1 to 3 primitives: (N, 3) -> (N,) signed distance (a bound)."""
    parts = [_primitive(rng)]
    ops = []
    for _ in range(rng.integers(0, 3)):
        parts.append(_primitive(rng))
        ops.append("difference" if rng.random() < 0.3 else "union")

    def sdf(x):
        d = parts[0](x)
        for op, f in zip(ops, parts[1:]):
            d = np.minimum(d, f(x)) if op == "union" else np.maximum(d, -f(x))
        return d
    return sdf


def surface_points(sdf, rng, n: int) -> np.ndarray:
    """About ``n`` points on the zero level of ``sdf`` (band samples projected along the gradient)."""
    x = rng.uniform(-0.8, 0.8, (100_000, 3))
    x = x[np.abs(sdf(x)) < 0.03]
    eps = 1e-4
    for _ in range(2):
        d = sdf(x)
        g = np.stack([(sdf(x + e) - sdf(x - e)) / (2 * eps) for e in np.eye(3) * eps], axis=1)
        x = x - d[:, None] * g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-9)
    x = x[np.abs(sdf(x)) < 1e-3]
    return x[rng.permutation(len(x))[:n]]


def make_samples(rng, n_queries: int, views: int = 2):
    """``views`` training clouds of one random shape (each with its own sparsity, noise and
    holes) and their labelled queries, in each cloud's fitting cube; [] when the shape is empty.

    Each: (points (N, 3) float32, queries (M, 3) float32, inside (M,) float32)."""
    sdf = random_shape(rng)
    inside_share = np.mean(sdf(rng.uniform(-0.8, 0.8, (4000, 3))) < 0)
    if inside_share < 0.005:
        return []
    dense = surface_points(sdf, rng, 20_000)
    if len(dense) < 600:
        return []
    out = [_view(sdf, dense, rng, n_queries) for _ in range(views)]
    return [s for s in out if s is not None]


def _view(sdf, dense, rng, n_queries: int):
    n = int(np.exp(rng.uniform(np.log(300), np.log(5000))))
    pts = dense[rng.permutation(len(dense))[: 2 * n]]
    size = float(np.ptp(pts, axis=0).max())
    keep = np.ones(len(pts), bool)
    if rng.random() < 0.5:  # holes: balls around surface points removed
        for c in pts[rng.integers(0, len(pts), rng.integers(1, 4))]:
            keep &= np.linalg.norm(pts - c, axis=1) > rng.uniform(0.05, 0.2) * size
    if rng.random() < 0.3:  # one side unseen: a cap cut off
        v = rng.normal(size=3)
        v /= np.linalg.norm(v)
        t = np.quantile(pts @ v, rng.uniform(0.75, 0.95))
        keep &= pts @ v < t
    pts = pts[keep][:n]
    if len(pts) < 200:
        return None
    if rng.random() < 0.6:
        pts = pts + rng.normal(scale=rng.uniform(0.0, 0.01) * size, size=pts.shape)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    centre, scale = (lo + hi) / 2, 1.0 / float((hi - lo).max())
    near = pts[rng.integers(0, len(pts), n_queries // 2)] + rng.normal(
        scale=rng.choice([0.005, 0.02, 0.05], (n_queries // 2, 1)) / scale, size=(n_queries // 2, 3))
    far = rng.uniform(-0.6, 0.6, (n_queries - n_queries // 2, 3)) / scale + centre
    q = np.concatenate([near, far])
    inside = (sdf(q) < 0).astype(np.float32)
    return (((pts - centre) * scale).astype(np.float32), ((q - centre) * scale).astype(np.float32), inside)


# --------------------------------------------------------------------- training
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="the weights file (.npz) to write")
    ap.add_argument("--seed", type=int, default=0, help="seed of the shapes, the initial weights and the batches")
    ap.add_argument("--minutes", type=float, default=12.0, help="wall-clock training budget")
    ap.add_argument("--queries", type=int, default=2048, help="labelled queries per shape")
    ap.add_argument("--lr", type=float, default=1e-3, help="Adam step size")
    args = ap.parse_args(argv)

    import torch

    from recon.fitters._occupancy_model import Architecture, build, state_to_arrays

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    arch = Architecture()
    model = build(arch)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    t0 = time.perf_counter()
    budget = 60.0 * args.minutes
    step, shapes, running = 0, 0, []
    while time.perf_counter() - t0 < budget:
        samples = make_samples(rng, args.queries)
        shapes += bool(samples)
        for sample in samples:
            pts, q, inside = (torch.from_numpy(a) for a in sample)
            frac = (time.perf_counter() - t0) / budget
            for g in opt.param_groups:
                g["lr"] = args.lr * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * min(frac, 1.0))))
            loss = loss_fn(model.decode(model.encode(pts), q), inside)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            running.append(float(loss))
            if step % 100 == 0:
                print(f"step {step}  {time.perf_counter() - t0:6.0f} s  loss {np.mean(running[-100:]):.4f}", flush=True)
    train_s = time.perf_counter() - t0
    iou = evaluate(model, args.seed + 1000, args.queries)
    print(f"trained {step} steps ({shapes} shapes) in {train_s:.0f} s; held-out IoU {iou:.3f}", flush=True)
    arrays = state_to_arrays(model)
    meta = {"architecture": {k: getattr(arch, k) for k in arch.__dataclass_fields__}, "seed": args.seed,
            "steps": step, "train_s": round(train_s, 1), "heldout_iou": round(iou, 4), "threads": 1}
    arrays["meta_json"] = np.array(json.dumps(meta, sort_keys=True))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")


def evaluate(model, seed: int, n_queries: int, shapes: int = 40) -> float:
    """Mean IoU of the prior's occupancy (uniform queries) on held-out random shapes."""
    import torch

    rng = np.random.default_rng(seed)
    ious = []
    with torch.no_grad():
        while len(ious) < shapes:
            samples = make_samples(rng, n_queries, views=1)
            if not samples:
                continue
            pts, q, inside = samples[0]
            far = slice(n_queries // 2, None)
            pred = model.decode(model.encode(torch.from_numpy(pts)), torch.from_numpy(q[far])).numpy() > 0
            truth = inside[far] > 0.5
            union = np.count_nonzero(pred | truth)
            if union:
                ious.append(np.count_nonzero(pred & truth) / union)
    return float(np.mean(ious))


if __name__ == "__main__":
    main()
