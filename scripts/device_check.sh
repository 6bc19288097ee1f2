#!/usr/bin/env bash
# The GPU checks, as one call on a lent CUDA machine (the device tool's `run`):
#   install recon into the machine's python3 (it has torch, numba, numba-cuda, scikit-image,
#   typer and rich, no open3d/trimesh/pyvista: fitting and tracing do not import them),
#   run the CUDA forms of the kernel tests on the real GPU (RECON_CUDA_TESTS=gpu) and the
#   csp tests, then the GPU timing scripts in perf/ (fits, the sparse bake's renders) and an end-to-end
#   `recon fit` + `recon render` on cuda, and where a process's first fit spends its time.
#   STEPS="tests bench bake cold cli" (the default) picks parts, TESTS the test files.
#   DETERMINISM=1 also times csp with torch's default (non-deterministic) scatter-add;
#   RENDER=1 times the GridPull bunny's 1024 x 1024 trace.
# Clouds to bench are read from .devdata/*.ply (copies of bench inputs, carried with the call).
# Logs, the fitted csp fields and the render land in $OUT (default /tmp/device_out).
# A dry run on a machine without a GPU: DEV=cpu SKIP_INSTALL=1 bash scripts/device_check.sh
set -u
OUT=${OUT:-/tmp/device_out}
DEV=${DEV:-cuda}
export DEV
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
step() { echo; echo "=== $* ($(date +%T))"; }
# STEPS picks the parts to run (default all), TESTS the test files
STEPS=" ${STEPS:-tests bench bake cold cli} "
want() { [[ "$STEPS" == *" $1 "* ]]; }
TESTS=${TESTS:-tests/test_cuda_sim_helper.py tests/test_trilinear.py tests/test_sphere_trace_kernels.py \
  tests/test_gridpull.py tests/test_csp.py tests/test_sparse_closest_point_grid.py tests/test_torch_adam.py \
  tests/test_occupancy.py tests/test_occupancy_kernels.py}

step gpu
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv | tee "$OUT/gpu.txt"
nproc

step install
if [ -z "${SKIP_INSTALL:-}" ] && ! (set -o pipefail; python3 -m pip install -q --no-deps --no-build-isolation --no-cache-dir . 2>&1 | tail -3); then
  # no build backend there: lay the package out by hand (kernels/ and cli/ live under recon)
  mkdir -p /tmp/pkg && cp -r recon /tmp/pkg/ && cp -r kernels /tmp/pkg/recon/kernels && cp -r cli /tmp/pkg/recon/cli
  export PYTHONPATH=/tmp/pkg
  recon() { python3 -c 'import sys; from recon.cli.main import main; sys.argv[0] = "recon"; sys.exit(main())' "$@"; }
fi
# the image's numba-cuda registers an overload for np.row_stack, which numpy 2.5 removed:
# without this alias no CUDA kernel compiles there (seen 2026-11-28: numba-cuda's arrayobj)
python3 - <<'EOF'
import numpy, site
if not hasattr(numpy, "row_stack"):
    open(site.getsitepackages()[0] + "/zz_numpy_row_stack.pth", "w").write(
        "import numpy as _np; _np.__dict__.setdefault('row_stack', lambda tup, **kw: _np.vstack(tup, **kw))\n")
    print("numpy", numpy.__version__, "has no row_stack: aliased to vstack for numba-cuda")
EOF
python3 -c "import recon, torch, numba, numba.cuda as c; print('torch', torch.__version__, torch.cuda.is_available(), 'numba', numba.__version__, c.is_available())"

step tests on the GPU
want tests &&
RECON_CUDA_TESTS=gpu timeout 300 python3 -P -m pytest -q -p no:cacheprovider -W ignore $TESTS -rs 2>&1 \
  | tee "$OUT/tests.log" | tail -12

if want bench; then
step bench
timeout 240 python3 perf/bench_gpu.py .devdata/bunny.ply --out /tmp/gpubench --repeats 3 --device "$DEV" 2>&1 \
  | tee "$OUT/bench_gpu.log" | tail -4
