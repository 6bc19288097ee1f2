"""GridPull's per-iteration passes as CUDA kernels: one thread per site or band node.

Same names, arguments and results as the CPU passes in ``gridpull_cpu.py`` (the math is
the shared ``_math.py``), so the fitter's loop runs unchanged on either; arrays here are
numba device arrays. Set-up (band, regions, orientation) stays on the CPU: it runs once.
"""

from functools import lru_cache

from numba import cuda  # importing numba.cuda needs no GPU; launching does

from recon.kernels import config
from recon.kernels._compile import cuda_math


def _launch(kernel, n, *args):
    if n:
        tpb = config.THREADS_PER_BLOCK
        kernel[(n + tpb - 1) // tpb, tpb](*args)


@lru_cache(maxsize=None)
def _kernels():
    M = cuda_math()
    trilinear = M.trilinear
    pull_site = M.pull_site
    consistency_site = M.consistency_site
    site_gradient = M.site_gradient
    adam_update = M.adam_update

    @cuda.jit
    def eval_sites(dense, origin, h, sites, out_f, out_g):
        s = cuda.grid(1)
        if s < sites.shape[0]:
            f, gx, gy, gz = trilinear(dense, origin[0], origin[1], origin[2], h, sites[s, 0], sites[s, 1], sites[s, 2])
            out_f[s] = f
            out_g[s, 0] = gx
            out_g[s, 1] = gy
            out_g[s, 2] = gz

    @cuda.jit
    def query_terms(sites, site_f, site_g, n_queries, target, target_pos, w_pull, w_cons,
                    site_df, site_dg, query_dgt, query_loss):
        q = cuda.grid(1)
        if q < n_queries:
            t = n_queries + target[q]
            lp, dfp, dgx, dgy, dgz = pull_site(
                site_f[q], site_g[q, 0], site_g[q, 1], site_g[q, 2],
                sites[q, 0], sites[q, 1], sites[q, 2], target_pos[q, 0], target_pos[q, 1], target_pos[q, 2])
            lc, cax, cay, caz, cbx, cby, cbz = consistency_site(
                site_g[q, 0], site_g[q, 1], site_g[q, 2], site_g[t, 0], site_g[t, 1], site_g[t, 2])
            site_df[q] = w_pull * dfp
            site_dg[q, 0] = w_pull * dgx + w_cons * cax
            site_dg[q, 1] = w_pull * dgy + w_cons * cay
            site_dg[q, 2] = w_pull * dgz + w_cons * caz
            query_dgt[q, 0] = w_cons * cbx
            query_dgt[q, 1] = w_cons * cby
            query_dgt[q, 2] = w_cons * cbz
            query_loss[q, 0] = lp
            query_loss[q, 1] = lc

    @cuda.jit
    def point_terms(site_f, n_queries, target_start, w_surf, query_dgt, site_df, site_dg):
        p = cuda.grid(1)
        if p < target_start.shape[0] - 1:
            s = n_queries + p
            site_df[s] = w_surf * 2.0 * site_f[s]
            gx = 0.0
            gy = 0.0
            gz = 0.0
            for q in range(target_start[p], target_start[p + 1]):
                gx += query_dgt[q, 0]
                gy += query_dgt[q, 1]
                gz += query_dgt[q, 2]
            site_dg[s, 0] = gx
            site_dg[s, 1] = gy
            site_dg[s, 2] = gz

    @cuda.jit
    def second_differences(values, neighbors, out):
        m = cuda.grid(1)
        if m < values.shape[0]:
            for a in range(3):
                p = neighbors[m, 2 * a]
                q = neighbors[m, 2 * a + 1]
                if p >= 0 and q >= 0:
                    out[m, a] = values[q] - 2.0 * values[m] + values[p]
                else:
                    out[m, a] = float("nan")

    @cuda.jit
    def update_nodes(values, neighbors, second_diff, entry_start, entry_site, entry_w, site_df, site_dg,
                     smooth_scale, adam_m, adam_v, lr, beta1, beta2, eps, bias1, bias2):
        m = cuda.grid(1)
        if m < values.shape[0]:
            g = site_gradient(m, entry_start, entry_site, entry_w, site_df, site_dg)
            for a in range(3):
                d = second_diff[m, a]
                if d == d:
                    g -= smooth_scale * 4.0 * d
                for side in range(2):
                    nb = neighbors[m, 2 * a + side]
                    if nb >= 0:
                        d = second_diff[nb, a]
                        if d == d:
                            g += smooth_scale * 2.0 * d
            x, mm, vv = adam_update(values[m], g, adam_m[m], adam_v[m], lr, beta1, beta2, eps, bias1, bias2)
            values[m] = x
            adam_m[m] = mm
            adam_v[m] = vv

    @cuda.jit
    def scatter_values(node_ijk, values, dense):
        m = cuda.grid(1)
        if m < values.shape[0]:
            dense[node_ijk[m, 0], node_ijk[m, 1], node_ijk[m, 2]] = values[m]

    return locals()


# The CPU module's pass names, launched over the right count of threads.

def eval_sites(dense, origin, h, sites, out_f, out_g):
    _launch(_kernels()["eval_sites"], sites.shape[0], dense, origin, h, sites, out_f, out_g)


def query_terms(sites, site_f, site_g, n_queries, target, target_pos, w_pull, w_cons,
                site_df, site_dg, query_dgt, query_loss):
    _launch(_kernels()["query_terms"], n_queries, sites, site_f, site_g, n_queries, target, target_pos,
            w_pull, w_cons, site_df, site_dg, query_dgt, query_loss)


def point_terms(site_f, n_queries, target_start, w_surf, query_dgt, site_df, site_dg):
    _launch(_kernels()["point_terms"], target_start.shape[0] - 1, site_f, n_queries, target_start, w_surf,
            query_dgt, site_df, site_dg)


def second_differences(values, neighbors, out):
    _launch(_kernels()["second_differences"], values.shape[0], values, neighbors, out)


def update_nodes(values, neighbors, second_diff, entry_start, entry_site, entry_w, site_df, site_dg,
                 smooth_scale, adam_m, adam_v, lr, beta1, beta2, eps, bias1, bias2):
    _launch(_kernels()["update_nodes"], values.shape[0], values, neighbors, second_diff, entry_start,
            entry_site, entry_w, site_df, site_dg, smooth_scale, adam_m, adam_v, lr, beta1, beta2, eps,
            bias1, bias2)


def scatter_values(node_ijk, values, dense):
    _launch(_kernels()["scatter_values"], values.shape[0], node_ijk, values, dense)


def to_device(array):
    return cuda.to_device(array)


def to_host(array):
    return array.copy_to_host()
