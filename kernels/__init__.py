"""Numba kernels behind recon's public functions (installed as ``recon.kernels``).

Each hot loop has a CPU form (``*_cpu.py``: ``numba.njit(parallel=True)``) and a CUDA form
(``*_cuda.py``: ``numba.cuda.jit``) side by side; the math they share is written once as
plain functions in ``_math.py`` and compiled for both targets. The public entry of each
kernel takes ``device`` and dispatches. Importing this package never needs a GPU.
"""
