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
    eval_site, query_term, point_term = M.eval_site, M.query_term, M.point_term
    second_differences_at, update_node, scatter_value = M.second_differences_at, M.update_node, M.scatter_value

    @cuda.jit
    def eval_sites(dense, origin, h, sites, out_f, out_g):
        s = cuda.grid(1)
        if s < sites.shape[0]:
            eval_site(s, dense, origin, h, sites, out_f, out_g)

    @cuda.jit
    def query_terms(sites, site_f, site_g, n_queries, target, target_pos, w_pull, w_cons,
                    site_df, site_dg, query_dgt, query_loss):
        q = cuda.grid(1)
        if q < n_queries:
            query_term(q, sites, site_f, site_g, n_queries, target, target_pos, w_pull, w_cons,
                       site_df, site_dg, query_dgt, query_loss)

    @cuda.jit
    def point_terms(site_f, n_queries, target_start, w_surf, query_dgt, site_df, site_dg):
        p = cuda.grid(1)
        if p < target_start.shape[0] - 1:
            point_term(p, site_f, n_queries, target_start, w_surf, query_dgt, site_df, site_dg)

    @cuda.jit
    def second_differences(values, neighbors, out):
        m = cuda.grid(1)
        if m < values.shape[0]:
            second_differences_at(m, values, neighbors, out)

    @cuda.jit
    def update_nodes(values, neighbors, second_diff, entry_start, entry_site, entry_w, site_df, site_dg,
                     smooth_scale, adam_m, adam_v, lr, beta1, beta2, eps, bias1, bias2):
        m = cuda.grid(1)
        if m < values.shape[0]:
            update_node(m, values, neighbors, second_diff, entry_start, entry_site, entry_w, site_df,
                        site_dg, smooth_scale, adam_m, adam_v, lr, beta1, beta2, eps, bias1, bias2)

    @cuda.jit
    def scatter_values(node_ijk, values, dense):
        m = cuda.grid(1)
        if m < values.shape[0]:
            scatter_value(m, node_ijk, values, dense)

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
