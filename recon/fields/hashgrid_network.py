"""The closest-point field's network as plain arrays, and its forward passes.

A multi-resolution grid encoding (learnable feature tables, one per level, trilinearly
interpolated; coarse levels are dense arrays, fine levels hashed into a fixed-size table)
followed by a small ReLU MLP. :func:`forward_numpy` is the plain NumPy reference; the
torch passes (:func:`torch_forward`, :func:`encode_torch`) train it and evaluate it on a
GPU, with the encoding in numba kernels on the CPU (``recon.kernels.hashgrid_cpu``).

Shapes: ``tables`` (L, T, F) float32; ``resolutions`` (L,) int64 (cells across the
encoding box per level); ``dense`` (L,) bool (level indexed without hashing);
``enc_box`` (2, 3) float64, the encoding box in cube units; MLP layers ``w{i}`` (out, in)
float32 and ``b{i}`` (out,) float32; ``n_layers``, ``out_scale``.
"""

from __future__ import annotations

import numpy as np

from recon.errors import InputError

# Primes of the spatial hash (Teschner et al. 2003, as used by Instant-NGP); the first is 1
# so that neighbouring x cells stay neighbours in the table.
HASH_PRIMES = (1, 2654435761, 805459861)


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

    from recon.device import cpu_threads

    ncpu = cpu_threads()
    if os.environ.get("RECON_TORCH_THREADS"):
        return ncpu
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
        self.torch = torch_or_none()
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


def torch_or_none():
    try:
        import torch
    except ImportError:
        return None
    return torch
