"""Private numba loops of the follow-up's constructions (no validation; see
``kernel.constructions`` for the maths and ``kernel._jit`` for the layout).

A large layer of a chunk is a (D, C) array in the offset-major layout of ``kernel._jit``: neuron
(i, k) (block i, offset k) at row k*d + i. Besides the per-circuit gather/scatter, a layer of the
follow-up's constructions adds, before bias and ReLU,

- the rank-one part: every neuron of block i gets
  ``rho_i = rank_y * sum_y[i] + (rank_x @ sum_x)_i + (rank_bs @ bs)_i`` (``_add_block_terms``);
- for ``ris-capped``, the sparse offset matrix C^l in every block: neuron (i, k) gets
  ``sum_j cap_w[i, j] sum_{m in C row k} A[(j, m)]`` (``_add_capped``).

``_apply_layer_cols`` is a whole layer (per-circuit part and both terms) in this layout: the serial
reference the engines' passes are checked against, itself tested against
``kernel.constructions.apply_layer``.
"""

from __future__ import annotations

import numpy as np

from kernel._numba import JIT, njit


@njit(**JIT)
def _add_block_terms(An, bs, sum_y, sum_x, rank_y, rank_x, rank_bs, ncol):
    """An[k*d + i, s] += rho_i(s) for every offset k, columns s < ncol; bs, sum_y, sum_x (d, C)."""
    D, C = An.shape
    d = bs.shape[0]
    n = D // d
    rho = np.zeros((d, C), dtype=An.dtype)
    for i in range(d):
        for s in range(ncol):
            v = rank_y * sum_y[i, s]
            for j in range(d):
                v += rank_x[i, j] * sum_x[j, s] + rank_bs[i, j] * bs[j, s]
            rho[i, s] = v
    for k in range(n):
        for i in range(d):
            row = k * d + i
            for s in range(ncol):
                An[row, s] += rho[i, s]


@njit(**JIT)
def _add_capped(A, An, cap_ptr, cap_idx, cap_w, ncol, ca):
    """An[(i, k)] += sum_j cap_w[i, j] (C A_j)[k] for columns s < ncol; C in CSR (cap_ptr (n+1,)
    positions into cap_idx); ca a (d, C) work buffer."""
    D, C = An.shape
    d = cap_w.shape[0]
    n = D // d
    for k in range(n):
        for j in range(d):
            for s in range(ncol):
                ca[j, s] = 0.0
        for p in range(cap_ptr[k], cap_ptr[k + 1]):
            base = cap_idx[p] * d
            for j in range(d):
                for s in range(ncol):
                    ca[j, s] += A[base + j, s]
        for i in range(d):
            row = k * d + i
            for j in range(d):
                w = cap_w[i, j]
                if w != 0.0:
                    for s in range(ncol):
                        An[row, s] += w * ca[j, s]


@njit(**JIT)
def _block_sums(A, bs, ncol):
    """bs[i, s] = sum over offsets of neuron (i, k), columns s < ncol."""
    D, C = A.shape
    d = bs.shape[0]
    n = D // d
    for i in range(d):
        for s in range(C):
            bs[i, s] = 0.0
    for k in range(n):
        for i in range(d):
            for s in range(ncol):
                bs[i, s] += A[k * d + i, s]


@njit(**JIT)
def _apply_layer_cols(A, An, off_r, off_w, M, gather, gather_shift, rank_y, rank_x, rank_bs,
                      cap_ptr, cap_idx, cap_w, has_cap):
    """An = W A for one layer of a construction (An zeroed here), all C columns, serially.

    x_t = gather * sum_{q} A[(j, off_r[t, q])] - gather_shift * bs_j; y_t = M_t x_t scattered onto
    off_w[t]; then the block terms and (``has_cap``) the capped term.
    """
    D, C = A.shape
    T, S = off_r.shape
    d = M.shape[1]
    bs = np.zeros((d, C), dtype=A.dtype)
    sum_y = np.zeros((d, C), dtype=A.dtype)
    sum_x = np.zeros((d, C), dtype=A.dtype)
    x = np.zeros((d, C), dtype=A.dtype)
    An[:, :] = 0.0
    _block_sums(A, bs, C)
    for t in range(T):
        for j in range(d):
            for s in range(C):
                acc = 0.0
                for q in range(S):
                    acc += A[off_r[t, q] * d + j, s]
                x[j, s] = gather * acc - gather_shift * bs[j, s]
                sum_x[j, s] += x[j, s]
        for i in range(d):
            for s in range(C):
                y = 0.0
                for j in range(d):
                    y += M[t, i, j] * x[j, s]
                sum_y[i, s] += y
                for q in range(S):
                    An[off_w[t, q] * d + i, s] += y
    _add_block_terms(An, bs, sum_y, sum_x, rank_y, rank_x, rank_bs, C)
    if has_cap:
        _add_capped(A, An, cap_ptr, cap_idx, cap_w, C, np.zeros((d, C), dtype=A.dtype))
