"""The one place that decides where kernels run: ``auto | cpu | cuda``."""

from __future__ import annotations

import os

from recon.errors import InputError

DEVICES = ("auto", "cpu", "cuda")


def cuda_available() -> bool:
    """True when numba can launch CUDA kernels (a GPU, or NUMBA_ENABLE_CUDASIM=1)."""
    try:
        from numba import cuda

        return bool(cuda.is_available())
    except Exception:
        return False


def cuda_simulated() -> bool:
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") == "1"


def resolve_device(device: str = "auto") -> str:
    """Return ``"cpu"`` or ``"cuda"``. ``auto`` picks a real GPU when numba sees one.

    The CUDA simulator is only used when asked for explicitly (``cuda``): it is for
    tests, and far slower than the CPU kernels.
    """
    if device not in DEVICES:
        raise InputError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device == "cpu":
        return "cpu"
    if device == "cuda":
        if not cuda_available():
            raise InputError("--device cuda: no CUDA GPU is visible to numba (use --device cpu or auto)")
        return "cuda"
    return "cuda" if cuda_available() and not cuda_simulated() else "cpu"


def query_workers() -> int:
    """Threads for scipy's k-d tree queries: ``RECON_TORCH_THREADS`` when set (a tile or
    batch task on a Ray worker that owns one core), else -1 (every core)."""
    env = os.environ.get("RECON_TORCH_THREADS")
    return max(1, int(env)) if env else -1


def cpu_threads() -> int:
    """Threads for a CPU step whose result does not depend on their number: ``RECON_TORCH_THREADS``
    when set, else every core this process may use."""
    n = query_workers()
    if n > 0:
        return n
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)
