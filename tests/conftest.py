"""Shared test set-up.

- ``tests/`` goes on ``sys.path`` so helpers import by name (``from cuda_sim import
  run_in_cuda_simulator``); pytest runs with ``--import-mode=importlib``, which does not
  add it by itself.
- ``cuda_sim`` fixture: the same helper, for tests that prefer fixtures.
- ``bench_data`` fixture: the shared benchmark folder, or a skip with the reason.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

BENCH_DATA = TESTS.parents[0].parent / "shared" / "data" / "bench"


@pytest.fixture(autouse=True)
def _signal_handlers_restored():
    """Ray and the CLI install signal handlers; each test starts with the ones before it."""
    import signal

    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        if handler is not None and signal.getsignal(sig) is not handler:
            signal.signal(sig, handler)


@pytest.fixture
def cuda_sim():
    from cuda_sim import run_in_cuda_simulator

    return run_in_cuda_simulator


@pytest.fixture
def bench_data() -> Path:
    if not BENCH_DATA.is_dir():
        pytest.skip(f"benchmark data not found at {BENCH_DATA}")
    return BENCH_DATA
