"""A closest-surface-point field backed by a small network (what ``--method csp`` fits).

The network maps a point x (fitting-cube units) to an offset v(x); the closest surface
point is C(x) = x + v(x). It is a multi-resolution grid encoding (learnable feature
tables, one per level, trilinearly interpolated; coarse levels are dense arrays, fine
levels hashed into a fixed-size table) followed by a small ReLU MLP.

The weights are plain arrays, so the field is saved without pickle. On the CPU it is
evaluated by one numba kernel (``recon.kernels.hashgrid_cpu.network``: encoding and MLP
per point, no torch needed); on a CUDA GPU by torch. :func:`forward_numpy` is the plain
NumPy reference.

Shapes: ``tables`` (L, T, F) float32; ``resolutions`` (L,) int64 (cells across the
encoding box per level); ``dense`` (L,) bool (level indexed without hashing);
``enc_box`` (2, 3) float64, the encoding box in cube units; MLP layers ``w{i}`` (out, in)
float32 and ``b{i}`` (out,) float32.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recon.cloud import Normalization
from recon.errors import InputError
from recon.fields.base import save_field
from recon.geometry import check_points

# Primes of the spatial hash (Teschner et al. 2003, as used by Instant-NGP); the first is 1
# so that neighbouring x cells stay neighbours in the table.
HASH_PRIMES = (1, 2654435761, 805459861)
SURFACE_TOLERANCE_SPACINGS = 0.5
"A fitted surface's tolerance (see ClosestPointField.surface_tolerance), in point spacings."
EVAL_BATCH = 1 << 17
"Points per network evaluation batch (bounds the scratch memory)."


def level_indices(ijk, res: int, dense: bool, table_size: int, xp=np):
    """(..., 3) integer node coordinates of one level -> (...,) int64 table rows."""
    if dense:
        r1 = res + 1
        return ijk[..., 0] + r1 * (ijk[..., 1] + r1 * ijk[..., 2])
    h = ijk[..., 0] * HASH_PRIMES[0]
    h = h ^ (ijk[..., 1] * HASH_PRIMES[1])
    h = h ^ (ijk[..., 2] * HASH_PRIMES[2])
    return h % table_size


CORNERS = np.array([[(c >> 2) & 1, (c >> 1) & 1, c & 1] for c in range(8)], dtype=np.int64)


def forward_numpy(arrays: dict, x: np.ndarray) -> np.ndarray:
    """Reference forward pass: (N, 3) cube-unit points -> (N, 3) float32 offsets v (cube units)."""
    tables = arrays["tables"]
    res = arrays["resolutions"]
    dense = arrays["dense"]
    box = arrays["enc_box"]
    s = np.clip((x - box[0]) / (box[1] - box[0]), 0.0, 1.0)
    feats = []
    for lvl in range(len(res)):
        r = int(res[lvl])
        pos = s * r
        i0 = np.minimum(np.floor(pos).astype(np.int64), r - 1)
        w = (pos - i0).astype(np.float32)
        acc = np.zeros((len(x), tables.shape[2]), np.float32)
        for c in CORNERS:
            idx = level_indices(i0 + c, r, bool(dense[lvl]), tables.shape[1])
            wc = np.prod(np.where(c == 1, w, 1.0 - w), axis=1)
            acc += wc[:, None] * tables[lvl][idx]
        feats.append(acc)
    h = np.concatenate(feats + [(2.0 * s - 1.0).astype(np.float32)], axis=1)
    n_layers = int(arrays["n_layers"])
    for i in range(n_layers):
        h = h @ arrays[f"w{i}"].T + arrays[f"b{i}"]
        if i < n_layers - 1:
            h = np.maximum(h, 0.0)
    return (h * float(arrays["out_scale"])).astype(np.float32)


def torch_encode_indices(t: dict, x):
    """Table rows (N, L * 8) int64 (rows of the flattened (L * T, F) table) and trilinear
    weights (N, L * 8) of the corners around each (N, 3) cube-unit point. Dense levels and
    hashed levels are computed as two vectorised groups."""
    import torch

    box = t["enc_box"]
    s = torch.clamp((x - box[0]) / (box[1] - box[0]), 0.0, 1.0)
    n = x.shape[0]
    rows_out, w_out = [], []
    for group in t["groups"]:
        res = group["res_f"]  # (G,)
        G = res.shape[0]
        pos = s.unsqueeze(1) * res.unsqueeze(1)  # (N, G, 3)
        i0 = torch.minimum(torch.floor(pos), (res - 1).unsqueeze(1))
        w = pos - i0
        i0 = i0.long()
        wa = [torch.stack([1.0 - w[..., a], w[..., a]], dim=-1) for a in range(3)]
        w_out.append((wa[0][..., :, None, None] * wa[1][..., None, :, None]
                       * wa[2][..., None, None, :]).reshape(n, G * 8))
        if group["dense"]:
            r1 = group["res_i"] + 1
            cx = torch.stack([i0[..., 0], i0[..., 0] + 1], dim=-1) + group["base"]
            cy = torch.stack([i0[..., 1], i0[..., 1] + 1], dim=-1) * r1.unsqueeze(-1)
            cz = torch.stack([i0[..., 2], i0[..., 2] + 1], dim=-1) * (r1 * r1).unsqueeze(-1)
            rows = cx[..., :, None, None] + cy[..., None, :, None] + cz[..., None, None, :]
        else:
            cx = torch.stack([i0[..., 0], i0[..., 0] + 1], dim=-1) * HASH_PRIMES[0]
            cy = torch.stack([i0[..., 1], i0[..., 1] + 1], dim=-1) * HASH_PRIMES[1]
            cz = torch.stack([i0[..., 2], i0[..., 2] + 1], dim=-1) * HASH_PRIMES[2]
            rows = ((cx[..., :, None, None] ^ cy[..., None, :, None] ^ cz[..., None, None, :]) % t["T"]
                    + group["base"].view(1, G, 1, 1, 1))
        rows_out.append(rows.reshape(n, G * 8))
    rows = torch.cat(rows_out, dim=1) if len(rows_out) > 1 else rows_out[0]
    weights = torch.cat(w_out, dim=1) if len(w_out) > 1 else w_out[0]
    return rows, weights, s


_GATHER = None


def _gather_function():
    """A torch autograd function: trilinear feature gather whose backward scatters with
    ``index_add_`` (much faster on the CPU than the generic indexing backward)."""
    global _GATHER
    if _GATHER is None:
        import torch

        class Gather(torch.autograd.Function):
            @staticmethod
            def forward(ctx, flat, rows, weights):
                n, lk = rows.shape
                F = flat.shape[1]
                f = flat.index_select(0, rows.reshape(-1)).reshape(n, lk // 8, 8, F)
                ctx.save_for_backward(rows, weights)
                ctx.table_shape = flat.shape
                return (f * weights.reshape(n, lk // 8, 8, 1)).sum(dim=2)  # (N, L, F)

            @staticmethod
            def backward(ctx, grad):
                rows, weights = ctx.saved_tensors
                n, lk = rows.shape
                F = grad.shape[-1]
                g = (grad.unsqueeze(2) * weights.reshape(n, lk // 8, 8, 1)).reshape(-1, F)
                out = torch.zeros(ctx.table_shape, dtype=grad.dtype, device=grad.device)
                out.index_add_(0, rows.reshape(-1), g)
                return out, None, None

        _GATHER = Gather.apply
    return _GATHER


_ENCODE = None


def _encode_function():
    """A torch autograd function over the numba CPU kernels of the encoding
    (``recon.kernels.hashgrid_cpu``): features and coordinates (N, L * F + 3) of (N, 3)
    points. Its backward gives the tables' gradient (into ``t["table_grad"]``, a NumPy
    array the caller clears, when ``t`` has one; else as a new tensor) and none for the
    points (the fit never differentiates with respect to them)."""
    global _ENCODE
    if _ENCODE is None:
        import torch

        from recon.kernels.hashgrid_cpu import encode, encode_backward

        class Encode(torch.autograd.Function):
            @staticmethod
            def forward(ctx, tables, x, t):
                xn = x.detach().numpy()
                out = np.empty((len(xn), tables.shape[0] * tables.shape[2] + 3), np.float32)
                encode(xn, tables.detach().numpy(), t["res_np"], t["dense_np"], t["lo_np"], t["ext_np"], out)
                ctx.x = xn
                ctx.t = t
                return torch.from_numpy(out)

            @staticmethod
            def backward(ctx, grad):
                t = ctx.t
                sink = t.get("table_grad")
                own = sink is None
                if own:
                    sink = np.zeros(tuple(t["tables"].shape), np.float32)
                g = np.ascontiguousarray(grad.detach().numpy(), dtype=np.float32)
                encode_backward(ctx.x, g, t["res_np"], t["dense_np"], t["lo_np"], t["ext_np"], sink)
                return (torch.from_numpy(sink) if own else None), None, None

        _ENCODE = Encode.apply
    return _ENCODE


def encode_torch(t: dict, x):
    """The encoding in torch ops, on any device (the GPU's path): (N, 3) cube-unit points ->
    (N, L * F + 3) features and box coordinates, the same numbers as the numba kernel
    ``recon.kernels.hashgrid_cpu.encode``. Differentiable with respect to the tables."""
    import torch

    with torch.no_grad():
        rows, weights, s = torch_encode_indices(t, x)
    tables = t["tables"]
    L, T, F = tables.shape
    feats = _gather_function()(tables.reshape(L * T, F), rows, weights).reshape(x.shape[0], L * F)
    return torch.cat([feats, 2.0 * s - 1.0], dim=1)


def torch_forward(t: dict, x):
    """The same pass as :func:`forward_numpy` in torch. ``t``: the arrays as tensors (see
    :func:`to_torch`); x (N, 3) float32 tensor -> (N, 3) offsets (cube units). On the CPU
    the encoding runs in numba kernels, on a GPU in torch; gradients flow to the weights
    and tables, not to x."""
    import torch

    if x.device.type == "cpu":
        x = x.detach().contiguous()
        if torch.is_grad_enabled() and t["tables"].requires_grad:
            h = _encode_function()(t["tables"], x, t)
        else:
            from recon.kernels.hashgrid_cpu import encode

            out = np.empty((len(x), t["tables"].shape[0] * t["tables"].shape[2] + 3), np.float32)
            encode(x.numpy(), t["tables"].detach().numpy(), t["res_np"], t["dense_np"], t["lo_np"], t["ext_np"], out)
            h = torch.from_numpy(out)
    else:
        h = encode_torch(t, x)
    n_layers = len(t["w"])
    for i in range(n_layers):
        h = torch.nn.functional.linear(h, t["w"][i], t["b"][i])
        if i < n_layers - 1:
            h = torch.relu(h)
    return h * t["out_scale"]


def to_torch(arrays: dict, device: str, *, requires_grad: bool = False) -> dict:
    """Tensors for :func:`torch_forward` from the plain arrays."""
    import torch

    def T(a):
        out = torch.as_tensor(np.asarray(a, np.float32), device=device).clone()
        out.requires_grad_(requires_grad)
        return out

    n_layers = int(arrays["n_layers"])
    return {
        "tables": T(arrays["tables"]),
        "enc_box": torch.as_tensor(np.asarray(arrays["enc_box"], np.float32), device=device),
        "groups": _level_groups(arrays, device),
        "T": int(np.shape(arrays["tables"])[1]),
        "w": [T(arrays[f"w{i}"]) for i in range(n_layers)],
        "b": [T(arrays[f"b{i}"]) for i in range(n_layers)],
        "out_scale": float(arrays["out_scale"]),
        # the CPU kernels' view of the layout
        "res_np": np.ascontiguousarray(arrays["resolutions"], np.int64),
        "dense_np": np.ascontiguousarray(arrays["dense"], np.bool_),
        "lo_np": np.ascontiguousarray(np.asarray(arrays["enc_box"], np.float64)[0]),
        "ext_np": np.ascontiguousarray(np.ptp(np.asarray(arrays["enc_box"], np.float64), axis=0)),
    }


def _level_groups(arrays: dict, device: str) -> list[dict]:
    """Levels split into the dense group and the hashed group, with the flattened table's
    row offset of each level (``base``; dense levels fold it into their x index)."""
    import torch

    res = np.asarray(arrays["resolutions"], np.int64)
    dense = np.asarray(arrays["dense"], bool)
    T = int(np.shape(arrays["tables"])[1])
    groups = []
    for flag in (True, False):
        lv = np.nonzero(dense == flag)[0]
        if len(lv) == 0:
            continue
        groups.append({
            "dense": flag,
            "levels": lv,
            "res_f": torch.as_tensor(res[lv].astype(np.float32), device=device),
            "res_i": torch.as_tensor(res[lv], device=device),
            "base": torch.as_tensor(lv * T, device=device).view(1, len(lv), 1),
        })
    order = np.concatenate([g["levels"] for g in groups])
    if not np.array_equal(order, np.arange(len(res))):
        raise InputError("closest-point field: dense levels must come before hashed ones")
    return groups


def from_torch(t: dict, template: dict) -> dict:
    """Plain float32 arrays from trained tensors (the layout of ``template``)."""
    out = dict(template)
    out["tables"] = t["tables"].detach().cpu().numpy().astype(np.float32)
    for i, (w, b) in enumerate(zip(t["w"], t["b"])):
        out[f"w{i}"] = w.detach().cpu().numpy().astype(np.float32)
        out[f"b{i}"] = b.detach().cpu().numpy().astype(np.float32)
    return out


def cpu_thread_count() -> int:
    """Threads for a fit or an evaluation on the CPU. OpenMP threads spin while they wait,
    so on a machine whose cores are busy with other work, more threads than free cores make
    each step many times slower; the count is the number of cores this process may use
    minus the 1-minute load average (at least 1), or ``RECON_TORCH_THREADS`` when set."""
    import os

    env = os.environ.get("RECON_TORCH_THREADS")
    if env:
        return max(1, int(env))
    try:
        ncpu = len(os.sched_getaffinity(0))
    except AttributeError:
        ncpu = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = 0.0
    return max(1, min(ncpu, int(ncpu - load + 0.5)))


class torch_threads:
    """Context manager: numba's and (when installed) torch's CPU thread counts for a fit or
    an evaluation (:func:`cpu_thread_count`). ``torch_only_one``: torch gets a single
    thread (the fit runs its heavy parts in numba; two OpenMP pools that take turns on the
    same cores spin against each other)."""

    def __init__(self, *, torch_only_one: bool = False):
        self.torch_only_one = torch_only_one

    def __enter__(self):
        import numba

        n = cpu_thread_count()
        self.before_numba = numba.get_num_threads()
        numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))
        self.torch = _torch_or_none()
        if self.torch is not None:
            self.before = self.torch.get_num_threads()
            self.torch.set_num_threads(1 if self.torch_only_one else n)
        return n

    def __exit__(self, *exc):
        import numba

        if self.torch is not None:
            self.torch.set_num_threads(self.before)
        numba.set_num_threads(self.before_numba)
        return False


def _torch_or_none():
    try:
        import torch
    except ImportError:
        return None
    return torch


class ClosestPointField:
    """Closest surface points from a network; an unsigned distance field.

    arrays        : the network's weights and layout (see the module docstring)
    normalization : input units <-> fitting cube (uniform scale)
    box           : (2, 3) float64 bounds of the field in input units
    params        : fitting parameters (JSON); ``params["surface"]`` is "open" or "closed"
                    when the fitter decided it

    ``value``: distance |x - C(x)|; ``gradient``: the unit direction (x - C(x)) / |x - C(x)|
    (away from the surface, the gradient of the distance); ``closest_point``: C(x).
    """

    def __init__(self, arrays: dict, *, normalization: Normalization, box=None, kind: str = "unsigned",
                 level: float = 0.0, params: dict | None = None, device: str = "auto"):
        if kind != "unsigned" or level != 0.0:
            raise InputError(f"a closest-point field is unsigned at level 0, got kind={kind!r} level={level}")
        if normalization is None:
            raise InputError("a closest-point field needs its normalisation (input units <-> fitting cube)")
        required = ("tables", "resolutions", "dense", "enc_box", "n_layers", "out_scale")
        missing = [k for k in required if k not in arrays]
        if missing:
            raise InputError(f"closest-point field arrays lack {', '.join(missing)}")
        self.arrays = {k: np.asarray(v) for k, v in arrays.items()}
        self.normalization = normalization
        if box is None:
            box = normalization.to_world(np.asarray(self.arrays["enc_box"], np.float64))
        self.box = np.asarray(box, np.float64).reshape(2, 3)
        self.kind = "unsigned"
        self.level = 0.0
        self.params = dict(params or {})
        self.device = device
        self._tensors = None
        self._packed = None
        self._data = None

    # ------------------------------------------------------------------ evaluation
    @property
    def bounds(self) -> np.ndarray:
        return self.box.copy()

    @property
    def keeps_data(self) -> bool:
        """Whether the field keeps the data it was fitted to (dense fits; see onto_data)."""
        return "data_points" in self.arrays

    def onto_data(self, x) -> np.ndarray:
        """(N, 3) points near the surface (input units) -> (N, 3) float64: their feet on the
        blended local planes of the data the field was fitted to, the very points its
        training targets were (``recon.points.plane_targets.make_targets``); x itself when the field
        keeps no data (fitted to a sparse cloud, or saved before it kept any).

        The network reproduces its targets only to a share of a point spacing; meshes end
        on the data's planes instead (on the bench's fish, Chamfer-L1 1.56e-4 -> 6.0e-5)."""
        p = check_points(x)
        if "data_points" not in self.arrays:
            return p
        from scipy.spatial import cKDTree

        from recon.points.plane_targets import TARGET_RADIUS_SPACINGS, make_targets

        if self._data is None:
            pts = self.arrays["data_points"].astype(np.float64)
            spacing = self.arrays["data_spacing"].astype(np.float64)
            self._data = (pts, self.arrays["data_normals"].astype(np.float64), spacing, cKDTree(pts))
        pts, normals, spacing, tree = self._data
        feet = make_targets(self.normalization.to_unit(p).astype(np.float64), pts, normals,
                            TARGET_RADIUS_SPACINGS * spacing, spacing, tree,
                            neighbors=int(self.params.get("target_neighbors", 4)))
        return self.normalization.to_world(feet)

    @property
    def surface_tolerance(self) -> float:
        """How far from its points the field's surface may sit, input units: half
        the median point spacing it was fitted to (0 when unknown). A fitted closest point
        of a point on the surface misses it by a share of a spacing, so renderers take a
        ray that comes this close as a hit (a pixel-sized threshold alone lets rays slip
        through the surface)."""
        return SURFACE_TOLERANCE_SPACINGS * float(self.params.get("spacing_median", 0.0) or 0.0)

    @property
    def surface(self) -> str:
        """"open", "closed" or "unknown" (as decided or forced when fitted)."""
        return str(self.params.get("surface_decided", "unknown"))

    def supported(self, x) -> np.ndarray:
        """(N, 3) -> (N,) bool: whether x lies near the points the field was fitted to.

        Far from the data the network was never asked for closest points and may invent
        a surface; meshing and the inside/outside labelling ignore such places. Fields
        without a support grid support everything."""
        p = check_points(x)
        sup = self.arrays.get("support")
        if sup is None:
            return np.ones(len(p), bool)
        origin = np.asarray(self.arrays["support_origin"], np.float64)
        h = float(self.arrays["support_h"])
        ijk = np.floor((p - origin) / h).astype(np.int64)
        inside = np.all((ijk >= 0) & (ijk < np.array(sup.shape)), axis=1)
        out = np.zeros(len(p), bool)
        i = ijk[inside]
        out[inside] = sup[i[:, 0], i[:, 1], i[:, 2]].astype(bool)
        return out

    def _eval_device(self) -> str:
        if self.device == "cpu":
            return "cpu"
        torch = _torch_or_none()
        if torch is None:
            return "numpy"
        if self.device in ("auto", "cuda") and torch.cuda.is_available():
            return "cuda"
        return "cpu"

    def offsets_unit(self, u: np.ndarray) -> np.ndarray:
        """(N, 3) cube-unit points -> (N, 3) float64 offsets v (cube units), in batches."""
        u = np.ascontiguousarray(u, np.float32)
        out = np.empty((len(u), 3), np.float64)
        dev = self._eval_device()
        if dev in ("numpy", "cpu"):
            from recon.kernels.hashgrid_cpu import network

            k = self._cpu_network()
            res32 = np.empty((min(len(u), EVAL_BATCH), 3), np.float32)
            with torch_threads():
                for s in range(0, len(u), EVAL_BATCH):
                    xb = u[s: s + EVAL_BATCH]
                    network(xb, k["tables"], k["res"], k["dense"], k["lo"], k["ext"], k["weights"], k["biases"],
                            k["widths"], k["out_scale"], res32[: len(xb)])
                    out[s: s + len(xb)] = res32[: len(xb)]
            return out
        import torch

        if self._tensors is None or self._tensors[0] != dev:
            self._tensors = (dev, to_torch(self.arrays, dev))
        t = self._tensors[1]
        with torch.no_grad(), torch_threads():
            for s in range(0, len(u), EVAL_BATCH):
                xb = torch.as_tensor(u[s: s + EVAL_BATCH], device=dev)
                out[s: s + EVAL_BATCH] = torch_forward(t, xb).cpu().numpy()
        return out

    def _cpu_network(self) -> dict:
        """The arrays of the numba evaluation kernel (``recon.kernels.hashgrid_cpu.network``)."""
        if self._packed is None:
            a = self.arrays
            n_layers = int(a["n_layers"])
            ws = [np.asarray(a[f"w{i}"], np.float32) for i in range(n_layers)]
            widths = np.array([ws[0].shape[1]] + [w.shape[0] for w in ws], np.int64)
            W = int(widths.max())
            weights = np.zeros((n_layers, W, W), np.float32)
            biases = np.zeros((n_layers, W), np.float32)
            for i, w in enumerate(ws):
                weights[i, : w.shape[1], : w.shape[0]] = w.T
                biases[i, : w.shape[0]] = np.asarray(a[f"b{i}"], np.float32)
            box = np.asarray(a["enc_box"], np.float64)
            self._packed = {
                "tables": np.ascontiguousarray(a["tables"], np.float32),
                "res": np.ascontiguousarray(a["resolutions"], np.int64),
                "dense": np.ascontiguousarray(a["dense"], np.bool_),
                "lo": box[0].copy(), "ext": box[1] - box[0],
                "weights": weights, "biases": biases, "widths": widths,
                "out_scale": np.float32(a["out_scale"]),
            }
        return self._packed

    def closest_point(self, x) -> np.ndarray:
        """(N, 3) -> (N, 3) float64 closest surface points, input units."""
        p = check_points(x)
        n = self.normalization
        u = (p - n.center) * n.scale
        c = u + self.offsets_unit(u)
        return c / n.scale + n.center

    def value(self, x) -> np.ndarray:
        """(N, 3) -> (N,) float32 distance to the surface, input units."""
        p = check_points(x)
        return np.linalg.norm(p - self.closest_point(p), axis=1).astype(np.float32)

    def gradient(self, x) -> np.ndarray:
        """(N, 3) -> (N, 3) float32 unit directions away from the closest point (0 on the surface)."""
        p = check_points(x)
        v = p - self.closest_point(p)
        n = np.linalg.norm(v, axis=1, keepdims=True)
        return (v / np.where(n > 0, n, 1.0)).astype(np.float32)

    # ------------------------------------------------------------------ baking, files
    def bake(self, resolution: int = 256, *, bounds=None, sparse: bool = True):
        """Sample the offsets on a grid with ``resolution`` nodes along the longest side of
        ``bounds`` (default: the field's), which the numba/CUDA sphere-tracing kernels read
        directly: a :class:`~recon.fields.sparse_closest_point_grid.SparseClosestPointGrid` (bricks
        of offsets near the surface only), or with ``sparse=False`` a dense
        :class:`~recon.fields.closest_point_grid.ClosestPointGrid` (offsets at every node)."""
        from recon.fields.closest_point_grid import ClosestPointGrid

        if sparse:
            from recon.fields.sparse_closest_point_grid import bake_sparse

            return bake_sparse(self, resolution, bounds=self.box if bounds is None else bounds)
        if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) or resolution < 2:
            raise InputError(f"bake resolution must be an integer >= 2, got {resolution!r}")
        box = self.box if bounds is None else np.asarray(bounds, np.float64).reshape(2, 3)
        h = float((box[1] - box[0]).max()) / (int(resolution) - 1)
        shape = np.maximum(np.ceil((box[1] - box[0]) / h - 1e-9).astype(np.int64) + 1, 2)
        offsets = np.empty(tuple(shape) + (3,), np.float32)
        iy, iz = np.arange(shape[1]), np.arange(shape[2])
        for i in range(shape[0]):
            gy, gz = np.meshgrid(iy, iz, indexing="ij")
            pts = np.stack([np.full(gy.size, box[0][0] + i * h), box[0][1] + gy.ravel() * h,
                            box[0][2] + gz.ravel() * h], axis=1)
            offsets[i] = (self.closest_point(pts) - pts).reshape(shape[1], shape[2], 3)
        return ClosestPointGrid(offsets, box[0], h, normalization=self.normalization,
                                params={**self.params, "baked_from": "ClosestPointField",
                                        "surface_tolerance": self.surface_tolerance})

    def _arrays(self) -> dict:
        return {**{"net_" + k: v for k, v in self.arrays.items()}, "box": self.box}

    @classmethod
    def _from_arrays(cls, arrays: dict, *, kind, level, normalization, params) -> "ClosestPointField":
        net = {k[4:]: v for k, v in arrays.items() if k.startswith("net_")}
        return cls(net, normalization=normalization, box=arrays["box"], kind=kind, level=level, params=params)

    def save(self, path) -> Path:
        return save_field(self, path)

    def __repr__(self) -> str:
        return (f"ClosestPointField(levels={len(self.arrays['resolutions'])}, surface={self.surface!r}, "
                f"bounds={self.box.tolist()})")
