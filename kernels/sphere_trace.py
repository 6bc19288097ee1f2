"""Public entry of the sphere-tracing kernels: trace images through a grid on ``cpu`` or ``cuda``.

The march itself is ``_trace_math.trace_ray`` (one copy of the algorithm, compiled for both
targets). :class:`GridTracer` holds a grid (uploaded once on ``cuda``) and traces any number
of images through it, so a turntable or a benchmark pays the upload once.
"""

from __future__ import annotations

import numpy as np

from recon.kernels import _trace_math as _tm
from recon.kernels import config
from recon.kernels._trace_math import (  # noqa: F401  (re-exported constants)
    MODE_CLOSEST,
    MODE_CLOSEST_SPARSE,
    MODE_OCCUPANCY,
    MODE_SIGNED,
    MODE_UNSIGNED,
    N_PARAMS,
    STATUS_HIT,
    STATUS_MISS,
    STATUS_NOT_CONVERGED,
)

PARAM_INDEX = {
    "hit_dist": _tm.P_HIT_DIST, "miss_t": _tm.P_MISS_T, "pix": _tm.P_PIX, "hit_pix": _tm.P_HIT_PIX,
    "min_step_pix": _tm.P_MIN_STEP_PIX, "safety": _tm.P_SAFETY, "bisect": _tm.P_BISECT, "refine": _tm.P_REFINE,
    "occ_step": _tm.P_OCC_STEP, "hit_floor": _tm.P_HIT_FLOOR, "normal_eps": _tm.P_NORMAL_EPS,
    "max_steps": _tm.P_MAX_STEPS, "step_scale": _tm.P_STEP_SCALE, "min_cos": _tm.P_MIN_COS,
    "residual_pix": _tm.P_RESIDUAL_PIX, "beam": _tm.P_BEAM,
}
"Each kernel setting's position in the settings vector (meanings: the ``P_*`` constants of ``_trace_math``)."


def pack_params(**values: float) -> np.ndarray:
    """The kernels' (N_PARAMS,) float64 settings vector from every entry of
    :data:`PARAM_INDEX`, given by name."""
    if set(values) != set(PARAM_INDEX):
        missing, unknown = set(PARAM_INDEX) - set(values), set(values) - set(PARAM_INDEX)
        raise ValueError(f"trace kernel settings: missing {sorted(missing)}, unknown {sorted(unknown)}")
    p = np.zeros(N_PARAMS, np.float64)
    for name, value in values.items():
        p[PARAM_INDEX[name]] = value
    return p


_DUMMY_CP = np.zeros((3, 2, 2, 2), np.float32)
_DUMMY_VALUES = np.zeros((2, 2, 2), np.float32)


