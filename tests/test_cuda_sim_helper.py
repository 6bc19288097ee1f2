"""The CUDA-simulator helper itself: the child really runs simulated, and failures surface."""

import os

import pytest

from cuda_sim import run_in_cuda_simulator


def test_child_runs_under_the_simulator_with_a_tiny_block():
    out = run_in_cuda_simulator(
        """
        import os
        from numba import cuda
        import recon.kernels.config as config
        print(os.environ["NUMBA_ENABLE_CUDASIM"], cuda.is_available(), config.THREADS_PER_BLOCK)
        """,
        threads_per_block=3,
    )
    simulated = "0" if os.environ.get("RECON_CUDA_TESTS") == "gpu" else "1"  # see cuda_sim.py
    assert out.split() == [simulated, "True", "3"]


def test_a_failing_assertion_in_the_child_fails_the_test_with_its_message():
    with pytest.raises(AssertionError, match="child says no"):
        run_in_cuda_simulator("assert 1 == 2, 'child says no'")
