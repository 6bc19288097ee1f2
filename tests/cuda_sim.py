"""Run code under numba's CUDA simulator, inside the ordinary test run.

``NUMBA_ENABLE_CUDASIM=1`` only takes effect if it is set before numba is first
imported, and the main pytest process has already imported numba for the CPU kernels.
So a CUDA test hands its code to a fresh Python process with the variable set::

    from cuda_sim import run_in_cuda_simulator

    def test_trilinear_cuda_matches_cpu():
        out = run_in_cuda_simulator('''
            import numpy as np
            from recon.kernels.trilinear import trilinear_value
            ...
            print("ok")
        ''')
        assert out.strip().endswith("ok")

Before ``code`` runs, the child sets ``recon.kernels.config.THREADS_PER_BLOCK`` to
``threads_per_block`` (default 4): a tiny block, so multi-block edge cases show up in
small tests. ``tests/`` is on ``sys.path``
(see ``conftest.py``), so ``from cuda_sim import ...`` works in any test module.

On a machine with a CUDA GPU, ``RECON_CUDA_TESTS=gpu`` runs the same children on the real
GPU instead of the simulator (``scripts/device_check.sh`` does), so the CPU and CUDA forms
of each kernel keep one shared test.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_in_cuda_simulator(
    code: str,
    *,
    timeout: float = 300.0,
    threads_per_block: int = 4,
    env: dict[str, str] | None = None,
) -> str:
    """Run ``code`` (Python source, dedented) in a child process under the CUDA simulator.

    Returns the child's stdout. A non-zero exit fails the calling test with the child's
    stderr, so an assertion inside ``code`` reads like any other test failure.
    """
    child_env = dict(os.environ)
    child_env["NUMBA_ENABLE_CUDASIM"] = "0" if os.environ.get("RECON_CUDA_TESTS") == "gpu" else "1"
    child_env.setdefault("PYTHONUNBUFFERED", "1")
    if env:
        child_env.update(env)
    prelude = (
        "import recon.kernels.config as _recon_kernel_config\n"
        f"_recon_kernel_config.THREADS_PER_BLOCK = {int(threads_per_block)}\n"
    )
    proc = subprocess.run(
        # -P: the checkout's own recon/ (without kernels/ and cli/, which install under it)
        # must not shadow the installed package
        [sys.executable, "-P", "-c", prelude + textwrap.dedent(code)],
        cwd=REPO,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"code under the CUDA simulator exited with {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-8000:]}"
        )
    return proc.stdout
