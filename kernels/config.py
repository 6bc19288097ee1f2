"""Tunables of the kernels, in one place."""

# CUDA launch shape. Tests set a tiny block under the simulator so multi-block edges show.
THREADS_PER_BLOCK = 128