class GridTracer:
    """A grid ready to be traced.

    values : (X, Y, Z) float32 scalar grid (modes signed, unsigned, occupancy), the block
             table (BX, BY, BZ) float32 (mode closest sparse), or None
    cp     : (3, X, Y, Z) float32 closest-point offsets (mode closest), the bricks
             (3, K * (B + 1), B + 1, B + 1) float32 (mode closest sparse), or None
    mode   : one of MODE_SIGNED, MODE_UNSIGNED, MODE_OCCUPANCY, MODE_CLOSEST, MODE_CLOSEST_SPARSE
    level  : iso level of ``values`` (0 for distances, 0.5 for occupancy)
    origin : (3,) float64 position of node (0, 0, 0); h : voxel size (same units)
    lo, hi : (3,) float64 clip box (normally the grid's box)
    device : "cpu" or "cuda" (already resolved)
    """

    def __init__(self, *, values, cp, mode, level, origin, h, lo, hi, device):
        if mode not in (MODE_SIGNED, MODE_UNSIGNED, MODE_OCCUPANCY, MODE_CLOSEST, MODE_CLOSEST_SPARSE):
            raise ValueError(f"unknown trace mode {mode!r}")
        if device not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda' here, got {device!r}")
        if mode == MODE_CLOSEST_SPARSE:
            values = np.ascontiguousarray(values, dtype=np.float32)
            cp = np.ascontiguousarray(cp, dtype=np.float32)
            if values.ndim != 3 or cp.ndim != 4 or cp.shape[0] != 3 or cp.shape[2] != cp.shape[3] \
                    or cp.shape[1] % cp.shape[2]:
                raise ValueError(f"a sparse grid is a (BX, BY, BZ) table and (3, K * (B + 1), B + 1, B + 1) "
                                 f"bricks, got {values.shape} and {cp.shape}")
            if cp.shape[1] == 0:
                cp = np.zeros((3, cp.shape[2], cp.shape[2], cp.shape[2]), np.float32)  # no brick: never read
        elif mode == MODE_CLOSEST:
            cp = np.ascontiguousarray(cp, dtype=np.float32)
            if cp.ndim != 4 or cp.shape[0] != 3:
                raise ValueError(f"closest-point offsets must be (3, X, Y, Z), got {cp.shape}")
            values = _DUMMY_VALUES
        else:
            values = np.ascontiguousarray(values, dtype=np.float32)
            if values.ndim != 3:
                raise ValueError(f"values must be (X, Y, Z), got {values.shape}")
            cp = _DUMMY_CP
        self.mode = int(mode)
        self.level = float(level)
        self.origin = np.ascontiguousarray(origin, dtype=np.float64).reshape(3)
        self.h = float(h)
        self.lo = np.ascontiguousarray(lo, dtype=np.float64).reshape(3)
        self.hi = np.ascontiguousarray(hi, dtype=np.float64).reshape(3)
        self.device = device
        if device == "cuda":
            from numba import cuda

            self.values = cuda.to_device(values)
            self.cp = cuda.to_device(cp)
        else:
            self.values = values
            self.cp = cp
            _warm_cpu()

    def trace(self, cam, width: int, height: int, params, *, sx: float = 0.5, sy: float = 0.5):
        """Trace one image. cam (12,) float64 (see ``_trace_math.camera_ray``), params (N_PARAMS,) f64.

        Returns depth (H, W) float32 (inf on miss), normal (H, W, 3) float32,
        steps (H, W) int32, status (H, W) uint8.
        """
        cam = np.ascontiguousarray(cam, dtype=np.float64).reshape(12)
        params = np.ascontiguousarray(params, dtype=np.float64)
        if params.shape != (N_PARAMS,):
            raise ValueError(f"params must be ({N_PARAMS},), got {params.shape}")
        width, height = int(width), int(height)
        depth = np.empty((height, width), np.float32)
        normal = np.empty((height, width, 3), np.float32)
        steps = np.empty((height, width), np.int32)
        status = np.empty((height, width), np.uint8)
        args = (self.values, self.cp, self.mode, self.level, self.origin, self.h, self.lo, self.hi,
                cam, width, height, float(sx), float(sy), params)
        if self.device == "cuda":
            from numba import cuda

            from recon.kernels.sphere_trace_cuda import sphere_trace_grid_cuda

            outs = [cuda.device_array_like(a) for a in (depth, normal, steps, status)]
            sphere_trace_grid_cuda(*args, *outs, threads_per_block=config.THREADS_PER_BLOCK)
            depth, normal, steps, status = (o.copy_to_host() for o in outs)
        else:
            from recon.kernels.sphere_trace_cpu import sphere_trace_grid_cpu

            if width * height:
                sphere_trace_grid_cpu(*args, depth, normal, steps, status)
        return depth, normal, steps, status


_WARM = False


def _warm_cpu() -> None:
    """Trace one pixel once per process, so loading the compiled kernel from numba's cache
    (a fraction of a second) is not counted in the first image's time."""
    global _WARM
    if _WARM:
        return
    from recon.kernels.sphere_trace_cpu import sphere_trace_grid_cpu

    cam = np.array([0.0, 0.0, -2.0, 0.0, 0.0, 1.0, 0.5, 0.0, 0.0, 0.0, 0.5, 0.0])
    one = np.zeros((1, 1), np.float32)
    sphere_trace_grid_cpu(_DUMMY_VALUES, _DUMMY_CP, MODE_SIGNED, 0.0, np.zeros(3), 1.0, np.zeros(3), np.ones(3),
                          cam, 1, 1, 0.5, 0.5, np.zeros(N_PARAMS), one, np.zeros((1, 1, 3), np.float32),
                          np.zeros((1, 1), np.int32), np.zeros((1, 1), np.uint8))
    _WARM = True
