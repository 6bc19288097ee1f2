"""Value and gradient of a Hermite radial basis function interpolant with the triharmonic
kernel phi(r) = r^3 (recon.fields.hermite_rbf), at many points: CPU, parallel over points.

f(x) = sum_j alpha_j phi(x - c_j) - beta_j . grad phi(x - c_j) + a . x + b, with
grad phi(d) = 3 |d| d and Hess phi(d) = 3 (|d| I + d d^T / |d|)."""

import math

import numba


@numba.njit(parallel=True, cache=True)
def hermite_rbf_cpu(centers, alpha, beta, poly, points, out_f, out_g):
    """centers (N,3) f64, alpha (N,) f64, beta (N,3) f64, poly (4,) f64 (b, a_x, a_y, a_z),
    points (Q,3) f64 -> out_f (Q,) f64 values, out_g (Q,3) f64 gradients (all in the
    units of the centres)."""
    for q in numba.prange(points.shape[0]):
        x0, x1, x2 = points[q, 0], points[q, 1], points[q, 2]
        f = poly[0] + poly[1] * x0 + poly[2] * x1 + poly[3] * x2
        g0, g1, g2 = poly[1], poly[2], poly[3]
        for j in range(centers.shape[0]):
            d0 = x0 - centers[j, 0]
            d1 = x1 - centers[j, 1]
            d2 = x2 - centers[j, 2]
            r = math.sqrt(d0 * d0 + d1 * d1 + d2 * d2)
            b0, b1, b2 = beta[j, 0], beta[j, 1], beta[j, 2]
            db = d0 * b0 + d1 * b1 + d2 * b2
            a = alpha[j]
            f += a * r * r * r - 3.0 * r * db
            # grad(alpha phi) = 3 alpha r d; grad(beta . grad phi) = Hess phi beta = 3 (r beta + d (d.beta) / r)
            s = db / r if r > 0.0 else 0.0
            g0 += 3.0 * (a * r * d0 - r * b0 - d0 * s)
            g1 += 3.0 * (a * r * d1 - r * b1 - d1 * s)
            g2 += 3.0 * (a * r * d2 - r * b2 - d2 * s)
        out_f[q] = f
        out_g[q, 0] = g0
        out_g[q, 1] = g1
        out_g[q, 2] = g2
