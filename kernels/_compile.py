"""Compile the shared plain-Python math for each target, once."""

from functools import lru_cache

import numba

from recon.kernels._math import make_math

cpu = make_math(lambda fn: numba.njit(inline="always", cache=True)(fn))


@lru_cache(maxsize=None)
def cuda_math():
    """The shared math as CUDA device functions (built on first use: no GPU needed to import)."""
    from numba import cuda as nb_cuda

    return make_math(lambda fn: nb_cuda.jit(device=True)(fn))


def drop_stale_caches(namespace: dict, deps) -> None:
    """Numba's on-disk cache tracks only a kernel's own file: when the shared math it
    calls (``_math.py``, ``_trace_math.py``) changes, cached machine code would be stale.
    Keep a hash of those sources beside each cached kernel of ``namespace`` (a module's
    ``globals()``) and flush the kernel's cache when it differs."""
    import hashlib
    import os
    from pathlib import Path

    from numba.core.registry import CPUDispatcher

    digest = hashlib.sha256(b"".join(Path(m.__file__).read_bytes() for m in deps)).hexdigest()
    for kernel in list(namespace.values()):
        if not isinstance(kernel, CPUDispatcher) or getattr(kernel, "_cache", None) is None:
            continue
        try:
            stamp = Path(kernel._cache._cache_path) / f"{kernel.__name__}.deps"
            if not stamp.exists() or stamp.read_text() != digest:
                kernel._cache.flush()
                tmp = stamp.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(digest)
                os.replace(tmp, stamp)
        except (OSError, AttributeError):  # read-only install, or a numba without this layout
            pass
