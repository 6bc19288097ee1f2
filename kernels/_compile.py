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
