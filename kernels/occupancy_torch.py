"""Occupancy fitter kernels as torch operations, for the refinement on a GPU (the CPU runs
kernels/occupancy_cpu.py's numba forms; tests/test_occupancy_kernels.py checks both)."""


def add_smoothness_grad(dev, scale: float, grad) -> None:
    """grad += the gradient of scale * sum over axes and neighbour pairs of (dev[a] - dev[b])^2.

    dev, grad (S, S, S, C) float32 torch tensors on one device (grad accumulated into, in place).
    """
    s2 = 2.0 * scale
    for axis in range(3):
        step = dev.narrow(axis, 1, dev.shape[axis] - 1) - dev.narrow(axis, 0, dev.shape[axis] - 1)
        grad.narrow(axis, 0, dev.shape[axis] - 1).sub_(step, alpha=s2)
        grad.narrow(axis, 1, dev.shape[axis] - 1).add_(step, alpha=s2)