timeout 120 python3 perf/bench_gpu.py .devdata/armadillo.ply --out /tmp/gpubench2 --repeats 2 --methods csp --device "$DEV" 2>&1 \
  | tee "$OUT/bench_gpu_armadillo.log" | tail -4
timeout 100 python3 perf/bench_gpu.py .devdata/plane_holes.ply --out /tmp/gpubench3 --repeats 2 --methods csp --device "$DEV" 2>&1 \
  | tee "$OUT/bench_gpu_plane_holes.log" | tail -4
cp /tmp/gpubench3/bench_gpu.json "$OUT/bench_gpu_plane_holes.json" 2>/dev/null
cp /tmp/gpubench/bunny.csp.npz /tmp/gpubench/bench_gpu.json "$OUT/" 2>/dev/null
cp /tmp/gpubench2/bench_gpu.json "$OUT/bench_gpu_armadillo.json" 2>/dev/null
fi
# the csp field baked sparse and dense, rendered by the CUDA kernel
want bake && timeout 150 python3 perf/bench_bake.py --field /tmp/gpubench/bunny.csp.npz --runs 5 --device "cpu,$DEV" \
  --size 1024x1024 --out "$OUT/bake" 2>&1 | tee "$OUT/bench_bake.log" | tail -24

if [ -n "${DETERMINISM:-}" ]; then
step csp on cuda without deterministic algorithms: the time they cost
timeout 90 python3 -P - <<'EOF' 2>&1 | tee "$OUT/determinism.log" | tail -4
import os, time, numpy as np
import recon.fitters.csp as csp
from recon.io import read_cloud
from recon.fitters import fit
csp._deterministic.__enter__ = lambda self: self  # torch's default (atomic) scatter-add
csp._deterministic.__exit__ = lambda self, *exc: None
cloud = read_cloud(".devdata/bunny.ply")
runs = []
for _ in range(3):
    t = time.perf_counter(); f = fit(cloud, "csp", device=os.environ["DEV"]); runs.append((f, time.perf_counter() - t))
a, b = runs[1][0], runs[2][0]
d = max(float(np.abs(a.arrays[k] - b.arrays[k]).max()) for k in a.arrays if getattr(a.arrays[k], "dtype", None) is not None and a.arrays[k].dtype.kind == "f")
print("default (non-deterministic) torch: warm fit seconds", [round(s, 2) for _, s in runs[1:]], "max difference between same-seed fits", d)
EOF
fi

if [ -n "${RENDER:-}" ]; then
step render
timeout 90 python3 perf/bench_render.py --field /tmp/gpubench/bunny.gridpull.npz --device "$DEV" --no-mesh \
  --size 1024 --repeats 7 2>&1 | tee "$OUT/render.log" | tail -3
fi

if want cold; then
step the first csp fit of a process: where its time goes
timeout 150 python3 -P perf/bench_cold_start.py .devdata/bunny.ply --device "$DEV" --profile 30 \
  --out "$OUT/cold" 2>&1 | tee "$OUT/cold_start.log" | grep -v '^ *$' | head -30
fi

if want cli; then
step cli end to end on cuda
{ time timeout 120 recon fit .devdata/bunny.ply --method csp --device "$DEV" -o /tmp/bunny_cli.ply \
  --save-field /tmp/bunny_cli.csp.npz; } 2>&1 | tee "$OUT/cli.log" | tail -12
timeout 60 recon render /tmp/bunny_cli.csp.npz -o "$OUT/bunny_csp_cuda.png" --device "$DEV" --size 512 2>&1 | tail -2
{ time timeout 120 recon fit .devdata/bunny.ply --method csp --device "$DEV" -o /tmp/bunny_cli2.ply --quiet; } 2>&1 \
  | tee "$OUT/cli_quiet.log" | tail -4
fi
# at most 8 files come back from the device tool: logs and figures travel as one archive
(cd "$OUT" && tar czf logs.tgz --remove-files $(ls | grep -v -e '\.npz$' -e '\.png$' -e '^logs.tgz$'))
ls -la "$OUT"
