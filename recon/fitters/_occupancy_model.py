"""The convolutional occupancy network in torch: encoder, 3D U-Net and decoder.

Shared by the fitter (``recon.fitters.occupancy``) and the prior's training script
(``scripts/train_occupancy.py``). Points live in the fitting cube (the cloud's bounding
box centred at 0, longest side 1); the feature grid has R nodes per side spanning
``enc_box`` = [-0.5 - pad, 0.5 + pad]^3.

- Encoder: a local PointNet per point on its offset to its nearest grid node (in node
  spacings), max-pooled per node and fed back (the paper's local pooling), then
  scatter-averaged onto the nodes, with a channel marking the nodes that hold points.
- A 3D U-Net (three scales) over the node grid: the features (C, R, R, R).
- Decoder: features trilinearly interpolated at a query (exactly
  :func:`recon.fields.occupancy_network.decode_numpy`), with the query's position,
  through a ReLU MLP to one occupancy logit.

torch is imported inside the functions: building the model imports it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Architecture:
    resolution: int = 24
    "Feature-grid nodes per side."
    channels: int = 16
    "Features per node."
    point_hidden: int = 32
    "Width of the local PointNet."
    unet_width: int = 12
    "Channels of the U-Net's finest scale (doubled at each coarser one)."
    decoder_hidden: int = 64
    "Width of the decoder's hidden layers."
    decoder_layers: int = 3
    "Linear layers of the decoder (the last gives the logit)."
    pad: float = 0.1
    "Margin of the feature grid around the fitting cube, cube units."

    @property
    def enc_box(self) -> np.ndarray:
        return np.array([[-0.5 - self.pad] * 3, [0.5 + self.pad] * 3], np.float64)


def build(arch: Architecture):
    """The torch module (encoder + U-Net + decoder) for ``arch``."""
    import torch
    from torch import nn

    def conv(cin, cout):
        return nn.Sequential(nn.Conv3d(cin, cout, 3, padding=1), nn.ReLU(inplace=True))

    class OccupancyNet(nn.Module):
        def __init__(self):
            super().__init__()
            H, C, W = arch.point_hidden, arch.channels, arch.unet_width
            self.point_in = nn.Sequential(nn.Linear(3, H), nn.ReLU(), nn.Linear(H, H), nn.ReLU())
            self.point_out = nn.Sequential(nn.Linear(2 * H, H), nn.ReLU(), nn.Linear(H, C))
            self.enc0 = conv(C + 1, W)
            self.enc1 = nn.Sequential(conv(W, 2 * W), conv(2 * W, 2 * W))
            self.enc2 = nn.Sequential(conv(2 * W, 4 * W), conv(4 * W, 4 * W))
            self.dec1 = conv(6 * W, 2 * W)
            self.dec0 = conv(3 * W, W)
            self.head = nn.Conv3d(W, C, 1)
            dims = [C + 3] + [arch.decoder_hidden] * (arch.decoder_layers - 1) + [1]
            self.decoder = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(dims))

        def encode(self, u):
            """(N, 3) cube-unit points -> (C, R, R, R) feature grid."""
            R = arch.resolution
            lo = torch.as_tensor(arch.enc_box[0], dtype=u.dtype)
            ext = float(arch.enc_box[1, 0] - arch.enc_box[0, 0])
            pos = ((u - lo) / ext).clamp(0.0, 1.0) * (R - 1)
            node = torch.round(pos)
            offset = pos - node  # in node spacings, within [-0.5, 0.5]
            idx = node.long()
            flat = (idx[:, 0] * R + idx[:, 1]) * R + idx[:, 2]
            h = self.point_in(offset * 2.0)
            pooled = torch.full((R ** 3, h.shape[1]), -1e4, dtype=h.dtype)
            pooled = pooled.scatter_reduce(0, flat[:, None].expand_as(h), h, reduce="amax", include_self=True)
            h = self.point_out(torch.cat([h, pooled[flat]], dim=1))
            C = h.shape[1]
            total = torch.zeros((R ** 3, C), dtype=h.dtype).index_add(0, flat, h)
            count = torch.zeros(R ** 3, dtype=h.dtype).index_add(0, flat, torch.ones_like(flat, dtype=h.dtype))
            mean = total / count.clamp(min=1.0)[:, None]
            grid = torch.cat([mean, (count > 0).to(h.dtype)[:, None]], dim=1).T.reshape(1, C + 1, R, R, R)
            return self.unet(grid)[0]

        def unet(self, x):
            import torch.nn.functional as F

            e0 = self.enc0(x)
            e1 = self.enc1(F.max_pool3d(e0, 2, ceil_mode=True))
            e2 = self.enc2(F.max_pool3d(e1, 2, ceil_mode=True))
            d1 = self.dec1(torch.cat([F.interpolate(e2, size=e1.shape[2:], mode="trilinear", align_corners=False),
                                      e1], dim=1))
            d0 = self.dec0(torch.cat([F.interpolate(d1, size=e0.shape[2:], mode="trilinear", align_corners=False),
                                      e0], dim=1))
            return self.head(d0)

        def decode(self, features, u):
            """(C, R, R, R) features, (M, 3) cube-unit queries -> (M,) logits."""
            return decode_torch(features, [(m.weight, m.bias) for m in self.decoder], u, arch.enc_box)

    return OccupancyNet()


def decode_torch(features, layers, u, enc_box):
    """The decoder: trilinear features (the node grid ``features`` (C, R, R, R) over
    ``enc_box``) of (M, 3) queries and their positions through the MLP ``layers`` (a list
    of (weight, bias)) -> (M,) logits. Differentiable with respect to features and layers."""
    C, R = features.shape[0], features.shape[1]
    return decode_table(features.reshape(C, -1).T, R, layers, u, enc_box)


def decode_table(table, R: int, layers, u, enc_box):
    """:func:`decode_torch` on the features as a (R^3, C) table (node (i, j, k) at row
    (i * R + j) * R + k), which the refinement optimises in place of the grid."""
    import torch

    from recon.fields.occupancy_network import cell_corners

    lo = torch.as_tensor(enc_box[0], dtype=u.dtype, device=u.device)
    ext = torch.as_tensor(enc_box[1] - enc_box[0], dtype=u.dtype, device=u.device)
    s = ((u - lo) / ext).clamp(0.0, 1.0)
    with torch.no_grad():
        pos = s * (R - 1)
        i0 = torch.clamp(torch.floor(pos), max=R - 2)
        w = pos - i0
        i0 = i0.long()
        rows, weights = zip(*cell_corners(i0, w, R))
        rows, weights = torch.stack(rows, 1), torch.stack(weights, 1)
    f = _gather()(table, rows, weights)
    h = torch.cat([f, 2.0 * s - 1.0], dim=1)
    for i, (wt, b) in enumerate(layers):
        h = torch.nn.functional.linear(h, wt, b)
        if i < len(layers) - 1:
            h = torch.relu(h)
    return h[:, 0]


_GATHER = None


def _gather():
    """A torch autograd function: (T, C) table, (M, 8) rows, (M, 8) weights -> (M, C)
    weighted sums, whose backward is a numba scatter-add on the CPU (``index_add_`` is slow
    there on one thread) and ``index_add_`` elsewhere."""
    global _GATHER
    if _GATHER is None:
        import torch

        class Gather(torch.autograd.Function):
            @staticmethod
            def forward(ctx, table, rows, weights):
                f = table.index_select(0, rows.reshape(-1)).reshape(rows.shape[0], 8, -1)
                ctx.save_for_backward(rows, weights)
                ctx.table_shape = table.shape
                return (f * weights[:, :, None]).sum(dim=1)

            @staticmethod
            def backward(ctx, grad):
                rows, weights = ctx.saved_tensors
                out = torch.zeros(ctx.table_shape, dtype=grad.dtype, device=grad.device)
                if grad.device.type == "cpu" and grad.dtype == torch.float32:
                    from recon.kernels.occupancy_cpu import scatter_rows

                    scatter_rows(rows.numpy(), weights.contiguous().numpy(), grad.contiguous().numpy(), out.numpy())
                else:
                    # on a GPU index_add_ sums in a fixed order only in deterministic mode
                    mode = (torch.are_deterministic_algorithms_enabled(),
                            torch.is_deterministic_algorithms_warn_only_enabled())
                    torch.use_deterministic_algorithms(True)
                    try:
                        out.index_add_(0, rows.reshape(-1),
                                       (grad[:, None, :] * weights[:, :, None]).reshape(-1, grad.shape[1]))
                    finally:
                        torch.use_deterministic_algorithms(mode[0], warn_only=mode[1])
                return out, None, None

        _GATHER = Gather.apply
    return _GATHER


def state_to_arrays(model) -> dict:
    """The model's weights as plain float32 arrays (name -> array), for an .npz."""
    return {k: v.detach().cpu().numpy().astype(np.float32) for k, v in model.state_dict().items()}


def load_state(model, arrays) -> None:
    """Put plain arrays (from :func:`state_to_arrays`) into ``model``; raise ValueError when they do not fit."""
    import torch

    state = model.state_dict()
    names = set(arrays.files if hasattr(arrays, "files") else arrays)
    if names != set(state):
        raise ValueError(f"weights hold {sorted(names ^ set(state))[:3]}... that the model does not (or lack them)")
    new = {}
    for k, v in state.items():
        a = np.asarray(arrays[k])
        if a.shape != tuple(v.shape):
            raise ValueError(f"weight {k} has shape {a.shape}, the model wants {tuple(v.shape)}")
        new[k] = torch.as_tensor(a, dtype=v.dtype)
    model.load_state_dict(new)
