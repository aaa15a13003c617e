"""Private numba loops of the follow-up's constructions (no validation; see
``kernel.constructions`` for the maths and ``kernel._jit`` for the layout).

A large layer of a chunk is a (D, C) array in the offset-major layout of ``kernel._jit``: neuron
(i, k) (block i, offset k) at row k*d + i. A layer of any construction is the ``cis2`` pass (read
out r_t, scatter M_t r_t) followed, before bias and ReLU, by ``_add_extra_terms``: from the
layer's input A,

- the write-offset term: neuron (i, k) gets ``(N_k bs)_i`` (bs_j = sum of block j of A);
- the rank-one term: every neuron of block i gets ``rho_i = sum_m (G_m A_(., m))_i + (R bs)_i``;
- ``has_sparse``: a sparse n x n matrix K^l in every block, neuron (i, k) gets
  ``sum_j sp_w[i, j] sum_{m in K row k} K_km A[(j, m)]``.

Cost per column O(n d^2 + nnz(K) d). The forward pass (``kernel._jit._chunk``) and the
measured decomposition (``kernel._jit_decompose``) both add them through ``_add_extra_terms``.
"""

from __future__ import annotations

from kernel._numba import JIT, njit


@njit(**JIT)
def _add_extra_terms(A, An, bs, net, layer, ncol, rho, ca):
    """An += write-offset, rank-one and sparse terms of layer ``layer`` (0-based index of the
    layer An feeds; columns s < ncol).

    A, An (D, C); bs (d, C) block sums of A; net the ``NetArrays`` record (its ext_* fields:
    ``Construction.kernel_args``): N, G (n, d, d); R, sp_w (d, d); sp_ptr (n+1,) positions into
    sp_idx, sp_val (CSR of K); rho, ca (d, C) work buffers. Every sum is accumulated in the
    buffers' dtype (the compute dtype), column by column, in a fixed order (offsets, then block
    index), so a column's numbers never depend on the other columns.
    """
    N, G, R = net.ext_N[layer], net.ext_G[layer], net.ext_R[layer]
    sp_ptr, sp_idx, sp_val, sp_w = net.sp_ptr[layer], net.sp_idx, net.sp_val, net.sp_w[layer]
    D, C = An.shape
    d = bs.shape[0]
    n = D // d
    for i in range(d):
        for s in range(ncol):
            rho[i, s] = R[i, 0] * bs[0, s]
            for j in range(1, d):
                rho[i, s] += R[i, j] * bs[j, s]
    for m in range(n):
        for i in range(d):
            for j in range(d):
                g = G[m, i, j]
                if g != 0.0:
                    row = m * d + j
                    for s in range(ncol):
                        rho[i, s] += g * A[row, s]
    for k in range(n):
        for i in range(d):
            row = k * d + i
            for s in range(ncol):
                ca[i, s] = rho[i, s]
                for j in range(d):
                    ca[i, s] += N[k, i, j] * bs[j, s]
                An[row, s] += ca[i, s]
    if net.ext_flags[1] != 0:
        for k in range(n):
            if sp_ptr[k + 1] == sp_ptr[k]:
                continue
            for j in range(d):
                for s in range(ncol):
                    ca[j, s] = 0.0
            for p in range(sp_ptr[k], sp_ptr[k + 1]):
                base = sp_idx[p] * d
                v = sp_val[p]
                for j in range(d):
                    for s in range(ncol):
                        ca[j, s] += v * A[base + j, s]
            for i in range(d):
                row = k * d + i
                for j in range(d):
                    w = sp_w[i, j]
                    if w != 0.0:
                        for s in range(ncol):
                            An[row, s] += w * ca[j, s]
