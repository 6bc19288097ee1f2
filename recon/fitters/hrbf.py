"""HRBF: an implicit surface through every point of a sparse cloud, its normals solved for.

A Hermite radial basis function interpolant (triharmonic kernel phi(r) = r^3) is zero at
every point with a unit gradient there. The gradients (the normals) are not given: they are
the unit vectors that make the interpolant smoothest, i.e. that minimise its Duchon energy
(the integral of its squared third derivatives), after "Variational Implicit Point Set
Surfaces" (Huang, Carr and Ju, SIGGRAPH 2019). The energy is a quadratic form g^T H g in the
stacked gradients, H a block of the inverse of the interpolation system; its lowest
eigenvector, cut to unit length per point, starts a descent over the normals' angles. The
sides come from the whole shape at once, not from neighbourhoods, which is what a few
hundred samples of a thin part need. The system is dense (4N + 4 unknowns), so the method
is for sparse clouds: it refuses more than ``max_points`` points.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from recon.cloud import Cloud, Normalization
from recon.errors import InputError
from recon.fields.hermite_rbf import HermiteRBFField
from recon.fitters import FitterSpec, register


@dataclass
class HRBFConfig:
    max_points: int = 1200
    "Most points it fits: the dense system takes (4N)^2 x 8 bytes twice (about 0.2 GB at 1200) and N^3 time."
    refine_iterations: int = 300
    "Descent steps over the normals' angles after the eigenvector start (0: the start itself)."
    margin: float = 0.05
    "The field is defined on the points' box grown by this share of its diagonal; outside is outside."


def _kernel_system(p: np.ndarray) -> np.ndarray:
    """The symmetric (4N + 4)^2 saddle matrix [[K, P], [P^T, 0]] of the Hermite interpolation
    at points p (N, 3): rows 0..N-1 values, N..4N-1 gradients (3 per point), last 4 the
    linear polynomial's side conditions."""
    n = len(p)
    m = np.zeros((4 * n + 4, 4 * n + 4))
    d = p[:, None, :] - p[None, :, :]
    r = np.linalg.norm(d, axis=2)
    m[:n, :n] = r ** 3
    grad = 3.0 * r[..., None] * d  # grad phi(p_i - p_j), (N, N, 3)
    m[:n, n:4 * n] = -grad.reshape(n, 3 * n)
    m[n:4 * n, :n] = grad.transpose(0, 2, 1).reshape(3 * n, n)
    inv_r = np.divide(1.0, r, out=np.zeros_like(r), where=r > 0)
    hess = 3.0 * (r[..., None, None] * np.eye(3) + d[..., :, None] * d[..., None, :] * inv_r[..., None, None])
    del d, grad
    m[n:4 * n, n:4 * n] = -hess.transpose(0, 2, 1, 3).reshape(3 * n, 3 * n)
    del hess
    m[:n, 4 * n] = 1.0
    m[:n, 4 * n + 1:] = p
    for k in range(3):
        m[n + k:4 * n:3, 4 * n + 1 + k] = 1.0
    m[4 * n:, :4 * n] = m[:4 * n, 4 * n:].T
    return m


def _unit_vectors(angles: np.ndarray, n: int):
    t, f = angles[:n], angles[n:]
    st, ct, sf, cf = np.sin(t), np.cos(t), np.sin(f), np.cos(f)
    u = np.stack([st * cf, st * sf, ct], axis=1)
    du_dt = np.stack([ct * cf, ct * sf, -st], axis=1)
    du_df = np.stack([-st * sf, st * cf, np.zeros_like(t)], axis=1)
    return u, du_dt, du_df


