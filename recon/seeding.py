"""The one place that seeds random generators."""

from __future__ import annotations

import numpy as np


def rng(seed: int | None) -> np.random.Generator:
    """A NumPy generator; every random draw in recon goes through one of these."""
    return np.random.default_rng(seed)


def seed_torch(seed: int):
    """Seed torch (CPU and CUDA) and return a seeded torch.Generator."""
    import torch

    torch.manual_seed(seed)
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen
