"""A closest-surface-point field backed by a small network (what ``--method csp`` fits).

The network maps a point x (fitting-cube units) to an offset v(x); the closest surface
point is C(x) = x + v(x). The network (a multi-resolution grid encoding and a small MLP)
and its forward passes are in :mod:`recon.fields.hashgrid_network`.

The weights are plain arrays, so the field is saved without pickle. On the CPU it is
evaluated by one numba kernel (``recon.kernels.hashgrid_cpu.network``: encoding and MLP
per point, no torch needed); on a CUDA GPU by torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recon.cloud import Normalization
from recon.errors import InputError
from recon.fields.base import network_frame, save_field
from recon.fields.hashgrid_network import (
    to_torch,
    torch_forward,
    torch_or_none,
    torch_threads,
)
from recon.geometry import check_points

SURFACE_TOLERANCE_SPACINGS = 0.5
"A fitted surface's tolerance (see ClosestPointField.surface_tolerance), in point spacings."
EVAL_BATCH = 1 << 17
"Points per network evaluation batch (bounds the scratch memory)."


def _check_required(arrays: dict) -> None:
    required = ("tables", "resolutions", "dense", "enc_box", "n_layers", "out_scale")
    missing = [k for k in required if k not in arrays]
    if missing:
        raise InputError(f"closest-point field arrays lack {', '.join(missing)}")


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
        self.arrays, self.normalization, self.box = network_frame(
            arrays, normalization, box, what="a closest-point field", check=_check_required)
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
        on the data's planes instead, which are exact to the data's own noise."""
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
        torch = torch_or_none()
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