def smoothest_normals(energy: np.ndarray, iterations: int) -> np.ndarray:
    """(N, 3) unit vectors g minimising g^T energy g (energy (3N, 3N) symmetric): the lowest
    eigenvector cut to unit rows, then L-BFGS over their spherical angles."""
    import scipy.linalg
    from scipy.optimize import minimize

    n = energy.shape[0] // 3
    _, vec = scipy.linalg.eigh(energy, subset_by_index=[0, 0])
    g = vec[:, 0].reshape(n, 3)
    g /= np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-300)
    if iterations <= 0:
        return g

    def objective(angles):
        u, du_dt, du_df = _unit_vectors(angles, n)
        hu = (energy @ u.ravel()).reshape(n, 3)
        return float(u.ravel() @ hu.ravel()), np.concatenate([2 * np.einsum("ij,ij->i", hu, du_dt),
                                                               2 * np.einsum("ij,ij->i", hu, du_df)])

    start = np.concatenate([np.arccos(np.clip(g[:, 2], -1.0, 1.0)), np.arctan2(g[:, 1], g[:, 0])])
    res = minimize(objective, start, jac=True, method="L-BFGS-B", options={"maxiter": int(iterations)})
    return _unit_vectors(res.x, n)[0]


def fit_hrbf(cloud: Cloud, config: HRBFConfig | None = None, *, progress=None,
             timings: dict | None = None) -> HermiteRBFField:
    """Fit a Hermite RBF implicit through every (distinct) point of ``cloud``.

    Returns a :class:`HermiteRBFField` in the cloud's units and frame, negative inside, zero
    at every point. Deterministic (no random draws). Raises InputError for more than
    ``config.max_points`` distinct points.
    """
    import scipy.linalg

    config = config or HRBFConfig()
    if config.max_points < 4 or config.refine_iterations < 0 or not 0.0 <= config.margin <= 1.0:
        raise InputError("hrbf: max_points must be >= 4, refine_iterations >= 0 and margin in [0, 1]")
    t0 = time.perf_counter()
    norm = Normalization.fit_unit_cube(np.asarray(cloud.points, np.float64))
    p = np.unique(np.round((np.asarray(cloud.points, np.float64) - norm.center) * norm.scale, 9), axis=0)
    n = len(p)
    if n > config.max_points:
        raise InputError(f"{cloud.source}: {n:,} distinct points; hrbf solves a dense system and fits at most "
                         f"{config.max_points:,} (--max-points): use gridpull or csp for denser clouds")
    if n < 4:
        raise InputError(f"{cloud.source}: {n} distinct points; hrbf needs at least 4")
    system = _kernel_system(p)
    t1 = time.perf_counter()
    try:
        inverse = scipy.linalg.inv(system, overwrite_a=True, check_finite=False)
    except (np.linalg.LinAlgError, ValueError):
        raise InputError(f"{cloud.source}: the points give a singular interpolation system "
                         "(all on a plane or a line?)") from None
    del system
    energy = inverse[n:4 * n, n:4 * n]
    energy = 0.5 * (energy + energy.T)
    t2 = time.perf_counter()
    g = smoothest_normals(energy, config.refine_iterations)
    del energy
    if np.mean(np.einsum("ij,ij->i", g, p - p.mean(axis=0))) < 0:  # the normals point out
        g = -g
    rhs = np.zeros(4 * n + 4)
    rhs[n:4 * n] = g.ravel()
    weights = inverse @ rhs
    t3 = time.perf_counter()
    if progress is not None:
        progress(1, 1, {})
    if timings is not None:
        timings.update(setup_s=t1 - t0, solve_s=t2 - t1, normals_s=t3 - t2)
    lo, hi = p.min(axis=0), p.max(axis=0)
    pad = config.margin * float(np.linalg.norm(hi - lo))
    box = norm.to_world(np.stack([lo - pad, hi + pad]))
    return HermiteRBFField(p, weights[:n], weights[n:4 * n].reshape(n, 3), weights[4 * n:], box,
                           normalization=norm, params={"method": "hrbf", "points": n,
                                                       "max_points": config.max_points,
                                                       "refine_iterations": config.refine_iterations})


register(FitterSpec(
    name="hrbf",
    config_cls=HRBFConfig,
    fit=fit_hrbf,
    description="HRBF: Hermite RBF implicit through every point, normals solved for (sparse clouds, up to ~1,200 points)",
    min_points=10,
    needs_volume=True,
    interpolates=True,
))
