"""Noisy test clouds shared by the fitters' tests."""

import numpy as np


def noisy_plate(n: int = 20000, *, thickness: float = 0.01, sigma: float = 0.02, seed: int = 11) -> np.ndarray:
    """(n, 3) float64 points on both faces of a 1 x 1 plate of ``thickness`` (centred, normal
    z), under isotropic Gaussian noise of ``sigma``: noise thicker than the plate."""
    gen = np.random.default_rng(seed)
    half = np.where(np.arange(n) % 2, 0.5 * thickness, -0.5 * thickness)
    faces = np.column_stack([gen.uniform(-0.5, 0.5, (n, 2)), half])
    return faces + gen.normal(0.0, sigma, (n, 3))
