"""The sphere-trace kernels on every device: the same check on ``cpu`` (in process) and on
``cuda`` under numba's CUDA simulator (a child process with NUMBA_ENABLE_CUDASIM=1 and 4
threads per block, so a 12 x 10 image spans many blocks and the last one is partial).

Every field mode runs: signed, unsigned (scalar grid), occupancy, closest-point offsets
(dense, and block-sparse with small bricks so that rays cross many empty blocks).
Each device's image is compared with the NumPy march through the same field (the reference),
and on the simulator also with the CPU kernel.
"""

from __future__ import annotations

import pytest

CHECK = r'''
import json, sys
import numpy as np
from recon.fields.analytic import Hemisphere, OpenDisc, Sphere, Torus, sample_closest_point_grid, sample_grid
from recon.render.camera import orbit_camera
from recon.render.trace import sphere_trace


class Opaque:
    """Seen only through the Field protocol: forces the NumPy march."""
    def __init__(self, f):
        self.f, self.kind, self.level, self.bounds = f, f.kind, f.level, f.bounds
        self.params, self.normalization = {}, None
    def value(self, x): return self.f.value(x)
    def gradient(self, x): return self.f.gradient(x)
    def closest_point(self, x): return self.f.closest_point(x)


class OccGrid:
    kind, level = "occupancy", 0.5
    params: dict = {}
    normalization = None
    def __init__(self, sdf_grid, width):
        self.values = np.clip(0.5 - sdf_grid.values / (2 * width), 0, 1).astype(np.float32)
        self.origin, self.voxel_size, self.bounds = sdf_grid.origin, sdf_grid.voxel_size, sdf_grid.bounds
        self.shape = self.values.shape
    def value(self, x):
        from recon.kernels.trilinear import trilinear_value
        return trilinear_value(self.values, self.origin, self.voxel_size, np.asarray(x, np.float64))
    def gradient(self, x):
        from recon.kernels.trilinear import trilinear_value_grad
        return trilinear_value_grad(self.values, self.origin, self.voxel_size, np.asarray(x, np.float64))[1]
    def closest_point(self, x): raise NotImplementedError


def cases():
    sph = sample_grid(Sphere(radius=0.5), resolution=24)
    yield "signed", sample_grid(Torus(), resolution=24)
    yield "unsigned", sample_grid(OpenDisc(), resolution=24)
    yield "occupancy", OccGrid(sph, 2 * sph.voxel_size)
    yield "closest", sample_closest_point_grid(Hemisphere(), resolution=24)
    from recon.fields.sparse_closest_point_grid import bake_sparse
    yield "closest_sparse", bake_sparse(Hemisphere(), 24, brick=2, margin_voxels=1.0)


out = {}
for name, field in cases():
    cam = orbit_camera(field.bounds, azimuth=30, elevation=25, width=12, height=10, up="+z")
    r = sphere_trace(field, cam, device=DEVICE)
    assert r.stats["path"] == "grid-" + DEVICE, r.stats
    out[name] = {"depth": np.where(r.hit, r.depth, -1.0).tolist(), "normal": r.normal.tolist(),
                 "status": r.status.tolist(), "steps": r.steps.tolist()}
    ref = sphere_trace(Opaque(field), cam)
    assert r.hit.sum() >= 8, (name, int(r.hit.sum()))
    disagree = int((r.hit ^ ref.hit).sum())
    assert disagree <= 2, (name, disagree)
    both = r.hit & ref.hit
    # a scalar unsigned grid's kernel also stops within a voxel (its interpolant never reaches
    # 0), which the NumPy march cannot know: allow a few voxels there
    tol = {"signed": 1e-4, "occupancy": 1e-4, "closest": 0.5 * field.voxel_size,
           "closest_sparse": 0.5 * field.voxel_size}.get(name, 3 * field.voxel_size)
    err = float(np.abs(r.depth[both] - ref.depth[both]).max())
    assert err < tol, (name, err, tol)
    cos = (r.normal[both] * ref.normal[both]).sum(-1)
    assert cos.min() > np.cos(np.radians(25)), (name, float(cos.min()))
print("RESULT" + json.dumps(out))
'''


def _run_cpu() -> dict:
    import io
    import json
    from contextlib import redirect_stdout

    buf = io.StringIO()
    with redirect_stdout(buf):
        exec(compile("DEVICE = 'cpu'\n" + CHECK, "<sphere-trace-check>", "exec"), {"__name__": "check"})
    return json.loads(buf.getvalue().split("RESULT", 1)[1])


@pytest.fixture(scope="module")
def cpu_result():
    return _run_cpu()


@pytest.mark.parametrize("device", ["cpu", "cuda-simulator"])
def test_sphere_trace_kernel_every_device(device, cpu_result):
    import json

    import numpy as np

    if device == "cpu":
        result = cpu_result
    else:
        from cuda_sim import run_in_cuda_simulator

        stdout = run_in_cuda_simulator("DEVICE = 'cuda'\n" + CHECK, threads_per_block=4)
        result = json.loads(stdout.split("RESULT", 1)[1])
        # the CUDA kernel runs the same per-ray code as the CPU kernel: same answer
        for name, got in result.items():
            want = cpu_result[name]
            assert got["status"] == want["status"], name
            assert got["steps"] == want["steps"], name
            assert np.allclose(got["depth"], want["depth"], atol=1e-5), name
            assert np.allclose(got["normal"], want["normal"], atol=1e-4), name
    assert set(result) == {"signed", "unsigned", "occupancy", "closest", "closest_sparse"}


def test_cuda_entry_without_gpu_says_so():
    """Without a GPU (and without the simulator), --device cuda is a clear one-line error."""
    from recon.device import cuda_available, cuda_simulated
    from recon.errors import InputError
    from recon.fields.analytic import Sphere, sample_grid
    from recon.render.camera import orbit_camera
    from recon.render.trace import sphere_trace

    if cuda_available() or cuda_simulated():
        pytest.skip("a CUDA device (or the simulator) is present")
    grid = sample_grid(Sphere(), resolution=8)
    with pytest.raises(InputError, match="no CUDA GPU"):
        sphere_trace(grid, orbit_camera(grid.bounds, width=4, height=4), device="cuda")
