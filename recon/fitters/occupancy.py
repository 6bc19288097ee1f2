"""Occupancy: a convolutional occupancy network with a prior trained here, refined per shape.

After Peng et al., "Convolutional Occupancy Networks", ECCV 2020: a local PointNet
encodes each point relative to its grid cell, the point features are averaged onto a
coarse 3D grid, a 3D U-Net turns that grid into a feature volume, and a small MLP
decodes trilinearly interpolated features (and the query position) into an occupancy
probability; the surface is its 0.5 level, meshed watertight by marching cubes.

What is kept from the paper: the encoder (local PointNet with local pooling, scatter-mean
onto a 3D grid), the 3D U-Net, the decoder on interpolated features, the occupancy
(binary cross-entropy) objective and the 0.5 level.

What is changed, and why:
- The prior is small and trained here (``scripts/train_occupancy.py``): 24^3 nodes of 16
  features, a 3-scale U-Net of 12 to 48 channels, trained for 12 minutes on one CPU
  thread on procedural shapes (primitives, unions, differences, plates and rods, with
  sparsity, noise and occlusion holes); no ShapeNet, nothing downloaded. Its weights ship
  in the package (``occupancy_prior.npz``).
- Per-shape refinement (test-time optimisation), which the paper does not do: a prior this
  small and this briefly trained knows rough shapes only. The U-Net's feature volume is
  upsampled to a finer node grid (exactly: trilinear interpolation of trilinear
  interpolation at the midpoints) and optimised with Adam, the decoder fixed, on labels
  the cloud itself gives: probability 0.5 at the points, inside and outside at points
  moved against and along their oriented normals by a spacing or a few noise deviations
  (``recon.points.normals.estimate_normals``; on sparse clouds flipped where the prior
  clearly disagrees), and at random places in the box the side the points' generalized
  winding number gives where it is clear, else the prior's own probability, lightly
  weighted, so regions with no data keep the prior's guess (holes are closed by the prior).
- The field keeps the refined feature volume and the decoder as plain arrays
  (:class:`~recon.fields.occupancy_network.OccupancyField`); meshing and rendering bake it
  onto a grid (coarse to fine near the 0.5 level).
- ``recon fit`` meshes it by a plan from the cloud's measures
  (``recon.choice.occupancy_meshing``): through the points where they are sparse or
  clean (or denoised first where mildly noisy), the field telling the sides; else marched,
  the vertices then snapped onto the data's local planes.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from recon.cloud import Cloud, Normalization
from recon.errors import InputError
from recon.fields.occupancy_network import OccupancyField
from recon.fitters import FitterSpec, register

PRIOR_PATH = Path(__file__).with_name("occupancy_prior.npz")
"The shipped prior's weights (written by scripts/train_occupancy.py)."


@dataclass
class OccupancyConfig:
    iterations: int = 100
    "Refinement steps (Adam on the feature volume); 0 keeps the prior's prediction."
    batch_size: int = 2048
    "Input points per refinement step (as many inside and as many outside labels)."
    learning_rate: float = 0.1
    "Adam step size of the feature volume."
    upsample: int = 0
    "The feature volume is refined on a grid this many times finer than the prior's (1 or 2); 0: 2 when the points are closer than half the prior's node spacing, else 1."
    smooth_weight: float = 1.0
    "Weight of the squared differences of neighbouring nodes' feature changes (keeps sparse clouds from growing bumps between points)."
    label_offset: float = 1.0
    "Inside/outside labels sit this many point spacings against/along the normals (scaled by a random share in 0.25..1)..."
    label_noise: float = 5.0
    "... or this many times the points' noise (recon.points.preprocess.roughness) where that is farther: labels within the noise band are wrong nearly half the time."
    prior_weight: float = 0.1
    "Weight of the term keeping the prediction near the prior's where the winding number is unsure."
    free_samples: int = 20000
    "Places in the box labelled by the winding number of the points (or the prior where it is unsure)."
    winding_points: int = 6000
    "At most this many points (a seeded subsample) give the winding numbers."
    max_seconds: float = 0.0
    "Wall-clock cap of the refinement, 0 for none (a cap makes the result depend on the machine's speed)."
    mesh_resolution: int = 128
    "Nodes along the longest side when the field is marched (recon fit / mesh): about 2.7 per refined feature cell, enough for the shape's pieces and holes (on the bench's noisy clouds 192 cost 1.5 times the time for no gain once the vertices are snapped onto the data)."
    seed: int = 0
    "Random seed (the refinement's batches and label places; the prior is fixed)."
    device: str = "auto"
    "Where the refinement runs: cpu, cuda (torch's GPU), or auto, which is the CPU until the GPU path has been measured (the prior's encoding and the labels are made on the CPU either way)."


_PRIOR_CACHE: dict = {}


def load_prior(path: Path = PRIOR_PATH):
    """(model, Architecture) from the weights file; InputError when it is missing or does not fit."""
    from recon.fitters._occupancy_model import Architecture, build, load_state

    key = str(path)
    if key in _PRIOR_CACHE:
        return _PRIOR_CACHE[key]
    if not path.exists():
        raise InputError(f"the occupancy prior's weights are missing ({path}); reinstall recon or run "
                         "scripts/train_occupancy.py")
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta_json"][()]))
            arch = Architecture(**meta["architecture"])
            model = build(arch)
            load_state(model, {k: data[k] for k in data.files if k != "meta_json"})
    except (KeyError, ValueError, TypeError, OSError) as exc:
        raise InputError(f"{path}: not a usable occupancy prior ({exc})") from None
    model.eval()
    _PRIOR_CACHE[key] = (model, arch, meta)
    return _PRIOR_CACHE[key]


def fit_occupancy(cloud: Cloud, config: OccupancyConfig, *, progress=None, timings=None) -> OccupancyField:
    """Fit ``cloud`` (closed surface) and return its occupancy field (input units)."""
    try:
        import torch
    except ImportError:
        raise InputError("method 'occupancy' needs torch: pip install 'recon[csp]' (or pip install torch)") from None

    from recon.device import cpu_threads
    from recon.seeding import rng as make_rng
    from recon.seeding import seed_torch

    _check_config(config)
    timings = {} if timings is None else timings
    t0 = time.perf_counter()
    device = _refine_device(config.device, torch)
    model, arch, meta = load_prior()
    norm = Normalization.fit_unit_cube(cloud.points)
    u = norm.to_unit(cloud.points)
    threads = torch.get_num_threads()
    # every core: the refined features are the same bits on one thread or two (checked on
    # hammer_4views, kitten_sparse and cat_noisy), and the refinement 10 % faster on two
    torch.set_num_threads(cpu_threads())
    try:
        seed_torch(config.seed)
        with torch.no_grad():
            prior = model.encode(torch.from_numpy(u))
        layers = [(m.weight.detach(), m.bias.detach()) for m in model.decoder]
        normals, spacing = _oriented_normals(cloud, u, prior, layers, arch)
        timings["setup_s"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        features, steps = _refine(prior, layers, arch, u, normals, spacing, config, make_rng(config.seed), progress,
                                  device)
        timings["optimise_s"] = time.perf_counter() - t1
    finally:
        torch.set_num_threads(threads)
    arrays = {"features": features, "enc_box": arch.enc_box, "n_layers": np.int64(len(layers))}
    for i, (w, b) in enumerate(layers):
        arrays[f"w{i}"] = w.numpy().astype(np.float32)
        arrays[f"b{i}"] = b.numpy().astype(np.float32)
    params = asdict(config)
    params.update(method="occupancy", device_used=device, n_points=len(cloud), iterations_used=steps,
                  spacing_median=float(spacing / norm.scale), prior_steps=meta.get("steps"),
                  prior_seed=meta.get("seed"), feature_resolution=int(features.shape[1]))
    return OccupancyField(arrays, normalization=norm, params=params)


def _refine_device(choice: str, torch) -> str:
    """"cpu" or "cuda" for the refinement; InputError when cuda is asked for and torch has no GPU."""
    from recon.device import resolve_device

    resolve_device(choice)  # checks the word
    if choice != "cuda":
        return "cpu"
    if not torch.cuda.is_available():
        raise InputError("--device cuda: torch sees no CUDA GPU (use --device cpu or auto)")
    return "cuda"


def _check_config(config: OccupancyConfig) -> None:
    if config.upsample not in (0, 1, 2):
        raise InputError(f"upsample must be 0, 1 or 2, got {config.upsample}")
    if config.smooth_weight < 0:
        raise InputError(f"smooth_weight must be >= 0, got {config.smooth_weight}")
    if config.iterations < 0 or config.batch_size < 1:
        raise InputError(f"iterations must be >= 0 and batch_size >= 1, got {config.iterations}, {config.batch_size}")
    if not config.learning_rate > 0 or config.prior_weight < 0 or not config.label_offset > 0 or config.label_noise < 0:
        raise InputError("learning_rate and label_offset must be > 0, prior_weight and label_noise >= 0")
    if not 8 <= config.mesh_resolution <= 2048:
        raise InputError(f"mesh_resolution must be in 8..2048, got {config.mesh_resolution}")


def _oriented_normals(cloud: Cloud, u: np.ndarray, prior, layers, arch):
    """(N, 3) float32 outward unit normals of the cube-unit points and their median spacing
    (cube units). recon's estimate, flipped where the prior clearly says the other way if
    the points are sparser than half the prior's node spacing.

    Why only then: the prior is probed a node spacing off each point, and on denser clouds
    that crosses thin parts and bores the prior blurs; there the data's own orientation is
    the better one (each flip checked against the closest truth triangle: on fish 790 of
    790 flips were wrong, on scorpion_noisy 2,692 of 2,694, on abc_00016513 124 of 124),
    while on the sparse ones the prior mends a few (kitten_sparse: 9 flips, all right)."""
    import torch
    from scipy.spatial import cKDTree

    from recon.fitters._occupancy_model import decode_torch
    from recon.points.normals import estimate_normals

    d, _ = cKDTree(u).query(u, k=2, workers=-1)
    spacing = float(np.median(d[:, 1]))
    n = estimate_normals(u.astype(np.float64), surface="closed", spacing=spacing).astype(np.float32)
    cell = float(arch.enc_box[1, 0] - arch.enc_box[0, 0]) / (arch.resolution - 1)
    if 2.0 * spacing < cell:
        return n, spacing
    step = np.float32(2.0 * spacing)
    with torch.no_grad():
        inner = torch.sigmoid(decode_torch(prior, layers, torch.from_numpy(u - step * n), arch.enc_box)).numpy()
        outer = torch.sigmoid(decode_torch(prior, layers, torch.from_numpy(u + step * n), arch.enc_box)).numpy()
    flip = outer - inner > 0.5
    n[flip] *= -1.0
    return n, spacing


def _refine(prior, layers, arch, u, normals, spacing, config: OccupancyConfig, rng, progress, device):
    """Adam on the upsampled feature volume; returns ((C, R', R', R') float32, steps done)."""
    import torch
    import torch.nn.functional as F

    from recon.fitters._occupancy_model import decode_table
    from recon.kernels import occupancy_cpu, occupancy_torch
    from recon.points.preprocess import roughness

    R = arch.resolution
    cell = float(arch.enc_box[1, 0] - arch.enc_box[0, 0]) / (R - 1)
    upsample = config.upsample or (2 if spacing < 0.5 * cell else 1)
    size = (R - 1) * upsample + 1
    start = F.interpolate(prior[None], size=(size,) * 3, mode="trilinear", align_corners=True)[0]
    if config.iterations == 0:
        return start.numpy().astype(np.float32), 0
    C = start.shape[0]
    prior_table = start.reshape(C, -1).T.contiguous()
    box = arch.enc_box
    reach = spacing * max(config.label_offset, config.label_noise * roughness(u.astype(np.float64), spacing))
    # the labels are made on the CPU (the winding numbers are a numba kernel), then moved
    free_all, free_target, free_weight = (x.to(device) for x in _free_labels(
        prior_table, size, layers, box, u, normals, spacing, config, rng))
    prior_table = prior_table.to(device)
    table = prior_table.clone().requires_grad_(True)
    opt = torch.optim.Adam([table], lr=config.learning_rate, fused=True)
    layers = [(w.to(device), b.to(device)) for w, b in layers]
    pts, nrm = torch.from_numpy(u).to(device), torch.from_numpy(normals).to(device)
    N = len(u)
    B = min(config.batch_size, N)
    G = max(B // 2, 256)
    half, ones, zeros = (torch.full((B,), v, device=device) for v in (0.5, 1.0, 0.0))
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    t0 = time.perf_counter()
    steps = 0
    for step in range(1, config.iterations + 1):
        idx = torch.from_numpy(rng.choice(N, B, replace=B > N)).to(device)
        p, n = pts[idx], nrm[idx]
        off = torch.from_numpy((reach * rng.uniform(0.25, 1.0, (B, 1))).astype(np.float32)).to(device)
        pick = torch.from_numpy(rng.choice(len(free_all), G, replace=G > len(free_all))).to(device)
        free, target, weight = free_all[pick], free_target[pick], free_weight[pick]
        queries = torch.cat([p, p - off * n, p + off * n, free])
        z = decode_table(table, size, layers, queries, box)
        loss_surface = bce(z[:B], half)
        loss_inside = bce(z[B: 2 * B], ones)
        loss_outside = bce(z[2 * B: 3 * B], zeros)
        loss_prior = bce(z[3 * B:], target, weight=weight)
        loss = loss_surface + 0.5 * (loss_inside + loss_outside) + loss_prior
        opt.zero_grad()
        loss.backward()
        if config.smooth_weight > 0:
            # the smoothness term's gradient in one kernel pass (as autograd ops it took most of a step)
            scale = config.smooth_weight / ((size - 1) * size * size * C)
            dev = (table.detach() - prior_table).view(size, size, size, C)
            grad = table.grad.view(size, size, size, C)
            if device == "cpu":
                occupancy_cpu.add_smoothness_grad(dev.numpy(), scale, grad.numpy())
            else:
                occupancy_torch.add_smoothness_grad(dev, scale, grad)
        opt.step()
        steps = step
        if progress is not None:
            progress(step, config.iterations, {k: float(v.detach()) for k, v in (
                ("surface", loss_surface), ("inside", loss_inside), ("outside", loss_outside), ("prior", loss_prior))})
        if config.max_seconds > 0 and time.perf_counter() - t0 > config.max_seconds:
            break
    features = table.detach().T.reshape(C, size, size, size).cpu()
    return np.ascontiguousarray(features.numpy(), np.float32), steps


def _free_labels(prior_table, size, layers, box, u, normals, spacing, config: OccupancyConfig, rng):
    """Labels away from the points: (M, 3) float32 places in the box, (M,) targets and (M,)
    weights (tensors). Where the points' winding number is clearly 0 or 1 (the cloud
    encloses the place, or does not), that is the label, at full weight; elsewhere (near
    the points, near holes in the scan) the prior's probability, at ``prior_weight``; in
    between (0.15 to 0.3 from a half) a blend of the two. Why a blend: where a bore was
    scanned sparsely and partly, its winding number reads 0.2 (abc_00016513), short of a
    hard cut at 0.3 from a half, and the prior, which fills bores, decided it."""
    import torch
    from scipy.spatial import cKDTree

    from recon.fitters._occupancy_model import decode_table
    from recon.kernels.occupancy_cpu import winding_numbers
    from recon.points.preprocess import sample_areas

    q = rng.uniform(box[0], box[1], (config.free_samples, 3))
    with torch.no_grad():
        prior = torch.sigmoid(decode_table(prior_table, size, layers, torch.from_numpy(q.astype(np.float32)), box))
    tree = cKDTree(u)
    near, _ = tree.query(q, workers=-1)
    sub = rng.choice(len(u), min(len(u), config.winding_points), replace=False)
    areas = sample_areas(u, normals, tree=tree, only=sub)
    w = np.empty(len(q))
    winding_numbers(q.astype(np.float64), u[sub].astype(np.float64), normals[sub].astype(np.float64),
                    areas * (len(u) / len(sub)), w)
    # trust in the winding number's side grows from none at |w - 0.5| = 0.15 to full at 0.3;
    # the two terms (its side at weight t, the prior at prior_weight (1 - t)) are one
    # cross-entropy, since it is linear in the target
    t = np.clip((np.abs(w - 0.5) - 0.15) / 0.15, 0.0, 1.0) * (near > 2.0 * spacing)
    p_w = config.prior_weight * (1.0 - t)
    weight = t + p_w
    target = np.where(weight > 0, (t * (w > 0.5) + p_w * prior.numpy()) / np.maximum(weight, 1e-12), prior.numpy())
    return (torch.from_numpy(q.astype(np.float32)), torch.from_numpy(target.astype(np.float32)),
            torch.from_numpy(weight))


register(FitterSpec(
    name="occupancy",
    config_cls=OccupancyConfig,
    fit=fit_occupancy,
    description="Occupancy: convolutional occupancy network (prior trained here) refined on the cloud; closed surfaces",
    min_points=50, needs_volume=True, field_kind="occupancy",
))
